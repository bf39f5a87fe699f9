"""SQL views for the common questions. Plain SQL that runs on SQLite and PostgreSQL. Their columns
follow the classifier registry, so ``db.migrate`` rebuilds them whenever their SQL changes
(:func:`views_hash`); they exist in every database the survey opens.

- ``latest_units``: the newest version of each unit (model, kind, name), with provenance;
- ``head_wide``: one row per head of each model, every registered class's score, label and confirmation;
- ``<class>_confirmed`` (head_wide): a label: 1, or 0 when its unit's validation failed; no label: NULL;
- ``label_evidence``: each labelled head: interval, null, p, q, its unit's validation (worst of several);
- ``label_evidence.status``: confirmed (every validation supported), unconfirmed (one failed), not validated;
- ``seed_jaccard`` (in ``units.statistics`` JSON): ``survey.open(url).label_evidence()`` adds it to the view;
- ``induction_mosaic``: each head's induction score with its relative depth, for cross-model plots;
- ``top_neurons``: the 10 strongest neurons of each family in each model, by typical top activation
  (``coalesce(typical_top, max)``: version-1 rows have no typical top), with their dominant sign;
- ``class_counts``: per model and head class, how many heads it labels of how many, and whether its
  validation held (``confirmed`` 0: a validation failed, so its labels are unconfirmed);
- ``neuron_layers``: per model, layer and neuron family (NULL: none): neurons, how many fire mainly
  negative (of ``signed``: version 2 only), how many the intervention check sampled, how many it
  confirmed (an overlap of at least 8 of 10 tokens, as ``survey/engine/neuron_summary.py`` counts) and their
  overlaps' sum. The questions about all neurons read this small view, so that they stay cheap
  where the database is read over HTTP (the published site);
- ``run_provenance``: every unit with its model, definition hash, run, code (version, dirty), libraries.

A label is unconfirmed on the wiki when its unit's validation failed. ``units.statistics`` is JSON,
which no one SQL expression reads alike on SQLite (before 3.38) and PostgreSQL, so no view reads it.
"""

from __future__ import annotations

import hashlib
import sqlite3

from sqlalchemy import Connection, delete, insert, text

from classifiers import classifier_names
from db.schema import ViewState

LATEST_UNITS = """
CREATE VIEW latest_units AS
SELECT u.* FROM units u
WHERE u.version = (
    SELECT max(v.version) FROM units v
    WHERE v.model_id = u.model_id AND v.kind = u.kind AND v.name = u.name
)
AND u.id = (
    SELECT max(w.id) FROM units w
    WHERE w.model_id = u.model_id AND w.kind = u.kind AND w.name = u.name AND w.version = u.version
)
"""


# Per unit with a validation: supported = 1 when every validation of it is, the worst rank and z.
UNIT_VALIDATION = """
    SELECT unit_id, min(CASE WHEN supported THEN 1 ELSE 0 END) AS supported, max(rank) AS rank,
        min(z_score) AS z_score
    FROM validations GROUP BY unit_id"""


def _head_wide() -> str:
    columns = ",\n    ".join(
        f"max(CASE WHEN u.name = '{name}' THEN h.score END) AS {name}_score,\n    "
        f"max(CASE WHEN u.name = '{name}' THEN CAST(h.label AS INTEGER) END) AS {name}_label,\n    "
        f"max(CASE WHEN u.name = '{name}' AND h.label THEN coalesce(v.supported, 1) END) AS {name}_confirmed"
        for name in classifier_names()
    )
    return f"""
CREATE VIEW head_wide AS
SELECT m.id AS model_id, m.name AS model, h.layer, h.head,
    (h.layer + 0.5) / m.n_layers AS relative_depth,
    {columns}
FROM head_scores h
JOIN latest_units u ON u.id = h.unit_id AND u.kind = 'head_classifier'
JOIN models m ON m.id = u.model_id
LEFT JOIN ({UNIT_VALIDATION}) v ON v.unit_id = u.id
GROUP BY m.id, m.name, m.n_layers, h.layer, h.head
"""


