"""The bench report: a real `bench run --json` file drawn by `bench report --html` and by
the /report page of `flightcache serve`; self-contained, escaped, bad files refused."""

from __future__ import annotations

import base64
import copy
import json
import re
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest

from flightcache.bench.report_html import CURVE_PERCENTILES
from flightcache.measure.duration import human_ns
from tests.web_helpers import Served, wait_for

SCENARIOS = ["airline-routes", "flight-search", "valkey-get"]
_RUNS: dict[str, str] = {}  # dialect -> the JSON a real run wrote (one run per database)


@pytest.fixture
def bench_json(demo_cli: Any, db_url: Any, tmp_path: Path) -> dict[str, Any]:
    """The document a very short real `bench run --json` wrote on this database."""
    if db_url.kind not in _RUNS:
        out = tmp_path / "run.json"
        result = demo_cli(
            "bench", "run", *SCENARIOS, "--requests", "60", "--warmup", "0", "--rounds", "1",
            "--no-histogram", "--json", str(out),
        )  # fmt: skip
        assert result.code == 0, result.err
        _RUNS[db_url.kind] = out.read_text()
    doc: dict[str, Any] = json.loads(_RUNS[db_url.kind])
    return doc


def _write(tmp_path: Path, doc: Any, name: str = "in.json") -> Path:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def check_report(html: str, doc: dict[str, Any]) -> None:
    """Self-contained, and its charts hold the file's data."""
    assert html.startswith("<!doctype html>") and html.rstrip().endswith("</html>")
    assert "http://" not in html and "https://" not in html
    assert not re.search(r"\b(src|href|xlink:href|action)\s*=", html, re.I)
    assert not re.search(r"<\s*(script|link|img|iframe|object|embed)\b", html, re.I)
    assert "url(" not in html and "@import" not in html
    for s in doc["scenarios"]:
        start = html.index(f'data-scenario="{s["name"]}"')
        section = html[start : html.index("</section>", start)]
        lines = re.findall(r'<path class="rep-series" data-path="([^"]+)" d="([^"]+)"', section)
        assert [name for name, _ in lines] == [p["path"] for p in s["paths"]]
        for (_, d), p in zip(lines, s["paths"], strict=True):
            assert len(re.findall(r"[ML]\d", d)) == len(CURVE_PERCENTILES)
            # the curve comes from the histogram and meets the file's own p50 and p99
            assert f"{p['path']}: p50 {human_ns(p['p50'])}<" in section
            assert f"{p['path']}: p99 {human_ns(p['p99'])}<" in section
    rows = [s for s in doc["scenarios"] if not s["check"]]
    bars = re.findall(r'<path class="rep-bar" data-row="([^"]+)" d="M[\d.]+,', html)
    assert bars == [s["name"] for s in rows]
    for s in rows:
        assert f"{s['improvement_p50']:,.1f}x" in html or f"{s['improvement_p50']:,.0f}x" in html
    env = doc["environment"]
    assert env["valkey"]["version"] in html and env["database"]["version"] in html
    assert f"scale {env['database']['dataset']['scale']}" in html
    assert "bench run airline-routes" in html  # the command it ran


def test_a_real_run_drawn_by_the_cli_and_the_page(
    bench_json: dict[str, Any], cli: Any, web: Any, tmp_path: Path
) -> None:
    source = _write(tmp_path, bench_json, "run.json")
    out = tmp_path / "run.html"
    result = cli("bench", "report", str(source), "--html", str(out))
    assert result.code == 0, result.err
    written = out.read_text()
    check_report(written, bench_json)
    # to stdout, the same document
    shown = cli("bench", "report", str(source), "--html", "-")
    assert shown.code == 0 and shown.out.strip() == written.strip()
    # the page: the same renderer, the same document
    page = web.get("/report")
    assert page.status_code == 200 and "id=rep-file" in page.text and "report.js" in page.text
    drawn = web.post(
        "/report/render?name=run.json",
        content=source.read_bytes(),
        headers={"Content-Type": "application/json"},
    )
    assert drawn.status_code == 200, drawn.text
    assert drawn.text == written
    assert "default-src 'none'" in drawn.headers["content-security-policy"]


def test_the_render_needs_the_csrf_header(bench_json: dict[str, Any], web: Any) -> None:
    body = json.dumps(bench_json).encode()
    refused = web.client.post("/report/render", content=body)
    assert refused.status_code == 403 and "CSRF" in refused.json()["error"]


