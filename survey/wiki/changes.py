"""What a release holds (its units and labels), kept as ``release.json`` in the site, and the
"changes" page: what is new or different since the previous release built into the same folder."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, text

from db.reads import load_labels
from survey.wiki.pages import SiteModel, head_name

RELEASE_STATE = "release.json"


@dataclass(frozen=True)
class ReleaseState:
    """A release's content: each unit's key, and each labelled head by model and classifier."""

    data_as_of: str
    units: list[list[Any]]  # [model, kind, name, version, dataset hash, definition hash]
    labels: dict[str, dict[str, list[str]]]  # model → classifier → head names

    def to_json(self) -> str:
        return json.dumps(
            {"data_as_of": self.data_as_of, "units": self.units, "labels": self.labels},
            indent=1,
            sort_keys=True,
        )


def release_state(conn: Connection, models: list[SiteModel]) -> ReleaseState:
    """The release the database makes now."""
    names = {m.record.id: m.name for m in models}
    units = [
        list(row)
        for row in conn.execute(
            text(
                """SELECT m.name, u.kind, u.name, u.version, u.dataset_hash, u.definition_hash
                FROM units u JOIN models m ON m.id = u.model_id"""
            )
        )
    ]
    labels: dict[str, dict[str, list[str]]] = {}
    for classifier, by_model in load_labels(conn).items():
        for model_id, heads in by_model.items():
            if model_id in names:
                labels.setdefault(names[model_id], {})[classifier] = [head_name(*h) for h in sorted(heads)]
    latest = conn.execute(text("SELECT max(created_at) FROM units")).scalar()
    when = _utc(latest).strftime("%Y-%m-%d %H:%M UTC") if latest is not None else "no units"
    return ReleaseState(when, sorted(units), labels)


def _utc(value: datetime | str) -> datetime:
    """A stored time (a string on SQLite) in UTC; naive times are UTC."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def data_epoch(state: ReleaseState) -> int:
    """The release's data time in seconds since the epoch (0 when it has no units)."""
    try:
        return int(datetime.strptime(state.data_as_of, "%Y-%m-%d %H:%M UTC").replace(tzinfo=UTC).timestamp())
    except ValueError:
        return 0


def read_release_state(out: Path) -> ReleaseState | None:
    """The state of the release last built into ``out`` (None: none, or unreadable)."""
    try:
        found = json.loads((out / RELEASE_STATE).read_text(encoding="utf-8"))
        return ReleaseState(str(found["data_as_of"]), list(found["units"]), dict(found["labels"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


@dataclass
class LabelChange:
    """Labels of one class in one model gained and lost since the previous release."""

    model: str
    classifier: str
    gained: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Changes:
    """The difference between two releases (``previous`` None: this is the first one)."""

    previous: ReleaseState | None
    models_added: list[str]
    models_removed: list[str]
    units_added: list[list[Any]]
    units_removed: list[list[Any]]
    labels: list[LabelChange]


def changes(previous: ReleaseState | None, current: ReleaseState) -> Changes:
    """What ``current`` adds to, removes from and changes in ``previous``."""
    before = previous or ReleaseState("", [], {})
    old_units, new_units = {tuple(u) for u in before.units}, {tuple(u) for u in current.units}
    old_models, new_models = {u[0] for u in old_units}, {u[0] for u in new_units}
    label_changes = []
    for model in sorted(set(before.labels) | set(current.labels)):
        old, new = before.labels.get(model, {}), current.labels.get(model, {})
        for classifier in sorted(set(old) | set(new)):
            was, now = set(old.get(classifier, [])), set(new.get(classifier, []))
            if was != now:
                label_changes.append(LabelChange(model, classifier, _by_head(now - was), _by_head(was - now)))
    return Changes(
        previous, sorted(new_models - old_models), sorted(old_models - new_models),
        sorted(list(u) for u in new_units - old_units), sorted(list(u) for u in old_units - new_units),
        label_changes,
    )  # fmt: skip


def _by_head(names: set[str]) -> list[str]:
    """Head names in layer, then head order."""
    return sorted(names, key=lambda n: tuple(int(x) for x in n[1:].split("H")))
