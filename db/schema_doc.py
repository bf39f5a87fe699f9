"""Schema documentation generated from the SQLAlchemy metadata: every table with its purpose
(the class docstring) and every column with its type, keys and meaning (the column's ``doc``)."""

from __future__ import annotations

import inspect

from sqlalchemy import Column, UniqueConstraint

from db import views
from db.schema import Base


def _column_line(column: Column[object]) -> str:
    notes = []
    if column.primary_key:
        notes.append("primary key")
    notes += [f"→ {fk.column.table.name}" for fk in column.foreign_keys]
    if column.nullable and not column.primary_key:
        notes.append("nullable")
    meaning = column.doc or ("row id" if column.name == "id" else "")
    extra = f" ({', '.join(notes)})" if notes else ""
    return f"- `{column.name}` {str(column.type).lower()}{extra}: {meaning}".rstrip(": ")


def schema_markdown() -> str:
    """Markdown for every table, then the views."""
    purposes = {m.class_.__tablename__: inspect.getdoc(m.class_) or "" for m in Base.registry.mappers}
    lines: list[str] = []
    for name, table in sorted(Base.metadata.tables.items()):
        lines += [f"**`{name}`**: {' '.join(purposes.get(name, '').split())}", ""]
        lines += [_column_line(column) for column in table.columns]
        for constraint in table.constraints:
            if isinstance(constraint, UniqueConstraint):
                lines.append(f"- unique on ({', '.join(c.name for c in constraint.columns)})")
        lines.append("")
    lines += ["**Views** (see `db/views.py`):", ""]
    lines += [line for line in (inspect.getdoc(views) or "").splitlines() if line.startswith("- ")]
    return "\n".join(lines).rstrip() + "\n"
