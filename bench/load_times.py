"""Load time and peak memory of each embedded model: first load (assemble, verify, dequantize,
cache) against the cached load, each in a fresh process with a fresh cache dir. Peak RSS is
read after one forward pass, so every weight has been touched.

    .venv/bin/python bench/load_times.py [--all]

Prints a table; the ratio column is cached / first load time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

CHILD = """
import json, resource, sys, time, torch
t = time.perf_counter()
from survey.catalog import load_catalog
from survey.loading.loaders import load, resolve
loaded = load(resolve(sys.argv[1], load_catalog()))
seconds = time.perf_counter() - t
with torch.inference_mode():  # touch every weight, so memory-mapped weights count in the peak
    loaded.model(torch.tensor([loaded.bos.encode(loaded.tokenizer, "The cat sat on the mat. " * 8)]))
print(json.dumps({"seconds": seconds, "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6}))
"""


def measure(name: str, cache: str) -> dict[str, float]:
    """Load ``name`` in a child process using ``cache``; return its wall time and peak RSS."""
    env = {**os.environ, "INTERP_SURVEY_CACHE": cache}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, name], env=env, capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    """Measure every default embedded model (``--all``: the opt-in ones too)."""
    from survey.catalog import load_catalog

    parser = argparse.ArgumentParser()
    parser.add_argument("--all", action="store_true")
    args = parser.parse_args()
    catalog = load_catalog()
    entries = (
        [e for e in catalog.entries.values() if e.source == "registry"] if args.all else catalog.defaults()
    )
    columns = (
        f"{'first s':>8} {'cached s':>9} {'cached/first':>13} {'peak GB first':>14} {'peak GB cached':>15}"
    )
    print(f"{'model':32} {columns}")
    for entry in entries:
        with tempfile.TemporaryDirectory() as cache:
            first = measure(entry.name, cache)
            cached = measure(entry.name, cache)
        print(
            f"{entry.name:32} {first['seconds']:8.1f} {cached['seconds']:9.1f} "
            f"{cached['seconds'] / first['seconds']:13.2f} {first['peak_gb']:14.2f} {cached['peak_gb']:15.2f}"
        )
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    print(f"machine: {os.cpu_count()} cores, {memory_gib:.0f} GiB")


if __name__ == "__main__":
    main()
