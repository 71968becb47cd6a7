"""Measure the dump reader: time to reject hostile files, and rows/s on a real dump.

    .venv/bin/python scripts/bench_dump.py adversarial [--size 1048576]
    .venv/bin/python scripts/bench_dump.py parse DUMP [DUMP ...] [--runs 3]

`adversarial` writes one file per kind of input that makes regex backtracking
explode (long runs of quotes, backslashes, parentheses, digits, comment openers,
an unterminated string, one huge line) and times how long `read_dump` takes to
refuse each; the target is under 5 s for 1 MiB. `parse` times reading a dump
(several paths: the parts of a split one) and prints rows and rows/s. To time a
whole import, run `flightcache data import` under `time` (see the README).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from flightcache.data.dump import read_dump
from flightcache.errors import DumpFormatError

TARGET_SECONDS = 5.0

_HEAD = (
    "-- MySQL dump 10.13  Distrib 8.0.36, for Linux (x86_64)\n"
    "CREATE TABLE `airport` (\n  `airport_id` smallint NOT NULL,\n  `iata` char(3),\n"
    "  `icao` char(4) NOT NULL,\n  `name` varchar(50) NOT NULL\n) ENGINE=InnoDB;\n"
)
_ROW = "INSERT INTO `airport` VALUES (1,'AAA','AAAA',"


def _fill(prefix: str, unit: str, size: int, suffix: str = "") -> str:
    return prefix + unit * max(1, (size - len(prefix) - len(suffix)) // len(unit)) + suffix


# name -> size -> the text of a file that must be refused
ADVERSARIAL: dict[str, Callable[[int], str]] = {
    "digits": lambda n: _fill(_HEAD + _ROW, "1", n, "x);\n"),
    "decimal": lambda n: _fill(_HEAD + _ROW, "1.", n, "e);\n"),
    "hex": lambda n: _fill(_HEAD + _ROW, "0x" + "f", n, "g);\n"),
    "quotes": lambda n: _fill(_HEAD + _ROW, "'", n, "'"),
    "doubled-quotes": lambda n: _fill(_HEAD + _ROW + "'", "''", n, ",x"),
    "backslashes": lambda n: _fill(_HEAD + _ROW + "'", "\\", n),
    "escaped-quotes": lambda n: _fill(_HEAD + _ROW + "'", "\\'", n),
    "parentheses": lambda n: _fill(_HEAD + "INSERT INTO `airport` VALUES ", "(", n),
    "closing-parentheses": lambda n: _fill(_HEAD + _ROW + "'a')", ")", n, ";\n"),
    "unterminated-string": lambda n: _fill(_HEAD + _ROW + "'", "a", n),
    "separators": lambda n: _fill(_HEAD + _ROW, ",", n, ");\n"),
    "one-huge-line": lambda n: _fill(
        _HEAD + "INSERT INTO `airport` VALUES ", "(1,'A','B','C'),", n, "(2,'D'"
    ),
    "spaced-values": lambda n: _fill(_HEAD + _ROW, " 1 ,", n, " x"),
    "comment-openers": lambda n: _fill("CREATE TABLE `airport` (", "/*", n),
    "column-list": lambda n: _fill(_HEAD + "INSERT INTO `airport` (", "`a`,", n),
    "gaps": lambda n: _fill(_HEAD + "INSERT INTO `airport`", "/**/ ", n),
    "introducers": lambda n: _fill(_HEAD + _ROW, "_binary ", n, "'x');\n"),
    "string-quotes": lambda n: _fill(_HEAD + _ROW, "'a'", n, ");\n"),
}


def time_to_reject(path: Path) -> tuple[float, str]:
    """Seconds until read_dump refuses the file, and its message (or 'ACCEPTED')."""
    t0 = time.perf_counter()
    try:
        for _ in read_dump(path):
            pass
    except DumpFormatError as exc:
        return time.perf_counter() - t0, exc.message
    return time.perf_counter() - t0, "ACCEPTED"


def write_adversarial(directory: Path, size: int) -> list[Path]:
    paths = []
    for name, make in ADVERSARIAL.items():
        path = directory / f"{name}.sql"
        path.write_text(make(size), encoding="utf-8")
        paths.append(path)
    return paths


def adversarial(size: int) -> int:
    worst = 0.0
    with tempfile.TemporaryDirectory(prefix="fc-bench-dump-") as tmp:
        for path in write_adversarial(Path(tmp), size):
            seconds, message = time_to_reject(path)
            worst = max(worst, seconds)
            print(f"{path.stem:22} {path.stat().st_size:>9,} B  {seconds:7.3f} s  {message[:70]}")
    verdict = "ok" if worst < TARGET_SECONDS else "TOO SLOW"
    print(f"slowest rejection: {worst:.3f} s (target < {TARGET_SECONDS:.0f} s): {verdict}")
    return 0 if worst < TARGET_SECONDS else 1


def parse(paths: list[Path], runs: int) -> int:
    times = []
    rows = 0
    for _ in range(runs):
        t0 = time.perf_counter()
        rows = sum(len(b.rows) for b in read_dump(paths[0] if len(paths) == 1 else paths))
        times.append(time.perf_counter() - t0)
    best, median = min(times), statistics.median(times)
    print(f"{rows:,} rows; best {best:.2f} s ({rows / best:,.0f} rows/s), median {median:.2f} s")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    adv = sub.add_parser("adversarial", help="time to reject hostile files")
    adv.add_argument("--size", type=int, default=1 << 20, help="bytes per file (default 1 MiB)")
    rate = sub.add_parser("parse", help="rows/s reading a dump")
    rate.add_argument("dump", type=Path, nargs="+")
    rate.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if args.what == "adversarial":
        return adversarial(args.size)
    return parse(args.dump, args.runs)


if __name__ == "__main__":
    sys.exit(main())
