"""Checks of the numbers a command takes, run by Typer while it reads the command line.

A number that would make a command loop forever or mean nothing (NaN, infinity, a
zero or negative count or duration) is a usage error (exit 2) said in one line with a
hint, before the command starts and so before any server is contacted. Each check is
an option's callback::

    seconds: Annotated[float | None, typer.Option("--seconds", callback=positive)] = None

Upper limits stay with the option (``max=``) or the command, where they are explained.
"""

from __future__ import annotations

import math

import typer

from flightcache.errors import UsageError


def _finite(param: typer.CallbackParam, value: float) -> None:
    if math.isnan(value):
        raise UsageError(f"{param.opts[0]} nan is not a number", hint="give a number, e.g. 10")
    if math.isinf(value):
        raise UsageError(
            f"{param.opts[0]} {value} is not a finite number", hint="give a number, e.g. 10"
        )


def positive(param: typer.CallbackParam, value: float | None) -> float | None:
    """A count, a rate, a duration or an id: above zero and finite (ints: 1 or more)."""
    if value is None:
        return None
    _finite(param, value)
    if value <= 0:
        raise UsageError(
            f"{param.opts[0]} {value:g} must be above zero", hint="give a number greater than 0"
        )
    return value


def non_negative(param: typer.CallbackParam, value: float | None) -> float | None:
    """A delay or a threshold that may be zero: 0 or more, and finite."""
    if value is None:
        return None
    _finite(param, value)
    if value < 0:
        raise UsageError(f"{param.opts[0]} {value:g} is negative", hint="give 0 or more")
    return value


def port(param: typer.CallbackParam, value: int | None) -> int | None:
    """A TCP port: 1 to 65535."""
    if value is not None and not 1 <= value <= 65535:
        raise UsageError(
            f"{param.opts[0]} {value} is not a TCP port", hint="choose 1024-65535, or leave it out"
        )
    return value
