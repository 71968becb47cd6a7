"""A ``bench run --json`` file as one HTML document an attendee can keep.

Charts are SVG drawn here: per scenario the latency of each path at every
percentile (from the HDR histogram the file holds), the improvement of each
001 row, and what the run ran on. The document has no script and refers to
nothing outside itself (inline CSS, inline SVG), so it opens offline, from a
mail attachment or a USB stick. ``flightcache bench report --html`` writes it
and the /report page of ``flightcache serve`` shows it.

A results file is input from anyone: every value is checked for its type before
it is used, every string is escaped, every number must be finite, and the
histograms are decoded with :func:`hdr.decode_untrusted`.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from typing import Any

from flightcache.bench import hdr
from flightcache.errors import UsageError
from flightcache.measure.duration import human_ns

CURVE_PERCENTILES = (
    0.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 97.5, 99.0, 99.5, 99.75, 99.9, 99.95, 99.99, 100.0,
)  # fmt: skip
TOP = 4.0  # the x axis ends at 99.99 % (log10 of 1 / 0.0001); the maximum sits past it
MAX_X = TOP + 0.4
MAX_NS = float(hdr.HIGHEST_NS)
POLICY = "default-src 'none'; style-src 'unsafe-inline'"  # nothing loads, no script runs
COLOURS = ("#c2410c", "#0f766e", "#6d28d9", "#4b5563")  # baseline, contender, others


# -- reading the file, checking each value --------------------------------------------------
def _fail(where: str, what: str) -> UsageError:
    return UsageError(
        f"not a bench results file: {where} {what}",
        hint="give a file written by flightcache bench run --json PATH",
    )


def _dict(doc: Any, key: str, where: str) -> dict[str, Any]:
    value = doc.get(key, {})
    if not isinstance(value, dict):
        raise _fail(f"{where}{key}", "is not an object")
    return value


def _list(doc: dict[str, Any], key: str, where: str) -> list[Any]:
    value = doc.get(key, [])
    if not isinstance(value, list):
        raise _fail(f"{where}{key}", "is not a list")
    return value


def _text(doc: dict[str, Any], key: str, where: str, default: str = "") -> str:
    value = doc.get(key, default)
    if value is None:
        return default
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise _fail(f"{where}{key}", "is not text")
    return str(value)[:500]


def _number(doc: dict[str, Any], key: str, where: str, *, top: float = MAX_NS) -> float | None:
    value = doc.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(f"{where}{key}", "is not a number")
    try:
        number = float(value)
    except OverflowError:
        raise _fail(f"{where}{key}", "is out of range") from None
    if not math.isfinite(number) or not 0 <= number <= top:
        raise _fail(f"{where}{key}", f"is out of range (0 to {top:g})")
    return number


@dataclass
class PathView:
    name: str
    n: int
    p50: float | None
    p99: float | None
    trusted: bool
    abandoned: bool
    curve: list[tuple[float, float]]  # (percentile, ns)
    warnings: list[str] = field(default_factory=list)


@dataclass
class ScenarioView:
    name: str
    title: str
    about: str
    row: str
    baseline: str
    contender: str
    check: bool
    paths: list[PathView]

    def path(self, name: str) -> PathView | None:
        return next((p for p in self.paths if p.name == name), None)


def _curve(p: dict[str, Any], where: str) -> list[tuple[float, float]]:
    """The path's latency at each of CURVE_PERCENTILES: from its histogram, or (a file
    without one) from the percentiles it lists."""
    encoded = p.get("histogram") or ""
    if not isinstance(encoded, str):
        raise _fail(f"{where}histogram", "is not text")
    if encoded:
        try:
            h = hdr.decode_untrusted(encoded)
        except ValueError as exc:
            raise _fail(f"{where}histogram:", str(exc)) from None
        return [(q, float(ns)) for q, ns in hdr.percentile_curve(h, CURVE_PERCENTILES)]
    listed = (("min", 0.0), ("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p99.9", 99.9))
    points = [(q, _number(p, key, where)) for key, q in (*listed, ("max", 100.0))]
    return [(q, ns) for q, ns in points if ns is not None]


def _path(p: Any, where: str) -> PathView:
    if not isinstance(p, dict):
        raise _fail(where.rstrip("."), "is not an object")
    n = _number(p, "n", where, top=1e15) or 0
    warnings = [str(w)[:500] for w in _list(p, "warnings", where) if isinstance(w, str)]
    return PathView(
        name=_text(p, "path", where, "?"),
        n=int(n),
        p50=_number(p, "p50", where),
        p99=_number(p, "p99", where),
        trusted=p.get("trusted", True) is not False,
        abandoned=bool(_number(p, "abandoned", where, top=1e15)),
        curve=_curve(p, where) if n else [],
        warnings=warnings,
    )


def scenarios(doc: dict[str, Any]) -> list[ScenarioView]:
    """The file's scenarios, each value checked; UsageError naming the first bad one."""
    out = []
    for i, s in enumerate(_list(doc, "scenarios", "")):
        where = f"scenarios[{i}]."
        if not isinstance(s, dict):
            raise _fail(where.rstrip("."), "is not an object")
        paths = [_path(p, f"{where}paths[{j}].") for j, p in enumerate(_list(s, "paths", where))]
        out.append(
            ScenarioView(
                name=_text(s, "name", where, "?"),
                title=_text(s, "title", where),
                about=_text(s, "about", where),
                row=_text(s, "row_001", where),
                baseline=_text(s, "baseline", where),
                contender=_text(s, "contender", where),
                check=s.get("check") is True,
                paths=paths,
            )
        )
    return out


