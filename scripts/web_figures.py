"""Measure issue 15's web figures.

    .venv/bin/python scripts/web_figures.py board [--db mysql|postgresql] [--bookings 250]
        [--rate 40]

``board``: the live board's delay from a booking's COMMIT to the browser drawing it.
It loads the tiny dataset into a throwaway database (``fc_webfig_board_<pid>``, dropped
at the end), starts a throwaway Valkey and the real ``flightcache serve`` on both, and
opens ``/board`` in headless Chromium (Debian's chromium and chromedriver). Then it books
through the real write-through path (``Leaderboards.book_only``: INSERT + COMMIT, the
wall-clock time taken right after the COMMIT returns; then ``apply``: ZINCRBY + PUBLISH),
paced at ``--rate``. The page notes each update it draws with
``performance.timeOrigin + performance.now()`` (``board.received``); a booking is matched
by (member, new all-time score). Prints p50/p99/max over the bookings and how many were
matched. The bookings are taken back (``cancel``) before the database is dropped.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

BOARD = "airport-bookings"
DATABASES = {
    "mysql": "mysql://root@127.0.0.1:3306/fc_webfig_board_{pid}",
    "postgresql": "postgresql://postgres@127.0.0.1:5432/fc_webfig_board_{pid}",
}


# -- board: the live board's delay ----------------------------------------------------
def board_arguments(sub: Any) -> None:
    parser = sub.add_parser("board", help="live board delay, COMMIT to browser")
    parser.add_argument("--db", choices=sorted(DATABASES), default="mysql")
    parser.add_argument("--bookings", type=int, default=250)
    parser.add_argument("--rate", type=float, default=40.0, help="bookings per second")
    parser.set_defaults(run=board_main)


@contextmanager
def board_servers(db_name: str) -> Iterator[tuple[Any, Any, str]]:
    """A throwaway database with the tiny dataset, and a throwaway Valkey."""
    from flightcache.config import DbUrl, ValkeyUrl
    from flightcache.data.load import load_generated
    from flightcache.db import connect, drop_database
    from flightcache.stack.valkey import scratch_valkey

    url = DbUrl.parse(DATABASES[db_name].format(pid=os.getpid()))
    loader = connect(url, create=True, loader=True)
    try:
        load_generated(loader, "tiny", 1, replace=True, force=True)
        loader.close()
        with scratch_valkey(1, prefix="fc-webfig-") as scratch:
            yield url, ValkeyUrl.parse(scratch.url.url(redact=False)), "fc-webfig:"
    finally:
        drop_database(url)


def board_browser() -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1000"):  # fmt: skip
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"),
                            options=options)  # fmt: skip


def board_book(db: Any, client: Any, prefix: str, count: int, rate: float) -> list[Any]:
    """``count`` write-through bookings at ``rate``/s: (commit time, member, score, booked)."""
    from flightcache.bench.leaderboard import Simulator
    from flightcache.patterns.leaderboard import board_keys
    from flightcache.patterns.leaderboard_sync import Leaderboards

    keys = board_keys(prefix)
    draws = Simulator(db, client, keys, seed=11)  # its Zipf draw of flight and passenger
    boards = Leaderboards(db, client, keys)
    made = []
    start = time.monotonic()
    for i in range(count):
        due = start + i / rate
        if due > time.monotonic():
            time.sleep(due - time.monotonic())
        new = draws.draw()
        booked = boards.book_only(new.flight_id, new.passenger_id)
        committed = time.time()
        booked.scores = boards.apply(booked.member, booked.departure, 1)
        made.append((committed, booked.member, booked.scores["all"], booked))
    draws.board.close()
    return made


def board_delays(made: list[Any], received: list[dict[str, Any]]) -> list[float]:
    """Per booking, ms from its COMMIT to the page drawing its new score (first sighting)."""
    shown: dict[tuple[str, float], float] = {}
    for r in received:
        if r["period"] == "all" and r["score"] is not None:  # not a rebuild's event
            shown.setdefault((r["member"], float(r["score"])), float(r["at"]))
    return [shown[(m, s)] - committed * 1000 for committed, m, s, _ in made if (m, s) in shown]


def board_main(args: argparse.Namespace) -> int:
    from flightcache.db import connect
    from flightcache.patterns.leaderboard_sync import Leaderboards
    from flightcache.valkey_client import close
    from flightcache.valkey_client import connect as valkey_connect

    sys.path.insert(0, str(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    import tests.conftest  # noqa: F401  (first: it imports web_helpers itself)
    from tests.web_helpers import start_serve

    with board_servers(args.db) as (db_url, valkey_url, prefix):
        glob = ["--db-url", db_url.url(redact=False), "--valkey-url", valkey_url.url(redact=False),
                "--key-prefix", prefix]  # fmt: skip
        served = start_serve([*glob, "serve", "--port", "0"])
        browser = board_browser()
        db = connect(db_url)
        client = valkey_connect(valkey_url)
        try:
            browser.get(served.url)
            browser.get(f"{served.base}/board?board={BOARD}&window=all")
            board_wait(lambda: browser.execute_script("return board.pushes") >= 1)
            time.sleep(0.5)
            made = board_book(db, client, prefix, args.bookings, args.rate)
            time.sleep(1.0)  # the last pushes
            received = browser.execute_script("return board.received")
            delays = board_delays(made, received)
            boards = Leaderboards(db, client, board_keys_of(prefix))
            for *_, booked in made:
                boards.cancel(booked)
        finally:
            browser.quit()
            served.stop()
            close(client)
            db.close()
    board_report(args, delays, len(made))
    return 0 if len(delays) == len(made) else 1


def board_keys_of(prefix: str) -> Any:
    from flightcache.patterns.leaderboard import board_keys

    return board_keys(prefix)


def board_wait(condition: Any, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit("the board page did not show its first frame")
        time.sleep(0.05)


def board_report(args: argparse.Namespace, delays: list[float], made: int) -> None:
    if not delays:
        print(f"board: none of the {made} bookings reached the page")
        return
    ordered = sorted(delays)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    print(
        f"live board delay, COMMIT -> browser drew it ({args.db}, all-time board,"
        f" {args.rate:g} bookings/s): {len(delays)}/{made} bookings matched,"
        f" p50 {statistics.median(ordered):.1f} ms, p99 {p99:.1f} ms, max {ordered[-1]:.1f} ms"
        f" (target p99 < 250 ms)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="figure", required=True)
    board_arguments(sub)
    args = parser.parse_args()
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
