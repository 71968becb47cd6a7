"""Settings: flags > environment > config file > the embedded stack.

Two URLs configure everything. ``FLIGHTCACHE_DB_URL`` names the relational
database (``mysql://``, ``mariadb://``, ``postgresql://``); ``FLIGHTCACHE_VALKEY_URL``
names Valkey (``valkey://``, ``valkeys://`` for TLS, ``unix://``, and
``valkey+cluster://`` / ``valkeys+cluster://`` for a cluster seed node). Either left
unset means "use the embedded stack in the state directory".

Nothing here opens a connection. Every password seen while parsing is remembered
so that :func:`scrub` can take it out of any text before it is printed.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from flightcache.errors import ConfigError

DB_SCHEMES: dict[str, Literal["mysql", "postgresql"]] = {
    "mysql": "mysql",
    "mariadb": "mysql",
    "postgresql": "postgresql",
    "postgres": "postgresql",
}
VALKEY_SCHEMES = ("valkey", "valkeys", "unix", "valkey+cluster", "valkeys+cluster")
DEFAULT_PORTS = {"mysql": 3306, "postgresql": 5432}
DEFAULT_DATABASE = "flughafendb"

ENV_DB_URL = "FLIGHTCACHE_DB_URL"
ENV_VALKEY_URL = "FLIGHTCACHE_VALKEY_URL"
ENV_STATE_DIR = "FLIGHTCACHE_STATE_DIR"
ENV_CONFIG = "FLIGHTCACHE_CONFIG"
ENV_KEY_PREFIX = "FLIGHTCACHE_KEY_PREFIX"
ENV_ROOM = "FLIGHTCACHE_ROOM"  # an attendee's name: commands record what they ran
DEFAULT_KEY_PREFIX = "fc:"

_SECRETS: set[str] = set()


MIN_SCRUB_LENGTH = 4

SECRET_PARAMS = frozenset(
    {"password", "passwd", "pwd", "sslpassword", "ssl_password", "ssl_key_password"}
)
"""URL query parameters whose value is a secret: kept out of every printed line."""

# scheme://user:password@  (user may be empty; the password runs to the last @ of the authority)
_USERINFO = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/?#@'\"]*):[^\s/?#'\"]*@")
# password=..., in a URL query (&) or a libpq key=value DSN (quoted or bare)
_KEYWORD = re.compile(
    r"(?P<head>\b(?:" + "|".join(sorted(SECRET_PARAMS, key=len, reverse=True)) + r")\s*=\s*)"
    r"(?:'(?:[^'\\]|\\.)*'|[^\s&'\"]+)",
    re.IGNORECASE,
)
# "password": "..." in JSON, colours of a terminal (rich's JSON highlighting) allowed between
_SGR = r"(?:\x1b\[[0-9;]*m)*"
_JSON_KEY = re.compile(
    r'(?P<head>"(?:' + "|".join(SECRET_PARAMS) + r')"' + _SGR + r"\s*:\s*" + _SGR + r')"'
    r'(?:[^"\\]|\\.)*"',
    re.IGNORECASE,
)


def register_secret(secret: str | None) -> None:
    """Remember a secret so that :func:`scrub` removes it from printed text.

    Passwords in URLs and ``password=`` parameters are redacted by their shape,
    whatever their length; remembered secrets are the net under driver messages
    that echo a password bare. Those shorter than four characters are not
    scrubbed as substrings: a password "a" would otherwise blank every "a".
    """
    if secret and len(secret) >= MIN_SCRUB_LENGTH:
        _SECRETS.add(secret)
        _SECRETS.add(quote(secret, safe=""))


def scrub(text: str) -> str:
    """The one redaction of flightcache: every password in ``text`` shown as ``***``.

    Covers the user info of any URL (``user:pw@``, ``:pw@``), ``password=``,
    ``passwd=``, ``sslpassword=`` and the like in URL queries and libpq DSNs,
    ``"password": "..."`` in JSON, and every password seen while parsing a URL.
    Output, errors, ``--json``, bench exports and logs all pass through it.
    """
    if not text:
        return text
    text = _USERINFO.sub(r"\g<head>:***@", text)
    text = _KEYWORD.sub(r"\g<head>***", text)
    text = _JSON_KEY.sub(r'\g<head>"***"', text)
    for secret in sorted(_SECRETS, key=len, reverse=True):
        if secret and secret in text:
            text = text.replace(secret, "***")
    return text


def _split(url: str, what: str) -> tuple[str, str, str, int | None, str, str, str]:
    """Split a URL into scheme, user, password, port, host, path and query."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(
            f"malformed {what} URL {_redact_raw(url)!r}: {exc}",
            hint="a URL looks like scheme://user:password@host:port/name",
        ) from None
    user = unquote(parts.username) if parts.username else ""
    password = unquote(parts.password) if parts.password is not None else ""
    register_secret(password)
    return (
        parts.scheme.lower(),
        user,
        password,
        port,
        parts.hostname or "",
        parts.path,
        parts.query,
    )


