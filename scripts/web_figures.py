"""Measure issue 15's web figures.

    .venv/bin/python scripts/web_figures.py board [--db mysql|postgresql] [--bookings 250]
        [--rate 40]
    .venv/bin/python scripts/web_figures.py lab [--loads 8] [--scale workshop] [--query NAME]

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

``lab``: the cache lab's page load, from navigation start to the first chart drawn with
data (``window.fcLab.firstChartMs``: ``performance.now()`` in uPlot's draw hook, set by
``lab.js``), on the workshop dataset. It runs on a state directory of its own (a fresh
temporary one, or ``--state-dir``): ``flightcache up --no-load`` and ``flightcache data
load`` there (the embedded Valkey and PostgreSQL), ``flightcache serve --port 0``, headless
Chromium; at the end serve gets Ctrl-C, ``flightcache down`` stops the servers, and the
temporary directory is removed (``--keep`` keeps it). Loads alternate between a cold cache
(the lab's keys flushed first: the first read misses) and a warm one; each load waits for
the page's opening run to end, so every load meets an idle server.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
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


# -- lab: the cache lab's page load ---------------------------------------------------------
FLIGHTCACHE = str(Path(sys.executable).parent / "flightcache")
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def tests_on_path() -> None:
    """The tests' serve and browser helpers, importable (conftest first: it imports them)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import tests.conftest  # noqa: F401


@dataclass
class Web:
    """What a subcommand measures against: serve's address and a logged-in browser."""

    base: str
    browser: Any
    env: dict[str, str]

    def wait(self, script: str, timeout: float, what: str) -> Any:
        """Poll a JavaScript expression until it is truthy; its value."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.browser.execute_script(f"return {script}")
            if value:
                return value
            time.sleep(0.02)
        raise SystemExit(f"timed out after {timeout} s waiting for {what}")

    def post(self, path: str) -> Any:
        """A POST from the page (common.js's fc.post: the CSRF header, the cookies)."""
        return self.browser.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            f"fc.post({json.dumps(path)}).then(done, (e) => done({{error: e.message}}));"
        )


