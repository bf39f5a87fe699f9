"""The Python API for researchers: read the survey database into pandas, read-only.

>>> import survey
>>> db = survey.open("sqlite:///survey.db")
>>> db.heads("induction").query("label").sort_values("score", ascending=False).head()
>>> db.head_wide()                      # one row per head, every classifier's score and label
>>> db.label_evidence("induction")      # every label: interval, null, q, seed stability, validation
>>> db.neurons(family="prediction")
>>> db.examples("smollm2-135m-instruct", layer=29, neuron=1260)   # tokens in context
>>> db.examples("smollm2-135m-instruct", layer=29, neuron=1260, tail="negative")
>>> db.query("SELECT * FROM induction_mosaic")
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from classifiers.neuron_stats import TAILS
from db.neuron_examples import decode_examples, load_document
from db.readonly import readonly_engine, run_query
from db.reads import decode_json


class SurveyDatabase:
    """A read-only handle on a survey database (any SQLAlchemy URL; SQLite opened read-only)."""

    def __init__(self, url: str | None = None) -> None:
        self.url = url
        self.engine = readonly_engine(url)

    def query(self, sql: str) -> pd.DataFrame:
        """One read-only SQL statement as a DataFrame."""
        columns, rows = run_query(self.url, sql)
        return pd.DataFrame(rows, columns=columns)

    def _read(self, sql: str, filters: dict[str, Any] | None = None) -> pd.DataFrame:
        """Run ``sql``; its ``{where}`` becomes ``column = value`` for each filter that is set
        (unset filters are left out, not bound as NULL: PostgreSQL cannot type ``:x IS NULL``)."""
        from sqlalchemy import text

        wanted = {column: value for column, value in (filters or {}).items() if value is not None}
        params = {f"p{i}": value for i, value in enumerate(wanted.values())}
        where = " AND ".join(f"{column} = :p{i}" for i, column in enumerate(wanted)) or "1 = 1"
        with self.engine.connect() as connection:
            return pd.read_sql(text(sql.replace("{where}", where)), connection, params=params)

    def heads(self, classifier: str | None = None, model: str | None = None) -> pd.DataFrame:
        """Every head score (newest unit of each classifier): model, classifier, version, layer,
        head, score, label, rank, percentile, relative_depth, threshold."""
        return self._read(
            """SELECT m.name AS model, u.name AS classifier, u.version, h.layer, h.head, h.score, h.label,
                h.rank, h.percentile, (h.layer + 0.5) / m.n_layers AS relative_depth, u.threshold
            FROM head_scores h JOIN latest_units u ON u.id = h.unit_id JOIN models m ON m.id = u.model_id
            WHERE {where} ORDER BY m.name, u.name, h.layer, h.head""",
            {"u.name": classifier, "m.name": model},
        )

    def head_wide(self) -> pd.DataFrame:
        """The ``head_wide`` view: one row per head with every v1 classifier's score and label."""
        return self._read("SELECT * FROM head_wide ORDER BY model, layer, head")

    def label_evidence(self, classifier: str | None = None, model: str | None = None) -> pd.DataFrame:
        """The ``label_evidence`` view (every labelled head of the newest units) plus ``seed_jaccard``,
        its class's label stability over probe seeds in that model (from ``units.statistics``, which
        no view reads: JSON is read differently on SQLite and PostgreSQL)."""
        found = self._read(
            """SELECT e.*, u.statistics FROM label_evidence e JOIN units u ON u.id = e.unit_id
            WHERE {where} ORDER BY e.model, e.classifier, e.layer, e.head""",
            {"e.classifier": classifier, "e.model": model},
        )
        jaccard = found.pop("statistics").map(_seed_jaccard).astype("float64")
        found.insert(int(found.columns.get_loc("q_value")) + 1, "seed_jaccard", jaccard)
        return found

    def neurons(self, model: str | None = None, family: str | None = None) -> pd.DataFrame:
        """Every neuron summary (newest unit), with the model name."""
        return self._read(
            """SELECT m.name AS model, n.* FROM neurons n JOIN latest_units u ON u.id = n.unit_id
            JOIN models m ON m.id = u.model_id
            WHERE {where} ORDER BY m.name, n.layer, n.neuron""",
            {"m.name": model, "n.family": family},
        )

    def logit_lens(self, model: str | None = None) -> pd.DataFrame:
        """The logit lens per layer (newest unit): model, layer, relative_depth, kl_to_final,
        top1_agreement, entropy."""
        return self._read(
            """SELECT m.name AS model, l.layer, (l.layer + 1.0) / m.n_layers AS relative_depth, l.kl_to_final,
                l.top1_agreement, l.entropy
            FROM logit_lens l JOIN latest_units u ON u.id = l.unit_id JOIN models m ON m.id = u.model_id
            WHERE {where} ORDER BY m.name, l.layer""",
            {"m.name": model},
        )

    def examples(self, model: str, layer: int, neuron: int, tail: str = "positive") -> pd.DataFrame:
        """One tail of a neuron's top examples, most extreme first: the token, its activation, the
        document title, and the context tokens with the neuron's activation on each. ``tail`` is
        ``positive`` (largest activations), ``negative`` (most negative; version-2 units) or
        ``first`` (a window's first position; first_position neurons of version-2 units)."""
        if tail not in TAILS:
            raise ValueError(f"unknown tail {tail!r}; valid: {', '.join(TAILS)}")
        found = self._read(
            """SELECT e.unit_id, e.examples, e.context_acts, u.config FROM neuron_examples e
            JOIN latest_units u ON u.id = e.unit_id JOIN models m ON m.id = u.model_id
            WHERE {where}""",
            {"m.name": model, "e.layer": layer, "e.neuron": neuron, "e.tail": tail},
        )
        if found.empty:
            return pd.DataFrame(columns=["rank", "token", "activation", "document", "context"])
        row = found.iloc[0]
        unit_id = int(row["unit_id"])
        decoded = decode_examples(
            decode_json(row["examples"]), row["context_acts"], decode_json(row["config"]),
            lambda document_id: self._document(unit_id, document_id),
        )  # fmt: skip
        records = [
            {
                "rank": e.rank,
                "token": e.token,
                "activation": e.activation,
                "document": e.document,
                "context": e.context,
            }
            for e in decoded
        ]
        return pd.DataFrame(records)

    def _document(self, unit_id: int, document_id: int) -> tuple[str, str, list[list[int]]]:
        with self.engine.connect() as connection:
            return load_document(connection, unit_id, document_id)

    def runs(self) -> pd.DataFrame:
        """The ``run_provenance`` view: every unit with its model revision, run, code, device, dtype."""
        return self._read("SELECT * FROM run_provenance ORDER BY model, unit")


def _seed_jaccard(statistics: Any) -> float | None:
    """``seed_jaccard`` of a ``units.statistics`` value (JSON text, a dict, or missing)."""
    decoded = decode_json(statistics) if isinstance(statistics, str | dict) else None
    value = decoded.get("seed_jaccard") if isinstance(decoded, dict) else None
    return float(value) if value is not None else None


def open_survey(url: str | None = None) -> SurveyDatabase:
    """Open a survey database read-only (default: ``INTERP_SURVEY_DB`` or sqlite:///survey.db)."""
    return SurveyDatabase(url)