def _redact_raw(url: str) -> str:
    """Redact the password of a URL that may not even parse."""
    return scrub(url)


# -- URL query parameters: each one reaches its driver or is refused by name ---------------
_PG_PARAMS = frozenset(
    {
        "application_name", "channel_binding", "client_encoding", "connect_timeout",
        "fallback_application_name", "gssdelegation", "gssencmode", "gsslib", "hostaddr",
        "keepalives", "keepalives_count", "keepalives_idle", "keepalives_interval", "krbsrvname",
        "load_balance_hosts", "max_protocol_version", "min_protocol_version", "options",
        "passfile", "require_auth", "requirepeer", "ssl_max_protocol_version",
        "ssl_min_protocol_version", "sslcert", "sslcertmode", "sslcompression", "sslcrl",
        "sslcrldir", "sslkey", "sslmode", "sslnegotiation", "sslpassword", "sslrootcert",
        "sslsni", "target_session_attrs", "tcp_user_timeout",
    }
)  # fmt: skip
"""libpq connection keywords a PostgreSQL URL may carry; psycopg hands them to libpq."""
_MYSQL_PARAMS = frozenset(
    {
        "charset", "connect_timeout", "read_timeout", "write_timeout", "ssl_mode", "sslmode",
        "ssl_ca", "ssl_cert", "ssl_key", "ssl_key_password", "ssl_verify_cert",
        "ssl_verify_identity", "ssl_disabled", "program_name",
    }
)  # fmt: skip
"""PyMySQL connect arguments a MySQL/MariaDB URL may carry (``ssl_mode``/``sslmode`` mapped)."""
_DB_COMMON = frozenset({"statement_timeout"})
_REFUSED = {
    "local_infile": "flightcache turns LOAD DATA LOCAL on only on its data loader's own"
    " connection (`data load`, `data import`)",
    "user": "write the user in the URL itself: scheme://user:password@host",
    "username": "write the user in the URL itself: scheme://user:password@host",
    "host": "write the host in the URL itself: scheme://host:port",
    "port": "write the port in the URL itself: scheme://host:port",
    "dbname": "write the database as the URL's path: scheme://host/name",
    "database": "write the database as the URL's path: scheme://host/name",
    "db": "write the database as the URL's path: scheme://host/name",
    "service": "a service file would override the URL; write its settings into the URL",
}
_MYSQL_SSL_MODES = {
    "disabled": "disabled", "disable": "disabled",
    "required": "required", "require": "required",
    "verify_ca": "verify_ca", "verify-ca": "verify_ca",
    "verify_identity": "verify_identity", "verify-full": "verify_identity",
}  # fmt: skip
_SPELLING = {
    "ssl_ca": "sslrootcert", "ssl_cert": "sslcert", "ssl_key": "sslkey",
    "ssl_key_password": "sslpassword", "sslrootcert": "ssl_ca", "sslcert": "ssl_cert",
    "sslkey": "ssl_key", "sslpassword": "ssl_key_password",
}  # fmt: skip
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
DEFAULT_STATEMENT_TIMEOUT_MS = 60_000
"""Statement timeout of every connection but the data loader's: a demo or check never hangs."""


