"""Measure the room (issue 17): `room add --count N` on both databases (time, and disk
before and after), then M attendees running a demo at once, one process each with its
own config file, each one's figures, and a check that none saw another's keys.

    .venv/bin/python scripts/room_figures.py [--scale workshop] [--count 40] [--demo-attendees 10]
        [--jobs 2] [--backend postgresql --backend mysql] [--demo cache-aside]

It makes its own database on each server (FLIGHTCACHE_TEST_MYSQL_URL and
FLIGHTCACHE_TEST_PG_URL, default this machine's 3306 and 5432), loads the generated
dataset there, starts a Valkey of its own, and removes all of it at the end: the
attendees with `room remove --all --yes`, then the database.

"Saw another's keys": before the demos every attendee gets a sentinel key under their
prefix; after them, every sentinel must be unchanged, the ACL log must hold no refusal
for any of them (the demos never reached outside their prefix), and each attendee's
`flightcache valkey GET` of the next one's sentinel must be refused.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from flightcache.config import DbUrl
from flightcache.data.load import load_generated
from flightcache.db import Database, connect, drop_database
from flightcache.stack.valkey import scratch_valkey
from flightcache.valkey_client import close
from flightcache.valkey_client import connect as connect_valkey

SERVERS = {
    "mysql": os.environ.get("FLIGHTCACHE_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test"),
    "postgresql": os.environ.get(
        "FLIGHTCACHE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    ),
}


def flightcache(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flightcache", *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
    )


def disk_bytes(db: Database, shared: str) -> int:
    """The dataset's database and every attendee's: PostgreSQL's whole database (their
    schemas live in it), MySQL's data and index bytes of the shared and fcroom_ databases."""
    if db.dialect == "postgresql":
        return int(db.fetch("SELECT pg_database_size(current_database())").rows[0][0])
    rows = db.fetch(
        "SELECT COALESCE(SUM(data_length + index_length), 0) FROM information_schema.tables"
        " WHERE table_schema = %(d)s OR table_schema LIKE 'fcroom\\_%%'",
        {"d": shared},
    ).rows
    return int(rows[0][0])


