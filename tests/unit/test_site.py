"""The wiki built from the fixture database: every page type, heatmaps, links, escaping, errors."""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from db.common.errors import SurveyError
from db.fixtures import MODELS
from db.reads import ModelRecord
from survey.wiki import mosaic
from survey.wiki.build import build_site
from survey.wiki.escape import markdown_safe, token_text
from survey.wiki.pages import SiteModel
from survey.wiki.release import is_build_state, oversized, publish_database, publish_parquet
from survey.wiki.search import index_site
from survey.wiki.svg import NEGATIVE_SHADE, POSITIVE_SHADE
from tests.support.clitools import run_cli
from tests.support.fixtures_hostile import HOSTILE, MODEL_NAME
from tests.support.sitetools import (
    build_fixture_site,
    parse,
    published_database,
    table_row,
    table_rows,
    visible_text,
    within,
)

HOSTILE_SLUG = "evil-script-alert-model-script-m"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    _, report = build_fixture_site(tmp_path_factory.mktemp("wiki"))
    return report.out


@pytest.mark.parametrize("text", HOSTILE + ["a\nb", "plain"])
def test_markdown_safe_leaves_no_markup_and_round_trips(text: str) -> None:
    import html

    safe = str(markdown_safe(text))
    assert not set(safe) & set("<>|`[]{}()*_\\'\"\n")
    assert html.unescape(safe) == text.replace("\n", " ")


def test_token_text_shows_whitespace() -> None:
    assert str(token_text(" the\n")) == "·the↵"
    assert str(token_text("")) == "∅"


def test_every_page_type_is_built(site: Path) -> None:
    for page in ["index.html", "schema.html", "classifiers/induction.html", "classifiers/name_mover.html",
                 "models/fixture-a/index.html", "models/fixture-a/layer-0/index.html",
                 "models/fixture-a/layer-3/head-2.html", "models/fixture-b/layer-5/head-1.html"]:  # fmt: skip
        assert (site / page).is_file(), page
    n_heads = sum(layers * heads for layers, heads, _ in MODELS.values()) + 4
    assert len(list(site.glob("models/*/layer-*/head-*.html"))) == n_heads


def test_model_page_has_one_heatmap_per_classifier_with_a_cell_per_head(site: Path) -> None:
    page = parse(site / "models/fixture-a/index.html")
    svgs = [a for tag, a in page.elements if tag == "svg" and "heatmap" in (a.get("class") or "")]
    cells = [a for tag, a in page.elements if tag == "rect" and a.get("class") == "cell"]
    layers, heads, scores = MODELS["fixture-a"]
    assert len(svgs) == len(scores)
    assert len(cells) == len(scores) * layers * heads


def test_heatmap_cells_link_to_their_head_pages(site: Path) -> None:
    page = site / "models/fixture-a/index.html"
    hrefs = [a.get("href") or "" for tag, a in parse(page).elements if tag == "a"]
    links = [href for href in hrefs if "/head-" in href and href.endswith(".html")]
    assert "layer-2/head-1.html" in links
    for href in set(links):
        target = site / posixpath.normpath(posixpath.join("models/fixture-a", href or ""))
        layer, head = href.split("/")[0].removeprefix("layer-"), href.split("head-")[1].removesuffix(".html")
        assert f"L{layer}H{head} · fixture-a" in visible_text(target)


def test_head_page_shows_scores_percentile_threshold_and_similar_heads(site: Path) -> None:
    text = visible_text(site / "models/fixture-a/layer-2/head-1.html")
    assert "induction v1" in text and "0.9" in text and "100" in text  # score, top percentile
    assert "Most similar heads in other models" in text
    script = (site / "models/fixture-a/similar.js").read_text(encoding="utf-8")
    data = json.loads(script.removeprefix("window.surveySimilar = ").removesuffix(";\n"))
    nearest = data["heads"]["2.1"]  # [slug, layer, head, distance], nearest first
    assert nearest and {row[0] for row in nearest} <= {"fixture-b", HOSTILE_SLUG}  # other models only
    assert [row[3] for row in nearest] == sorted(row[3] for row in nearest)
    assert data["models"]["fixture-b"] == ["fixture-b", 6] and "<" not in script  # names as JSON, < escaped
    assert "second_repeat_loss" in text  # it is one of the validated induction heads


def test_classifier_page_has_a_mosaic_of_every_model(site: Path) -> None:
    page = parse(site / "classifiers/induction.html")
    figures = [a for tag, a in page.elements if tag == "figure"]
    assert len(figures) == len(MODELS) + 1  # the hostile model has an induction unit too
    cells = [a for tag, a in page.elements if tag == "rect" and a.get("class") == "cell"]
    assert len(cells) == sum(layers * heads for layers, heads, _ in MODELS.values()) + 4