def _bad_param(what: str, url: str, name: str, why: str, hint: str) -> ConfigError:
    return ConfigError(f"{what} URL {_redact_raw(url)!r}: parameter {name!r} {why}", hint=hint)


def parse_bool(text: str) -> bool | None:
    """true/false, 1/0, yes/no, on/off; None for anything else."""
    low = text.strip().lower()
    return True if low in _TRUE else False if low in _FALSE else None


def parse_seconds(text: str) -> float | None:
    """A positive, finite number of seconds; None when the text is not one."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and value > 0 else None


def parse_duration_ms(text: str) -> int | None:
    """A PostgreSQL-style duration in milliseconds: ``0`` (off), ``500``, ``500ms``, ``30s``,
    ``2min``; a bare number is milliseconds, as PostgreSQL reads it. None when not one."""
    low = text.strip().lower()
    for unit, factor in (("ms", 1.0), ("min", 60_000.0), ("s", 1000.0)):
        if low.endswith(unit):
            low, scale = low[: -len(unit)].strip(), factor
            break
    else:
        scale = 1.0
    try:
        value = float(low) * scale
    except ValueError:
        return None
    if not math.isfinite(value) or value < 0 or (0 < value < 1):
        return None
    return int(value)


def _db_params(
    kind: Literal["mysql", "postgresql"], url: str, query: str
) -> tuple[tuple[tuple[str, str], ...], str | None]:
    """Check a database URL's query; return its parameters and a password given in it."""
    label = "MySQL/MariaDB" if kind == "mysql" else "PostgreSQL"
    accepted = (_MYSQL_PARAMS if kind == "mysql" else _PG_PARAMS) | _DB_COMMON
    password_names = ("password", "passwd") if kind == "mysql" else ("password",)
    hint = f"a {label} URL takes: " + ", ".join(sorted(accepted | set(password_names)))
    seen: dict[str, str] = {}
    password: str | None = None
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name in seen or (name in password_names and password is not None):
            raise _bad_param("database", url, name, "is given twice", hint="give it once")
        if name in SECRET_PARAMS:
            register_secret(value)
        if name in password_names:
            password = value
            continue
        if name in _REFUSED:
            raise _bad_param("database", url, name, "is not taken", hint=_REFUSED[name])
        if name not in accepted:
            other = _SPELLING.get(name)
            raise _bad_param(
                "database", url, name, f"is not understood by {label} (it would be ignored)",
                f"{label} spells it {other}" if other in accepted else hint,
            )  # fmt: skip
        _check_db_value(kind, url, name, value)
        seen[name] = value
    return tuple(seen.items()), password


def _check_db_value(kind: str, url: str, name: str, value: str) -> None:
    problem: tuple[str, str] | None = None  # (what is wrong, hint)
    if name == "statement_timeout" and parse_duration_ms(value) is None:
        problem = "not a duration", "e.g. statement_timeout=30s, 500ms, 2min, or 0 for none"
    elif name.endswith("_timeout") and name != "statement_timeout" and kind == "mysql":
        if parse_seconds(value) is None:
            problem = "not a positive number of seconds", f"e.g. {name}=10"
    elif name == "connect_timeout" and parse_seconds(value) is None:
        problem = "not a positive number of seconds", f"e.g. {name}=10"
    elif name in ("ssl_verify_cert", "ssl_verify_identity", "ssl_disabled"):
        if parse_bool(value) is None:
            problem = "not true or false", f"e.g. {name}=true"
    elif (
        kind == "mysql"
        and name in ("ssl_mode", "sslmode")
        and value.lower() not in _MYSQL_SSL_MODES
    ):
        problem = (
            "a mode PyMySQL cannot honour",
            "use disabled, required, verify_ca or verify_identity"
            " (PyMySQL has no 'preferred': it never falls back from TLS)",
        )
    if problem is not None:
        raise _bad_param("database", url, name, f"is {value!r}, {problem[0]}", hint=problem[1])


def mysql_ssl_mode(value: str) -> str:
    """The canonical MySQL ssl mode for one of the spellings a URL may use."""
    return _MYSQL_SSL_MODES[value.lower()]