LABEL_EVIDENCE = f"""
CREATE VIEW label_evidence AS
SELECT m.name AS model, u.name AS classifier, u.version, u.id AS unit_id, h.layer, h.head, h.score,
    h.ci_low, h.ci_high, h.null_score, h.null_percentile, h.p_value, h.q_value,
    v.supported AS validation_supported, v.rank AS validation_rank, v.z_score AS validation_z,
    CASE WHEN v.unit_id IS NULL THEN 'not validated' WHEN v.supported = 1 THEN 'confirmed'
        ELSE 'unconfirmed' END AS status
FROM head_scores h
JOIN latest_units u ON u.id = h.unit_id AND u.kind = 'head_classifier'
JOIN models m ON m.id = u.model_id
LEFT JOIN ({UNIT_VALIDATION}) v ON v.unit_id = u.id
WHERE h.label
"""


INDUCTION_MOSAIC = """
CREATE VIEW induction_mosaic AS
SELECT m.name AS model, m.n_layers, m.n_heads, h.layer, h.head,
    (h.layer + 0.5) / m.n_layers AS relative_depth, h.score, h.label, h.rank
FROM head_scores h
JOIN latest_units u ON u.id = h.unit_id AND u.kind = 'head_classifier' AND u.name = 'induction'
JOIN models m ON m.id = u.model_id
"""

TOP_NEURONS = """
CREATE VIEW top_neurons AS
SELECT model, family, layer, neuron, sign, typical_top, max, vocab_kurtosis, vocab_skew, top_token_share,
    family_rank
FROM (
    SELECT m.name AS model, n.family, n.layer, n.neuron, n.sign, n.typical_top, n.max, n.vocab_kurtosis,
        n.vocab_skew, n.top_token_share,
        row_number() OVER (
            PARTITION BY m.id, n.family ORDER BY coalesce(n.typical_top, n.max) DESC, n.layer, n.neuron
        ) AS family_rank
    FROM neurons n
    JOIN latest_units u ON u.id = n.unit_id
    JOIN models m ON m.id = u.model_id
    WHERE n.family IS NOT NULL
) ranked
WHERE family_rank <= 10
"""

CLASS_COUNTS = f"""
CREATE VIEW class_counts AS
SELECT m.name AS model, u.name AS classifier, u.version, count(*) AS heads,
    sum(CASE WHEN h.label THEN 1 ELSE 0 END) AS labelled,
    CASE WHEN min(v.supported) = 0 THEN 0 ELSE 1 END AS confirmed
FROM head_scores h
JOIN latest_units u ON u.id = h.unit_id AND u.kind = 'head_classifier'
JOIN models m ON m.id = u.model_id
LEFT JOIN ({UNIT_VALIDATION}) v ON v.unit_id = u.id
GROUP BY m.name, u.name, u.version
"""

NEURON_LAYERS = """
CREATE VIEW neuron_layers AS
SELECT m.name AS model, m.n_layers, n.layer, n.family, count(*) AS neurons,
    sum(CASE WHEN n.sign = -1 THEN 1 ELSE 0 END) AS negative,
    count(n.sign) AS signed,
    count(n.check_overlap) AS sampled,
    sum(CASE WHEN n.check_overlap >= 8 THEN 1 ELSE 0 END) AS confirmed,
    sum(n.check_overlap) AS overlap_sum
FROM neurons n
JOIN latest_units u ON u.id = n.unit_id
JOIN models m ON m.id = u.model_id
GROUP BY m.id, m.name, m.n_layers, n.layer, n.family
"""

RUN_PROVENANCE = """
CREATE VIEW run_provenance AS
SELECT m.name AS model, m.source, m.revision, m.resolved_sha, m.quantization,
    u.id AS unit_id, u.kind, u.name AS unit, u.version, u.dataset_hash, u.created_at,
    u.definition_hash, r.id AS run_id, r.code_version, r.code_dirty, r.libraries, r.device, r.dtype,
    r.status AS run_status, r.started_at, r.ended_at
FROM units u
JOIN models m ON m.id = u.model_id
JOIN runs r ON r.id = u.run_id
"""


