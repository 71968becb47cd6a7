"""The minutes a room needs for each chapter, computed from the chapters themselves.

A chapter's minutes are three parts, each stated so the figure can be checked:

(a) the demos' wall time: each ``demos`` entry of the chapter's header run as
    ``flightcache <demo> --json`` (or bare, for commands without ``--json``)
    against a freshly loaded ``--scale small`` database and a scratch Valkey,
    recorded by ``python scripts/pacing.py measure`` in ``scripts/pacing.json``;
(b) reading: the chapter's prose at READ_WPM (200) words a minute, each learner reading
    technical text on their own screen (read aloud to the room, 150 a minute, the
    whole workshop takes about 37 minutes more), and its code blocks at
    CODE_LINES_PER_MIN (30) lines a minute, the quoted source explained by the prose;
(c) the allowance: STEP_MINUTES (half a minute) for each step a demo prints with
    ``--pause`` (the pause, the instructor's word, a question), counted from the
    demo's ``--json`` (a command without ``--json`` is one step), and DEMO_MINUTES (one)
    for starting each demo and discussing its closing table.

A chapter's minutes are the sum rounded to the nearest 5 (at least 5).

(c) dominates on purpose: demo wall times are noisy on a shared machine, and a
room's pace is set by its discussion, not by the server.

    python scripts/pacing.py measure          # run the demos, write scripts/pacing.json
    python scripts/pacing.py measure --demo near-cache   # one demo, the others kept
    python scripts/pacing.py                  # the table: computed against the headers
    python scripts/pacing.py --write          # set each header's minutes
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flightcache.workshop import Chapter, chapters  # noqa: E402

READ_WPM = 200
CODE_LINES_PER_MIN = 30
STEP_MINUTES = 0.5
DEMO_MINUTES = 1.0
MEASURED = ROOT / "scripts" / "pacing.json"
MYSQL = "mysql://root@127.0.0.1:3306/"

_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_FENCE = re.compile(r"^```.*?^```", re.DOTALL | re.MULTILINE)
_HEADER_MINUTES = re.compile(r"\A(\s*<!--\s*workshop\s*\n(?:.*\n)*?)minutes = \d+", re.MULTILINE)


@dataclass(frozen=True)
class Demo:
    seconds: float
    steps: int


@dataclass(frozen=True)
class Pace:
    chapter: Chapter
    words: int
    code_lines: int
    demo_seconds: float
    steps: int

    @property
    def reading(self) -> float:
        return self.words / READ_WPM + self.code_lines / CODE_LINES_PER_MIN

    @property
    def allowance(self) -> float:
        return self.steps * STEP_MINUTES + len(self.chapter.demos) * DEMO_MINUTES

    @property
    def minutes(self) -> int:
        return max(5, round((self.demo_seconds / 60 + self.reading + self.allowance) / 5) * 5)


def text_of(body: str) -> tuple[int, int]:
    """(prose words, code lines) of a chapter body; HTML comments count as neither."""
    body = _COMMENT.sub("", body)
    code = _FENCE.findall(body)
    prose = _FENCE.sub("", body)
    return len(prose.split()), sum(max(block.count("\n") - 1, 0) for block in code)


def count_steps(output: str) -> int:
    """Steps a demo's ``--json`` document holds; a plain command's output is one step."""
    try:
        doc = json.loads(output)
    except ValueError:
        return 1
    found = 0

    def walk(node: object) -> None:
        nonlocal found
        if isinstance(node, dict):
            found += node.get("type") == "step"
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(doc)
    return max(found, 1)


def pace(chapter: Chapter, measured: dict[str, dict[str, dict[str, float]]]) -> Pace:
    words, code_lines = text_of(chapter.body)
    runs = measured.get(chapter.slug, {})
    seconds = 0.0
    steps = 0
    for demo in chapter.demos:
        got = runs.get(" ".join(demo), {"seconds": 0.0, "steps": 1})
        seconds += got["seconds"]
        steps += int(got["steps"])
    return Pace(chapter, words, code_lines, seconds, steps)


def load_measured(path: Path = MEASURED) -> dict[str, dict[str, dict[str, float]]]:
    if not path.exists():
        return {}
    data: dict[str, dict[str, dict[str, float]]] = json.loads(path.read_text(encoding="utf-8"))
    return data


def set_minutes(path: Path, minutes: int) -> bool:
    """Set the header's ``minutes`` of the chapter at ``path``; whether it changed."""
    text = path.read_text(encoding="utf-8")
    new = _HEADER_MINUTES.sub(lambda m: f"{m.group(1)}minutes = {minutes}", text, count=1)
    if new != text:
        path.write_text(new, encoding="utf-8")
    return new != text