@dataclass(frozen=True)
class DbUrl:
    """A parsed database URL."""

    kind: Literal["mysql", "postgresql"]
    scheme: str
    host: str
    port: int
    user: str
    password: str = field(repr=False)
    database: str
    params: tuple[tuple[str, str], ...] = field(default=(), repr=False)  # may hold a secret

    @classmethod
    def parse(cls, url: str) -> DbUrl:
        scheme, user, password, port, host, path, query = _split(url, "database")
        if scheme not in DB_SCHEMES:
            raise ConfigError(
                f"unknown database URL scheme {scheme + '://' if scheme else '(none)'}"
                f" in {_redact_raw(url)!r}",
                hint="use mysql://, mariadb:// or postgresql://, e.g. "
                "postgresql://postgres@127.0.0.1:5432/flughafendb",
            )
        kind = DB_SCHEMES[scheme]
        if not host:
            raise ConfigError(
                f"malformed database URL {_redact_raw(url)!r}: no host",
                hint="write the host explicitly, e.g. mysql://root@127.0.0.1:3306/flughafendb",
            )
        database = unquote(path.lstrip("/")) or DEFAULT_DATABASE
        if "/" in database:
            raise ConfigError(
                f"malformed database URL {_redact_raw(url)!r}: {database!r} is not a database name",
                hint="the path of the URL is one database name",
            )
        if not user:
            user = "root" if kind == "mysql" else "postgres"
        params, query_password = _db_params(kind, url, query)
        if query_password is not None:
            if password:
                raise ConfigError(
                    f"database URL {_redact_raw(url)!r} gives a password twice",
                    hint="keep either user:password@ or ?password=",
                )
            password = query_password
        return cls(
            kind=kind,
            scheme=scheme,
            host=host,
            port=port or DEFAULT_PORTS[kind],
            user=user,
            password=password,
            database=database,
            params=params,
        )

    def with_database(self, database: str) -> DbUrl:
        return replace(self, database=database)

    def url(self, *, redact: bool = True) -> str:
        """The URL back as text; the password shown as ``***`` unless ``redact=False``."""
        creds = quote(self.user, safe="")
        if self.password:
            creds += ":" + ("***" if redact else quote(self.password, safe=""))
        host = f"[{self.host}]" if ":" in self.host else self.host
        text = f"{self.scheme}://{creds}@{host}:{self.port}/{quote(self.database, safe='')}"
        return text + _query(self.params, redact=redact)

    def param(self, name: str) -> str | None:
        """A query parameter as the URL gave it, or None."""
        return dict(self.params).get(name)

    def without(self, *names: str) -> DbUrl:
        """This URL without the named query parameters (the driver was handed them)."""
        return replace(self, params=tuple((k, v) for k, v in self.params if k not in names))

    @property
    def connect_timeout(self) -> float | None:
        """``?connect_timeout=`` in seconds, or None."""
        raw = self.param("connect_timeout")
        return parse_seconds(raw) if raw is not None else None

    @property
    def statement_timeout_ms(self) -> int | None:
        """``?statement_timeout=`` in milliseconds (0: none), or None when not given."""
        raw = self.param("statement_timeout")
        return parse_duration_ms(raw) if raw is not None else None

    def __str__(self) -> str:
        return self.url()


def _query(params: tuple[tuple[str, str], ...], *, redact: bool) -> str:
    if not params:
        return ""
    return "?" + "&".join(
        f"{k}={'***' if redact and k in SECRET_PARAMS else quote(v, safe='/:,.-_')}"
        for k, v in params
    )


