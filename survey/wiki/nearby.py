"""Each model's most similar heads as a script beside its pages (``models/<slug>/similar.js``),
which ``site/assets/similar.js`` turns into the head page's table.

The most similar heads of a head come from every model, so a head page that held them would
change whenever any model's scores did, and an incremental build would render every model again.
A script per model, written at every build, keeps head pages to their own model's results.
"""

from __future__ import annotations

import json

from survey.wiki.pages import SiteModel
from survey.wiki.similar import HeadRef

SCRIPT = "similar.js"  # in each model's folder


def similar_script(
    model: SiteModel, similar: dict[HeadRef, list[tuple[HeadRef, float]]], models: dict[int, SiteModel]
) -> str:
    """The script that sets ``window.surveySimilar`` for ``model``'s head pages: the models its
    heads' neighbours belong to (slug → [name, layers]) and, per head ("layer.head"), its
    neighbours as [slug, layer, head, distance]."""
    heads: dict[str, list[list[object]]] = {}
    named: dict[str, list[object]] = {}
    for layer in range(model.record.n_layers):
        for head in range(model.record.n_heads):
            found = similar.get(HeadRef(model.record.id, layer, head), [])
            rows = [(models[ref.model_id], ref, d) for ref, d in found if ref.model_id in models]
            heads[f"{layer}.{head}"] = [[m.slug, r.layer, r.head, float(f"{d:.4g}")] for m, r, d in rows]
            named.update({m.slug: [m.name, m.record.n_layers] for m, _, _ in rows})
    data = json.dumps({"models": named, "heads": heads}, ensure_ascii=True, separators=(",", ":"))
    return "window.surveySimilar = " + data.replace("<", "\\u003c") + ";\n"