def measure(out: Path, only: str | None = None) -> None:
    """Run every chapter's demos (or the one named ``only``, its figures merged into
    those ``out`` has) against a fresh small database and a scratch Valkey."""
    from flightcache.config import DbUrl
    from flightcache.db import connect, drop_database
    from flightcache.stack.valkey import scratch_valkey

    exe = str(Path(sys.executable).parent / "flightcache")
    db = DbUrl.parse(MYSQL).with_database(f"fc_pacing_{uuid.uuid4().hex[:8]}")
    result = load_measured(out) if only else {}
    connect(db, create=True, connect_timeout=3).close()
    with scratch_valkey(prefix="fc-pacing-") as valkey:
        base = [exe, "--db-url", db.url(redact=False), "--valkey-url", valkey.url.url(redact=False)]
        try:
            subprocess.run([*base, "data", "load", "--scale", "small"], check=True)
            for chapter in chapters():
                for demo in chapter.demos:
                    if only is not None and " ".join(demo) != only:
                        continue
                    helped = subprocess.run(
                        [*base, *demo, "--help"], capture_output=True, text=True
                    )
                    # the option table's bare --json, not `--json PATH` nor an example's
                    flag = re.search(r"^\s+--json\s{2,}", helped.stdout, re.MULTILINE)
                    extra = ["--json"] if flag else []
                    if "--yes" in helped.stdout:  # our scratch Valkey, our database
                        extra.append("--yes")
                    began = time.monotonic()
                    done = subprocess.run([*base, *demo, *extra], capture_output=True, text=True)
                    took = time.monotonic() - began
                    steps = count_steps(done.stdout) if "--json" in extra else 1
                    print(
                        f"{chapter.number} {' '.join(demo)}: {took:.1f}s, {steps} steps,"
                        f" exit {done.returncode}",
                        flush=True,
                    )
                    result.setdefault(chapter.slug, {})[" ".join(demo)] = {
                        "seconds": round(took, 1),
                        "steps": steps,
                        "exit": done.returncode,
                    }
        finally:
            drop_database(db)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", nargs="?", choices=["report", "measure"], default="report")
    parser.add_argument("--write", action="store_true", help="set each header's minutes")
    parser.add_argument("--measured", type=Path, default=MEASURED)
    parser.add_argument(
        "--demo", default=None, help="measure this demo only (as the header names it)"
    )
    args = parser.parse_args(argv)
    if args.action == "measure":
        measure(args.measured, args.demo)
        return 0
    measured = load_measured(args.measured)
    print(
        f"{'chapter':<26} {'demos s':>7} {'steps':>5} {'words':>5} {'code':>4}"
        f" {'read':>5} {'allow':>5} {'min':>4} {'header':>6}"
    )
    for found in (pace(c, measured) for c in chapters()):
        c = found.chapter
        print(
            f"{c.number:02d}-{c.slug:<23} {found.demo_seconds:>7.0f} {found.steps:>5}"
            f" {found.words:>5} {found.code_lines:>4} {found.reading:>5.1f}"
            f" {found.allowance:>5.1f} {found.minutes:>4} {c.minutes:>6}"
        )
        if args.write:
            set_minutes(c.path, found.minutes)
        for demo, got in measured.get(c.slug, {}).items():
            if got.get("exit"):
                print(f"  measured {demo!r} failed (exit {got['exit']}): measure again")
    return 0


if __name__ == "__main__":
    sys.exit(main())
