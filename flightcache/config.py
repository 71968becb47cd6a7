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

import os
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
DEFAULT_KEY_PREFIX = "fc:"

_SECRETS: set[str] = set()


MIN_SCRUB_LENGTH = 4


def register_secret(secret: str | None) -> None:
    """Remember a secret so that :func:`scrub` removes it from printed text.

    URLs are redacted by structure everywhere; scrub is the net under driver
    messages. Secrets shorter than four characters are not scrubbed as
    substrings: a password "a" would otherwise blank every "a" in the output.
    """
    if secret and len(secret) >= MIN_SCRUB_LENGTH:
        _SECRETS.add(secret)
        _SECRETS.add(quote(secret, safe=""))


def scrub(text: str) -> str:
    """Replace every registered secret in ``text`` with ``***``."""
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
    if "://" not in url or "@" not in url:
        return scrub(url)
    scheme, rest = url.split("://", 1)
    creds, _, tail = rest.rpartition("@")
    if ":" in creds:
        creds = creds.split(":", 1)[0] + ":***"
    return scrub(f"{scheme}://{creds}@{tail}")


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
    params: tuple[tuple[str, str], ...] = ()

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
        return cls(
            kind=kind,
            scheme=scheme,
            host=host,
            port=port or DEFAULT_PORTS[kind],
            user=user,
            password=password,
            database=database,
            params=tuple(parse_qsl(query)),
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
        if self.params:
            text += "?" + "&".join(f"{k}={v}" for k, v in self.params)
        return text

    def __str__(self) -> str:
        return self.url()


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
        params = dict(parse_qsl(query))
        if "password" in params:
            password = params["password"]
            register_secret(password)
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
        )

    def client_url(self) -> str:
        """The URL in the form valkey-py's ``from_url`` takes (no ``+cluster``)."""
        return self._render(redact=False)

    def url(self, *, redact: bool = True) -> str:
        text = self._render(redact=redact)
        if self.cluster:
            text = text.replace("://", "+cluster://", 1)
        return text

    def _render(self, *, redact: bool) -> str:
        base = "valkeys" if self.tls else "valkey"
        creds = ""
        if self.username or self.password:
            creds = quote(self.username, safe="")
            if self.password:
                creds += ":" + ("***" if redact else quote(self.password, safe=""))
            creds += "@"
        if self.scheme == "unix":
            return f"unix://{creds}{self.path}?db={self.db}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{base}://{creds}{host}:{self.port}/{self.db}"

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
    """Read the optional TOML config file: keys db_url, valkey_url, state_dir, key_prefix."""
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"config file {path} is not valid TOML: {exc}",
            hint="fix the file or remove it; it takes db_url, valkey_url, state_dir and key_prefix",
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    known = {"db_url", "valkey_url", "state_dir", "key_prefix"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(
            f"config file {path} has unknown keys: {', '.join(unknown)}",
            hint="it takes db_url, valkey_url, state_dir and key_prefix",
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
    return Settings(
        db_url=DbUrl.parse(raw_db) if raw_db else None,
        valkey_url=ValkeyUrl.parse(raw_valkey) if raw_valkey else None,
        state_dir=state,
        sources=sources,
        key_prefix=prefix,
    )
