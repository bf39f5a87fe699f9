"""Wiki build time and peak memory against the page count.

Generates synthetic survey databases (``db.fixtures.build_synthetic``: random scores for every
head classifier, with evidence, example patterns and a validation; a logit lens; a neuron unit with
examples) sized to about 1k, 5k and 20k pages, then runs ``survey site build`` on each in a fresh
process and records wall time, the render/mkdocs split and peak RSS. Linear scaling shows as a flat
seconds-per-1000-pages column.

    .venv/bin/python bench/site_build.py [--sizes 1k,5k,20k]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from db.engine import open_database
from db.fixtures import build_synthetic

# (models, layers, heads); pages ~ models * (1 + layers * (1 + heads)) + one per classifier + home + schema
SIZES = {"1k": (4, 12, 20), "5k": (8, 24, 25), "20k": (20, 32, 30)}
NEURONS, EXAMPLES = 30, 5
CHILD = """
import json, resource, sys, time
from pathlib import Path
from survey.wiki.build import build_site
start = time.perf_counter()
report = build_site(sys.argv[1], Path(sys.argv[2]), lambda line: None)
print(json.dumps({"pages": report.pages, "render_s": report.render_s, "mkdocs_s": report.mkdocs_s,
                  "wall_s": time.perf_counter() - start,
                  "peak_rss_mb": max(resource.getrusage(who).ru_maxrss for who in
                                     (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)) / 1024}))
"""


def measure(url: str, out: Path) -> dict[str, float]:
    """Build the site in a fresh process; its timings and peak RSS."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD, url, str(out)], check=True, capture_output=True, text=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1k,5k,20k")
    args = parser.parse_args()
    print(
        f"{'size':>5} {'pages':>6} {'render s':>9} {'mkdocs s':>9} {'total s':>8} "
        f"{'s/1k pages':>11} {'peak MB':>8}"
    )
    for size in re.split(r"\s*,\s*", args.sizes):
        with tempfile.TemporaryDirectory() as folder:
            url = f"sqlite:///{folder}/bench.db"
            start = time.perf_counter()
            engine = open_database(url)
            build_synthetic(engine, *SIZES[size], neurons=NEURONS, examples=EXAMPLES)
            engine.dispose()
            made = time.perf_counter() - start
            result = measure(url, Path(folder) / "site")
            print(
                f"{size:>5} {result['pages']:>6} {result['render_s']:>9.1f} {result['mkdocs_s']:>9.1f} "
                f"{result['wall_s']:>8.1f} {1000 * result['wall_s'] / result['pages']:>11.2f} "
                f"{result['peak_rss_mb']:>8.0f}   (fixture {made:.0f} s)",
                flush=True,
            )


if __name__ == "__main__":
    main()
