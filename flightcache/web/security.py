"""Who may use the app, and which requests may change something.

**Access token.** Every server flightcache starts is closed to other accounts on the
machine (issue 12), and a web server on 127.0.0.1 is reachable by all of them; on
``--host 0.0.0.0`` by the whole room. So every request carries the token ``serve``
generated and printed: the first as ``?token=`` in the URL it printed, after which
the browser holds it in an HttpOnly cookie (and the address bar loses it). A request
without a valid token gets 401, compared in constant time.

**CSRF.** A state-changing request is a POST carrying the header ``X-CSRF-Token``
equal to the ``fc_csrf`` cookie (double submit). Another site can make a browser
send the cookie, but cannot read it nor set a custom header without a CORS
preflight, which this app never answers. The pages' ``common.js`` adds the header;
a load generator reads the cookie once from ``GET /api/csrf``. The sessions page
adds its own per-session token on top (``patterns/session``'s CSRF check).
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import urlencode

from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

ACCESS_COOKIE = "fc_access"
CSRF_COOKIE = "fc_csrf"
CSRF_HEADER = "x-csrf-token"
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


def new_token() -> str:
    return secrets.token_urlsafe(24)


def _same(a: str | None, b: str) -> bool:
    return a is not None and hmac.compare_digest(a.encode(), b.encode())


class AccessToken:
    """ASGI middleware: the token or 401; a token in the URL becomes a cookie."""

    def __init__(self, app: ASGIApp, token: str, secure: bool = False) -> None:
        self.app = app
        self.token = token
        self.secure = secure

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        conn = HTTPConnection(scope)
        given = conn.query_params.get("token")
        if _same(given, self.token):
            if scope["type"] == "http" and conn.scope["method"] == "GET":
                # drop the token from the address bar and from the history
                rest = [(k, v) for k, v in conn.query_params.multi_items() if k != "token"]
                target = conn.url.path + ("?" + urlencode(rest) if rest else "")
                response = RedirectResponse(target, status_code=303)
                self._set_cookie(response)
                await response(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        if _same(conn.cookies.get(ACCESS_COOKIE), self.token) or _same(
            conn.headers.get("authorization", "").removeprefix("Bearer "), self.token
        ):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 4401})
            return
        refusal: Response = PlainTextResponse(
            "401: this flightcache server needs its access token: open the URL"
            " `flightcache serve` printed (it ends in ?token=...)",
            status_code=401,
        )
        await refusal(scope, receive, send)

    def _set_cookie(self, response: Response) -> None:
        response.set_cookie(
            ACCESS_COOKIE, self.token, httponly=True, samesite="strict", secure=self.secure
        )


def ensure_csrf_cookie(request: Request, response: Response, secure: bool = False) -> str:
    """The request's CSRF cookie value, set on ``response`` when the browser had none."""
    value = request.cookies.get(CSRF_COOKIE)
    if not value or len(value) < 16:
        value = new_token()
        # readable by the page's script (it copies it into the header): not HttpOnly
        response.set_cookie(CSRF_COOKIE, value, httponly=False, samesite="strict", secure=secure)
    return value


def csrf_refusal(request: HTTPConnection, exempt: tuple[str, ...] = ()) -> Response | None:
    """None when a POST is allowed; else the 403 that refuses it. Paths under ``exempt``
    check a CSRF token of their own (the sessions app: a form field tied to the session)."""
    if request.scope["method"] not in UNSAFE_METHODS or request.url.path.startswith(exempt):
        return None
    cookie = request.cookies.get(CSRF_COOKIE)
    header = request.headers.get(CSRF_HEADER)
    if cookie and _same(header, cookie):
        return None
    return JSONResponse(
        {
            "error": "CSRF check failed: a POST must send the X-CSRF-Token header equal to"
            " the fc_csrf cookie (GET /api/csrf sets it)"
        },
        status_code=403,
    )


class CsrfCheck:
    """ASGI middleware refusing a POST that fails :func:`csrf_refusal`. Plain ASGI rather
    than ``@app.middleware("http")``, whose wrapper costs every request a task and a
    stream copy of the response."""

    def __init__(self, app: ASGIApp, exempt: tuple[str, ...] = ()) -> None:
        self.app = app
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refusal = csrf_refusal(HTTPConnection(scope), self.exempt)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)