# -- drawing ----------------------------------------------------------------------------------
def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _colour(s: ScenarioView, index: int, name: str) -> str:
    if name == s.baseline:
        return COLOURS[0]
    if name == s.contender:
        return COLOURS[1]
    return COLOURS[2 + min(index, 1)]


def _x_of(q: float) -> float:
    """A percentile's place on the x axis: log10(1 / (1 - q)), 99.99 % at TOP."""
    return MAX_X if q >= 100 else min(TOP, math.log10(100 / (100 - q)))


def _log_ticks(low: float, high: float) -> list[int]:
    return hdr.decade_edges(max(1, int(low)), max(1, int(high)))


def percentile_chart(s: ScenarioView) -> str:
    """Latency (log) against percentile (log of 1 / (1 - p)): one line per path."""
    series = [(i, p) for i, p in enumerate(s.paths) if p.curve]
    if not series:
        return '<p class="rep-muted">nothing was measured</p>'
    values = [ns for _, p in series for _, ns in p.curve]
    ticks = _log_ticks(max(1.0, min(values)), max(1.0, max(values)))
    lo, hi = math.log10(ticks[0]), math.log10(ticks[-1])
    width, height, left, right, top, bottom = 640, 300, 70, 20, 12, 44

    def x(q: float) -> float:
        return left + _x_of(q) / MAX_X * (width - left - right)

    def y(ns: float) -> float:
        span = (hi - lo) or 1.0
        return top + (hi - math.log10(max(ns, 1.0))) / span * (height - top - bottom)

    parts = [
        f'<svg class="rep-chart" viewBox="0 0 {width} {height}" role="img"'
        f' aria-label="latency by percentile, {_e(s.name)}">'
    ]
    for tick in ticks:
        parts.append(
            f'<line class="rep-grid" x1="{left}" x2="{width - right}" y1="{y(tick):.1f}"'
            f' y2="{y(tick):.1f}"/><text class="rep-tick" x="{left - 6}" y="{y(tick) + 4:.1f}"'
            f' text-anchor="end">{_e(human_ns(tick))}</text>'
        )
    for q, label in ((0, "0%"), (90, "90%"), (99, "99%"), (99.9, "99.9%"), (99.99, "99.99%"),
                     (100, "max")):  # fmt: skip
        parts.append(
            f'<line class="rep-grid" x1="{x(q):.1f}" x2="{x(q):.1f}" y1="{top}"'
            f' y2="{height - bottom}"/><text class="rep-tick" x="{x(q):.1f}"'
            f' y="{height - bottom + 16}" text-anchor="middle">{label}</text>'
        )
    parts.append(
        f'<text class="rep-tick" x="{(left + width - right) / 2}" y="{height - 6}"'
        ' text-anchor="middle">percentile of operations (log scale of 1 / (1 − p))</text>'
    )
    for i, p in series:
        colour = _colour(s, i, p.name)
        d = " ".join(
            f"{'M' if k == 0 else 'L'}{x(q):.1f},{y(ns):.1f}" for k, (q, ns) in enumerate(p.curve)
        )
        parts.append(
            f'<path class="rep-series" data-path="{_e(p.name)}" d="{d}" stroke="{colour}"'
            f' fill="none" stroke-width="2.5"><title>{_e(p.name)}</title></path>'
        )
        for q, ns in p.curve:
            parts.append(
                f'<circle cx="{x(q):.1f}" cy="{y(ns):.1f}" r="3" fill="{colour}">'
                f"<title>{_e(p.name)}: p{q:g} {_e(human_ns(ns))}</title></circle>"
            )
    parts.append("</svg>")
    legend = "".join(
        f'<span class="rep-key"><span class="rep-swatch" style="background:'
        f'{_colour(s, i, p.name)}"></span>{_e(p.name)}: p50 {_e(human_ns(p.p50))},'
        f" p99 {_e(human_ns(p.p99))}, {p.n:,} operations{'' if p.trusted else ' (!)'}</span>"
        for i, p in series
    )
    return "".join(parts) + f'<p class="rep-legend">{legend}</p>'


