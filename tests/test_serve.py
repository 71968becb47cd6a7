"""`flightcache serve`: the app's common rules, the real command, a real browser."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from typing import Any

import httpx
import pytest

from tests.conftest import server_args
from tests.web_helpers import Served, start_serve, wait_for


def test_every_request_needs_the_token(web: Any) -> None:
    from starlette.testclient import TestClient

    app = web.client.app
    with TestClient(app, base_url="http://127.0.0.1") as stranger:
        for path in ("/", "/health", "/api/csrf", "/docs", "/static/common.js"):
            response = stranger.get(path)
            assert response.status_code == 401, path
            assert "access token" in response.text
        assert stranger.get("/?token=" + "x" * 32).status_code == 401
        # the token in the URL becomes a cookie, and the address bar loses it
        first = stranger.get(f"/health?token={web.token}", follow_redirects=False)
        assert first.status_code == 303
        assert first.headers["location"] == "/health"
        cookie = first.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie
        assert stranger.get("/health").status_code == 200


def test_health_names_both_servers(web: Any, db_url: Any) -> None:
    status = web.get("/health").json()
    assert status == {
        "valkey": {"ok": True},
        "database": {"ok": True, "kind": db_url.kind},
        "ok": True,
    }


def test_a_post_needs_the_csrf_header(web: Any) -> None:
    # the route need not exist: the check comes first
    refused = web.client.post("/api/csrf")
    assert refused.status_code == 403
    assert "X-CSRF-Token" in refused.json()["error"]
    forged = web.client.post("/api/csrf", headers={"X-CSRF-Token": "forged-" + "x" * 20})
    assert forged.status_code == 403
    allowed = web.post("/api/csrf")
    assert allowed.status_code == 405  # past the CSRF check; the route is GET only


def test_index_lists_the_pages_and_ships_nothing_from_elsewhere(web: Any) -> None:
    page = web.get("/").text
    assert "<title>" in page and "flightcache" in page
    assert "http://" not in page and "https://" not in page and "//cdn" not in page
    for path, _, _ in __import__("flightcache.web.app", fromlist=["PAGES"]).PAGES:
        assert f'href="{path}"' in page


def test_docs_are_served_from_the_package(web: Any) -> None:
    page = web.get("/docs").text
    sources = re.findall(r'(?:src|href)="([^"]+)"', page) + re.findall(r"url: '([^']+)'", page)
    assert sources and all(s.startswith("/") for s in sources), sources
    for source in sources:
        assert web.get(source).status_code == 200, source
    assert '"validatorUrl": null' in page


@pytest.mark.slow
def test_serve_stops_on_ctrl_c(served: Served) -> None:
    assert httpx.get(served.base + "/health").status_code == 401
    with httpx.Client(base_url=served.base) as client:
        assert client.get(served.url, follow_redirects=True).status_code == 200
        assert client.get("/health").json()["ok"] is True
    assert served.stop(signal.SIGINT) in (0, 130)  # 130: the shell's code for Ctrl-C
    output = "".join(served.output) + (
        served.process.stdout.read() if served.process.stdout else ""
    )
    assert "Traceback" not in output


@pytest.mark.slow
@pytest.mark.safety(2)
@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("runuser"), reason="needs root and runuser"
)
def test_another_account_cannot_use_the_server(served: Served) -> None:
    """A real second OS account (nobody) reaches the port but not the servers behind it."""
    probe = (
        "import urllib.request, urllib.error, sys\n"
        f"try: urllib.request.urlopen({served.base + '/health'!r}, timeout=5)\n"
        "except urllib.error.HTTPError as e: print(e.code); sys.exit(0)\n"
        "print('open')\n"
    )
    result = subprocess.run(
        ["runuser", "-u", "nobody", "--", "/usr/bin/python3", "-c", probe],
        capture_output=True,
        text=True,
        timeout=30,
        cwd="/",
    )
    assert result.stdout.strip() == "401", result.stdout + result.stderr
    # the token is nowhere nobody can read it: not on serve's command line
    with open(f"/proc/{served.process.pid}/cmdline", "rb") as f:
        cmdline = f.read().decode()
    assert served.token not in cmdline


@pytest.mark.slow
@pytest.mark.safety(1, 10)
def test_workers_die_with_a_killed_serve(
    loaded: Any, db_url: Any, valkey_server: Any, key_prefix: str
) -> None:
    import psutil

    instance = start_serve(
        [*server_args(db_url, valkey_server, key_prefix), "serve", "--port", "0", "--workers", "2"]
    )
    try:
        parent = psutil.Process(instance.process.pid)
        workers = wait_for(
            lambda: len(parent.children(recursive=True)) >= 2 and parent.children(recursive=True),
            what="two uvicorn workers",
        )
        with httpx.Client(base_url=instance.base) as client:
            assert client.get(instance.url, follow_redirects=True).status_code == 200
        instance.process.send_signal(signal.SIGKILL)
        instance.process.wait(10)
        _, alive = psutil.wait_procs(workers, timeout=10)
        assert not alive, f"workers left running after serve was killed: {alive}"
    finally:
        instance.stop(signal.SIGKILL)


@pytest.mark.safety(8)
def test_bad_options_are_one_line(cli: Any) -> None:
    result = cli("serve", "--host", "not-an-ip")
    assert result.code == 2 and "not an IP address" in result.err
    result = cli("serve", "--token", "short")
    assert result.code == 2 and "too short" in result.err


@pytest.mark.slow
def test_port_in_use_is_one_line(
    served: Served, db_url: Any, valkey_server: Any, key_prefix: str
) -> None:
    port = served.base.rsplit(":", 1)[1]
    import sys

    from flightcache.children import child_env

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "flightcache",
            *server_args(db_url, valkey_server, key_prefix),
            "serve",
            "--port",
            port,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=child_env(),
    )
    assert result.returncode == 2
    assert f"port {port} on 127.0.0.1 is in use" in result.stderr
    assert "--port 0" in result.stderr


@pytest.mark.slow
def test_the_index_in_a_real_browser(served: Served, browser: Any) -> None:
    browser.get(served.url)
    wait_for(
        lambda: browser.find_element("id", "health").text.startswith("Valkey up"),
        what="the index to show both servers up",
    )
    assert browser.find_element("id", "health").text == "Valkey up, database up"
    assert "token=" not in browser.current_url
    start = time.monotonic()
    browser.get(served.base + "/health")
    assert '"ok":true' in browser.page_source.replace(" ", "")
    assert time.monotonic() - start < 5


def _self_signed(directory: Any) -> tuple[str, str]:
    cert, key = str(directory / "cert.pem"), str(directory / "key.pem")
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            key,
            "-out",
            cert,
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.mark.slow
@pytest.mark.skipif(not shutil.which("openssl"), reason="needs openssl for a test certificate")
def test_https_makes_the_cookies_secure(
    loaded: Any, db_url: Any, valkey_server: Any, key_prefix: str, tmp_path: Any
) -> None:
    cert, key = _self_signed(tmp_path)
    instance = start_serve(
        [
            *server_args(db_url, valkey_server, key_prefix),
            "serve",
            "--port",
            "0",
            "--tls-cert",
            cert,
            "--tls-key",
            key,
        ],
        https=True,
    )
    try:
        assert instance.base.startswith("https://")
        with httpx.Client(base_url=instance.base, verify=False) as client:
            first = client.get(instance.url, follow_redirects=False)
            assert "Secure" in first.headers["set-cookie"]
            page = client.get("/", follow_redirects=True)
            assert "Secure" in page.headers["set-cookie"]  # the CSRF cookie too
    finally:
        instance.stop()


@pytest.mark.safety(8)
def test_half_a_tls_pair_is_refused(cli: Any, tmp_path: Any) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_text("not a certificate")
    result = cli("serve", "--tls-cert", str(cert))
    assert result.code == 2 and "go together" in result.err
    result = cli("serve", "--tls-cert", str(cert), "--tls-key", str(cert))
    assert result.code == 2 and "cannot use" in result.err


@pytest.mark.safety(9)
def test_no_password_reaches_a_page(web: Any, valkey_server: Any) -> None:
    """The test Valkey has a password (as the embedded one has): no page, script or API
    answer that a GET can reach shows it, nor a URL that would carry it."""
    from flightcache.web.app import PAGES

    secret = valkey_server.url.password
    assert secret
    app = web.client.app
    paths = {"/", "/health", "/docs", "/openapi.json", *(path for path, _, _ in PAGES)}
    for route in app.routes:
        path = getattr(route, "path", "")
        methods = getattr(route, "methods", None) or set()
        if "GET" in methods and "{" not in path:
            paths.add(path)
    for path in sorted(paths):
        response = web.get(path)
        assert secret not in response.text, path
        assert "valkey://" not in response.text and "postgresql://" not in response.text, path
        assert "mysql://" not in response.text, path


@pytest.mark.slow
def test_every_page_loads_offline_in_a_real_browser(served: Served, browser: Any) -> None:
    """Each page listed in the index loads with nothing fetched from another origin and
    no script error in the console."""
    browser.get(served.url)
    wait_for(lambda: browser.find_element("id", "health").text != "checking…", what="index")
    links = [a.get_attribute("href") for a in browser.find_elements("css selector", "ul.pages a")]
    for link in [served.base + "/", served.base + "/docs", *links]:
        browser.get(link)
        wait_for(
            lambda: browser.execute_script("return document.readyState") == "complete",
            what=f"{link} to load",
        )
        time.sleep(0.3)  # let the page's first requests go out
        resources = browser.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)"
        )
        foreign = [r for r in resources if not r.startswith(served.base) and not r.startswith("ws")]
        assert not foreign, f"{link} fetched from elsewhere: {foreign}"
        errors = [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"]
        assert not errors, f"{link}: {errors}"


@pytest.mark.slow
@pytest.mark.safety(2)
def test_the_room_gets_a_warning_and_still_needs_the_token(
    loaded: Any, db_url: Any, valkey_server: Any, key_prefix: str
) -> None:
    instance = start_serve(
        [
            *server_args(db_url, valkey_server, key_prefix),
            "serve",
            "--host",
            "0.0.0.0",
            "--port",
            "0",
        ]
    )
    try:
        said = "".join(instance.output)
        assert "warning: listening on 0.0.0.0" in said
        assert httpx.get(instance.base + "/health").status_code == 401
        with httpx.Client(base_url=instance.base) as client:
            assert client.get(instance.url, follow_redirects=True).status_code == 200
    finally:
        instance.stop()


@pytest.mark.slow
def test_open_hands_the_url_to_the_browser(
    loaded: Any, db_url: Any, valkey_server: Any, key_prefix: str, tmp_path: Any
) -> None:
    """--open goes through Python's webbrowser, which runs $BROWSER with the URL."""
    opened = tmp_path / "opened"
    fake = tmp_path / "fake-browser"
    fake.write_text(f'#!/bin/sh\necho "$1" > {opened}\n')
    fake.chmod(0o755)
    instance = start_serve(
        [*server_args(db_url, valkey_server, key_prefix), "serve", "--port", "0", "--open"],
        env={**os.environ, "BROWSER": f"{fake} %s"},
    )
    try:
        wait_for(lambda: opened.exists() and opened.read_text().strip(), what="the browser to open")
        assert opened.read_text().strip() == instance.url
    finally:
        instance.stop()