def test_model_page_explains_missing_and_failed_classifiers(site: Path) -> None:
    text = visible_text(site / "models/fixture-a/index.html")
    assert "Missing classifiers" in text and "name_mover" in text
    hostile = visible_text(site / f"models/{HOSTILE_SLUG}/index.html")
    assert "Failed or interrupted runs" in hostile
    assert "s_inhibition skipped: too few names <b>" in hostile
    assert "name_mover run 4 failed: <img src=x onerror=alert('error')> | `x`" in hostile


def test_layer_page_lists_heads_and_neurons_with_examples(site: Path) -> None:
    text = visible_text(site / "models/fixture-a/layer-1/index.html")
    assert "L1H0" in text and "Neuron 1.4 (partition)" in text
    assert "promotes" in text and "cat" in text
    assert "top-1 agreement with the model's output 0.5" in text  # layer 1 of 4 in the fixture


def _shown_neurons(page: Path) -> list[int]:
    """The neurons a layer page shows, in page order."""
    ids = [a.get("id") or "" for tag, a in parse(page).elements if tag == "h3"]
    return [int(i.removeprefix("neuron-")) for i in ids if i.startswith("neuron-")]


def _neuron_rows(site: Path, model: str, layer: int) -> dict[int, tuple[float, float | None, int | None]]:
    """The layer's live neurons in the downloaded database: neuron -> (max, typical_top, sign)."""
    with sqlite3.connect(published_database(site)) as db:
        rows = db.execute(
            "SELECT n.neuron, n.max, n.typical_top, n.sign FROM neurons n JOIN units u ON u.id = n.unit_id "
            "JOIN models m ON m.id = u.model_id WHERE m.name = ? AND n.layer = ? "
            "AND coalesce(n.family, '') != 'dead'",
            (model, layer),
        ).fetchall()
    return {neuron: (top, typical, sign) for neuron, top, typical, sign in rows}


def _neuron_sections(page: Path, layer: int) -> dict[int, str]:
    """The visible text of each neuron's section of a layer page."""
    parts = re.split(rf"Neuron {layer}\.(\d+) \(", visible_text(page))
    return {int(n): text for n, text in zip(parts[1::2], parts[2::2], strict=True)}


def test_layer_page_ranks_neurons_by_typical_top_activation_not_max(site: Path) -> None:
    rows = _neuron_rows(site, "fixture-a", 1)
    by_max = sorted(rows, key=lambda n: -rows[n][0])
    by_typical = sorted(rows, key=lambda n: -(rows[n][1] or 0.0))
    assert by_max[0] == 6 and by_typical[-1] == 6  # the first-position neuron: largest max, least typical
    assert _shown_neurons(site / "models/fixture-a/layer-1/index.html") == by_typical
    text = visible_text(site / "models/fixture-a/layer-1/index.html")
    assert "ranked by typical top activation: the median of the dominant tail's 20 top examples" in text
    legacy = _neuron_rows(site, "fixture-b", 1)  # version 1: no typical top, ranked by max
    assert _shown_neurons(site / "models/fixture-b/layer-1/index.html") == sorted(
        legacy, key=lambda n: -legacy[n][0]
    )
    assert "ranked by max activation (this summary is version 1" in visible_text(
        site / "models/fixture-b/layer-1/index.html"
    )


def test_layer_page_shows_both_tails_each_in_its_sign_colour(site: Path) -> None:
    page = site / "models/fixture-a/layer-1/index.html"
    shown = _shown_neurons(page)
    positive, negative = within(page, "ol", "tail-positive"), within(page, "ol", "tail-negative")
    assert len(positive) == len(negative) == len(shown) and len(within(page, "ol", "tail-first")) == 1
    for lists, shade, other in (
        (positive, POSITIVE_SHADE, NEGATIVE_SHADE),
        (negative, NEGATIVE_SHADE, POSITIVE_SHADE),
    ):
        for found in lists:
            focus = [
                a.get("style") or ""
                for tag, a in found.elements
                if tag == "span" and a.get("class") == "focus"
            ]
            assert focus and all(f"rgba({shade}," in style and other not in style for style in focus)
    activations = re.findall(r"(-?[\d.]+) on ", " ".join(f.text for f in negative))
    assert activations and all(float(value) < 0 for value in activations)
    rows = _neuron_rows(site, "fixture-a", 1)
    headings = within(page, "p", "tail-negative")
    assert ["(dominant)" in h.text for h in headings] == [rows[n][2] == -1 for n in shown]
    sections = _neuron_sections(page, 1)
    assert "First positions: the largest |activation| at a window's first position" in sections[6]
    assert "61 on The" in sections[6] and "positive 0.4 -0.3 61" in sections[6]  # sign, typical, min, max
    assert "promotes (when it fires in its dominant sign): t0 t1" in sections[1]
    legacy = site / "models/fixture-b/layer-1/index.html"  # version 1: the positive list alone
    assert within(legacy, "ol", "tail-negative") == [] and len(within(legacy, "ol", "tail-positive")) == 5
    assert "(dominant)" not in visible_text(legacy) and "— — — 6 0.1" in visible_text(legacy)


