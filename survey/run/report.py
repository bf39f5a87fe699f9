"""The end-of-run text table: the top heads of each class in each model, and the validations."""

from __future__ import annotations

from collections.abc import Sequence

from db.store import UnitSummary


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Left-aligned columns; the last column is not padded, so long values do not widen the rest."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    return [
        "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=False)) + "  " + row[-1]
        for row in [header, *rows]
    ]


def format_rows(columns: Sequence[str], rows: Sequence[Sequence[object]], fmt: str) -> str:
    """Query results as an aligned text table, CSV, or a JSON list of objects."""
    import csv
    import io
    import json

    if fmt == "json":
        return (
            json.dumps([dict(zip(columns, row, strict=True)) for row in rows], default=str, indent=1) + "\n"
        )
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(columns)
        writer.writerows(rows)
        return buffer.getvalue()
    shown = [[_cell(value) for value in row] for row in rows]
    count = f"{len(rows)} row" + ("" if len(rows) == 1 else "s")
    return "\n".join(text_table(list(columns), shown)) + f"\n({count})\n"


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    return "" if value is None else str(value)


def summary_lines(summaries: list[UnitSummary]) -> list[str]:
    """A table of top heads (``layer.head score``) per model and class, then one line per validation."""
    if not summaries:
        return []
    rows = [
        (
            s.model,
            f"{s.name} v{s.version}",
            f"> {s.threshold:g}" if s.threshold is not None else "-",
            f"{s.n_labelled}/{s.n_heads}",
            ", ".join(f"{layer}.{head} {score:.2f}" for layer, head, score in s.top),
        )  # fmt: skip
        for s in summaries
    ]
    lines = ["", "top heads per class (layer.head score)"]
    lines += text_table(("model", "classifier", "threshold", "labelled", "top heads"), rows)
    for s in summaries:
        v = s.validation
        if v is None:
            continue
        if v.ratio is None:
            note = v.details.get("note", "no labelled heads")
            lines.append(f"validation {s.model} {s.name}: not run ({note})")
            continue
        lines.append(
            f"validation {s.model} {s.name}: {v.metric} {v.effect_top:+.3f} for the top {v.k}, "
            f"{v.effect_random_mean or 0:+.3f} for {v.k} random heads "
            f"(mean of {len(v.effect_random)} draws): ratio {v.ratio:.1f}, "
            + ("supported" if v.supported else "NOT supported")
        )
    return lines
