"""`flightcache serve`: the workshop in a browser, and seed 004's leaderboard API."""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
from pathlib import Path
from typing import Annotated

import typer

from flightcache.errors import UsageError

DEFAULT_PORT = 8420
MAX_WORKERS = 32


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket bound before uvicorn starts: a port in use is one clear line."""
    try:
        family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:
        raise UsageError(
            f"--host {host!r} is not an IP address", hint="use 127.0.0.1 (default) or 0.0.0.0"
        ) from None
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise UsageError(
                f"port {port} on {host} is in use", hint="--port 0 picks a free port"
            ) from None
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _loopback(host: str) -> bool:
    return ipaddress.ip_address(host).is_loopback


def serve(
    ctx: typer.Context,
    host: Annotated[
        str,
        typer.Option(
            "--host",
            help="Address to listen on. 0.0.0.0 lets the room in (with the access token).",
        ),
    ] = "127.0.0.1",
    port: Annotated[
        int,
        typer.Option(
            "--port", min=0, max=65535, help=f"Port; 0 picks a free one. Default {DEFAULT_PORT}."
        ),
    ] = DEFAULT_PORT,
    workers: Annotated[
        int,
        typer.Option("--workers", min=1, max=MAX_WORKERS, help="uvicorn worker processes."),
    ] = 1,
    open_browser: Annotated[
        bool, typer.Option("--open", help="Open the workshop in the default browser.")
    ] = False,
    tls_cert: Annotated[
        Path | None,
        typer.Option(
            "--tls-cert",
            exists=True,
            dir_okay=False,
            help="Serve HTTPS with this certificate (PEM); needs --tls-key.",
        ),
    ] = None,
    tls_key: Annotated[
        Path | None,
        typer.Option(
            "--tls-key", exists=True, dir_okay=False, help="The certificate's private key (PEM)."
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar="FLIGHTCACHE_SERVE_TOKEN",
            help="Access token to require (default: a new random one each start).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Serve the workshop in a browser: cache lab, live leaderboard, sessions, bench
    reports, and seed 004's leaderboard API (OpenAPI at /docs).

    Uses the configured database and Valkey, like every command (the embedded stack
    unless --db-url/--valkey-url say otherwise). Every request needs the access token
    in the printed URL: another account on this machine, or someone else in the room,
    cannot use your servers through it. Ctrl-C stops it.

    Examples:

      flightcache serve --open

      flightcache serve --port 0              # any free port

      flightcache serve --host 0.0.0.0        # the room, with the printed token

      flightcache serve --workers 2           # for `flightcache bench http`

      flightcache serve --tls-cert cert.pem --tls-key key.pem   # HTTPS, Secure cookies
    """
    from flightcache.app import App
    from flightcache.console import err, out, styled
    from flightcache.web.security import new_token

    application: App = ctx.obj
    if token is not None and len(token) < 16:
        raise UsageError("--token is too short", hint="use at least 16 characters, or leave it out")
    token = token or new_token()
    if (tls_cert is None) != (tls_key is None):
        raise UsageError("--tls-cert and --tls-key go together", hint="give both, or neither")
    tls = _tls_context(tls_cert, tls_key) if tls_cert and tls_key else None
    sock = _bind(host, port)
    try:
        db_url = application.db_url()
        valkey_url = application.valkey_url()
        application.valkey().ping()  # puts back settings a killed demo left, like any command
        from flightcache.web.config import ENV, WebConfig

        config = WebConfig(
            db_url=db_url.url(redact=False),
            valkey_url=valkey_url.url(redact=False),
            key_prefix=application.settings.key_prefix,
            token=token,
            secure_cookies=tls is not None,
            display_db=db_url.url(),
            display_valkey=valkey_url.url(),
        )
        os.environ[ENV] = config.to_env()
        bound_port = sock.getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        if host in ("0.0.0.0", "::"):
            shown = "127.0.0.1" if host == "0.0.0.0" else "[::1]"
        scheme = "https" if tls else "http"
        url = f"{scheme}://{shown}:{bound_port}/?token={token}"
        if not _loopback(host):
            err.print(
                styled(
                    "[yellow]warning:[/yellow] listening on {}: anyone who can reach this"
                    " machine and has the token can use these servers; stop with Ctrl-C"
                    " when the session ends",
                    host,
                ),
                soft_wrap=True,
            )
        out.print(f"database {config.display_db}, Valkey {config.display_valkey}", soft_wrap=True)
        out.print(f"serving on {url}  (Ctrl-C stops)", soft_wrap=True)
        out.file.flush()
        if open_browser:
            import webbrowser

            webbrowser.open(url)
        _run(sock, workers, tls_cert, tls_key)
    finally:
        sock.close()


def _tls_context(cert: Path, key: Path) -> object:
    """Load the pair once here, so a bad file is one line before anything starts."""
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(str(cert), str(key))
    except (ssl.SSLError, OSError) as exc:
        raise UsageError(
            f"cannot use {cert} with {key}: {exc.strerror or exc}",
            hint="both PEM files; the key must belong to the certificate",
        ) from None
    return context


def _run(sock: socket.socket, workers: int, cert: Path | None, key: Path | None) -> None:
    import uvicorn

    config = uvicorn.Config(
        "flightcache.web.app:factory",
        ssl_certfile=str(cert) if cert else None,
        ssl_keyfile=str(key) if key else None,
        factory=True,
        workers=workers,
        log_level="warning",
        server_header=False,
        proxy_headers=False,
        timeout_graceful_shutdown=3,
    )
    server = uvicorn.Server(config)
    if workers == 1:
        server.run(sockets=[sock])
        return
    import inspect

    from uvicorn.supervisors import Multiprocess

    if "target" in inspect.signature(Multiprocess).parameters:  # uvicorn before 0.36
        Multiprocess(config, target=server.run, sockets=[sock]).run()  # type: ignore[call-arg]
    else:
        Multiprocess(config, sockets=[sock]).run()
