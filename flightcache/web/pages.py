"""The common frame of every page, and the list the index and the navigation show.

Routers import :func:`page` and :func:`register_page` from here, not from
:mod:`.app`: the app imports the routers, so an import back would close a circle.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import TYPE_CHECKING

from fastapi import Request
from fastapi.responses import HTMLResponse

from flightcache.web.security import ensure_csrf_cookie

if TYPE_CHECKING:
    from flightcache.web.services import Services

PAGES: list[tuple[str, str, str]] = []  # (path, title, one line): the index lists them


def register_page(path: str, title: str, summary: str) -> None:
    """A page for the index and the navigation bar (routers call this at import)."""
    if all(p != path for p, _, _ in PAGES):
        PAGES.append((path, title, summary))


def page(request: Request, title: str, body: str, scripts: Sequence[str] = ()) -> HTMLResponse:
    """One page in the common frame: navigation, the stylesheet, ``common.js`` first.

    ``body`` is trusted HTML written in this package; anything from a request or a
    server is put in by the page's script with ``textContent``, never as HTML.
    """
    nav = " ".join(
        f'<a href="{html.escape(path)}">{html.escape(name)}</a>' for path, name, _ in PAGES
    )
    tags = "".join(
        f'<script src="/static/{html.escape(name)}"></script>' for name in ("common.js", *scripts)
    )
    text = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)} · flightcache</title>"
        '<link rel=icon href="/static/favicon.svg" type="image/svg+xml">'
        '<link rel=stylesheet href="/static/style.css"></head><body>'
        f'<header><a class=brand href="/">flightcache</a><nav>{nav}</nav></header>'
        f"<main><h1>{html.escape(title)}</h1><p id=error class=error role=alert></p>{body}"
        f"</main>{tags}</body></html>"
    )
    response = HTMLResponse(text)
    services: Services = request.app.state.services
    ensure_csrf_cookie(request, response, services.config.secure_cookies)
    return response