_PG_ENV = {
    "application_name": "PGAPPNAME", "channel_binding": "PGCHANNELBINDING",
    "client_encoding": "PGCLIENTENCODING", "connect_timeout": "PGCONNECT_TIMEOUT",
    "gssdelegation": "PGGSSDELEGATION", "gssencmode": "PGGSSENCMODE", "gsslib": "PGGSSLIB",
    "hostaddr": "PGHOSTADDR", "krbsrvname": "PGKRBSRVNAME",
    "load_balance_hosts": "PGLOADBALANCEHOSTS", "max_protocol_version": "PGMAXPROTOCOLVERSION",
    "min_protocol_version": "PGMINPROTOCOLVERSION", "options": "PGOPTIONS",
    "passfile": "PGPASSFILE", "require_auth": "PGREQUIREAUTH", "requirepeer": "PGREQUIREPEER",
    "ssl_max_protocol_version": "PGSSLMAXPROTOCOLVERSION",
    "ssl_min_protocol_version": "PGSSLMINPROTOCOLVERSION", "sslcert": "PGSSLCERT",
    "sslcertmode": "PGSSLCERTMODE", "sslcompression": "PGSSLCOMPRESSION", "sslcrl": "PGSSLCRL",
    "sslcrldir": "PGSSLCRLDIR", "sslkey": "PGSSLKEY", "sslmode": "PGSSLMODE",
    "sslnegotiation": "PGSSLNEGOTIATION", "sslrootcert": "PGSSLROOTCERT", "sslsni": "PGSSLSNI",
    "target_session_attrs": "PGTARGETSESSIONATTRS",
}  # fmt: skip
"""libpq's environment variable for each URL parameter pgcli can be given that way."""
_MYCLI_FLAGS = {"ssl_ca": "--ssl-ca", "ssl_cert": "--ssl-cert", "ssl_key": "--ssl-key",
                "charset": "--charset"}  # fmt: skip
_SHELL_SKIPS = frozenset(
    {
        "statement_timeout", "read_timeout", "write_timeout", "keepalives", "keepalives_idle",
        "keepalives_interval", "keepalives_count", "tcp_user_timeout", "program_name",
        "fallback_application_name",
    }
)  # fmt: skip
"""Limits of flightcache's own connections; an interactive shell waits as long as its user."""


def shell_options(url: DbUrl) -> tuple[list[str], dict[str, str]]:
    """The arguments and environment that give mycli or pgcli the URL's parameters.

    Timeouts are left out (a person at a prompt decides how long to wait); TLS and
    the rest are handed over, and a parameter the shell has no way to take is an
    error that names it, rather than a shell that connects without it.
    """
    args: list[str] = []
    env: dict[str, str] = {}
    tool = "mycli" if url.kind == "mysql" else "pgcli"
    for name, value in url.params:
        if name in _SHELL_SKIPS:
            continue
        if url.kind == "postgresql" and name in _PG_ENV:
            env[_PG_ENV[name]] = value
        elif url.kind == "mysql" and name in _MYCLI_FLAGS:
            args += [_MYCLI_FLAGS[name], value]
        elif url.kind == "mysql" and name in ("ssl_mode", "sslmode"):
            mode = mysql_ssl_mode(value)
            args += ["--ssl-mode", "off" if mode == "disabled" else "on"]
            if mode == "verify_identity":
                args.append("--ssl-verify-server-cert")
        elif url.kind == "mysql" and name == "ssl_disabled" and parse_bool(value):
            args += ["--ssl-mode", "off"]
        elif url.kind == "mysql" and name == "ssl_verify_identity" and parse_bool(value):
            args.append("--ssl-verify-server-cert")
        elif url.kind == "mysql" and name in ("ssl_disabled", "ssl_verify_identity"):
            continue  # false: the shell's default
        else:
            raise ConfigError(
                f"{tool} cannot be given the database URL parameter {name!r}",
                hint=f"drop it from the URL for `flightcache sql`, or run {tool} yourself",
            )
    return args, env


_VALKEY_PARAMS = {
    "socket_timeout": "seconds", "socket_connect_timeout": "seconds",
    "socket_keepalive": "bool", "retry_on_timeout": "bool", "health_check_interval": "int",
    "max_connections": "int", "client_name": "text", "protocol": "protocol",
    "ssl_cert_reqs": "cert_reqs", "ssl_ca_certs": "tls", "ssl_ca_path": "tls",
    "ssl_certfile": "tls", "ssl_keyfile": "tls", "ssl_password": "tls",
    "ssl_check_hostname": "bool",
}  # fmt: skip
"""The query parameters of a Valkey URL and their kind; valkey-py's client takes each."""
_VALKEY_TLS_ONLY = frozenset(n for n in _VALKEY_PARAMS if n.startswith("ssl_"))
_VALKEY_NOT_CLUSTER = frozenset({"health_check_interval", "ssl_ca_path", "ssl_check_hostname"})
"""Parameters valkey-py's cluster client drops without a word: refused on a cluster URL."""


