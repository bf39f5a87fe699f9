"""Database bytes per neuron: the pages of the neuron tables and their indexes in a SQLite
database, divided by the neurons stored, with the family counts and the negative-sign share.

    .venv/bin/python bench/neuron_storage.py DB.sqlite [DB.sqlite ...]
"""

from __future__ import annotations

import sqlite3
import sys

TABLES = ("neurons", "neuron_examples")


def storage(path: str) -> dict[str, object]:
    """Bytes of the neuron tables (with their indexes), neurons, families and signs of one database."""
    with sqlite3.connect(path) as db:
        pages = dict(db.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name").fetchall())
        indexes = db.execute(
            f"SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name IN {TABLES}"
        ).fetchall()
        size = sum(pages.get(name, 0) for name in (*TABLES, *(row[0] for row in indexes)))
        neurons = db.execute("SELECT count(*) FROM neurons").fetchone()[0]
        families = dict(db.execute("SELECT coalesce(family, 'none'), count(*) FROM neurons GROUP BY 1"))
        columns = {row[1] for row in db.execute("PRAGMA table_info(neurons)")}
        negative = (
            db.execute("SELECT avg(sign < 0) FROM neurons").fetchone()[0] if "sign" in columns else None
        )
    return {"bytes": size, "neurons": neurons, "families": families, "negative_share": negative}


def main() -> None:
    print("| database | neurons | neuron-table bytes | bytes per neuron | negative sign | families |")
    print("|---|---|---|---|---|---|")
    for path in sys.argv[1:]:
        s = storage(path)
        neurons = int(s["neurons"])  # type: ignore[call-overload]
        size = int(s["bytes"])  # type: ignore[call-overload]
        share = "—" if s["negative_share"] is None else f"{float(s['negative_share']):.1%}"  # type: ignore[arg-type]
        families = ", ".join(f"{k} {v:,}" for k, v in sorted(s["families"].items()))  # type: ignore[attr-defined]
        print(f"| {path} | {neurons:,} | {size:,} | {size / max(neurons, 1):,.0f} | {share} | {families} |")


if __name__ == "__main__":
    main()
