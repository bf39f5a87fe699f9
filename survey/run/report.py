"""Text tables for the terminal (fitted to its width, long cells as footnotes), and the end-of-run
report: the top heads of each class in each model, and the validations."""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

from db.store import UnitSummary


@dataclass(frozen=True)
class Noted:
    """A table cell shown as ``text [n]``; its ``note`` is footnote n under the table."""

    text: str
    note: str


Cell = str | Noted


def terminal_width() -> int:
    """The terminal's width in columns (``COLUMNS`` when set; 80 when output is not a terminal)."""
    return shutil.get_terminal_size().columns


def text_table(header: Sequence[str], rows: Sequence[Sequence[Cell]], width: int | None = None) -> list[str]:
    """Left-aligned columns, then numbered footnotes (identical notes share a number).

    A :class:`Noted` cell always puts its note in a footnote. With ``width``, so do plain cells too
    long for the lines to fit in ``width`` columns (never in the first column), and footnotes wrap
    at ``width``. The last column is not padded, so without ``width`` long values widen nothing.
    """
    ref = len(f" [{len({c.note for row in rows for c in row if isinstance(c, Noted)})}]")
    while True:  # ref: the widest footnote reference, " [n]"; it grows when plain cells join the notes
        notes: dict[str, int] = {}
        caps = _caps(header, rows, ref, width)
        table = [
            list(header),
            *([_shown(c, cap, notes) for c, cap in zip(row, caps, strict=True)] for row in rows),
        ]
        if len(f" [{len(notes)}]") <= ref:
            break
        ref += 1
    widths = [max(len(r[i]) for r in table) for i in range(len(header) - 1)]
    lines = [
        "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=False)) + "  " + row[-1] for row in table
    ]
    if notes:
        lines.append("")
    for note, number in notes.items():
        lines += hanging(f"[{number}] ", note, width)
    return lines


def _caps(header: Sequence[str], rows: Sequence[Sequence[Cell]], ref: int, width: int | None) -> list[int]:
    """Per column, the longest plain cell kept in the table: all of them when the lines fit in
    ``width``, else the largest common cap that makes them fit (or the narrowest table possible)."""
    columns = list(zip(header, *rows, strict=True))
    natural = [max(_width(c, ref) for c in col) for col in columns]
    gaps = 2 * (len(header) - 1)
    if width is None or sum(natural) + gaps <= width:
        return natural
    floors = [natural[0]] + [
        max(len(col[0]), ref - 1, *(_width(c, ref) for c in col if isinstance(c, Noted)))
        for col in columns[1:]
    ]
    for cap in range(max(natural), 0, -1):
        caps = [min(n, max(f, cap)) for n, f in zip(natural, floors, strict=True)]
        if sum(caps) + gaps <= width:
            return caps
    return floors


def _shown(cell: Cell, cap: int, notes: dict[str, int]) -> str:
    """The cell as printed; a note (or a plain cell longer than ``cap``) gets its footnote number."""
    if isinstance(cell, str) and len(cell) <= cap:
        return cell
    text, note = (cell.text, cell.note) if isinstance(cell, Noted) else ("", cell)
    return f"{text} [{notes.setdefault(note, len(notes) + 1)}]".lstrip()


def _width(cell: Cell, ref: int) -> int:
    return len(cell) if isinstance(cell, str) else len(cell.text) + ref


def hanging(prefix: str, text: str, width: int | None) -> list[str]:
    """``prefix`` then ``text``, each of its paragraphs wrapped at ``width`` under a hanging indent."""
    indent = " " * len(prefix)
    lines: list[str] = []
    for i, paragraph in enumerate(text.splitlines() or [""]):
        first = prefix if i == 0 else indent
        if width is None:
            lines.append(first + paragraph)
        else:
            lines += textwrap.wrap(
                paragraph, width, initial_indent=first, subsequent_indent=indent, break_on_hyphens=False
            ) or [first]
    return lines


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
        if not v.k:
            note = v.details.get("note", "no labelled heads")
            lines.append(f"validation {s.model} {s.name}: not run ({note})")
            continue
        z = "n/a" if v.z_score is None else f"{v.z_score:.1f}"
        standing = (
            f"ratio {v.ratio:.1f}" if v.rank is None else f"rank {v.rank}/{len(v.effect_random) + 1}, z {z}"
        )
        lines.append(
            f"validation {s.model} {s.name}: {v.metric} {v.effect_top:+.3f} for the top {v.k}, "
            f"{v.effect_random_mean or 0:+.3f} for {v.k} random heads "
            f"(mean of {len(v.effect_random)} draws): {standing}, "
            + ("supported" if v.supported else "NOT supported")
        )
    return lines
