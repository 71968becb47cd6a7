"""The one setup every figure set runs on.

- Valkey: a scratch one-node Valkey started on first use (or ``--valkey-url``), and a
  scratch 3-node cluster for the sets that ask for one; both stopped at the end.
- Databases: the generated dataset, ONE seed (``SEED``, `flightcache data load`'s
  default), on MySQL/MariaDB and PostgreSQL, in a database named after the scale
  (``fc_figures_<scale>``). A database that already holds that scale and seed,
  completely loaded, is used as it is, so a re-run does not reload; ``--drop``
  removes the databases after the run (``drop`` removes them without running).

Pattern classes are imported by the figure modules, never here.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from flightcache.config import DbUrl, ValkeyUrl
from flightcache.data.load import info, load_generated
from flightcache.db import Database, connect, drop_database
from flightcache.stack.valkey import scratch_valkey

SEED = 42
"""The one seed of every figure's dataset (`flightcache data load --seed`'s default)."""
SCALES = ("tiny", "small", "workshop", "full")
KINDS = ("mysql", "postgresql")
KEY_PREFIX = "fcbench:"
MYSQL = os.environ.get("FLIGHTCACHE_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")
PG = os.environ.get("FLIGHTCACHE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def database_name(scale: str) -> str:
    return f"fc_figures_{scale}"


@dataclass(frozen=True)
class Figure:
    """One subcommand: ``run(setup, args)`` prints its figures; a non-zero result
    is the exit code. ``scale`` is the default dataset (None: needs none)."""

    name: str
    help: str
    run: Callable[[Setup, argparse.Namespace], int | None]
    arguments: Callable[[argparse.ArgumentParser], None] | None = None
    scale: str | None = "tiny"


def add_common(parser: argparse.ArgumentParser, scale: str | None) -> None:
    """The options of the shared setup, on every subcommand."""
    group = parser.add_argument_group("shared setup")
    if scale is not None:
        group.add_argument("--scale", default=scale, choices=SCALES, help=f"default {scale}")
    named = "its database name is replaced by fc_figures_<scale>"
    group.add_argument("--mysql", default=MYSQL, help=f"MySQL/MariaDB URL; {named}")
    group.add_argument("--pg", default=PG, help=f"PostgreSQL URL; {named}")
    group.add_argument("--only", choices=KINDS, default=None, help="one database only")
    group.add_argument(
        "--valkey-url", default=None, help="a one-node Valkey instead of the scratch one"
    )
    group.add_argument("--drop", action="store_true", help="drop the databases afterwards")


class Setup:
    """The servers of one run; use as a context manager."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.scale: str | None = getattr(args, "scale", None)
        self.stack = contextlib.ExitStack()
        self._valkeys: dict[int, ValkeyUrl] = {}
        self._ready: list[DbUrl] = []

    def __enter__(self) -> Setup:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stack.close()
        if self.args.drop and self.scale is not None:
            self.drop()

    # Valkey
    def valkey(self, nodes: int = 1) -> ValkeyUrl:
        """One node (``--valkey-url`` when given) or a cluster of ``nodes``, started once."""
        if nodes == 1 and self.args.valkey_url:
            return ValkeyUrl.parse(self.args.valkey_url)
        if nodes not in self._valkeys:
            prefix = "fc-figures-" if nodes == 1 else "fc-figures-cluster-"
            scratch = self.stack.enter_context(scratch_valkey(nodes, prefix=prefix))
            self._valkeys[nodes] = scratch.url
        return self._valkeys[nodes]

    # Databases
    def kinds(self) -> list[str]:
        return [self.args.only] if self.args.only else list(KINDS)

    def database_url(self, kind: str, scale: str | None = None) -> DbUrl:
        raw = self.args.mysql if kind == "mysql" else self.args.pg
        return DbUrl.parse(raw).with_database(database_name(scale or self.need_scale()))

    def need_scale(self) -> str:
        if self.scale is None:
            raise SystemExit("this figure set needs no dataset")
        return self.scale

    def databases(self) -> list[DbUrl]:
        """The selected databases, each holding the scale's dataset (loaded if not)."""
        return [self.database(kind) for kind in self.kinds()]

    def database(self, kind: str) -> DbUrl:
        url = self.database_url(kind)
        if url not in self._ready:
            db = connect(url, create=True)
            try:
                found = info(db)
                scale = self.need_scale()
                if found.scale != scale or found.seed != SEED or found.state != "complete":
                    print(f"{url.kind}: loading scale {scale} (seed {SEED}) ...", flush=True)
                    t0 = time.perf_counter()
                    load_generated(db, scale, SEED, replace=True, force=True)
                    print(f"{url.kind}: loaded in {time.perf_counter() - t0:.1f} s", flush=True)
            finally:
                db.close()
            self._ready.append(url)
        return url

    def open(self, kind: str) -> Database:
        """A connection to the loaded database of ``kind``; the caller closes it."""
        return connect(self.database(kind))

    def drop(self, scales: Iterable[str] | None = None) -> None:
        for scale in scales or [self.need_scale()]:
            for kind in self.kinds():
                url = self.database_url(kind, scale)
                drop_database(url)
                print(f"dropped {url}")

    # The flightcache command, as a user runs it
    def command(self, db: DbUrl | None, valkey: ValkeyUrl) -> list[str]:
        """``flightcache`` with the servers given and the figures' key prefix."""
        cmd = [str(Path(sys.executable).parent / "flightcache")]
        if db is not None:
            cmd += ["--db-url", db.url(redact=False)]
        return [*cmd, "--valkey-url", valkey.url(redact=False), "--key-prefix", KEY_PREFIX]

    def json_of(self, db: DbUrl | None, valkey: ValkeyUrl, *args: str) -> dict[str, Any]:
        """Run ``flightcache ... <args>`` (args end in --json); its JSON document."""
        proc = subprocess.run(
            [*self.command(db, valkey), *args], capture_output=True, text=True, check=False
        )
        if proc.returncode:
            sys.exit(f"flightcache {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
        document: dict[str, Any] = json.loads(proc.stdout)
        return document


def each_database(
    setup: Setup,
    args: argparse.Namespace,
    measure: Callable[[Setup, str, Any, argparse.Namespace], None],
) -> None:
    """One client of the shared Valkey, then ``measure(setup, kind, client, args)`` on
    each database in turn."""
    from flightcache.valkey_client import close, connect, parser_name

    url = setup.valkey()
    client = connect(url)
    print(f"Valkey {url}, reply parser {parser_name(client)}")
    try:
        for database in setup.databases():
            measure(setup, database.kind, client, args)
    finally:
        close(client)


def run_drop(setup: Setup, args: argparse.Namespace) -> int | None:
    unknown = sorted(set(args.scales) - set(SCALES))
    if unknown:
        sys.exit(f"unknown scale {', '.join(unknown)}; one of {', '.join(SCALES)}")
    setup.drop(args.scales or SCALES)
    return None


def drop_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scales", nargs="*", metavar="SCALE", help=f"of {', '.join(SCALES)}")


DROP = Figure(
    "drop",
    "drop the figures' databases (every scale, or those named)",
    run_drop,
    drop_arguments,
    scale=None,
)
