"""Do two survey databases hold the same results? Per unit and table: the largest difference of any
number, and how many labels, families or other exact fields differ.

Units are matched by model name and key (kind, name, version, dataset and definition hashes); rows
within a unit by their integer columns (layer, head, neuron, ...). JSON columns (evidence) and
bookkeeping (ids, times, passes, seconds) are not compared. Exit status 1 when a number differs by
more than ``--tolerance`` or an exact field differs: a speed change must keep results (1e-5 on
the same device), a device change may move them by float noise (1e-3, ``bench/gpu_check.sh``).

    python bench/compare_runs.py BEFORE.db AFTER.db [--tolerance 1e-5]
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from collections import defaultdict

UNIT_KEY = ("kind", "name", "version", "dataset_hash", "definition_hash")
SKIPPED = {"id", "unit_id", "forward_passes", "seconds", "created_at"}


def _columns(db: sqlite3.Connection, table: str) -> list[tuple[str, str]]:
    return [(row[1], row[2].upper()) for row in db.execute(f"PRAGMA table_info({table})")]


def _unit_tables(db: sqlite3.Connection) -> list[str]:
    names = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    return sorted(t for t in names if "unit_id" in {c for c, _ in _columns(db, t)})


def _units(db: sqlite3.Connection) -> dict[tuple[object, ...], int]:
    key = ", ".join("u." + c for c in UNIT_KEY)
    query = f"SELECT m.name, {key}, u.id FROM units u JOIN models m ON m.id = u.model_id"
    return {tuple(row[:-1]): row[-1] for row in db.execute(query)}


def compare(before: str, after: str, tolerance: float) -> list[str]:
    """Lines describing every unit's differences; the first element is empty when all agree."""
    a, b = sqlite3.connect(before), sqlite3.connect(after)
    units_a, units_b = _units(a), _units(b)
    problems, lines = [], []
    for key in sorted(set(units_a) ^ set(units_b), key=str):
        problems.append(f"unit {key[:3]} only in {'before' if key in units_a else 'after'}")
    worst: dict[tuple[str, str], float] = defaultdict(float)
    mismatched: dict[tuple[str, str], int] = defaultdict(int)
    for table in _unit_tables(a):
        columns = [(c, t) for c, t in _columns(a, table) if c not in SKIPPED and t != "JSON"]
        keys = [c for c, t in columns if t.startswith("INT")]
        numbers = [c for c, t in columns if t in ("FLOAT", "REAL", "DOUBLE PRECISION")]
        exact = [c for c, t in columns if c not in keys and c not in numbers]
        select = f"SELECT {', '.join(keys + numbers + exact)} FROM {table} WHERE unit_id = ?"
        for key in sorted(set(units_a) & set(units_b), key=str):
            rows_a = {r[: len(keys)]: r for r in a.execute(select, (units_a[key],))}
            rows_b = {r[: len(keys)]: r for r in b.execute(select, (units_b[key],))}
            label = (str(key[2]), table)
            if set(rows_a) != set(rows_b):
                mismatched[label] += len(set(rows_a) ^ set(rows_b))
            for row_key in set(rows_a) & set(rows_b):
                ra, rb = rows_a[row_key], rows_b[row_key]
                for i in range(len(keys), len(keys) + len(numbers)):
                    if ra[i] is not None and rb[i] is not None:
                        worst[label] = max(worst[label], abs(float(ra[i]) - float(rb[i])))
                    elif (ra[i] is None) != (rb[i] is None):
                        mismatched[label] += 1
                for i in range(len(keys) + len(numbers), len(ra)):
                    mismatched[label] += ra[i] != rb[i]
    for label in sorted(set(worst) | set(mismatched)):
        line = f"{label[0]:<24} {label[1]:<20} max |diff| {worst[label]:.2e}, "
        line += f"{mismatched[label]} exact fields differ"
        lines.append(line)
        if worst[label] > tolerance or mismatched[label]:
            problems.append(line)
    return ["\n".join(problems)] + lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--tolerance", type=float, default=1e-5)
    args = parser.parse_args()
    problems, *lines = compare(args.before, args.after, args.tolerance)
    print("\n".join(lines))
    if problems:
        print(f"DIFFERENT (tolerance {args.tolerance:g}):\n{problems}")
        sys.exit(1)
    print(f"same results (tolerance {args.tolerance:g})")


if __name__ == "__main__":
    main()
