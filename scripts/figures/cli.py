"""The subcommands: one per figure set, each in a module of its own."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from figures import (
    cache_aside,
    harness,
    hit_eviction,
    invalidation,
    leaderboard,
    near_cache,
    session,
    stampede,
    universal,
    write_behind,
    write_through,
)
from figures.shared import DROP, Figure, Setup, add_common

FIGURES: list[Figure] = [
    *cache_aside.FIGURES,
    *hit_eviction.FIGURES,
    *universal.FIGURES,
    *leaderboard.FIGURES,
    *session.FIGURES,
    *write_through.FIGURES,
    *write_behind.FIGURES,
    *invalidation.FIGURES,
    *stampede.FIGURES,
    *near_cache.FIGURES,
    *harness.FIGURES,
    DROP,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scripts/figures",
        description="Measure the figures the README and the workshop chapters quote.",
    )
    sub = parser.add_subparsers(dest="figure", required=True, metavar="SET")
    for figure in FIGURES:
        child = sub.add_parser(figure.name, help=figure.help, description=figure.help)
        if figure.arguments is not None:
            figure.arguments(child)
        add_common(child, figure.scale)
        child.set_defaults(figure_run=figure.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with Setup(args) as setup:
        return args.figure_run(setup, args) or 0