def _valkey_params(
    url: str, params: dict[str, str], *, tls: bool, cluster: bool
) -> tuple[tuple[str, str], ...]:
    hint = "a Valkey URL takes: db, password, " + ", ".join(sorted(_VALKEY_PARAMS))
    out: list[tuple[str, str]] = []
    for name, value in params.items():
        if name in ("db", "password"):
            continue
        kind = _VALKEY_PARAMS.get(name)
        if kind is None:
            raise _bad_param("Valkey", url, name, "is not understood (it would be ignored)", hint)
        if cluster and name in _VALKEY_NOT_CLUSTER:
            raise _bad_param(
                "Valkey", url, name, "is not taken by valkey-py's cluster client",
                hint="drop it from the cluster URL (ssl_ca_certs names the CA file)",
            )  # fmt: skip
        if name in _VALKEY_TLS_ONLY and not tls:
            raise _bad_param(
                "Valkey", url, name, "needs TLS", hint="use valkeys:// (or valkeys+cluster://)"
            )
        if name in SECRET_PARAMS:
            register_secret(value)
        ok = {
            "seconds": parse_seconds(value) is not None,
            "bool": parse_bool(value) is not None,
            "int": value.isdigit(),
            "protocol": value in ("2", "3"),
            "cert_reqs": value.lower() in ("none", "optional", "required"),
        }.get(kind, bool(value))
        if not ok:
            raise _bad_param(
                "Valkey", url, name, f"has the unusable value {value!r}",
                hint={
                    "seconds": "a positive number of seconds, e.g. 5",
                    "bool": "true or false", "int": "a whole number", "protocol": "2 or 3",
                    "cert_reqs": "none, optional or required",
                }.get(kind, "give it a value"),
            )  # fmt: skip
        out.append((name, value))
    return tuple(out)


