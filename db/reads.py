"""The one read layer: plain records from the survey database for the wiki (one model at a time)
and the JSON decoding that the wiki and the pandas API (:mod:`db.frames`) share.

Only SELECTs, through the read-only engine; JSON columns are decoded here so page code and
DataFrames never see the backend's representation.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import Connection, text

from db.views import UNIT_VALIDATION


def decode_json(value: Any) -> Any:
    """A JSON column's value: SQLite hands back text, PostgreSQL the decoded object."""
    return json.loads(value) if isinstance(value, str) else value


def _rows(conn: Connection, sql: str, **params: Any) -> Iterator[dict[str, Any]]:
    for row in conn.execute(text(sql), params):
        yield dict(row._mapping)


def ablating(validations: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The validations that ablated something (one with k = 0 found no labelled head to ablate)."""
    return [v for v in validations if v.get("k", 1)]


def validation_failed(validations: Sequence[dict[str, Any]]) -> bool:
    """Whether any of a unit's validations failed (its labels are then unconfirmed)."""
    return any(not v["supported"] for v in ablating(validations))


@dataclass
class ModelRecord:
    """A ``models`` row, with its failed or interrupted runs and the classifiers its runs skipped."""

    id: int
    name: str
    row: dict[str, Any]
    failures: list[dict[str, Any]] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # classifier -> why (newest run wins)

    @property
    def n_layers(self) -> int:
        return int(self.row["n_layers"])

    @property
    def n_heads(self) -> int:
        return int(self.row["n_heads"])


STATISTICS = ("ci_low", "ci_high", "null_score", "null_percentile", "p_value", "q_value")


@dataclass
class HeadUnit:
    """One head-classifier unit of a model: ``scores [layer, head]`` and, per head, label,
    percentile, rank, the reason for the label, the statistics (``stats[column] [layer, head]``,
    NaN where not stored) and evidence (evidence only when asked for); the unit's ``statistics``
    JSON and its validations."""

    id: int
    name: str
    version: int
    threshold: float
    config: dict[str, Any]
    dataset: dict[str, Any]
    created_at: Any
    scores: np.ndarray
    labels: np.ndarray
    percentiles: np.ndarray
    ranks: np.ndarray
    evidence: list[list[dict[str, Any]]] | None
    validations: list[dict[str, Any]]
    reasons: list[list[str | None]]
    stats: dict[str, np.ndarray]
    statistics: dict[str, Any]

    @property
    def failed(self) -> bool:
        """Whether a validation of the unit failed: its labels are unconfirmed."""
        return validation_failed(self.validations)

    def unconfirmed(self, layer: int, head: int) -> bool:
        """Whether the head is labelled by a unit whose validation failed."""
        return bool(self.labels[layer, head]) and self.failed


def load_models(conn: Connection) -> list[ModelRecord]:
    """Every model with at least one stored unit, by name; failed runs attached."""
    models = [
        ModelRecord(row["id"], row["name"], row)
        for row in _rows(
            conn,
            """SELECT * FROM models m WHERE EXISTS (SELECT 1 FROM units u WHERE u.model_id = m.id)
            ORDER BY m.name, m.id""",
        )
    ]
    by_id = {m.id: m for m in models}
    for run in _rows(conn, "SELECT id, model_id, status, error, config, started_at FROM runs ORDER BY id"):
        model = by_id.get(run["model_id"])
        if model is None:
            continue
        config = decode_json(run["config"]) or {}
        model.skipped.update(config.get("skipped", {}))
        if run["status"] != "done":
            model.failures.append({**run, "config": config})
    return models


def load_head_units(conn: Connection, model: ModelRecord, *, evidence: bool) -> list[HeadUnit]:
    """The newest unit of each head classifier of ``model``, with its scores and validations."""
    units = []
    for row in _rows(
        conn,
        """SELECT id, name, version, threshold, config, dataset, created_at, statistics FROM latest_units
        WHERE model_id = :model AND kind = 'head_classifier' ORDER BY name""",
        model=model.id,
    ):
        shape = (model.n_layers, model.n_heads)
        scores, percentiles = np.full(shape, np.nan), np.full(shape, np.nan)
        labels, ranks = np.zeros(shape, dtype=bool), np.zeros(shape, dtype=int)
        stats = {name: np.full(shape, np.nan) for name in STATISTICS}
        reasons: list[list[str | None]] = [[None] * shape[1] for _ in range(shape[0])]
        found: list[list[dict[str, Any]]] = [[{} for _ in range(shape[1])] for _ in range(shape[0])]
        columns = ", ".join(["layer, head, score, label, rank, percentile, reason", *STATISTICS])
        columns += ", evidence" if evidence else ""
        for h in _rows(conn, f"SELECT {columns} FROM head_scores WHERE unit_id = :unit", unit=row["id"]):
            at = (h["layer"], h["head"])
            scores[at], labels[at], ranks[at], percentiles[at] = (
                h["score"],
                h["label"],
                h["rank"],
                h["percentile"],
            )
            reasons[at[0]][at[1]] = h["reason"]
            for name in STATISTICS:
                stats[name][at] = np.nan if h[name] is None else h[name]
            if evidence:
                found[at[0]][at[1]] = decode_json(h["evidence"]) or {}
        units.append(
            HeadUnit(
                row["id"], row["name"], row["version"], row["threshold"], decode_json(row["config"]) or {},
                decode_json(row["dataset"]) or {}, row["created_at"], scores, labels, percentiles, ranks,
                found if evidence else None, load_validations(conn, row["id"]), reasons, stats,
                decode_json(row["statistics"]) or {},
            )
        )  # fmt: skip
    return units


def load_validations(conn: Connection, unit_id: int) -> list[dict[str, Any]]:
    """A unit's validations, by method, JSON decoded."""
    sql = "SELECT * FROM validations WHERE unit_id = :unit ORDER BY method"
    return [_decoded_validation(v) for v in _rows(conn, sql, unit=unit_id)]


def _decoded_validation(row: dict[str, Any]) -> dict[str, Any]:
    return row | {key: decode_json(row[key]) for key in ("heads", "effect_random", "details")}


def load_labels(conn: Connection) -> dict[str, dict[int, dict[tuple[int, int], bool]]]:
    """Every label of a newest head-classifier unit: classifier → model id → head → whether it is
    unconfirmed (a validation of its unit failed)."""
    found: dict[str, dict[int, dict[tuple[int, int], bool]]] = {}
    for row in _rows(
        conn,
        f"""SELECT u.name, u.model_id, h.layer, h.head, coalesce(v.supported, 1) AS supported
        FROM head_scores h JOIN latest_units u ON u.id = h.unit_id
        LEFT JOIN ({UNIT_VALIDATION}) v ON v.unit_id = u.id
        WHERE u.kind = 'head_classifier' AND h.label""",
    ):
        by_model = found.setdefault(row["name"], {}).setdefault(row["model_id"], {})
        by_model[(row["layer"], row["head"])] = row["supported"] == 0
    return found


@dataclass(frozen=True)
class UnitSummary:
    """A newest head-classifier unit in brief: its model, labelled heads, statistics and validations."""

    name: str
    model_id: int
    labelled: int
    statistics: dict[str, Any]
    validations: list[dict[str, Any]]


def load_unit_summaries(conn: Connection) -> dict[str, dict[int, UnitSummary]]:
    """Every newest head-classifier unit in brief: classifier → model id → summary."""
    validations: dict[int, list[dict[str, Any]]] = {}
    for v in _rows(
        conn,
        """SELECT v.* FROM validations v JOIN latest_units u ON u.id = v.unit_id
        WHERE u.kind = 'head_classifier' ORDER BY v.method""",
    ):
        validations.setdefault(v["unit_id"], []).append(_decoded_validation(v))
    found: dict[str, dict[int, UnitSummary]] = {}
    for row in _rows(
        conn,
        """SELECT u.id, u.name, u.model_id, u.statistics,
            (SELECT count(*) FROM head_scores h WHERE h.unit_id = u.id AND h.label) AS labelled
        FROM latest_units u WHERE u.kind = 'head_classifier'""",
    ):
        found.setdefault(row["name"], {})[row["model_id"]] = UnitSummary(
            row["name"], row["model_id"], int(row["labelled"]), decode_json(row["statistics"]) or {},
            validations.get(row["id"], []),
        )  # fmt: skip
    return found


def load_score_grids(conn: Connection) -> dict[str, dict[int, np.ndarray]]:
    """Every newest head-classifier unit's ``scores [layer, head]``: classifier → model id → grid."""
    shapes = {
        row["id"]: (row["n_layers"], row["n_heads"])
        for row in _rows(conn, "SELECT id, n_layers, n_heads FROM models")
    }
    grids: dict[str, dict[int, np.ndarray]] = {}
    for row in _rows(
        conn,
        """SELECT u.name, u.model_id, h.layer, h.head, h.score FROM head_scores h
        JOIN latest_units u ON u.id = h.unit_id WHERE u.kind = 'head_classifier'""",
    ):
        by_model = grids.setdefault(row["name"], {})
        grid = by_model.get(row["model_id"])
        if grid is None:
            grid = by_model[row["model_id"]] = np.full(shapes[row["model_id"]], np.nan)
        grid[row["layer"], row["head"]] = row["score"]
    return grids


def unit_versions(conn: Connection) -> dict[str, list[dict[str, Any]]]:
    """Per head classifier, every stored version: how many models, first and last stored, and the
    definition it was stored with (``units.definition`` of its newest unit; None for old rows)."""
    history: dict[str, list[dict[str, Any]]] = {}
    for row in _rows(
        conn,
        """SELECT u.name, u.version, count(DISTINCT u.model_id) AS models, min(u.created_at) AS first,
        max(u.created_at) AS last, (SELECT d.definition FROM units d WHERE d.kind = 'head_classifier'
        AND d.name = u.name AND d.version = u.version ORDER BY d.id DESC LIMIT 1) AS definition
        FROM units u WHERE u.kind = 'head_classifier'
        GROUP BY u.name, u.version ORDER BY u.name, u.version""",
    ):
        definition = decode_json(row["definition"]) or {}
        row["definition"] = definition.get("classifier", {})
        history.setdefault(row["name"], []).append(row)
    return history


def token_texts(conn: Connection, model_id: int, ids: set[int]) -> dict[int, str]:
    """Display text of these token ids (those stored in ``tokens``)."""
    wanted = sorted(ids)
    found: dict[int, str] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        marks = ", ".join(str(int(i)) for i in chunk)
        for row in _rows(
            conn,
            f"SELECT token_id, text FROM tokens WHERE model_id = :model AND token_id IN ({marks})",
            model=model_id,
        ):
            found[row["token_id"]] = row["text"]
    return found


@dataclass
class NeuronUnit:
    """A model's newest neuron-summary unit: version 1 kept one example tail and no statistics;
    version 2's ``statistics`` hold the family null and the intervention check."""

    id: int
    version: int
    config: dict[str, Any]
    dataset: dict[str, Any]
    statistics: dict[str, Any]


def load_neuron_unit(conn: Connection, model_id: int) -> NeuronUnit | None:
    """The newest neuron unit of the model, if any."""
    for row in _rows(
        conn,
        """SELECT id, version, config, dataset, statistics FROM latest_units
        WHERE model_id = :model AND kind = 'neuron_summary'""",
        model=model_id,
    ):
        return NeuronUnit(
            row["id"], row["version"], decode_json(row["config"]) or {}, decode_json(row["dataset"]) or {},
            decode_json(row["statistics"]) or {},
        )  # fmt: skip
    return None


NEURON_COLUMNS = (
    "layer, neuron, mean, std, skew, kurtosis, max, min, frac_active, frac_negative, sign, typical_top, "
    "first_max_abs, hist_low, hist_high, histogram, w_in_norm, w_out_norm, direction_norm, vocab_mean, "
    "vocab_var, vocab_skew, vocab_kurtosis, top_tokens, bottom_tokens, top_token_share, token_id, "
    "token_mean, token_count, matched_mean, check_overlap, family"
)
STRENGTH = "coalesce(typical_top, max)"  # the ranking key; version-1 rows have no typical top


def interesting_neurons(conn: Connection, unit_id: int, per_family: int) -> dict[int, list[dict[str, Any]]]:
    """Per layer: the ``per_family`` strongest neurons of each family, the unclassified ones
    included, strongest first. Strength is the typical top activation (the median of the dominant
    tail's top examples, first window positions left out), so a neuron whose only large
    activations are massive ones at the first position does not lead; max for version-1 rows."""
    sql = f"""SELECT * FROM (
        SELECT {NEURON_COLUMNS}, {STRENGTH} AS strength, row_number() OVER (
            PARTITION BY layer, coalesce(family, '') ORDER BY {STRENGTH} DESC, neuron) AS family_rank
        FROM neurons WHERE unit_id = :unit AND coalesce(family, '') != 'dead') ranked
    WHERE family_rank <= :k ORDER BY layer, strength DESC, neuron"""
    by_layer: dict[int, list[dict[str, Any]]] = {}
    for row in _rows(conn, sql, unit=unit_id, k=per_family):
        for key in ("histogram", "top_tokens", "bottom_tokens"):
            row[key] = decode_json(row[key])
        by_layer.setdefault(row["layer"], []).append(row)
    return by_layer


def family_counts(conn: Connection, unit_id: int) -> dict[int, dict[str, int]]:
    """Per layer: how many neurons fall in each family (``none`` for unclassified)."""
    counts: dict[int, dict[str, int]] = {}
    for row in _rows(
        conn,
        """SELECT layer, coalesce(family, 'none') AS family, count(*) AS n FROM neurons
        WHERE unit_id = :unit GROUP BY layer, coalesce(family, 'none')""",
        unit=unit_id,
    ):
        counts.setdefault(row["layer"], {})[row["family"]] = row["n"]
    return counts


def load_logit_lens(conn: Connection, model_id: int) -> list[dict[str, Any]]:
    """The newest logit-lens unit's rows, one per layer in order (empty when none is stored)."""
    return list(
        _rows(
            conn,
            "SELECT l.layer, l.kl_to_final, l.top1_agreement, l.entropy FROM logit_lens l "
            "WHERE l.unit_id = (SELECT id FROM latest_units WHERE model_id = :model "
            "AND kind = 'layer_summary' AND name = 'logit_lens') ORDER BY l.layer",
            model=model_id,
        )
    )