def test_layer_pages_show_the_intervention_check_and_the_token_test(site: Path) -> None:
    layers = [visible_text(site / f"models/fixture-a/layer-{layer}/index.html") for layer in range(3)]
    line = "Intervention check in this layer: {} of {} sampled neurons' promoted tokens confirmed (≥ 8/10"
    assert line.format(1, 1) in layers[0] and line.format(1, 2) in layers[1]
    assert "Intervention check in this layer" not in layers[2]  # no neuron of layer 2 was sampled
    assert "Intervention check" not in visible_text(site / "models/fixture-b/layer-1/index.html")
    sections = _neuron_sections(site / "models/fixture-a/layer-1/index.html", 1)
    assert "intervention check: 9/10 promoted tokens confirmed" in sections[1]
    assert "intervention check: 3/10 promoted tokens confirmed" in sections[2]
    assert not any("intervention check" in sections[n] for n in (3, 4, 5, 6))
    assert (
        "token test: candidate t1 : mean activation in the dominant sign 1.35 over its 12 occurrences"
        in sections[1]
    )
    assert "against 0.1 on frequency-matched tokens" in sections[1]
    assert not any("token test" in sections[n] for n in (2, 3, 4, 5, 6))


def test_model_page_shows_the_intervention_agreement_and_the_family_floors(site: Path) -> None:
    page = site / "models/fixture-a/index.html"
    text = visible_text(page)
    assert "67% of 3 sampled neurons: their 10 promoted tokens share ≥ 8 with the 10 that really rise" in text
    rows = [cells for _, cells in table_rows(page)]
    at = rows.index(["layer", "sampled", "confirmed (≥ 8/10)"])
    assert rows[at + 1 :] == [["0", "1", "1"], ["1", "2", "1"]]
    assert (
        "vocabulary kurtosis above 9.5" in text
        and "variance above 0.004" in text
        and "above 1.8 (prediction) or below -1.6 (suppression)" in text
    )
    assert "1000 random directions" in text
    legacy = visible_text(site / "models/fixture-b/index.html")
    assert "This summary is version 1" in legacy and "Intervention check" not in legacy
    assert "Family thresholds" not in legacy


def test_hostile_strings_in_a_negative_tail_and_a_token_test_stay_text(site: Path) -> None:
    page = site / f"models/{HOSTILE_SLUG}/layer-0/index.html"
    (negative,) = within(page, "ol", "tail-negative")
    assert HOSTILE[1] in negative.text and HOSTILE[4] in negative.text  # the token in context, the title
    assert HOSTILE[1].replace(" ", "·") in negative.text  # the example's token itself
    assert {tag for tag, _ in negative.elements} <= {"li", "code", "span"}
    assert not any(key.startswith("on") for _, attrs in negative.elements for key in attrs)
    (test,) = within(page, "p", "token-test")
    assert HOSTILE[5].replace(" ", "·") in test.text and {tag for tag, _ in test.elements} == {"code"}


def test_model_page_draws_the_logit_lens_over_depth(site: Path) -> None:
    page = parse(site / "models/fixture-a/index.html")
    layers = MODELS["fixture-a"][0]
    curves = [a for tag, a in page.elements if tag == "svg" and a.get("class") == "depth-curve"]
    points = [a for tag, a in page.elements if tag == "circle"]
    assert len(curves) == 3 and len(points) == 3 * layers
    hrefs = [a.get("href") or "" for tag, a in page.elements if tag == "a"]
    for layer in range(layers):  # each curve's point, and the table row, link to the layer
        assert hrefs.count(f"layer-{layer}/index.html") >= 4
    text = visible_text(site / "models/fixture-a/index.html")
    assert "top-1 agreement with the output layer 0: 0.25" in text
    assert "top-1 agreement with the output layer 3: 1" in text
    assert "<figure" not in text and "figcaption" not in text  # the curves' markup is live, not shown
    assert "No logit lens is stored" in visible_text(site / f"models/{HOSTILE_SLUG}/index.html")