@dataclass(frozen=True)
class ValkeyUrl:
    """A parsed Valkey URL; ``cluster`` when the scheme carries ``+cluster``."""

    scheme: str
    cluster: bool
    tls: bool
    host: str
    port: int
    path: str
    username: str
    password: str = field(repr=False)
    db: int = 0
    params: tuple[tuple[str, str], ...] = field(default=(), repr=False)  # may hold a secret

    @classmethod
    def parse(cls, url: str) -> ValkeyUrl:
        scheme, user, password, port, host, path, query = _split(url, "Valkey")
        if scheme not in VALKEY_SCHEMES:
            raise ConfigError(
                f"unknown Valkey URL scheme {scheme + '://' if scheme else '(none)'}"
                f" in {_redact_raw(url)!r}",
                hint="use valkey://host:port, valkeys:// for TLS, unix:///path/to.sock"
                " or valkey+cluster://host:port",
            )
        cluster = scheme.endswith("+cluster")
        params = dict(parse_qsl(query, keep_blank_values=True))
        if "password" in params:
            if password:
                raise ConfigError(
                    f"Valkey URL {_redact_raw(url)!r} gives a password twice",
                    hint="keep either user:password@ or ?password=",
                )
            password = params["password"]
            register_secret(password)
        options = _valkey_params(url, params, tls=scheme.startswith("valkeys"), cluster=cluster)
        if scheme == "unix":
            if not path:
                raise ConfigError(
                    f"malformed Valkey URL {_redact_raw(url)!r}: no socket path",
                    hint="write unix:///path/to/valkey.sock",
                )
            db = params.get("db", "0")
        else:
            if not host:
                raise ConfigError(
                    f"malformed Valkey URL {_redact_raw(url)!r}: no host",
                    hint="write the host explicitly, e.g. valkey://127.0.0.1:6379",
                )
            db = path.lstrip("/") or params.get("db", "0")
        try:
            db_number = int(db)
        except ValueError:
            raise ConfigError(
                f"malformed Valkey URL {_redact_raw(url)!r}: database {db!r} is not a number",
                hint="the path of a Valkey URL is a database number, e.g. valkey://host:6379/0",
            ) from None
        if cluster and db_number != 0:
            raise ConfigError(
                f"Valkey URL {_redact_raw(url)!r} selects database {db_number}, "
                "but a cluster has only database 0",
                hint="drop the /N from the cluster URL",
            )
        return cls(
            scheme=scheme,
            cluster=cluster,
            tls=scheme.startswith("valkeys"),
            host=host,
            port=port or 6379,
            path=path if scheme == "unix" else "",
            username=user,
            password=password,
            db=db_number,
            params=options,
        )

    def client_kwargs(self) -> dict[str, object]:
        """The URL's query parameters as valkey-py's client arguments, typed."""
        out: dict[str, object] = {}
        for name, value in self.params:
            kind = _VALKEY_PARAMS[name]
            if kind == "seconds":
                out[name] = parse_seconds(value)
            elif kind == "bool":
                out[name] = parse_bool(value)
            elif kind in ("int", "protocol"):
                out[name] = int(value)
            else:
                out[name] = value
        return out

    def client_url(self) -> str:
        """The URL in the form valkey-py's ``from_url`` takes (no ``+cluster``); its
        query parameters travel as :meth:`client_kwargs`."""
        return self._render(redact=False, with_params=False)

    def url(self, *, redact: bool = True) -> str:
        text = self._render(redact=redact, with_params=True)
        if self.cluster:
            text = text.replace("://", "+cluster://", 1)
        return text

    def _render(self, *, redact: bool, with_params: bool) -> str:
        base = "valkeys" if self.tls else "valkey"
        creds = ""
        if self.username or self.password:
            creds = quote(self.username, safe="")
            if self.password:
                creds += ":" + ("***" if redact else quote(self.password, safe=""))
            creds += "@"
        if self.scheme == "unix":
            text = f"unix://{creds}{self.path}?db={self.db}"
            extra = _query(self.params, redact=redact)
            return text + ("&" + extra[1:] if extra and with_params else "")
        host = f"[{self.host}]" if ":" in self.host else self.host
        text = f"{base}://{creds}{host}:{self.port}/{self.db}"
        return text + (_query(self.params, redact=redact) if with_params else "")

    @property
    def address(self) -> str:
        return self.path if self.scheme == "unix" else f"{self.host}:{self.port}"

    def __str__(self) -> str:
        return self.url()


def default_state_dir() -> Path:
    """Where the embedded stack lives when no ``--state-dir`` is given.

    Root gets ``/var/lib/flightcache``: the embedded PostgreSQL runs under an
    unprivileged account, which cannot reach into root's home directory.
    """
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return Path("/var/lib/flightcache")
    import platformdirs

    return Path(platformdirs.user_state_path("flightcache"))


def refuse_state_dir(path: Path) -> None:
    """Raise when ``path`` is a directory no state directory may be: ``/`` or a home.

    ``down`` stops the servers of its state directory and ``up`` tightens its
    permissions, so neither may be pointed at a directory that holds other things.
    """
    resolved = path.expanduser().resolve()
    homes = {Path(os.path.expanduser("~")).resolve()}
    if resolved == Path(resolved.anchor):
        why = "is the root directory"
    elif resolved in homes:
        why = "is your home directory"
    else:
        return
    raise ConfigError(
        f"state directory {path} {why}; flightcache keeps its servers in a directory of their own",
        hint="leave --state-dir out (the default is ~/.local/state/flightcache), "
        "or name a new directory",
    )


def default_config_file() -> Path:
    import platformdirs

    return Path(platformdirs.user_config_path("flightcache")) / "config.toml"


