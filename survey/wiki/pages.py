"""Every wiki page: what each page type shows, assembled from the database records.

Paths (``use_directory_urls: false``): ``index.md``, ``schema.md``, ``classifiers/<name>.md``,
``models/<slug>/index.md``, ``models/<slug>/layer-<l>/index.md`` (heads and neurons of the
layer) and ``models/<slug>/layer-<l>/head-<h>.md``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from markupsafe import Markup
from sqlalchemy import Connection

from classifiers.registry import classifier_class, classifier_names
from classifiers.statistics import ALPHA
from db.reads import (
    STATISTICS,
    HeadUnit,
    ModelRecord,
    family_counts,
    interesting_neurons,
    load_head_units,
    load_logit_lens,
    load_neuron_unit,
    token_texts,
)
from survey.wiki import svg
from survey.wiki.escape import markdown_safe
from survey.wiki.evidence import (
    ClassEvidence,
    class_evidence,
    reason_text,
    validation_status,
    validation_test,
)
from survey.wiki.neurons import (
    ExampleReader,
    check_by_layer,
    family_null,
    intervention,
    layer_check,
    sign_name,
)
from survey.wiki.render import PageWriter

TOP_HEADS = 5


@dataclass(frozen=True)
class SiteModel:
    """A surveyed model and its folder in the site."""

    record: ModelRecord
    slug: str

    @property
    def name(self) -> str:
        return self.record.name

    def page(self) -> str:
        return f"models/{self.slug}/index.md"

    def layer_page(self, layer: int) -> str:
        return f"models/{self.slug}/layer-{layer}/index.md"

    def head_page(self, layer: int, head: int) -> str:
        return f"models/{self.slug}/layer-{layer}/head-{head}.md"


def site_models(records: list[ModelRecord]) -> list[SiteModel]:
    """Each model with a URL-safe slug; names that collide get their id appended."""
    bases = [re.sub(r"[^a-z0-9._-]+", "-", r.name.lower()).strip("-.") or "model" for r in records]
    return [
        SiteModel(r, base if bases.count(base) == 1 else f"{base}-{r.id}")
        for r, base in zip(records, bases, strict=True)
    ]


def head_name(layer: int, head: int) -> str:
    """How the wiki names a head: ``L3H2``."""
    return f"L{layer}H{head}"


def docstring_html(text: str) -> Markup:
    """A docstring's text, escaped, with its reST inline literals (double backticks) as code."""
    parts = [str(markdown_safe(part)) for part in re.split(r"``(.+?)``", text)]
    return Markup("".join(f"<code>{part}</code>" if i % 2 else part for i, part in enumerate(parts)))


def classifier_info(name: str) -> dict[str, Any]:
    """A registered classifier's definition; a stub for names stored but no longer registered."""
    if name not in classifier_names():
        return {
            "name": name,
            "summary": "no longer registered in this code version",
            "formula": "",
            "threshold": None,
            "doc": "",
            "version": None,
            "dataset": "",
        }
    cls = classifier_class(name)
    config = cls.default_config
    return {
        "name": name,
        "summary": cls.summary,
        "formula": cls.formula,
        "threshold": config.threshold,
        "doc": docstring_html(" ".join((cls.__doc__ or "").split())),
        "version": cls.version,
        "dataset": config.dataset_line(),
    }


def model_heatmap(model: SiteModel, unit: HeadUnit, href: Callable[[str], str], cell: float) -> Any:
    """The model's layer×head grid for one classifier; each cell links to its head page."""

    def title(layer: int, head: int) -> str:
        mark = label_mark(bool(unit.labels[layer, head]), unit.unconfirmed(layer, head))
        return f"{head_name(layer, head)} {unit.name} {unit.scores[layer, head]:.3f}{mark}"

    n_layers, n_heads = unit.scores.shape
    return svg.layer_head_heatmap(
        unit.scores.tolist(), title, lambda layer, head: href(model.head_page(layer, head)),
        width=cell * n_heads, height=cell * n_layers,
        label=f"{unit.name} scores of {model.name}, layers down, heads across",
        scale=svg.color_scale(unit.scores), unconfirmed=unit.unconfirmed,
    )  # fmt: skip


def label_mark(labelled: bool, unconfirmed: bool) -> str:
    """What a heatmap cell's title adds for a label: `` (labelled)``, or that it is unconfirmed."""
    if unconfirmed:
        return " (labelled, unconfirmed: validation failed)"
    return " (labelled)" if labelled else ""


def unit_evidence(unit: HeadUnit) -> ClassEvidence:
    """The class's summary in the unit's model: labelled heads, null, seed stability, validation."""
    return class_evidence(int(unit.labels.sum()), unit.statistics, unit.validations)


