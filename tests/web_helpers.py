"""Fixtures for `flightcache serve`: the app in-process, the real command, a real browser.

- ``web`` (in-process): the FastAPI app over the loaded test database, the session's
  Valkey and the test's key prefix, driven by Starlette's TestClient; it holds the
  access cookie and the CSRF cookie, and ``web.post`` sends the CSRF header.
- ``served``: ``flightcache serve --port 0`` as a real child process, its URL read from
  what it prints; stopped with SIGINT (Ctrl-C) at the end.
- ``browser``: headless Chromium (Debian's ``chromium`` and ``chromium-driver``) through
  Selenium. Absent browser: skipped, unless FLIGHTCACHE_REQUIRE_BROWSER=1 (``.ci/run``)
  makes that a failure. A failing test leaves a screenshot and the page's HTML under
  ``test-artifacts/browser/``.

Use: ``from tests.web_helpers import *  # noqa: F403`` in a test module, or the names.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ValkeyInstance, absent, server_args

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "browser"
URL_LINE = re.compile(r"serving on (https?://\S+)/\?token=(\S+)")
CHROMIUM = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
DRIVER = ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver")
CHROME_ARGS = (  # also scripts/web_figures.py's browser
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--window-size=1400,1000",
    "--no-first-run",
    "--disable-extensions",
)


@dataclass
class WebClient:
    """A TestClient with the access and CSRF cookies set; ``post`` sends the header."""

    client: Any
    token: str
    prefix: str
    services: Any = None

    def get(self, url: str, **kwargs: Any) -> Any:
        return self.client.get(url, **kwargs)

    def post(self, url: str, json: Any = None, **kwargs: Any) -> Any:
        headers = {
            "X-CSRF-Token": self.client.cookies.get("fc_csrf", ""),
            **kwargs.pop("headers", {}),
        }
        return self.client.post(url, json=json, headers=headers, **kwargs)


def web_config(db_url: Any, instance: ValkeyInstance, key_prefix: str) -> Any:
    from flightcache.web.config import WebConfig
    from flightcache.web.security import new_token

    return WebConfig(
        db_url=db_url.url(redact=False),
        valkey_url=instance.url.url(redact=False),
        key_prefix=key_prefix,
        token=new_token(),
        display_db=db_url.url(),
        display_valkey=instance.url.url(),
    )


@pytest.fixture
def web(
    loaded: Any, db_url: Any, valkey_server: ValkeyInstance, key_prefix: str
) -> Iterator[WebClient]:
    from starlette.testclient import TestClient

    from flightcache.web.app import create_app

    config = web_config(db_url, valkey_server, key_prefix)
    app = create_app(config)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        assert client.get(f"/?token={config.token}").status_code == 200
        assert client.get("/api/csrf").status_code == 200
        yield WebClient(client, config.token, key_prefix, app.state.services)


@dataclass
class Served:
    base: str  # http://127.0.0.1:PORT
    token: str
    process: subprocess.Popen[str]
    output: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        """The URL serve printed: the first request with it sets the access cookie."""
        return f"{self.base}/?token={self.token}"

    def stop(self, sig: int = signal.SIGINT, timeout: float = 15) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"serve did not stop within {timeout} s of signal {sig}") from None


def start_serve(
    args: list[str], env: dict[str, str] | None = None, timeout: float = 30, https: bool = False
) -> Served:
    """``flightcache <args> serve --port 0 ...`` as a child; its URL once it is listening."""
    from flightcache.children import child_env

    command = [sys.executable, "-m", "flightcache", *args]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=child_env(env),
        start_new_session=True,
    )
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        match = URL_LINE.search(line)
        if match:
            served = Served(match.group(1), match.group(2), process, lines)
            _wait_listening(served, deadline, verify=not https)
            return served
    process.kill()
    rest = process.stdout.read()
    raise AssertionError("serve did not print its URL:\n" + "".join(lines) + rest)


def _wait_listening(served: Served, deadline: float, verify: bool = True) -> None:
    import httpx

    while time.monotonic() < deadline:
        try:
            httpx.get(served.base + "/health", timeout=1, verify=verify)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise AssertionError("serve printed its URL but does not answer")


@pytest.fixture
def served(
    loaded: Any, db_url: Any, valkey_server: ValkeyInstance, key_prefix: str
) -> Iterator[Served]:
    instance = start_serve(
        [*server_args(db_url, valkey_server, key_prefix), "serve", "--port", "0"]
    )
    yield instance
    instance.stop()


def _first(paths: tuple[str, ...], env: str) -> str | None:
    chosen = os.environ.get(env)
    if chosen:
        return chosen
    for path in paths:
        if Path(path).exists():
            return path
    return None


@pytest.fixture
def browser(request: pytest.FixtureRequest) -> Iterator[Any]:
    """Headless Chromium via Selenium and Debian's chromedriver (never downloaded)."""
    binary = _first(CHROMIUM, "FLIGHTCACHE_CHROMIUM")
    driver_path = _first(DRIVER, "FLIGHTCACHE_CHROMEDRIVER") or shutil.which("chromedriver")
    if binary is None or driver_path is None:
        if os.environ.get("FLIGHTCACHE_REQUIRE_BROWSER") == "1":
            pytest.fail(
                "Chromium or chromedriver is missing (apt-get install chromium chromium-driver)"
            )
        absent("no Chromium/chromedriver here (Debian: apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in CHROME_ARGS:
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^\w.-]+", "_", request.node.nodeid)[-150:]
        try:
            driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))
            (ARTIFACTS / f"{name}.html").write_text(driver.page_source)
        except Exception as exc:  # the browser may be what failed
            (ARTIFACTS / f"{name}.txt").write_text(f"no screenshot: {exc!r}")
    driver.quit()


def wait_for(
    condition: Any, timeout: float = 10, step: float = 0.05, what: str = "condition"
) -> Any:
    """Poll ``condition()`` until it returns something true; that value, or fail."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = condition()
        except Exception as exc:  # a page mid-update: try again
            last = exc
        else:
            if last:
                return last
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}; last: {last!r}")
