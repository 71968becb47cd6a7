"""The web application: pages, seed 004's API, and the rules every request follows.

:func:`create_app` builds it from a :class:`WebConfig`; :func:`factory` builds it in a
uvicorn worker from the environment ``serve`` set. Every request passes the access
token check and, if it changes something, the CSRF check (:mod:`.security`). Errors
never show a stack trace: bad input is 422 with what was wrong, a server that is down
is 503 naming it (:class:`.services.Unavailable`), anything else a 500 with one line.
"""

from __future__ import annotations

import html
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from flightcache import __version__
from flightcache.config import scrub
from flightcache.errors import FlightcacheError, UsageError
from flightcache.resources import resource_dir
from flightcache.web.config import WebConfig
from flightcache.web.pages import PAGES, page
from flightcache.web.security import AccessToken, CsrfCheck, ensure_csrf_cookie
from flightcache.web.services import Services, Unavailable

log = logging.getLogger("flightcache.web")

CSRF_EXEMPT = ("/sessions/",)  # checks a token of its own, tied to the login session


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": scrub(message)}, status_code=status)


def create_app(config: WebConfig) -> FastAPI:
    services = Services(config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        services.close()

    app = FastAPI(
        title="flightcache",
        version=__version__,
        description="The workshop in a browser, and seed 004's leaderboard API over Valkey"
        " sorted sets. Every request needs the access token `flightcache serve` printed;"
        " every POST the X-CSRF-Token header equal to the fc_csrf cookie (GET /api/csrf).",
        lifespan=lifespan,
        docs_url=None,  # served below from the package: FastAPI's default loads a CDN
        redoc_url=None,
    )
    app.state.services = services
    app.add_middleware(CsrfCheck, exempt=CSRF_EXEMPT)  # added first: runs after the token
    app.add_middleware(AccessToken, token=config.token, secure=config.secure_cookies)
    app.mount(
        "/static",
        StaticFiles(directory=resource_dir("web/static", what="web pages")),
        name="static",
    )

    @app.exception_handler(Unavailable)
    async def unavailable(request: Request, exc: Unavailable) -> JSONResponse:
        return JSONResponse({"error": str(exc), "down": exc.which}, status_code=503)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for problem in exc.errors():
            where = ".".join(str(p) for p in problem.get("loc", ()) if p != "body")
            problems.append(f"{where}: {problem.get('msg', 'invalid')}")
        return _error(422, "; ".join(problems) or "invalid request")

    @app.exception_handler(UsageError)
    async def usage(request: Request, exc: UsageError) -> JSONResponse:
        return _error(422, exc.message)

    @app.exception_handler(FlightcacheError)
    async def failed(request: Request, exc: FlightcacheError) -> JSONResponse:
        return _error(500, exc.message)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error on %s: %s", request.url.path, scrub(repr(exc)))
        return _error(500, f"internal error ({type(exc).__name__}); the server log has more")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index(request: Request) -> HTMLResponse:
        items = "".join(
            f'<li><a href="{html.escape(path)}">{html.escape(name)}</a>: {html.escape(line)}</li>'
            for path, name, line in PAGES
        )
        body = (
            f"<ul class=pages>{items}</ul>"
            '<p>The API: <a href="/docs">/docs</a> (OpenAPI). Servers:'
            " <span id=health>checking…</span></p>"
        )
        return page(request, "The workshop in a browser", body, ["index.js"])

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return RedirectResponse("/static/favicon.svg", status_code=301)

    @app.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    def docs() -> HTMLResponse:
        from fastapi.openapi.docs import get_swagger_ui_html

        vendor = "/static/vendor/swagger-ui"
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="flightcache API",
            swagger_js_url=f"{vendor}/swagger-ui-bundle.js",
            swagger_css_url=f"{vendor}/swagger-ui.css",
            swagger_favicon_url=f"{vendor}/favicon-32x32.png",
            swagger_ui_parameters={"validatorUrl": None},  # no badge fetched from elsewhere
        )

    @app.get("/health", tags=["health"])
    def health() -> Response:
        """Whether the database and Valkey answer; 503 when either does not."""
        status = services.health()
        return JSONResponse(status, status_code=200 if status["ok"] else 503)

    @app.get("/api/csrf", tags=["health"])
    def csrf(request: Request) -> Response:
        """Sets the fc_csrf cookie (if missing) and returns its value for the header."""
        response = JSONResponse({})
        value = ensure_csrf_cookie(request, response, config.secure_cookies)
        response.body = response.render({"header": "X-CSRF-Token", "token": value})
        response.headers["content-length"] = str(len(response.body))
        return response

    for router in _routers():
        app.include_router(router)
    return app


def _routers() -> list[APIRouter]:
    """The pages' and the API's routers, in the order the navigation lists them."""
    from flightcache.web import api, lab, room, sessions
    from flightcache.web.board import board_router

    try:
        from flightcache.web import report
    except FlightcacheError:  # no hdrhistogram on this platform: no bench report page
        return [lab.router, board_router(), sessions.router, room.router, api.router]
    return [lab.router, board_router(), sessions.router, report.router, room.router, api.router]


def factory() -> FastAPI:
    """The app of one uvicorn worker (``--workers N`` starts it by import string). A
    worker process dies with ``serve``, even when ``serve`` is killed with SIGKILL."""
    from flightcache.children import die_with_mp_parent

    die_with_mp_parent()
    return create_app(WebConfig.from_env())