def head_evidence(unit: HeadUnit, layer: int, head: int) -> dict[str, Any]:
    """One head's label evidence for one class: interval (None: not stored), null score and
    percentile, q, why it is (not) labelled, the class's seed stability and validation."""
    at = (layer, head)
    stat = {name: _finite(unit.stats[name][at]) for name in STATISTICS}
    labelled = bool(unit.labels[at])
    interval = (
        None if stat["ci_low"] is None or stat["ci_high"] is None else (stat["ci_low"], stat["ci_high"])
    )
    return stat | {
        "interval": interval,
        "labelled": ("yes, UNCONFIRMED" if unit.failed else "yes") if labelled else "no",
        "reason": _reason(unit, layer, head),
        "seed_jaccard": unit.statistics.get("seed_jaccard"),
        "validation": validation_status(unit.validations, labelled),
    }  # fmt: skip


def _reason(unit: HeadUnit, layer: int, head: int) -> str:
    """Why the head is (not) labelled; a gated head also says which part of the gate it missed."""
    reason = unit.reasons[layer][head]
    text = reason_text(reason, unit.statistics.get("alpha", ALPHA))
    failed = unit.evidence[layer][head].get("gate_failed") if unit.evidence and reason == "gated" else None
    return f"{text}: {failed}" if failed else text


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def top_heads(unit: HeadUnit, k: int = TOP_HEADS) -> list[dict[str, Any]]:
    """The ``k`` highest-scoring heads of a unit."""
    flat = np.nan_to_num(unit.scores, nan=-np.inf).ravel()
    order = np.argsort(-flat, kind="stable")[:k]
    n_heads = unit.scores.shape[1]
    heads = [(int(i // n_heads), int(i % n_heads), float(flat[i])) for i in order if np.isfinite(flat[i])]
    return [
        {"layer": layer, "head": head, "score": score, "label": bool(unit.labels[layer, head]),
         "unconfirmed": unit.unconfirmed(layer, head)}
        for layer, head, score in heads
    ]  # fmt: skip


def missing_classifiers(model: SiteModel, units: list[HeadUnit]) -> list[dict[str, str]]:
    """Registered classifiers with no unit for the model, each with the reason we know."""
    present = {u.name for u in units}
    missing = []
    for name in classifier_names():
        if name in present:
            continue
        reason = "not run on this model yet"
        if name in model.record.skipped:
            reason = f"skipped: {model.record.skipped[name]}"
        for run in model.record.failures:
            if name in run["config"].get("classifiers", []):
                reason = f"run {run['id']} {run['status']}: {run['error'] or 'stopped before this unit'}"
        missing.append({"name": name, "reason": reason})
    return missing


LENS_STATISTICS = {
    "top1_agreement": "top-1 agreement with the output",
    "kl_to_final": "KL(final ‖ lens), nats",
    "entropy": "entropy, nats",
}


def ablated_evidence(name: str) -> str | None:
    """For a backup class, the evidence field naming the heads it ablated (from the registry)."""
    return classifier_class(name).ablated_evidence if name in classifier_names() else None


def backup_sets(units: list[HeadUnit]) -> list[dict[str, Any]]:
    """Per backup unit: the heads it ablated and its labelled backups, best first, with their
    compensation (a share of the lost effect, the unit's score, and the raw DLA rise)."""
    found = []
    for unit in units:
        key = ablated_evidence(unit.name)
        if key is None or not unit.evidence:
            continue
        ablated = unit.evidence[0][0].get(key, [])
        ranked = sorted(
            ((int(layer), int(head)) for layer, head in zip(*np.nonzero(unit.labels), strict=True)),
            key=lambda h: -unit.scores[h],
        )
        evidence = unit.evidence
        found.append({
            "unit": unit.name, "ablated": [tuple(h) for h in ablated],
            "backups": [(h, float(unit.scores[h]), evidence[h[0]][h[1]].get("compensation")) for h in ranked],
        })  # fmt: skip
    return found


def _function_vector_validation(units: list[HeadUnit]) -> dict[str, Any] | None:
    return next((v for unit in units if unit.name == "function_vector" for v in unit.validations), None)


def lens_curves(model: SiteModel, lens: list[dict[str, Any]], href: Callable[[str], str]) -> Markup:
    """The three logit-lens statistics over depth, one small curve each, points linked to layers."""
    figures = [
        Markup('<figure class="lens-curve"><figcaption>{}</figcaption>{}</figure>').format(
            label,
            svg.depth_curve(
                [row[key] for row in lens], label=label, href=lambda layer: href(model.layer_page(layer))
            ),
        )
        for key, label in LENS_STATISTICS.items()
    ]
    return Markup('<div class="mosaic">{}</div>').format(Markup("").join(figures))


def write_model(
    conn: Connection, writer: PageWriter, model: SiteModel, neurons_per_family: int, *, details: bool = True,
) -> None:  # fmt: skip
    """The model page and, with ``details``, its layer pages and its head pages."""
    units = load_head_units(conn, model.record, evidence=True)
    neuron_unit = load_neuron_unit(conn, model.record.id)
    counts = family_counts(conn, neuron_unit.id) if neuron_unit else {}
    lens = load_logit_lens(conn, model.record.id)
    writer.write(
        model.page(), "model.md.j2", model=model, row=model.record.row, units=units, lens=lens,
        backups=backup_sets(units), fv=_function_vector_validation(units),
        lens_curves=lambda href: lens_curves(model, lens, href),
        heatmap=lambda unit, href: model_heatmap(model, unit, href, 14.0), top_heads=top_heads,
        missing=missing_classifiers(model, units), info=classifier_info, neuron_unit=neuron_unit,
        family_totals=_totals(counts), head_name=head_name, evidence=unit_evidence,
        validation_test=validation_test, check=intervention(neuron_unit),
        check_layers=check_by_layer(neuron_unit), family_null=family_null(neuron_unit),
    )  # fmt: skip
    if not details:
        return
    head_tokens = token_texts(conn, model.record.id, evidence_token_ids(units))
    neurons = interesting_neurons(conn, neuron_unit.id, neurons_per_family) if neuron_unit else {}
    examples = ExampleReader(conn, neuron_unit) if neuron_unit else None
    for layer in range(model.record.n_layers):
        rows = neurons.get(layer, [])
        tokens = token_texts(conn, model.record.id, _token_ids(rows))
        writer.write(
            model.layer_page(layer),
            "layer.html.j2",
            model=model,
            layer=layer,
            units=units,
            head_name=head_name,
            lens=lens[layer] if layer < len(lens) else None,
            neurons=rows,
            families=counts.get(layer, {}),
            tokens=tokens,
            neuron_unit=neuron_unit,
            check=layer_check(neuron_unit, layer),
            example_lists=examples.lists if examples else (lambda n: []),
            sign_name=sign_name,
            histogram=svg.histogram,
            highlighted=svg.highlighted,
        )
        for head in range(model.record.n_heads):
            write_head(writer, model, units, layer, head, head_tokens)


def write_head(
    writer: PageWriter,
    model: SiteModel,
    units: list[HeadUnit],
    layer: int,
    head: int,
    tokens: dict[int, str],
) -> None:
    """One head page: scores, evidence, example pattern, OV tokens, validations, and a place for
    its most similar heads (read from the model's ``similar.js``: see :mod:`survey.wiki.nearby`)."""
    patterns: dict[tuple[str, tuple[int, ...]], Any] = {}  # two classifiers on one probe: one pattern
    ov_rows = []
    for unit in units:
        evidence = unit.evidence[layer][head] if unit.evidence else {}
        if "pattern" in evidence:
            pattern = evidence["pattern"]
            key = (pattern["probe"], tuple(pattern["token_ids"]))
            if key not in patterns:
                patterns[key] = _pattern_svg(pattern, tokens)
        ov_rows += evidence.get("ov_top_tokens", [])
    validations = [(unit.name, v) for unit in units for v in unit.validations if [layer, head] in v["heads"]]
    writer.write(
        model.head_page(layer, head),
        "head.html.j2",
        model=model,
        layer=layer,
        head=head,
        units=units,
        name=head_name(layer, head),
        tokens=tokens,
        validations=validations,
        backups=backup_sets(units),
        ov_rows=_first_per_input(ov_rows),
        patterns=[(probe, svg_) for (probe, _), svg_ in patterns.items()],
        head_name=head_name,
        scalar_evidence=_scalar_evidence,
        example_rows=_example_rows,
        label_evidence=lambda unit: head_evidence(unit, layer, head),
        validation_test=validation_test,
    )


def evidence_token_ids(units: list[HeadUnit]) -> set[int]:
    """Every token id that head evidence shows: example-pattern labels and OV tokens."""
    ids: set[int] = set()
    for unit in units:
        for row in unit.evidence or []:
            for evidence in row:
                ids.update(evidence.get("pattern", {}).get("token_ids", []))
                for ov in evidence.get("ov_top_tokens", []):
                    ids.update([ov["input"], *ov["top"]])
    return ids


def _first_per_input(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OV rows from several IOI units repeat the same inputs: keep each input once."""
    seen: dict[int, dict[str, Any]] = {}
    for row in rows:
        seen.setdefault(int(row["input"]), row)
    return list(seen.values())


def _pattern_svg(pattern: dict[str, Any], tokens: dict[int, str]) -> Any:
    labels = [tokens.get(i, f"#{i}") for i in pattern["token_ids"]]
    return svg.attention_pattern(labels, pattern["weights"])


def _scalar_evidence(evidence: dict[str, Any]) -> list[tuple[str, Any]]:
    return [(k, v) for k, v in evidence.items() if isinstance(v, int | float | str | bool) and v is not None]


def _example_rows(evidence: dict[str, Any]) -> list[dict[str, Any]]:
    return [row for row in evidence.get("example", []) if isinstance(row, dict)]


def _totals(counts: dict[int, dict[str, int]]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for per_layer in counts.values():
        for family, n in per_layer.items():
            totals[family] = totals.get(family, 0) + n
    return totals


def _token_ids(neurons: list[dict[str, Any]]) -> set[int]:
    """Every token id a layer page shows of its neurons: read-out tokens and token-test candidates."""
    ids = {int(pair[0]) for n in neurons for key in ("top_tokens", "bottom_tokens") for pair in n[key] or []}
    return ids | {int(n["token_id"]) for n in neurons if n["token_id"] is not None}
