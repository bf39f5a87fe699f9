"""What the label statistics cost: the head-classifier survey of one model, per unit, with the
statistics layer (this checkout) against a baseline revision without it, on the same machine.

    .venv/bin/python bench/statistics_cost.py [MODEL] [--baseline REV]

The baseline is checked out into a git worktree beside the repository and run with the same
interpreter (the dependencies are the same). Both runs start from an empty database, one after
the other, so run it on a quiet machine. Each unit's seconds are the survey's own per-unit
figures; ratio = with statistics / baseline. The units keep their names across the two versions.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASELINE = "7e4de9f"  # main before the statistics layer
UNIT_LINE = re.compile(r"^\s+(\w+) v\d+: .*?\[([\d.]+) s\]")


def checkout(revision: str) -> Path:
    """A worktree of ``revision`` in the system temp folder (made once)."""
    folder = Path(tempfile.gettempdir()) / f"interp-survey-{revision}"
    if not folder.exists():
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(folder), revision], check=True
        )
    return folder


def survey_seconds(source: Path, model: str) -> tuple[dict[str, float], float]:
    """Per unit seconds and the wall time of ``survey run MODEL`` from ``source``, fresh database."""
    with tempfile.TemporaryDirectory() as scratch:
        env = {**os.environ, "PYTHONPATH": str(source)}
        entry = "from survey.cli import main; main()"  # the checkout's own CLI (cwd comes first on sys.path)
        command = [sys.executable, "-c", entry, "run", model, "--db", f"sqlite:///{scratch}/bench.db"]
        started = time.perf_counter()
        done = subprocess.run(command, cwd=source, env=env, capture_output=True, text=True, check=True)
        wall = time.perf_counter() - started
    units = {m.group(1): float(m.group(2)) for m in map(UNIT_LINE.match, done.stdout.splitlines()) if m}
    if not units:
        raise SystemExit(f"no unit lines in the survey's output from {source}:\n{done.stdout}{done.stderr}")
    return units, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default="smollm2-135m-instruct")
    parser.add_argument("--baseline", default=BASELINE)
    args = parser.parse_args()
    base, base_wall = survey_seconds(checkout(args.baseline), args.model)
    new, new_wall = survey_seconds(ROOT, args.model)
    print(
        f"| {args.model} unit | baseline {args.baseline} s | with statistics s | ratio |\n|---|---|---|---|"
    )
    for name in new:
        before = base.get(name)
        ratio = f"{new[name] / before:.2f}" if before else "-"
        print(f"| {name} | {before if before is not None else '-'} | {new[name]:.1f} | {ratio} |")
    print(
        f"| **whole survey (wall s, load included)** | {base_wall:.0f} | {new_wall:.0f} | "
        f"{new_wall / base_wall:.2f} |"
    )


if __name__ == "__main__":
    main()
