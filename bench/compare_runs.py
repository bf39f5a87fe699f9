"""Do two survey databases hold the same results? Per unit and table: the largest difference of any
number, and how many labels, families or other exact fields differ.

Units are matched by model name and key (kind, name, version, dataset and definition hashes); rows
within a unit by their unique key (layer, head, neuron, ...). Every value is compared, JSON too
(numbers by difference, the rest exactly), bookkeeping aside (ids, times, passes, seconds). Exit
status 1 when a result differs by more than ``--tolerance`` or an exact field (a label, a family)
differs: a speed change must keep results (1e-5 on the same device), a device change may move
them by float noise (1e-3, ``bench/gpu_check.sh``). Ranks, percentiles, p- and q-values are
reported apart: near-tied noise-level heads reorder under any float change.

    python bench/compare_runs.py BEFORE.db AFTER.db [--tolerance 1e-5]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from collections import defaultdict
from typing import Any

UNIT_KEY = ("kind", "name", "version", "dataset_hash", "definition_hash")
SKIPPED = {"id", "unit_id", "forward_passes", "passes", "seconds", "created_at"}
# orderings and tests of near-tied noise-level heads: reported, never a failure (a 1e-8 change
# reorders two heads whose scores agree to 1e-5)
DERIVED = {"rank", "percentile", "null_percentile", "p_value", "q_value"}


def _columns(db: sqlite3.Connection, table: str) -> list[tuple[str, str]]:
    return [(row[1], row[2].upper()) for row in db.execute(f"PRAGMA table_info({table})")]


def _row_key(db: sqlite3.Connection, table: str) -> list[str]:
    """The columns besides ``unit_id`` of the table's unique constraint on ``unit_id``."""
    for index in db.execute(f"PRAGMA index_list({table})"):
        if index[2]:  # unique
            names = [row[2] for row in db.execute(f"PRAGMA index_info({index[1]})")]
            if names and names[0] == "unit_id" and len(names) > 1:
                return names[1:]
    return []


def _unit_tables(db: sqlite3.Connection) -> list[str]:
    names = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    return sorted(t for t in names if "unit_id" in {c for c, _ in _columns(db, t)})


def _units(db: sqlite3.Connection) -> dict[tuple[object, ...], int]:
    key = ", ".join("u." + c for c in UNIT_KEY)
    query = f"SELECT m.name, {key}, u.id FROM units u JOIN models m ON m.id = u.model_id"
    return {tuple(row[:-1]): row[-1] for row in db.execute(query)}


class Tally:
    """The largest numeric difference and the count of exact differences, per (unit, table, kind)."""

    def __init__(self) -> None:
        self.worst: dict[tuple[str, str, str], float] = defaultdict(float)
        self.mismatched: dict[tuple[str, str, str], int] = defaultdict(int)

    def values(self, label: tuple[str, str, str], a: Any, b: Any) -> None:
        """Compare two stored values (JSON decoded): numbers by difference, the rest exactly."""
        if isinstance(a, dict) and isinstance(b, dict):
            if set(a) != set(b):
                self.mismatched[label] += 1
            for key in set(a) & set(b) - SKIPPED:
                self.values(label, a[key], b[key])
        elif isinstance(a, list) and isinstance(b, list):
            if len(a) != len(b):
                self.mismatched[label] += 1
            for x, y in zip(a, b, strict=False):
                self.values(label, x, y)
        elif isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
            self.worst[label] = max(self.worst[label], abs(float(a) - float(b)))
        else:
            self.mismatched[label] += a != b


def compare(before: str, after: str, tolerance: float) -> list[str]:
    """Lines describing every unit's differences; the first element is empty when all agree."""
    a, b = sqlite3.connect(before), sqlite3.connect(after)
    units_a, units_b = _units(a), _units(b)
    problems, lines, tally = [], [], Tally()
    for key in sorted(set(units_a) ^ set(units_b), key=str):
        problems.append(f"unit {key[:3]} only in {'before' if key in units_a else 'after'}")
    for table in _unit_tables(a):
        keys = _row_key(a, table)
        columns = [(c, t) for c, t in _columns(a, table) if c not in SKIPPED and c not in keys]
        select = f"SELECT {', '.join(keys + [c for c, _ in columns])} FROM {table} WHERE unit_id = ?"
        for key in sorted(set(units_a) & set(units_b), key=str):
            rows_a = {r[: len(keys)]: r[len(keys) :] for r in a.execute(select, (units_a[key],))}
            rows_b = {r[: len(keys)]: r[len(keys) :] for r in b.execute(select, (units_b[key],))}
            if set(rows_a) != set(rows_b):
                tally.mismatched[(str(key[2]), table, "rows")] += len(set(rows_a) ^ set(rows_b))
            for row_key in set(rows_a) & set(rows_b):
                for (column, kind), x, y in zip(columns, rows_a[row_key], rows_b[row_key], strict=True):
                    group = "derived" if column in DERIVED else "results"
                    if kind == "JSON" and x is not None and y is not None:
                        x, y = json.loads(x), json.loads(y)
                    tally.values((str(key[2]), table, group), x, y)
    for label in sorted(set(tally.worst) | set(tally.mismatched)):
        worst, mismatched = tally.worst[label], tally.mismatched[label]
        line = f"{label[0]:<22} {label[1]:<16} {label[2]:<8} max |diff| {worst:.2e}, "
        line += f"{mismatched} exact fields differ"
        lines.append(line)
        if label[2] != "derived" and (worst > tolerance or mismatched):
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
