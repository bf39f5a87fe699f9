"""Example research questions as SQL, each tested against the fixture database (and shown in the
README). Plain SQL over the views and tables; it runs on SQLite and PostgreSQL."""

from __future__ import annotations

EXAMPLES: list[tuple[str, str]] = [
    (
        "Which models have an induction head in their first third?",
        """SELECT model, min(relative_depth) AS shallowest FROM head_wide
WHERE induction_label = 1 AND relative_depth < 1.0 / 3 GROUP BY model ORDER BY model""",
    ),
    (
        "Heads that are both duplicate-token and induction heads",
        """SELECT model, layer, head, duplicate_token_score, induction_score FROM head_wide
WHERE duplicate_token_label = 1 AND induction_label = 1 ORDER BY model, layer, head""",
    ),
    (
        "The strongest induction head of each model, by relative depth",
        """SELECT model, layer, head, round(CAST(relative_depth AS NUMERIC), 2) AS depth,
    round(CAST(score AS NUMERIC), 3) AS score
FROM induction_mosaic WHERE rank = 1 ORDER BY depth""",
    ),
    (
        "How many heads of each class does each model have?",
        """SELECT model, classifier, labelled, heads, confirmed FROM class_counts
WHERE classifier IN ('previous_token', 'duplicate_token', 'induction', 'attention_sink')
ORDER BY model, classifier""",
    ),
    (
        "Induction heads that are also attention sinks on text without repeats",
        """SELECT model, layer, head, round(CAST(induction_score AS NUMERIC), 2) AS induction,
    round(CAST(attention_sink_score AS NUMERIC), 2) AS sink
FROM head_wide WHERE induction_label = 1 AND attention_sink_label = 1 ORDER BY model, layer, head""",
    ),
    (
        "Does ablating the labelled induction heads hurt more than random heads?",
        """SELECT m.name AS model, v.k, round(CAST(v.effect_top AS NUMERIC), 3) AS top_k_rise,
    round(CAST(v.effect_random_mean AS NUMERIC), 3) AS random_rise, v.rank,
    round(CAST(v.z_score AS NUMERIC), 1) AS z, v.supported
FROM validations v JOIN latest_units u ON u.id = v.unit_id JOIN models m ON m.id = u.model_id
WHERE u.name = 'induction' ORDER BY m.name""",
    ),
    (
        "Which induction labels are unconfirmed, their validation having failed?",
        """SELECT model, layer, head, round(CAST(score AS NUMERIC), 2) AS score, validation_rank,
    round(CAST(validation_z AS NUMERIC), 1) AS z
FROM label_evidence WHERE classifier = 'induction' AND status = 'unconfirmed' ORDER BY model, layer, head""",
    ),
    (
        "Logit lens: the first layer whose top-1 agrees with the output on half the tokens",
        """SELECT m.name AS model, min(l.layer) AS layer, m.n_layers
FROM logit_lens l JOIN latest_units u ON u.id = l.unit_id JOIN models m ON m.id = u.model_id
WHERE l.top1_agreement >= 0.5 GROUP BY m.name, m.n_layers ORDER BY m.name""",
    ),
    (
        "Where do previous-token heads sit? Mean relative depth of the labelled ones per model",
        """SELECT model, count(*) AS heads, round(avg(relative_depth), 2) AS mean_depth FROM head_wide
WHERE previous_token_label = 1 GROUP BY model ORDER BY model""",
    ),
    (
        "Neuron families per model",
        """SELECT model, family, sum(neurons) AS neurons FROM neuron_layers
WHERE family IS NOT NULL GROUP BY model, family ORDER BY model, family""",
    ),
    (
        "Which layers hold the prediction and suppression neurons? (relative depth)",
        """SELECT model, family,
    round(sum(neurons * (layer + 0.5) / n_layers) / sum(neurons), 2) AS mean_depth, sum(neurons) AS neurons
FROM neuron_layers WHERE family IN ('prediction', 'suppression') GROUP BY model, family
ORDER BY model, family""",
    ),
    (
        "The strongest neurons of each family",
        """SELECT model, family, layer, neuron, sign, round(CAST(typical_top AS NUMERIC), 2) AS typical_top,
    round(CAST(max AS NUMERIC), 2) AS max_activation
FROM top_neurons WHERE family_rank <= 3 ORDER BY model, family, family_rank""",
    ),
    (
        "How many neurons fire mainly negative, per model?",
        """SELECT model, sum(negative) AS negative, sum(signed) AS neurons,
    round(CAST(1.0 * sum(negative) / sum(signed) AS NUMERIC), 3) AS share_negative
FROM neuron_layers WHERE coalesce(family, '') != 'dead' GROUP BY model HAVING sum(signed) > 0
ORDER BY model""",
    ),
    (
        "How well do the weight read-outs hold under intervention, per layer?",
        """SELECT model, layer, sum(sampled) AS sampled, sum(confirmed) AS confirmed,
    round(CAST(1.0 * sum(overlap_sum) / sum(sampled) AS NUMERIC), 1) AS mean_overlap
FROM neuron_layers WHERE sampled > 0 GROUP BY model, layer ORDER BY model, layer""",
    ),
    (
        "Dead neurons per model and layer",
        """SELECT model, layer, neurons AS dead FROM neuron_layers WHERE family = 'dead'
ORDER BY model, layer""",
    ),
    (
        "What computed each result: model revision, code version, device and dtype per unit",
        """SELECT model, unit, version, substr(resolved_sha, 1, 12) AS sha, code_version, device, dtype,
    run_status
FROM run_provenance ORDER BY model, unit""",
    ),
]
