"""Figures of `flightcache serve`, measured the way a person meets them: in a browser.

    .venv/bin/python scripts/web_figures.py lab [--loads 8] [--scale workshop]

Every subcommand runs on the same setup: a state directory of its own (a fresh temporary
one, or ``--state-dir``), ``flightcache up --no-load`` and ``flightcache data load`` there
(the embedded Valkey and PostgreSQL), ``flightcache serve --port 0``, and headless
Chromium driven by Selenium (Debian's ``chromium`` and ``chromium-driver``). At the end
serve is stopped with Ctrl-C (SIGINT), ``flightcache down`` stops the servers, and a
temporary state directory is removed (``--keep`` keeps it).

Subcommands:

- ``lab``: the cache lab's page load, from navigation start to the first chart drawn
  with data (``window.fcLab.firstChartMs``, set by ``lab.js`` in uPlot's draw hook,
  ``performance.now()`` of that moment). Loads alternate between a cold cache (the
  lab's keys flushed first, so the first read misses) and a warm one. Each load waits
  for the page's opening run to end before the next, so every load meets an idle server.

A new figure set is one function ``name(web, args)`` and one entry in ``SUBCOMMANDS``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import tests.conftest  # noqa: F401  (first: it imports web_helpers, which imports it)
from tests.web_helpers import CHROME_ARGS, start_serve

EXE = str(Path(sys.executable).parent / "flightcache")
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


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
        [EXE, *args], env=env, capture_output=True, text=True, timeout=900, check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"flightcache {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result.stdout


@contextlib.contextmanager
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


@contextlib.contextmanager
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
        [EXE, "data", "info", "--json"], env=env, capture_output=True, text=True, check=False
    )
    try:
        info: dict[str, Any] = json.loads(result.stdout)
    except ValueError:
        return {}  # no database yet
    return info


@contextlib.contextmanager
def serve(env: dict[str, str]) -> Iterator[tuple[str, str]]:
    """``flightcache serve --port 0`` (the tests' way, waiting until it answers): its base
    URL and access token; stopped with Ctrl-C (SIGINT) at the end."""
    served = start_serve(["serve", "--port", "0"], env=env)
    try:
        yield served.base, served.token
    finally:
        served.stop()


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = os.environ.get("FLIGHTCACHE_CHROMIUM", CHROMIUM)
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


def lab_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--loads", type=int, default=8, help="page loads (default 8)")
    parser.add_argument(
        "--query", default=None, help="the lab's query (/lab?query=NAME; default: the page's)"
    )


SUBCOMMANDS: dict[
    str, tuple[str, Callable[[Web, argparse.Namespace], None], Callable[[Any], None]]
] = {
    "lab": ("the cache lab's page load to the first chart", lab, lab_arguments),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="figure", required=True)
    for name, (text, _, arguments) in SUBCOMMANDS.items():
        one = sub.add_parser(name, help=text, description=text)
        arguments(one)
        one.add_argument("--scale", default="workshop", help="dataset (default workshop)")
        one.add_argument("--seed", type=int, default=42, help="dataset seed (default 42)")
        one.add_argument(
            "--state-dir", default=None, help="state directory (default: a fresh temporary one)"
        )
        one.add_argument("--keep", action="store_true", help="keep the temporary state dir")
    args = parser.parse_args(argv)
    _, run, _ = SUBCOMMANDS[args.figure]
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
                run(Web(base, browser, env), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
