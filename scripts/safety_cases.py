"""Count the safety issue's fault and bad-input cases per item, and run them.

    .venv/bin/python scripts/safety_cases.py            # run them: passed/failed per item
    .venv/bin/python scripts/safety_cases.py --collect  # count them only (a second)

Every test marked ``safety`` names the items it covers, ``@pytest.mark.safety(3, 10)``
(tests/conftest.py refuses a bare mark). Each such test asserts its own two targets:
nothing of the user's lost (rows, settings, keys, the dataset) and nothing of another
owner's touched (processes, tables, keys, accounts). A case is one collected test (one
parametrisation); a test covering two items counts for both. Extra arguments go to
pytest, e.g. ``-x`` or ``-k stack``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from typing import Any

import pytest

ITEMS = {
    1: "processes: only what flightcache started is stopped",
    2: "embedded servers closed to other local accounts",
    3: "destructive data operations",
    4: "server settings survive a killed demo",
    5: "poison messages (write-behind)",
    6: "the exercise sandbox",
    7: "connections: parameters, timeouts",
    8: "untrusted input",
    9: "secrets",
    10: "children die with their parent; leftovers swept",
}


class Tally:
    """A pytest plugin: each safety case's items and outcome."""

    def __init__(self) -> None:
        self.items: dict[str, set[int]] = {}
        self.outcomes: dict[str, str] = {}

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        from tests.conftest import safety_items

        for item in items:
            if item.get_closest_marker("safety") is not None:
                self.items[item.nodeid] = safety_items(item)

    def pytest_runtest_logreport(self, report: Any) -> None:
        if report.nodeid not in self.items:
            return
        # the call's outcome; a failure in setup or teardown counts against the case too
        first = self.outcomes.get(report.nodeid) in (None, "passed")
        if first and (report.when == "call" or report.outcome != "passed"):
            self.outcomes[report.nodeid] = report.outcome


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--collect", action="store_true", help="count the cases, run none")
    args, extra = parser.parse_known_args()
    tally = Tally()
    started = time.monotonic()
    pytest_args = ["-m", "safety", "-q", "-p", "no:cacheprovider", *extra]
    if args.collect:
        pytest_args.append("--collect-only")
    code = pytest.main(pytest_args, plugins=[tally])
    elapsed = time.monotonic() - started
    cases: Counter[int] = Counter()
    outcome: dict[int, Counter[str]] = {n: Counter() for n in ITEMS}
    for nodeid, numbers in tally.items.items():
        for n in numbers:
            cases[n] += 1
            outcome[n][tally.outcomes.get(nodeid, "not run")] += 1
    print()
    header = f"{'item':>4}  {'cases':>5}  " + (
        "" if args.collect else f"{'passed':>6}  {'failed':>6}  {'skipped':>7}  "
    )
    print(header + "what")
    for n, what in ITEMS.items():
        line = f"{n:>4}  {cases[n]:>5}  "
        if not args.collect:
            o = outcome[n]
            line += f"{o['passed']:>6}  {o['failed']:>6}  {o['skipped'] + o['not run']:>7}  "
        print(line + what)
    print(f"{len(tally.items)} cases in all ({elapsed:.0f} s); pytest exit code {int(code)}")
    return int(code)


if __name__ == "__main__":
    sys.exit(main())