def test_hostile_strings_are_shown_as_text_and_never_live(site: Path) -> None:
    pages = list(site.rglob("*.html"))
    for path in pages:
        page = parse(path)
        assert not any("alert" in script for script in page.scripts), path
        for tag, attrs in page.elements:
            assert not any(k.startswith("on") for k in attrs), (path, tag, attrs)
            for key in ("href", "src"):
                assert not (attrs.get(key) or "").strip().lower().startswith("javascript"), (path, attrs)
            assert tag not in ("img", "b"), (path, tag)  # none of ours; the hostile ones must not parse
    layer = visible_text(site / f"models/{HOSTILE_SLUG}/layer-0/index.html")
    head = visible_text(site / f"models/{HOSTILE_SLUG}/layer-0/head-0.html")
    model = visible_text(site / f"models/{HOSTILE_SLUG}/index.html")
    assert MODEL_NAME in model and "[x](javascript:alert('family'))" in model
    assert "<img src=x onerror=alert('error')> | `x`" in model
    assert HOSTILE[4] in layer  # the document title, verbatim
    assert "<script>alert('token')</script>" in layer.replace("·", " ")  # a promoted token
    assert HOSTILE[1] in head  # the evidence note of the top head
    assert "`tick`" in head  # an OV token


def test_the_release_publishes_the_database_in_chunks_parquet_tables_and_checksums(site: Path) -> None:
    links = [a.get("href") for tag, a in parse(site / "schema.html").elements if tag == "a"]
    assert "db/config.json" in links and "SHA256SUMS" in links and "parquet/models.parquet" in links
    config = json.loads((site / "db/config.json").read_text())
    joined = published_database(site)
    assert config["serverMode"] == "chunked" and config["requestChunkSize"] == 4096
    assert joined.stat().st_size == config["databaseLengthBytes"]
    assert hashlib.sha256(joined.read_bytes()).hexdigest() == config["sha256"]
    with sqlite3.connect(joined) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("PRAGMA page_size").fetchone()[0] == 4096
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        models = db.execute("SELECT count(*) FROM models").fetchone()[0]
        neurons = db.execute("SELECT count(*) FROM neurons").fetchone()[0]
    assert models == len(MODELS) + 1
    assert len(pd.read_parquet(site / "parquet/models.parquet")) == models
    assert len(pd.read_parquet(site / "parquet/neurons.parquet")) == neurons
    sums = dict(line.split("  ", 1)[::-1] for line in (site / "SHA256SUMS").read_text().splitlines())
    published = (p.relative_to(site) for p in site.rglob("*") if p.is_file())
    files = {p.as_posix() for p in published if not is_build_state(p)} - {"SHA256SUMS"}
    assert set(sums) == files
    assert all(hashlib.sha256((site / name).read_bytes()).hexdigest() == sums[name] for name in sums)
    assert oversized(site) == [] and "SELECT" in visible_text(site / "schema.html")