def rows_001(found: list[ScenarioView]) -> list[tuple[ScenarioView, PathView, PathView, float]]:
    """The rows of 001's table: each scenario (not a self-check) with both its paths
    measured, and the baseline's p50 over the contender's."""
    out = []
    for s in found:
        base, cont = s.path(s.baseline), s.path(s.contender)
        if s.check or base is None or cont is None or not base.p50 or not cont.p50:
            continue
        out.append((s, base, cont, base.p50 / cont.p50))
    return out


def _times(ratio: float) -> str:
    return f"{ratio:,.0f}x" if ratio >= 10 else f"{ratio:,.1f}x"


def improvement_chart(rows: list[tuple[ScenarioView, PathView, PathView, float]]) -> str:
    """One bar per 001 row from 1x to its improvement, on a log scale."""
    if not rows:
        return '<p class="rep-muted">no scenario with both a database and a cache path</p>'
    ratios = [r for *_, r in rows]
    lo = 10 ** math.floor(math.log10(min(1.0, *ratios)))
    hi = 10 ** math.ceil(math.log10(max(10.0, *ratios)))
    width, bar, left, right, top = 640, 30, 190, 70, 24
    height = top + bar * len(rows) + 10

    def x(ratio: float) -> float:
        return left + (math.log10(ratio) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)) * (
            width - left - right
        )

    parts = [
        f'<svg class="rep-chart" viewBox="0 0 {width} {height}" role="img"'
        ' aria-label="improvement per row of 001\'s table">'
    ]
    tick = lo
    while tick <= hi:
        parts.append(
            f'<line class="rep-grid" x1="{x(tick):.1f}" x2="{x(tick):.1f}" y1="{top - 6}"'
            f' y2="{height - 6}"/><text class="rep-tick" x="{x(tick):.1f}" y="{top - 10}"'
            f' text-anchor="middle">{tick:g}x</text>'
        )
        tick *= 10
    for k, (s, base, cont, ratio) in enumerate(rows):
        y0 = top + k * bar
        x0, x1 = sorted((x(1.0), x(ratio)))
        marked = "" if base.trusted and cont.trusted else " !"
        parts.append(
            f'<text class="rep-label" x="{left - 8}" y="{y0 + bar / 2 + 5}" text-anchor="end">'
            f"{_e(s.title or s.name)}</text>"
            f'<path class="rep-bar" data-row="{_e(s.name)}" d="M{x0:.1f},{y0 + 5} H{x1:.1f}'
            f' V{y0 + bar - 5} H{x0:.1f} Z" fill="{COLOURS[1] if ratio >= 1 else COLOURS[0]}">'
            f"<title>{_e(s.title)}: p50 {_e(human_ns(base.p50))} without the cache,"
            f" {_e(human_ns(cont.p50))} with it</title></path>"
            f'<text class="rep-label" x="{x1 + 6:.1f}" y="{y0 + bar / 2 + 5}">'
            f"{_times(ratio)}{marked}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _table_001(rows: list[tuple[ScenarioView, PathView, PathView, float]]) -> str:
    def fig(p: PathView, ns: float | None) -> str:
        text = human_ns(ns)
        return ("≥ " + text) if p.abandoned else text if p.trusted else text + " !"

    body = "".join(
        f"<tr><td>{_e(s.title or s.name)}</td><td class=rep-num>{_e(fig(b, b.p50))}</td>"
        f"<td class=rep-num>{_e(fig(b, b.p99))}</td><td class=rep-num>{_e(fig(c, c.p50))}</td>"
        f"<td class=rep-num>{_e(fig(c, c.p99))}</td><td class=rep-num>{_times(r)}</td></tr>"
        for s, b, c, r in rows
    )
    return (
        '<table class="rep-table"><thead><tr><th>Query type</th><th>Without cache p50</th>'
        "<th>p99</th><th>With cache p50</th><th>p99</th><th>Improvement (p50)</th></tr>"
        f"</thead><tbody>{body}</tbody></table>"
    )


def _ran_on(doc: dict[str, Any]) -> list[tuple[str, str]]:
    """What the run ran on, as (label, text) pairs, from ``environment`` and ``settings``."""
    from flightcache.config import scrub

    env = _dict(doc, "environment", "")
    valkey = _dict(env, "valkey", "environment.")
    db = _dict(env, "database", "environment.")
    data = _dict(db, "dataset", "environment.database.")
    st = _dict(doc, "settings", "")

    def t(d: dict[str, Any], key: str) -> str:
        return _text(d, key, "", "?") if not isinstance(d.get(key), dict | list) else "?"

    return [
        ("flightcache", t(env, "flightcache")),
        ("Python", t(env, "python")),
        ("platform", t(env, "platform")),
        ("CPUs", f"{t(env, 'cpu_count')} ({t(env, 'cpus_usable')} usable)"),
        (
            "Valkey",
            f"{t(valkey, 'version')} {t(valkey, 'mode')}, {t(valkey, 'nodes')} node(s),"
            f" maxmemory-policy {t(valkey, 'maxmemory_policy')},"
            f" client parser {t(valkey, 'client_parser')}",
        ),
        ("database", f"{t(db, 'dialect')} {t(db, 'version')}"),
        ("dataset", f"{t(data, 'source')} scale {t(data, 'scale')} (seed {t(data, 'seed')})"),
        (
            "load",
            f"{t(st, 'mode')}, {t(st, 'clients')} client(s) in {t(st, 'processes')}"
            f" process(es), keys {t(st, 'keys')}",
        ),
        ("command", scrub(t(env, "command"))),
        ("when", t(env, "timestamp")),
    ]


CSS = """
body { margin: 0 auto; max-width: 1000px; padding: 1rem 1.5rem; color: #1b1f24;
  background: #fbfbfa; font: 16px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
h1 { font-size: 1.6rem; margin: .2rem 0 .4rem; } h2 { font-size: 1.25rem; margin: 1.6rem 0 .4rem; }
h3 { font-size: 1.05rem; margin: 1.2rem 0 .2rem; }
.rep-muted { color: #5b6470; font-size: .9rem; } .rep-warn { color: #b45309; font-size: .9rem; }
.rep-chart { width: 100%; max-width: 760px; height: auto; display: block; background: #fff;
  border: 1px solid #d8dde3; border-radius: 6px; }
.rep-grid { stroke: #e5e8ec; stroke-width: 1; }
.rep-tick { fill: #5b6470; font-size: 11px; } .rep-label { fill: #1b1f24; font-size: 13px; }
.rep-legend { font-size: .9rem; margin: .3rem 0 0; }
.rep-key { margin-right: 1.2rem; white-space: nowrap; }
.rep-swatch { display: inline-block; width: .9em; height: .9em; border-radius: 2px;
  margin-right: .35em; vertical-align: -.1em; }
.rep-table { border-collapse: collapse; margin: .6rem 0; }
.rep-table th, .rep-table td { padding: .2rem .6rem; border-bottom: 1px solid #d8dde3;
  text-align: left; }
.rep-num { text-align: right; font-variant-numeric: tabular-nums; }
.rep-env { display: grid; grid-template-columns: max-content 1fr; gap: .15rem 1rem; }
.rep-env dt { color: #5b6470; } .rep-env dd { margin: 0; overflow-wrap: anywhere; }
"""


def render(doc: dict[str, Any], source: str) -> str:
    """The whole document for a results file (as :func:`report.parse` returned it);
    UsageError naming the first value that is not what ``bench run --json`` writes.
    ``source`` names the file in the heading."""
    from flightcache.config import scrub

    found = scenarios(doc)
    rows = rows_001(found)
    ran_on = _ran_on(doc)
    when = dict(ran_on)["when"]
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f'<meta http-equiv="Content-Security-Policy" content="{POLICY}">',
        '<meta name=viewport content="width=device-width, initial-scale=1">',
        f"<title>flightcache bench report · {_e(when)}</title><style>{CSS}</style></head><body>",
        "<h1>flightcache bench report</h1>",
        f'<p class="rep-muted">{_e(source)} · {_e(when)} · {len(found)} scenario(s)</p>',
    ]
    if doc.get("interrupted") is True:
        parts.append('<p class="rep-warn">Interrupted (Ctrl-C): only what was measured.</p>')
    parts += [
        "<h2>Improvement per row of 001's table</h2>",
        improvement_chart(rows),
        _table_001(rows) if rows else "",
        '<p class="rep-muted">improvement: the p50 without the cache over the p50 with it'
        " (log scale). !: not the server's figure, ≥: a lower bound (see the warnings).</p>",
        "<h2>Latency distribution per scenario</h2>",
        '<p class="rep-muted">each path\'s latency at every percentile of its operations,'
        " from the HDR histogram the file holds; both axes log scale.</p>",
    ]
    for s in found:
        parts.append(
            f'<section class="rep-scenario" data-scenario="{_e(s.name)}">'
            f"<h3>{_e(s.name)}{': ' + _e(s.title) if s.title else ''}</h3>"
            + (f'<p class="rep-muted">{_e(s.about)}</p>' if s.about else "")
            + percentile_chart(s)
            + "".join(
                f'<p class="rep-warn">warning, {_e(p.name)}: {_e(w)}</p>'
                for p in s.paths
                for w in p.warnings
            )
            + "</section>"
        )
    items = "".join(f"<dt>{_e(label)}</dt><dd>{_e(text)}</dd>" for label, text in ran_on)
    parts += [
        f'<h2>What it ran on</h2><dl class="rep-env">{items}</dl>',
        '<p class="rep-muted">Written by flightcache bench report: no script, nothing loaded'
        " from elsewhere; it opens offline.</p></body></html>",
    ]
    return scrub("".join(parts))