def flightcache(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [FLIGHTCACHE, *args], env=env, capture_output=True, text=True, timeout=900, check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"flightcache {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result.stdout


@contextmanager
def state_dir(args: argparse.Namespace) -> Iterator[Path]:
    if args.state_dir:
        yield Path(args.state_dir)
        return
    made = Path(tempfile.mkdtemp(prefix="fc-web-figures-"))
    made.chmod(0o755)  # under root the servers run as an account of their own: let it in
    try:
        yield made / "state"
    finally:
        if args.keep:
            print(f"state directory kept: {made / 'state'}")
        else:
            shutil.rmtree(made, ignore_errors=True)


@contextmanager
def stack(env: dict[str, str], scale: str, seed: int) -> Iterator[dict[str, Any]]:
    """``up``, the dataset of ``scale`` (loaded unless already there), ``down`` at the end."""
    flightcache(env, "up", "--no-load")
    try:
        loaded = _dataset(env)
        if loaded.get("complete") and (loaded.get("scale"), loaded.get("seed")) == (scale, seed):
            print(f"dataset {scale} (seed {seed}) already loaded: kept")
        else:
            print(f"loading the {scale} dataset (seed {seed}) ...", flush=True)
            replace = ["--replace", "--yes"] if loaded.get("complete") else []
            flightcache(env, "data", "load", "--scale", scale, "--seed", str(seed), *replace)
            loaded = _dataset(env)
        yield loaded
    finally:
        flightcache(env, "down")


def _dataset(env: dict[str, str]) -> dict[str, Any]:
    result = subprocess.run(
        [FLIGHTCACHE, "data", "info", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        info: dict[str, Any] = json.loads(result.stdout)
    except ValueError:
        return {}  # no database yet
    return info


@contextmanager
def serve(env: dict[str, str]) -> Iterator[tuple[str, str]]:
    """``flightcache serve --port 0`` (the tests' way, waiting until it answers): its base
    URL and access token; stopped with Ctrl-C (SIGINT) at the end."""
    tests_on_path()
    from tests.web_helpers import start_serve

    served = start_serve(["serve", "--port", "0"], env=env)
    try:
        yield served.base, served.token
    finally:
        served.stop()


@contextmanager
def chromium() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = os.environ.get("FLIGHTCACHE_CHROMIUM", CHROMIUM)
    tests_on_path()
    from tests.web_helpers import CHROME_ARGS

    for arg in CHROME_ARGS:
        options.add_argument(arg)
    driver_path = os.environ.get("FLIGHTCACHE_CHROMEDRIVER", CHROMEDRIVER)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


# -- the figure sets ------------------------------------------------------------------------
def lab(web: Web, args: argparse.Namespace) -> None:
    """Navigation start to the first chart drawn, over ``--loads`` loads of /lab."""
    cold: list[float] = []
    warm: list[float] = []
    for i in range(args.loads):
        is_cold = i % 2 == 0
        if is_cold:
            answer = web.post("/api/lab/flush")
            if "error" in answer:
                raise SystemExit(f"flush failed: {answer['error']}")
        web.browser.get(web.base + "/lab" + (f"?query={args.query}" if args.query else ""))
        first = float(web.wait("window.fcLab && window.fcLab.firstChartMs", 30, "the first chart"))
        seen = web.browser.execute_script(
            "const n = performance.getEntriesByType('navigation')[0];"
            "return {loaded: n.domContentLoadedEventEnd, data: window.fcLab.data.map((s) => s[0]),"
            " first: document.getElementById('lab-first').textContent,"
            " query: document.getElementById('lab-query').value};"
        )
        (cold if is_cold else warm).append(first)
        database_ms, cache_ms = seen["data"][1] / 1e6, seen["data"][2] / 1e6
        print(
            f"  load {i + 1}: first chart at {first:.0f} ms (DOMContentLoaded {seen['loaded']:.0f}"
            f" ms; its first round: database {database_ms:.0f} ms, cache-aside {cache_ms:.1f} ms);"
            f" {seen['query']}, {seen['first']}",
            flush=True,
        )
        web.wait("window.fcLab.running === null", 600, "the opening run to end")
    every = cold + warm
    print(f"\ncache lab, navigation start -> first chart drawn, {len(every)} loads:")
    for label, values in (("all", every), ("cold cache", cold), ("warm cache", warm)):
        if values:
            print(
                f"  {label:<10}  median {statistics.median(values):.0f} ms,"
                f" max {max(values):.0f} ms  (n={len(values)})"
            )
    target = 1000.0
    verdict = "under" if max(every) < target else "NOT under"
    print(f"  target: under {target:.0f} ms at every load -> {verdict}")


def lab_arguments(sub: Any) -> None:
    parser = sub.add_parser("lab", help="cache lab page load to the first chart")
    parser.add_argument("--loads", type=int, default=8, help="page loads (default 8)")
    parser.add_argument(
        "--query", default=None, help="the lab's query (/lab?query=NAME; default: the page's)"
    )
    parser.add_argument("--scale", default="workshop", help="dataset (default workshop)")
    parser.add_argument("--seed", type=int, default=42, help="dataset seed (default 42)")
    parser.add_argument(
        "--state-dir", default=None, help="state directory (default: a fresh temporary one)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary state dir")
    parser.set_defaults(run=lab_main)


def lab_main(args: argparse.Namespace) -> int:
    with state_dir(args) as where:
        env = {
            **os.environ,
            "FLIGHTCACHE_STATE_DIR": str(where),
            "FLIGHTCACHE_CONFIG": str(where.parent / "no-config.toml"),  # none: no other servers
        }
        for name in ("FLIGHTCACHE_DB_URL", "FLIGHTCACHE_VALKEY_URL", "FLIGHTCACHE_KEY_PREFIX"):
            env.pop(name, None)  # the embedded stack of this state directory, nothing else
        print(f"state directory: {where}", flush=True)
        with stack(env, args.scale, args.seed) as loaded, serve(env) as (base, token):
            rows = sum(loaded.get("rows", {}).values())
            print(f"dataset: {loaded.get('scale')} (seed {loaded.get('seed')}), {rows:,} rows")
            print(f"serving on {base}", flush=True)
            with chromium() as browser:
                browser.get(f"{base}/?token={token}")  # the access cookie, as a person gets it
                lab(Web(base, browser, env), args)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="figure", required=True)
    board_arguments(sub)
    lab_arguments(sub)
    args = parser.parse_args()
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
