"""What the pattern classes share: the pipeline a round trip goes in, one line of an
error, and a retry with backoff."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

Pipeline = Callable[[Any], Any]
"""Makes the pipeline a pattern sends a round trip's commands in; a demo passes the
Tracer's, so the commands show, and everything else the plain one."""


def plain_pipeline(client: Any) -> Any:
    return client.pipeline(transaction=False)


def first_line(exc: BaseException, limit: int = 160) -> str:
    """An exception as one short line for a step's outcome or a report."""
    return str(exc).split("\n", 1)[0][:limit] or type(exc).__name__


def retried(
    fn: Callable[[], Any],
    *,
    attempts: int,
    backoff_s: float,
    errors: type[BaseException] | tuple[type[BaseException], ...],
) -> tuple[int, str]:
    """Call ``fn`` until it returns, at most ``attempts`` times, sleeping ``backoff_s``,
    then twice that, ... after each of ``errors``; (calls made, last error or "")."""
    error = ""
    for attempt in range(1, attempts + 1):
        try:
            fn()
        except errors as exc:
            error = str(exc) or type(exc).__name__
            if attempt < attempts:
                time.sleep(backoff_s * 2 ** (attempt - 1))
            continue
        return attempt, ""
    return attempts, error