@pytest.mark.safety(8)
def test_names_from_the_file_are_escaped(
    bench_json: dict[str, Any], cli: Any, web: Any, tmp_path: Path
) -> None:
    doc = copy.deepcopy(bench_json)
    evil = "<script>alert(1)</script>"
    doc["scenarios"][0]["name"] = evil
    doc["scenarios"][0]["title"] = '"><img src=x onerror=alert(2)>'
    doc["scenarios"][1]["paths"][0]["path"] = "</svg><script>alert(3)</script>"
    doc["scenarios"][1]["paths"][1]["warnings"] = ["<iframe src=//evil>"]
    doc["environment"]["command"] = "flightcache <script>alert(4)</script>"
    doc["environment"]["valkey"]["version"] = "<style>body{display:none}</style>"
    source = _write(tmp_path, doc)
    out = tmp_path / "out.html"
    assert cli("bench", "report", str(source), "--html", str(out)).code == 0
    drawn = web.post(
        "/report/render?name=%3Cscript%3Ex.json",
        content=source.read_bytes(),
        headers={"Content-Type": "application/json"},
    )
    assert drawn.status_code == 200
    for html in (out.read_text(), drawn.text):
        assert not re.search(r"<\s*(script|img|iframe)\b", html, re.I)
        assert html.count("<style>") == 1 and "</svg><script>" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert "&quot;&gt;&lt;img src=x onerror=alert(2)&gt;" in html
        assert "&lt;/svg&gt;&lt;script&gt;alert(3)" in html
    assert "&lt;script&gt;x.json" in drawn.text


def _bomb() -> str:
    """An HDR histogram header over a zlib stream that inflates to 50 MB."""
    payload = zlib.compress(b"\0" * 50_000_000)
    return base64.b64encode(struct.pack(">II", 0x1C849314, len(payload)) + payload).decode()


def _foreign_histogram() -> str:
    """A well-formed histogram of another shape (1 ns to 2^62 at five digits): its counters
    would be sized from the file's header."""
    from hdrh.histogram import HdrHistogram

    h = HdrHistogram(1, 2**62, 5)
    h.record_value(1000)
    return str(h.encode().decode())


def _bad_docs(good: dict[str, Any]) -> list[tuple[str, Any, str]]:
    def with_path(key: str, value: Any) -> dict[str, Any]:
        doc = copy.deepcopy(good)
        doc["scenarios"][0]["paths"][0][key] = value
        return doc

    wrong_list = copy.deepcopy(good)
    wrong_list["scenarios"] = "airline-routes"
    return [
        ("not JSON", "this is not JSON {", "is not a flightcache bench file"),
        ("other JSON", {"demo": "cache-aside"}, 'no "format": "flightcache-bench"'),
        ("newer", {**good, "version": 99}, "of version 99"),
        ("scenarios not a list", wrong_list, "scenarios is not a list"),
        ("p50 text", with_path("p50", "fast"), "scenarios[0].paths[0].p50 is not a number"),
        ("p50 huge", with_path("p50", 1e300), "scenarios[0].paths[0].p50 is out of range"),
        ("p50 NaN", with_path("p50", float("nan")), "is out of range"),
        ("histogram junk", with_path("histogram", "!!!"), "histogram: histogram is not base64"),
        ("histogram bomb", with_path("histogram", _bomb()), "inflates past the size"),
        ("other shape", with_path("histogram", _foreign_histogram()), "not flightcache's"),
    ]


@pytest.mark.safety(8)
def test_bad_files_are_one_line_on_the_cli_and_422_on_the_page(
    bench_json: dict[str, Any], cli: Any, web: Any, tmp_path: Path
) -> None:
    big = tmp_path / "big.json"
    big.write_bytes(b" " * (16 * 1024 * 1024 + 1))
    cases = [(what, _write(tmp_path, doc, f"{i}.json"), fragment)
             for i, (what, doc, fragment) in enumerate(_bad_docs(bench_json))]  # fmt: skip
    cases.append(("too big", big, "is over 16 MiB"))
    out = tmp_path / "out.html"
    for what, path, fragment in cases:
        result = cli("bench", "report", str(path), "--html", str(out))
        assert result.code == 2, (what, result.code, result.err)
        lines = result.err.strip().splitlines()
        assert len(lines) == 2 and lines[0].startswith("error: "), (what, result.err)
        assert fragment in lines[0] and lines[1].startswith("hint: "), (what, result.err)
        assert "Traceback" not in result.err and not out.exists()
        answer = web.post(
            "/report/render?name=x.json",
            content=path.read_bytes(),
            headers={"Content-Type": "application/json"},
        )
        assert answer.status_code == 422, (what, answer.status_code, answer.text[:200])
        error = answer.json()["error"]
        assert "\n" not in error and (fragment in error or what == "too big"), (what, error)
    missing = cli("bench", "report", str(tmp_path / "nope.json"), "--html", str(out))
    assert missing.code == 2 and "nope.json: no such file" in missing.err
    unwritable = cli("bench", "report", str(big), "--html", "/nonexistent-dir/x.html")
    assert unwritable.code == 2 and "--html /nonexistent-dir/x.html" in unwritable.err