def read_config_file(path: Path) -> dict[str, str]:
    """Read the optional TOML config file: keys db_url, valkey_url, state_dir, key_prefix
    and room (the attendee's name, on a room account: see flightcache.room)."""
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"config file {path} is not valid TOML: {exc}",
            hint="fix the file or remove it; it takes db_url, valkey_url, state_dir, key_prefix"
            " and room",
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    known = {"db_url", "valkey_url", "state_dir", "key_prefix", "room"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(
            f"config file {path} has unknown keys: {', '.join(unknown)}",
            hint="it takes db_url, valkey_url, state_dir, key_prefix and room",
        )
    out: dict[str, str] = {}
    for key, value in data.items():
        if not isinstance(value, str):
            raise ConfigError(f"config file {path}: {key} must be a string")
        out[key] = value
    return out


MAX_KEY_PREFIX = 64
# printable ASCII but the space, the hash-tag braces and the glob characters of MATCH
_KEY_PREFIX_CHARS = frozenset(chr(c) for c in range(0x21, 0x7F)) - set("{}*?[]\\")


def check_key_prefix(prefix: str) -> str:
    """``prefix`` if every key flightcache names can start with it, else a ConfigError."""
    hint = f"use up to {MAX_KEY_PREFIX} letters, digits and - _ : . e.g. fc: or workshop:alice:"
    if len(prefix) > MAX_KEY_PREFIX:
        raise ConfigError(
            f"key prefix is {len(prefix)} characters long, more than {MAX_KEY_PREFIX}", hint=hint
        )
    bad = sorted(set(prefix) - _KEY_PREFIX_CHARS)
    if bad:
        shown = ", ".join(repr(ch) for ch in bad)
        raise ConfigError(
            f"key prefix {prefix!r} has {shown}: only printable ASCII without spaces,"
            " hash-tag braces or glob characters can start a key",
            hint=hint,
        )
    return prefix


@dataclass(frozen=True)
class Settings:
    """What a command runs against. ``None`` URLs mean the embedded stack."""

    db_url: DbUrl | None
    valkey_url: ValkeyUrl | None
    state_dir: Path
    sources: Mapping[str, str] = field(default_factory=dict)
    key_prefix: str = DEFAULT_KEY_PREFIX
    room: str | None = None  # the attendee's name on a room account, else None

    @property
    def embedded_db(self) -> bool:
        return self.db_url is None

    @property
    def embedded_valkey(self) -> bool:
        return self.valkey_url is None


def resolve(
    *,
    db_url: str | None = None,
    valkey_url: str | None = None,
    state_dir: str | Path | None = None,
    config_file: str | Path | None = None,
    key_prefix: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Merge flags, environment and config file into :class:`Settings`."""
    env = os.environ if environ is None else environ
    cfg_path = Path(config_file or env.get(ENV_CONFIG) or default_config_file())
    cfg = read_config_file(cfg_path)
    sources: dict[str, str] = {}

    def pick(flag: str | Path | None, env_name: str, key: str) -> str | None:
        if flag not in (None, ""):
            sources[key] = "flag"
            return str(flag)
        if env.get(env_name):
            sources[key] = f"${env_name}"
            return env[env_name]
        if cfg.get(key):
            sources[key] = str(cfg_path)
            return cfg[key]
        sources[key] = "embedded" if key != "state_dir" else "default"
        return None

    raw_db = pick(db_url, ENV_DB_URL, "db_url")
    raw_valkey = pick(valkey_url, ENV_VALKEY_URL, "valkey_url")
    raw_state = pick(state_dir, ENV_STATE_DIR, "state_dir")
    prefix = check_key_prefix(pick(key_prefix, ENV_KEY_PREFIX, "key_prefix") or DEFAULT_KEY_PREFIX)
    state = Path(raw_state).expanduser().absolute() if raw_state else default_state_dir()
    refuse_state_dir(state)
    room = pick(None, ENV_ROOM, "room")
    if room is not None:
        from flightcache.room import check_name

        check_name(room)
    return Settings(
        db_url=DbUrl.parse(raw_db) if raw_db else None,
        valkey_url=ValkeyUrl.parse(raw_valkey) if raw_valkey else None,
        state_dir=state,
        sources=sources,
        key_prefix=prefix,
        room=room,
    )
