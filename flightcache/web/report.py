"""The bench report page: a ``bench run --json`` file drawn as charts.

The page posts the chosen file (with the CSRF header) to ``/report/render``, which
answers with the very document ``flightcache bench report --html`` writes
(:mod:`flightcache.bench.report_html`); the page shows it in a sandboxed frame
where no script runs, and offers it for saving. flightcache keeps no results
files of its own: ``bench run --json PATH`` writes where it is told.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from flightcache.bench import report as rep
from flightcache.bench import report_html
from flightcache.errors import UsageError
from flightcache.web.pages import page, register_page

router = APIRouter()
register_page(
    "/report", "Bench report", "a `bench run --json` file drawn as charts, to keep as one file"
)

# the rendered document allows itself inline styles and nothing else
POLICY = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'self'"

BODY = """
<div class="panel">
  <label for=rep-file>A file written by <code>flightcache bench run --json PATH</code>:</label>
  <input type=file id=rep-file accept=".json,application/json">
  <span id=rep-status class=muted></span>
  <a id=rep-save hidden>save as one HTML file</a>
  <p class=muted>The same report as <code>flightcache bench report FILE --html OUT</code>:
  per scenario each path's latency at every percentile, the improvement of each row of
  001's table, and what the run ran on. flightcache keeps no results of its own.</p>
</div>
<iframe id=rep-frame class=rep-frame title="bench report" sandbox="allow-same-origin" hidden>
</iframe>
"""


@router.get("/report", response_class=HTMLResponse, include_in_schema=False)
def report_page(request: Request) -> HTMLResponse:
    return page(request, "Bench report", BODY, ["report.js"])


async def _body(request: Request) -> bytes:
    """The request's body, refused (422) as soon as it passes the size a results file may have."""
    limit = rep.MAX_FILE_BYTES
    too_big = UsageError(f"the file is over {limit // 2**20} MiB: not a bench results file")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_big
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)


@router.post("/report/render", response_class=HTMLResponse, tags=["bench"])
async def render(request: Request, name: str = "results.json") -> HTMLResponse:
    """The body (a `bench run --json` file) as the report `bench report --html` writes;
    422 with one line when it is not such a file."""
    data = await _body(request)
    shown = name[:200]

    def draw() -> str:
        return report_html.render(rep.parse(data, shown), shown)

    text = await run_in_threadpool(draw)
    return HTMLResponse(text, headers={"Content-Security-Policy": POLICY})