def _charts_drawn(browser: Any) -> list[Any]:
    """The latency curves on screen, each with a path drawn."""
    lines = browser.find_elements("css selector", "svg path.rep-series")
    drawn = [
        line
        for line in lines
        if line.is_displayed()
        and len(line.get_attribute("d") or "") > 20
        and line.size["width"] > 50
    ]
    return drawn if drawn and len(drawn) == len(lines) else []


@pytest.mark.slow
def test_the_page_and_the_kept_file_draw_in_a_real_browser(
    bench_json: dict[str, Any], served: Served, browser: Any, cli: Any, tmp_path: Path
) -> None:
    source = _write(tmp_path, bench_json, "run.json")
    series = sum(len(s["paths"]) for s in bench_json["scenarios"])
    browser.get(served.url)
    browser.get(served.base + "/report")
    browser.find_element("id", "rep-file").send_keys(str(source))
    frame = wait_for(
        lambda: (
            browser.find_element("id", "rep-frame").is_displayed()
            and browser.find_element("id", "rep-frame")
        ),
        what="the report's frame",
    )
    assert frame.size["height"] > 600  # sized to the report, not a scrolling slot
    browser.switch_to.frame(frame)
    drawn = wait_for(lambda: _charts_drawn(browser), what="the latency curves")
    assert len(drawn) == series
    bars = browser.find_elements("css selector", "svg path.rep-bar")
    assert len(bars) == 2 and all(b.size["width"] > 5 for b in bars)
    browser.switch_to.default_content()
    assert browser.find_element("id", "rep-save").get_attribute("download") == "run.html"
    assert browser.find_element("id", "error").text == ""
    # a file that is not one: the error line, no frame
    junk = _write(tmp_path, "not json", "junk.json")
    browser.find_element("id", "rep-file").send_keys(str(junk))
    wait_for(lambda: "is not a flightcache bench file" in browser.find_element("id", "error").text)
    assert not browser.find_element("id", "rep-frame").is_displayed()
    # the self-contained file, opened from disk
    kept = tmp_path / "kept.html"
    assert cli("bench", "report", str(source), "--html", str(kept)).code == 0
    browser.get(kept.as_uri())
    drawn = wait_for(lambda: _charts_drawn(browser), what="the kept file's curves")
    assert len(drawn) == series
    resources = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    assert resources == []


def test_a_file_without_histograms_draws_from_its_percentiles(cli: Any, tmp_path: Path) -> None:
    """No histogram (or an empty one): the curve goes through the percentiles the file
    lists; a cache slower than the database is a bar the other way."""
    figures = {"p50": 2_000, "p90": 3_000, "p99": 9_000, "p99.9": 12_000, "max": 20_000}

    def path(name: str, scale: int) -> dict[str, Any]:
        return {"path": name, "n": 100, "min": 900 * scale, "histogram": "",
                **{k: v * scale for k, v in figures.items()}}  # fmt: skip

    doc = {
        "format": "flightcache-bench", "version": 1, "environment": {}, "settings": {},
        "scenarios": [{"name": "slow-cache", "title": "Slow cache", "check": False,
                       "baseline": "database", "contender": "cache",
                       "paths": [path("database", 1), path("cache", 4)]}],
    }  # fmt: skip
    out = tmp_path / "out.html"
    assert cli("bench", "report", str(_write(tmp_path, doc)), "--html", str(out)).code == 0
    html = out.read_text()
    lines = re.findall(r'<path class="rep-series" data-path="[^"]+" d="([^"]+)"', html)
    assert [len(re.findall(r"[ML]\d", d)) for d in lines] == [6, 6]
    assert "database: p99.9 12 µs<" in html and "cache: p99.9 48 µs<" in html
    bar = re.findall(r'<path class="rep-bar"[^>]+fill="([^"]+)"', html)
    assert bar == ["#c2410c"] and ">0.2x</text>" in html  # 4x slower: a quarter, drawn red


def test_an_untrusted_histogram_decodes_as_the_library_does() -> None:
    from flightcache.bench import hdr

    h = hdr.new()
    for ns in (700, 5_000, 5_100, 80_000, 3_000_000_000):
        hdr.record(h, ns)
    text = hdr.encode(h)
    assert hdr.summary(hdr.decode_untrusted(text)) == hdr.summary(hdr.decode(text))
    with pytest.raises(ValueError, match="over 1,000,000 characters"):
        hdr.decode_untrusted("A" * 1_000_004)