def view_sql() -> dict[str, str]:
    """Every view's name and its CREATE statement, in dependency order."""
    return {
        "latest_units": LATEST_UNITS,
        "head_wide": _head_wide(),
        "label_evidence": LABEL_EVIDENCE,
        "induction_mosaic": INDUCTION_MOSAIC,
        "top_neurons": TOP_NEURONS,
        "class_counts": CLASS_COUNTS,
        "neuron_layers": NEURON_LAYERS,
        "run_provenance": RUN_PROVENANCE,
    }


def views_hash() -> str:
    """The sha256 of every view's SQL: it changes when a classifier is registered or removed."""
    return hashlib.sha256("\n".join(view_sql().values()).encode()).hexdigest()


def views_current(connection: Connection) -> bool:
    """Whether the database's views were made from the current SQL."""
    return connection.scalar(text("SELECT views_hash FROM view_state")) == views_hash()


def rebuild_views(connection: Connection) -> None:
    """Drop and create every view, and record their hash (inside the caller's transaction)."""
    sql = view_sql()
    for name in reversed(list(sql)):
        connection.execute(text(f"DROP VIEW IF EXISTS {name}"))
    for statement in sql.values():
        connection.execute(text(statement))
    connection.execute(delete(ViewState))
    connection.execute(insert(ViewState).values(views_hash=views_hash()))


# The published database (survey/wiki/release.py) is read over HTTP range requests, where every
# page read is a request: its views are stored as tables, with an index for the access path of each
# example question (db/examples.py), covering the columns it reads, so that an example reads a few
# index pages rather than whole tables.
PUBLISHED_INDEXES = [
    "CREATE INDEX published_latest_units ON latest_units (id)",
    "CREATE INDEX published_latest_units_name ON latest_units (name, id)",
    "CREATE INDEX published_induction_depth ON head_wide (induction_label, relative_depth, model)",
    "CREATE INDEX published_induction_duplicate ON head_wide (induction_label, duplicate_token_label, model, "
    "layer, head, duplicate_token_score, induction_score)",
    "CREATE INDEX published_induction_sink ON head_wide (induction_label, attention_sink_label, model, "
    "layer, head, induction_score, attention_sink_score)",
    "CREATE INDEX published_previous_depth ON head_wide (previous_token_label, model, relative_depth)",
    "CREATE INDEX published_mosaic_rank ON induction_mosaic (rank, relative_depth, model, layer, head, "
    "score)",
    "CREATE INDEX published_label_status ON label_evidence (classifier, status, model, layer, head, score, "
    "validation_rank, validation_z)",
    "CREATE INDEX published_top_neurons ON top_neurons (model, family, family_rank)",
    "CREATE INDEX published_neuron_families ON neuron_layers (family, model, layer, n_layers, neurons)",
    "CREATE INDEX published_neuron_signs ON neuron_layers (model, family, negative, signed)",
    "CREATE INDEX published_neuron_checks ON neuron_layers (sampled, model, layer, confirmed, overlap_sum)",
]


def materialize_views(connection: sqlite3.Connection) -> None:
    """Store every view of a SQLite database as a table of the same name, with ``PUBLISHED_INDEXES``
    (for the published copy only: a table does not follow later writes)."""
    present = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'view'")}
    names = [name for name in view_sql() if name in present]
    for name in names:
        connection.execute(f"CREATE TABLE published_{name} AS SELECT * FROM {name}")
    for name in reversed(names):
        connection.execute(f"DROP VIEW {name}")
    for name in names:
        connection.execute(f"ALTER TABLE published_{name} RENAME TO {name}")
    for statement in PUBLISHED_INDEXES if names else []:
        connection.execute(statement)
    connection.execute("ANALYZE")
    connection.commit()