def mib(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB"


def step_ms(records: list[dict[str, Any]], hit: bool) -> float | None:
    for record in records:
        if record.get("type") == "step" and record.get("hit") is hit and record.get("ok"):
            return float(record["elapsed_ns"]) / 1e6
    return None


def run_backend(kind: str, args: argparse.Namespace, valkey_url: Any, work: Path) -> dict[str, Any]:
    url = DbUrl.parse(SERVERS[kind]).with_database(f"fc_roomfig_{uuid.uuid4().hex[:8]}")
    loader = connect(url, create=True, loader=True)
    out: dict[str, Any] = {"backend": kind}
    cards = work / f"cards-{kind}"
    admin_args = ["--db-url", url.url(redact=False), "--valkey-url", valkey_url.url(redact=False)]
    try:
        t0 = time.perf_counter()
        load_generated(loader, args.scale, 42)
        out["load_s"] = round(time.perf_counter() - t0, 1)
        out["server"] = loader.server_version()
        before = disk_bytes(loader, url.database)
        t0 = time.perf_counter()
        added = flightcache(
            *admin_args,
            "room",
            "add",
            "--count",
            str(args.count),
            "--jobs",
            str(args.jobs),
            "--out",
            str(cards),
            "--no-cards",
        )
        out["add_s"] = round(time.perf_counter() - t0, 1)
        if added.returncode != 0:
            raise SystemExit(f"room add failed on {kind}: {added.stderr}")
        after = disk_bytes(loader, url.database)
        out["disk_before"], out["disk_after"] = before, after
        out["disk_per_attendee"] = (after - before) // args.count
        files = sorted(cards.glob("attendee*.toml"))[: args.demo_attendees]
        out["demo"] = run_demos(files, args, valkey_url, work / f"state-{kind}")
    finally:
        flightcache(*admin_args, "room", "remove", "--all", "--yes", "--out", str(cards))
        loader.close()
        drop_database(url)
    return out


def run_demos(
    files: list[Path], args: argparse.Namespace, valkey_url: Any, states: Path
) -> dict[str, Any]:
    names = [f.stem for f in files]
    admin = connect_valkey(valkey_url)
    try:
        admin.execute_command("ACL", "LOG", "RESET")
        sentinels = {n: uuid.uuid4().hex for n in names}
        for name, token in sentinels.items():
            admin.set(f"room:{name}:sentinel", token)
        started = time.perf_counter()
        procs = []
        for file in files:
            env = {
                **os.environ,
                "FLIGHTCACHE_CONFIG": str(file),
                "FLIGHTCACHE_STATE_DIR": str(states / file.stem),
            }
            for name in ("FLIGHTCACHE_DB_URL", "FLIGHTCACHE_VALKEY_URL", "FLIGHTCACHE_KEY_PREFIX"):
                env.pop(name, None)
            procs.append(
                (
                    file.stem,
                    time.perf_counter(),
                    subprocess.Popen(
                        [sys.executable, "-m", "flightcache", args.demo, "--json", "--keep"],
                        env=env,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE,
                        text=True,
                    ),
                )
            )
        each: list[dict[str, Any]] = []
        for name, t0, proc in procs:
            stdout, stderr = proc.communicate()
            wall = time.perf_counter() - t0
            row: dict[str, Any] = {
                "attendee": name,
                "exit": proc.returncode,
                "wall_s": round(wall, 2),
            }
            if proc.returncode == 0:
                doc = json.loads(stdout)
                row["key_prefix"] = doc["key_prefix"]
                row["miss_ms"] = step_ms(doc["records"], False)
                row["hit_ms"] = step_ms(doc["records"], True)
                own = [k for k in admin.scan_iter(match=f"room:{name}:*")]
                row["own_keys"] = len(own)
            else:
                row["error"] = stderr.strip().splitlines()[-2:]
            each.append(row)
        total = time.perf_counter() - started
        refused_during = [
            e for e in admin.acl_log(count=1000) if str(e.get("username", "")).startswith("fcroom_")
        ]
        intact = all(admin.get(f"room:{n}:sentinel") == t for n, t in sentinels.items())
        probes_refused = 0
        for i, file in enumerate(files):
            other = names[(i + 1) % len(names)]
            env = {
                "FLIGHTCACHE_CONFIG": str(file),
                "FLIGHTCACHE_STATE_DIR": str(states / file.stem),
            }
            probe = flightcache("valkey", "GET", f"room:{other}:sentinel", env=env)
            if probe.returncode != 0 and "No permissions" in probe.stdout + probe.stderr:
                probes_refused += 1
        return {
            "attendees": each,
            "all_s": round(total, 2),
            "sentinels_intact": intact,
            "acl_refusals_during_demos": len(refused_during),
            "cross_reads_refused": f"{probes_refused}/{len(files)}",
        }
    finally:
        close(admin)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", default="workshop")
    parser.add_argument("--count", type=int, default=40)
    parser.add_argument("--demo-attendees", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--demo", default="cache-aside")
    parser.add_argument("--backend", action="append", choices=sorted(SERVERS))
    args = parser.parse_args()
    if args.count < 1 or args.demo_attendees < 1 or args.jobs < 1:
        parser.error("--count, --demo-attendees and --jobs must be 1 or more")
    backends = args.backend or ["postgresql", "mysql"]
    results = []
    with (
        tempfile.TemporaryDirectory(prefix="fc-room-figures-") as tmp,
        scratch_valkey(1, prefix="fc-room-figures-valkey-") as valkey,
    ):
        for kind in backends:
            result = run_backend(kind, args, valkey.url, Path(tmp))
            results.append(result)
            report(result, args)
    print(json.dumps(results, indent=2, default=str), file=sys.stderr)
    ok = all(
        r["demo"]["sentinels_intact"]
        and r["demo"]["acl_refusals_during_demos"] == 0
        and all(a["exit"] == 0 for a in r["demo"]["attendees"])
        for r in results
    )
    return 0 if ok else 1


def report(r: dict[str, Any], args: argparse.Namespace) -> None:
    d = r["demo"]
    print(f"== {r['backend']} ({r['server']}), scale {args.scale} (loaded in {r['load_s']} s)")
    print(
        f"room add --count {args.count} --jobs {args.jobs}: {r['add_s']} s;"
        f" disk {mib(r['disk_before'])} -> {mib(r['disk_after'])}"
        f" (+{mib(r['disk_after'] - r['disk_before'])}, {mib(r['disk_per_attendee'])} each)"
    )
    print(f"{len(d['attendees'])} attendees ran `{args.demo}` at once: all done in {d['all_s']} s")
    for a in d["attendees"]:
        if a["exit"] == 0:
            print(
                f"  {a['attendee']}: exit 0, {a['wall_s']} s, miss {a['miss_ms']:.1f} ms,"
                f" hit {a['hit_ms']:.2f} ms, {a['own_keys']} keys under room:{a['attendee']}:"
            )
        else:
            print(f"  {a['attendee']}: exit {a['exit']}: {a['error']}")
    print(
        f"sentinels intact: {d['sentinels_intact']}; ACL refusals during the demos:"
        f" {d['acl_refusals_during_demos']}; reads of another's key refused:"
        f" {d['cross_reads_refused']}"
    )


if __name__ == "__main__":
    raise SystemExit(main())
