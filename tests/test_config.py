"""URLs, precedence and redaction: no I/O beyond a temp config file."""

from __future__ import annotations

from pathlib import Path

import pytest

from flightcache.config import DbUrl, ValkeyUrl, resolve, scrub
from flightcache.errors import ConfigError


@pytest.mark.parametrize(
    ("url", "kind", "port", "user", "database"),
    [
        ("mysql://root@127.0.0.1/flughafendb", "mysql", 3306, "root", "flughafendb"),
        ("mariadb://app:pw@db.local:3307/x", "mysql", 3307, "app", "x"),
        ("postgresql://127.0.0.1", "postgresql", 5432, "postgres", "flughafendb"),
        ("postgres://u@[::1]:6543/y", "postgresql", 6543, "u", "y"),
    ],
)
def test_db_url_parses(url: str, kind: str, port: int, user: str, database: str) -> None:
    parsed = DbUrl.parse(url)
    assert (parsed.kind, parsed.port, parsed.user, parsed.database) == (kind, port, user, database)


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("oracle://x@h/db", "unknown database URL scheme oracle://"),
        ("127.0.0.1:3306", "unknown database URL scheme"),
        ("mysql://root@h:notaport/db", "malformed database URL"),
        ("mysql:///db", "no host"),
        ("mysql://h/a/b", "is not a database name"),
    ],
)
def test_db_url_rejects(url: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        DbUrl.parse(url)
    assert fragment in info.value.message
    assert info.value.hint


@pytest.mark.parametrize(
    ("url", "cluster", "tls", "address", "db"),
    [
        ("valkey://127.0.0.1:6380/2", False, False, "127.0.0.1:6380", 2),
        ("valkeys://h:6390", False, True, "h:6390", 0),
        ("valkey+cluster://127.0.0.1:7000", True, False, "127.0.0.1:7000", 0),
        ("valkeys+cluster://h:7000", True, True, "h:7000", 0),
        ("unix:///tmp/v.sock?db=3", False, False, "/tmp/v.sock", 3),
    ],
)
def test_valkey_url_parses(url: str, cluster: bool, tls: bool, address: str, db: int) -> None:
    parsed = ValkeyUrl.parse(url)
    assert (parsed.cluster, parsed.tls, parsed.address, parsed.db) == (cluster, tls, address, db)


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("redis://h:6379", "unknown Valkey URL scheme redis://"),
        ("valkey://h:99999", "malformed Valkey URL"),
        ("valkey://h:6379/abc", "is not a number"),
        ("valkey+cluster://h:7000/3", "has only database 0"),
        ("unix://", "no socket path"),
    ],
)
def test_valkey_url_rejects(url: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        ValkeyUrl.parse(url)
    assert fragment in info.value.message


def test_passwords_never_printed() -> None:
    secret = "s3cr3t-Pa55"
    db = DbUrl.parse(f"mysql://app:{secret}@h:3306/x")
    vk = ValkeyUrl.parse(f"valkey://default:{secret}@h:6379")
    for text in (str(db), repr(db), db.url(), str(vk), repr(vk), vk.url()):
        assert secret not in text
    assert "***" in str(db) and "***" in str(vk)
    assert db.url(redact=False).count(secret) == 1
    assert scrub(f"driver said {secret} twice {secret}") == "driver said *** twice ***"
    with pytest.raises(ConfigError) as info:
        DbUrl.parse(f"oracle://app:{secret}@h/x")
    assert secret not in info.value.message


def test_precedence_flag_env_file(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        'db_url = "mysql://file@h1/a"\nvalkey_url = "valkey://file:1"\nstate_dir = "/tmp/fc-file"\n'
    )
    env = {"FLIGHTCACHE_DB_URL": "postgresql://env@h2/b"}
    s = resolve(db_url=None, config_file=cfg, environ=env)
    assert s.db_url is not None and s.db_url.user == "env"
    assert s.valkey_url is not None and s.valkey_url.port == 1
    assert s.state_dir == Path("/tmp/fc-file")
    s = resolve(db_url="mysql://flag@h3/c", config_file=cfg, environ=env)
    assert s.db_url is not None and s.db_url.user == "flag"
    assert s.sources["db_url"] == "flag"
    s = resolve(config_file=tmp_path / "missing.toml", environ={})
    assert s.db_url is None and s.valkey_url is None and s.embedded_db


def test_config_file_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("db_url = ")
    with pytest.raises(ConfigError, match="not valid TOML"):
        resolve(config_file=bad, environ={})
    bad.write_text('dburl = "x"\n')
    with pytest.raises(ConfigError, match="unknown keys: dburl"):
        resolve(config_file=bad, environ={})


def test_short_passwords_do_not_blank_output() -> None:
    DbUrl.parse("mysql://app:a@h:3306/x")
    assert scrub("cannot reach MySQL at h:3306") == "cannot reach MySQL at h:3306"
    assert "a" not in DbUrl.parse("mysql://app:a@h:3306/x").url().split("@")[0].split(":")[-1]