def test_a_database_splits_into_page_aligned_chunks_that_join_back(tmp_path: Path) -> None:
    source = tmp_path / "source.db"
    with sqlite3.connect(source) as db:
        db.execute("CREATE TABLE t (x TEXT)")
        db.executemany("INSERT INTO t VALUES (?)", [(f"row {i} " * 20,) for i in range(3000)])
    config = publish_database(source, tmp_path / "out", chunk_bytes=8 * 4096)
    chunks = sorted((tmp_path / "out/db").glob("survey.db.*"))
    assert len(chunks) == -(-config.databaseLengthBytes // (8 * 4096)) > 3
    assert all(c.stat().st_size == 8 * 4096 for c in chunks[:-1]) and chunks[0].name == "survey.db.0000"
    joined = tmp_path / "joined.db"
    joined.write_bytes(b"".join(c.read_bytes() for c in chunks))
    with sqlite3.connect(joined) as db:
        assert db.execute("SELECT count(*) FROM t").fetchone()[0] == 3000
    with pytest.raises(ValueError, match="multiple of the 4096-byte page"):
        publish_database(source, tmp_path / "bad", chunk_bytes=5000)


def test_a_large_table_is_split_into_parquet_parts_and_oversized_files_are_found(tmp_path: Path) -> None:
    source = tmp_path / "source.db"
    with sqlite3.connect(source) as db:
        db.execute("CREATE TABLE big (x BLOB)")
        db.executemany("INSERT INTO big VALUES (?)", [(os.urandom(1000),) for _ in range(400)])
    parts = publish_parquet(source, tmp_path / "out", limit=100_000)
    assert len(parts) > 1 and all(p.stat().st_size <= 100_000 for p in parts)
    assert sum(len(pd.read_parquet(p)) for p in parts) == 400
    assert [name for name, _ in oversized(tmp_path / "out", limit=100_000)] == []
    assert oversized(tmp_path, limit=100_000)[0][0] == "source.db"


def test_search_is_a_pagefind_index_of_every_article_and_no_lunr_index(site: Path) -> None:
    assert (site / "pagefind/pagefind-ui.js").is_file() and any((site / "pagefind/index").iterdir())
    assert list(site.rglob("search_index.json")) == [] and not (site / "assets/iframe-worker").exists()
    pages = [p for p in site.rglob("*.html") if not is_build_state(p.relative_to(site))]
    indexed = [p for p in pages if "data-pagefind-body" in p.read_text(encoding="utf-8")]
    entry = json.loads((site / "pagefind/pagefind-entry.json").read_text(encoding="utf-8"))
    assert entry["languages"]["en"]["page_count"] == len(indexed) >= 50  # every page but 404.html
    head = (site / "models/fixture-a/layer-2/head-1.html").read_text(encoding="utf-8")
    assert head.count("data-pagefind-body") == 1  # the article; the header and nav are not indexed
    assert head.index('id="wiki-search"') < head.index("data-pagefind-body")  # the box is in the header
    assert 'data-root="../../../"' in head  # the site root, from three folders deep
    assert re.search(r'<span class="search-keywords"[^>]* data-pagefind-weight="10">L2H1 2\.1</span>', head)


def test_index_site_fails_in_one_line_without_pages(tmp_path: Path) -> None:
    with pytest.raises(SurveyError, match=r"^Pagefind could not index .*html files\.$"):
        index_site(tmp_path)


def test_build_refuses_an_empty_database_and_a_bad_url(tmp_path: Path) -> None:
    from db.engine import open_database

    open_database(f"sqlite:///{tmp_path / 'empty.db'}").dispose()
    with pytest.raises(SurveyError, match="no surveyed model"):
        build_site(f"sqlite:///{tmp_path / 'empty.db'}", tmp_path / "out", lambda line: None)
    with pytest.raises(SurveyError, match="no survey database"):
        build_site(f"sqlite:///{tmp_path / 'missing.db'}", tmp_path / "out", lambda line: None)


def test_build_never_replaces_a_folder_it_did_not_build(tmp_path: Path) -> None:
    from survey.wiki.build import MARKER

    db, report = build_fixture_site(tmp_path / "first")
    assert (report.out / MARKER).is_file()
    assert build_site(f"sqlite:///{db}", report.out, lambda line: None).pages == report.pages  # rebuild: fine
    precious = tmp_path / "notes" / "thesis.tex"
    precious.parent.mkdir()
    precious.write_text("years of work")
    with pytest.raises(SurveyError, match="not empty"):
        build_site(f"sqlite:///{db}", precious.parent, lambda line: None)
    assert precious.read_text() == "years of work"


def test_cli_site_serve_without_a_built_site_is_one_error_line(tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    missing = tmp_path / "nothing"
    code, _, err = run_cli(["site", "serve", "--out", str(missing)], monkeypatch, capsys)
    assert code == 1
    assert err.strip() == f"Error: no built site in {missing}; run `survey site build --out {missing}` first"


def test_cli_site_build_gives_one_error_line_for_a_bad_url(tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run_cli(
        ["site", "build", "--db", "nonsense://x", "--out", str(tmp_path / "o")], monkeypatch, capsys
    )
    assert code == 1
    assert err.startswith("Error: ") and len(err.strip().splitlines()) == 1


def test_backups_function_vectors_and_successors_have_their_sections(site: Path) -> None:
    model = visible_text(site / "models/fixture-b/index.html")
    assert "Backup heads" in model and "backup_induction L2H0 L4H1 L5H1 0.6" in model
    assert "antonym 0.9 0 0.5 0.05" in model and "after layer 2" in model  # zero-shot before/after
    ablated = visible_text(site / "models/fixture-b/layer-2/head-0.html")
    assert "these heads make up for them: L5H1 (0.6 of the lost effect)" in ablated
    backup = parse(site / "models/fixture-b/layer-5/head-1.html")
    text = visible_text(site / "models/fixture-b/layer-5/head-1.html").replace(" ,", ",")
    assert "This head is a backup_induction: it makes up for L2H0, L4H1 when they are mean-ablated" in text
    assert "head-0.html" in " ".join(a.get("href") or "" for tag, a in backup.elements if tag == "a")
    fv_head = visible_text(site / "models/fixture-b/layer-3/head-0.html")
    assert "Function vector" in fv_head and "antonym 0.2" in fv_head
    successor = visible_text(site / "models/fixture-b/layer-1/head-1.html")
    assert "days 1, months 0.5" in successor and "Monday → Tuesday (Tuesday)" in successor
    assert "Backup heads" not in visible_text(site / "models/fixture-b/layer-0/head-0.html")


# fixture-b's induction validation fails (rank 4 of 21), fixture-a's passes; no other v1 class is validated
UNCONFIRMED = {(2, 0), (4, 1)}


def _top_heads(page: Path, classifier: str) -> str:
    return next(cells[1] for _, cells in table_rows(page) if cells[0].startswith(f"{classifier}:"))


def _slashes(page: Path) -> set[str]:
    return {
        a.get("d") or ""
        for tag, a in parse(page).elements
        if tag == "path" and a.get("class") == "unconfirmed"
    }


def test_head_page_shows_each_score_with_its_interval_null_percentile_and_validation(site: Path) -> None:
    _, cells = table_row(site / "models/fixture-a/layer-2/head-1.html", "induction v1")
    with sqlite3.connect(published_database(site)) as db:
        low, high, null_percentile, q = db.execute(
            "SELECT ci_low, ci_high, null_percentile, q_value FROM label_evidence "
            "WHERE model = 'fixture-a' AND classifier = 'induction' AND layer = 2 AND head = 1"
        ).fetchone()
    assert low < 0.9 < high and q < 0.01
    assert cells[1] == "0.9" and cells[2] == f"[{low:.3g}, {high:.3g}]"
    assert cells[3:5] == ["yes", "labelled"]
    assert cells[8] == f"{null_percentile:.3g}" and cells[9] == f"{q:.2g}"
    assert cells[10] == "0.67"  # the third probe seed loses fixture-a's weaker induction label
    assert cells[11] == "validated: rank 1/21, z 11.9"
    _, sink = table_row(site / "models/fixture-a/layer-2/head-1.html", "attention_sink v1")
    assert sink[3] == "yes" and sink[11] == "not validated"
    _, below = table_row(site / "models/fixture-a/layer-0/head-0.html", "induction v1")
    assert below[3:5] == ["no", "below the threshold"]


def test_a_label_whose_validation_failed_is_unconfirmed_on_its_head_page(site: Path) -> None:
    css, cells = table_row(site / "models/fixture-b/layer-2/head-0.html", "induction v1")
    assert css == "unconfirmed" and cells[3] == "yes, UNCONFIRMED"
    assert cells[11] == "UNCONFIRMED: validation failed (rank 4/21, z 1.2)"
    css, unlabelled = table_row(site / "models/fixture-b/layer-0/head-0.html", "induction v1")
    assert css == "" and unlabelled[3] == "no"  # the class failed, but this head carries no label
    assert unlabelled[11] == "validation failed (rank 4/21, z 1.2)"
    css, confirmed = table_row(site / "models/fixture-a/layer-2/head-1.html", "induction v1")
    assert css == "" and "unconfirmed" not in " ".join(confirmed).lower()


def test_top_heads_and_layer_tables_mark_unconfirmed_labels(site: Path) -> None:
    failed = _top_heads(site / "models/fixture-b/index.html", "induction")
    assert failed.startswith("L2H0 0.7 unconfirmed · L4H1 0.45 unconfirmed · L0H0 0.05 ·")
    passed = _top_heads(site / "models/fixture-a/index.html", "induction")
    assert passed.startswith("L2H1 0.9 · L0H1 0.5 ·") and "unconfirmed" not in passed
    _, layer = table_row(site / "models/fixture-b/layer-4/index.html", "L4H1")
    assert "0.45 unconfirmed" in layer


def test_heatmaps_and_mosaics_strike_through_exactly_the_unconfirmed_labels(site: Path) -> None:
    cell = 14.0  # the model page's cell size
    expected = {f"M{h * cell:.2f} {(layer + 1) * cell:.2f}L{(h + 1) * cell:.2f} {layer * cell:.2f}"
                for layer, h in UNCONFIRMED}  # fmt: skip
    assert _slashes(site / "models/fixture-b/index.html") == expected
    assert _slashes(site / "models/fixture-a/index.html") == set()
    model = visible_text(site / "models/fixture-b/index.html")
    assert "L2H0 induction 0.700 (labelled, unconfirmed: validation failed)" in model
    assert "L2H0 attention_sink 0.900 (labelled)" in model
    assert len(_slashes(site / "classifiers/induction.html")) == len(UNCONFIRMED)
    assert _slashes(site / "classifiers/attention_sink.html") == set()
    mosaic = visible_text(site / "classifiers/induction.html")
    assert "L4H1 0.450 (labelled, unconfirmed: validation failed)" in mosaic
    assert "L2H1 0.900 (labelled)" in mosaic  # fixture-a's label passed


def test_model_and_classifier_pages_summarise_each_class(site: Path) -> None:
    _, induction = table_row(site / "models/fixture-b/index.html", "induction")
    assert induction[1:] == ["2", "0%", "0.67", "UNCONFIRMED: validation failed (rank 4/21, z 1.2)"]
    _, backup = table_row(site / "models/fixture-b/index.html", "backup_induction")
    assert backup[1:] == ["1", "8.3%", "—", "not validated"]  # no probe seeds for a non-pattern class
    _, passed = table_row(site / "classifiers/induction.html", "fixture-a")
    assert passed[1:] == ["2", "0%", "0.67", "validated: rank 1/21, z 11.9"]
    _, failed = table_row(site / "classifiers/induction.html", "fixture-b")
    assert failed[4].startswith("UNCONFIRMED")
    assert "8 (2 unconfirmed)" in visible_text(site / "index.html")


def test_rows_stored_before_label_statistics_render_with_dashes(site: Path) -> None:
    _, cells = table_row(site / "models/fixture-b/layer-3/head-0.html", "function_vector v1")
    assert cells[1] == "0.6" and cells[2:5] == ["—", "yes", "—"]
    assert cells[8:11] == ["—", "—", "—"] and cells[11] == "validated: ratio 7.5"
    _, summary = table_row(site / "models/fixture-b/index.html", "function_vector")
    assert summary[1:] == ["1", "—", "—", "validated: ratio 7.5"]


def test_a_validation_that_found_nothing_to_ablate_is_not_run_not_failed() -> None:
    from survey.wiki.evidence import label_status, validation_failed, validation_status

    nothing = [{"k": 0, "supported": False, "rank": None, "ratio": None, "effect_random": []}]
    assert validation_status(nothing) == "not run: no head is labelled"
    assert not validation_failed(nothing) and label_status(nothing) == "not validated"
    failed = [{"k": 3, "supported": False, "rank": 4, "z_score": 1.2, "effect_random": [0.0] * 20}]
    assert validation_status(failed) == "UNCONFIRMED: validation failed (rank 4/21, z 1.2)"
    assert label_status(failed) == "unconfirmed"


def test_classifier_pages_render_docstring_literals_as_code_not_double_backticks(site: Path) -> None:
    from classifiers.registry import classifier_class, classifier_names

    literal = {}
    for name in classifier_names():
        found = re.findall(r"``(.+?)``", " ".join((classifier_class(name).__doc__ or "").split()))
        if found:
            literal[name] = found[0]
    assert literal, "some classifier docstring has an inline literal"
    for page in (site / "classifiers").glob("*.html"):
        assert "``" not in visible_text(page), page.name
    import html

    name, text = next(iter(literal.items()))
    assert f"<code>{html.escape(text, quote=False)}</code>" in (site / f"classifiers/{name}.html").read_text()


def test_model_heatmaps_have_layer_and_head_axes_and_a_colour_legend(site: Path) -> None:
    layers, heads, scores = MODELS["fixture-a"]
    svg = (site / "models/fixture-a/index.html").read_text(encoding="utf-8")
    first = svg[svg.index('<svg class="heatmap"') : svg.index("</svg>", svg.index('<svg class="heatmap"'))]
    ticks = re.findall(r'<text class="axis"[^>]*>([^<]*)</text>', first)
    assert "L\\\\H" in ticks or "L\\H" in ticks
    assert [str(h) for h in range(heads)] == ticks[1 : 1 + heads]  # head numbers across the top
    assert [str(layer) for layer in range(layers)] == ticks[1 + heads : 1 + heads + layers]  # layers down
    assert first.count('class="legend"') == 21 and len(ticks) == 1 + heads + layers + 3
    mosaic = (site / "classifiers/induction.html").read_text(encoding="utf-8")
    assert mosaic.count('class="legend"') == 21  # one colour bar for the whole mosaic
    assert mosaic.count('class="axis"') == 3  # its values: the mosaic's small grids have no axes


# --- The SQL page (sql.html; its behaviour in Chromium: tests/browser/test_sql_browser.py) ---


def test_the_sql_page_carries_the_examples_the_model_slugs_and_its_engine(site: Path) -> None:
    from db.examples import EXAMPLES
    from survey.wiki.release import FILE_LIMIT

    page = parse(site / "sql.html")
    ids = {a.get("id") for _, a in page.elements}
    assert {"sql-page", "sql-examples", "sql-query", "sql-run", "sql-status", "sql-results"} <= ids
    raw = next(a["data-sql"] for _, a in page.elements if a.get("id") == "sql-page")
    assert raw is not None and "<" not in raw  # the hostile model's name is \u003c-escaped
    data = json.loads(raw)
    assert data["examples"] == [[title, sql] for title, sql in EXAMPLES]
    assert data["models"] == {"fixture-a": "fixture-a", "fixture-b": "fixture-b", MODEL_NAME: HOSTILE_SLUG}
    assert data["config"] == "db/config.json" and (site / data["config"]).is_file()
    scripts = [a.get("src") for tag, a in page.elements if tag == "script" and a.get("src")]
    assert "assets/sql/sql-page.js" in scripts
    assert 'href="sql.html"' in (site / "index.html").read_text()  # in the navigation
    shipped = {p.name: p.stat().st_size for p in (site / "assets/sql").iterdir()}
    assert {"sqlite3.js", "sqlite3.wasm", "sql-worker.js", "sql-page.js", "README.txt"} <= set(shipped)
    assert any(name.startswith("LICENSE") for name in shipped)
    assert max(shipped.values()) < FILE_LIMIT // 10  # every vendored file well under the limit


def test_a_site_without_a_published_database_says_its_sql_page_has_nothing_to_query(tmp_path: Path) -> None:
    from db.examples import EXAMPLES
    from survey.wiki.render import PageWriter

    writer = PageWriter(tmp_path / "docs", tmp_path / "fragments")
    writer.write("sql.md", "sql.md.j2", release=None, examples=EXAMPLES, database_folder="db", slugs={},
                 backend="postgresql")  # fmt: skip
    text = (tmp_path / "docs/sql.md").read_text()
    assert "postgresql database" in text and "survey query" in text and "data-sql" not in text


def _site_model(name: str, family: str | None = None, n_params: int = 1, model_id: int = 1) -> SiteModel:
    return SiteModel(ModelRecord(model_id, name, {"family": family, "n_params": n_params}), name)


def test_mosaic_groups_models_by_family_and_runs_each_from_small_to_large() -> None:
    models = [_site_model("b-large", "B", 900), _site_model("loner"), _site_model("b-small", "b", 10),
              _site_model("a-one", "A", 500)]  # fmt: skip
    assert [m.name for m in mosaic.order(models)] == ["a-one", "b-small", "b-large", "loner"]


def test_mosaic_cells_are_never_slivers_and_every_grid_is_one_height() -> None:
    for heads in range(1, 65):
        assert mosaic.cell_width(heads) >= mosaic.MIN_CELL
        assert heads * mosaic.cell_width(heads) >= mosaic.MIN_GRID
    for layers, heads in ((12, 9), (80, 64)):
        grid = np.zeros((layers, heads))
        drawn = mosaic.panel_svg(_site_model("m"), "induction", grid, {}, "classifiers", 1.0)
        scale_x, scale_y = map(float, re.findall(r"scale\(([\d.]+) ([\d.]+)\)", drawn)[0])
        assert scale_x >= mosaic.MIN_CELL and scale_y * layers == pytest.approx(mosaic.HEIGHT, rel=1e-3)
        assert drawn.count('class="cell"') == layers * heads


def test_mosaic_panel_escapes_the_model_name_and_stays_small() -> None:
    grid = np.random.default_rng(0).random((80, 64))
    model = SiteModel(ModelRecord(1, MODEL_NAME, {}), "m")
    drawn = mosaic.panel_svg(model, "induction", grid, {(3, 4): True}, "classifiers", 1.0)
    assert "<script" not in drawn and drawn.count('class="unconfirmed"') == 1
    assert len(drawn) < 155 * grid.size  # bytes a head, 34 of them the link: integer unit cells, hex fills


def test_no_page_of_the_site_links_to_a_missing_file(site: Path) -> None:
    from survey.wiki.links import broken_links

    pages = [p for p in site.rglob("*.html") if not p.relative_to(site).as_posix().startswith(".")]
    assert len(pages) > 20 and broken_links(site, pages) == []


def test_the_link_check_sees_a_link_to_a_missing_file(tmp_path: Path) -> None:
    from survey.wiki.links import broken_links

    (tmp_path / "a").mkdir()
    (tmp_path / "b.html").write_text("")
    page = tmp_path / "a" / "index.html"
    page.write_text('<a href="../b.html#x">b</a> <a href="https://x.org/">x</a> <a href="#top">t</a> '
                    '<img src="missing.png"> <a href="../c.html">c</a>')  # fmt: skip
    assert broken_links(tmp_path, [page]) == ["a/index.html -> missing.png", "a/index.html -> ../c.html"]


def test_a_build_prints_no_false_alarm(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    with caplog.at_level(logging.INFO):
        build_fixture_site(tmp_path)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == []
    assert any("not found among documentation files" in r.getMessage() for r in caplog.records)  # now info


def test_a_classifier_page_shows_each_stored_version_as_stored(site: Path) -> None:
    from classifiers import classifier_class

    text = visible_text(site / "classifiers/induction.html")
    cls = classifier_class("induction")
    assert "Each version as stored with its results" in text and cls.null in text  # the fixture stores it
    assert "The newest scores stored for this class are version 1" in text  # the fixture's are v1
