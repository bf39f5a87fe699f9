"""One real model end to end: SmolLM2-135M-Instruct from its PyPI GGUF package, loaded once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from sqlalchemy import text

from survey.catalog import load_catalog
from survey.engine.capture import CaptureSpec, capture
from survey.loading.loaders import LoadedModel, load, resolve

pytestmark = [pytest.mark.integration, pytest.mark.slow]
IOI_NAMES = ("name_mover", "negative_name_mover", "copy_suppression", "backup_name_mover", "s_inhibition")


@pytest.fixture(scope="session")
def smollm2() -> LoadedModel:
    catalog = load_catalog()
    return load(resolve("smollm2-135m-instruct", catalog))


def test_dims_bos_and_provenance(smollm2: LoadedModel) -> None:
    d = smollm2.adapter.dims
    assert (d.n_layers, d.n_heads, d.n_kv_heads, d.d_head, d.d_model) == (30, 9, 3, 64, 576)
    assert smollm2.resolved_sha == "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
    assert smollm2.bos.token == "<|endoftext|>" and smollm2.bos.token_id == 0
    assert smollm2.bos.encode(smollm2.tokenizer, "Hello world")[0] == 0
    assert "Q4_1" in (smollm2.quantization or "")


def test_real_model_reconstructs_through_the_uniform_view(smollm2: LoadedModel) -> None:
    ids = torch.tensor(
        [smollm2.bos.encode(smollm2.tokenizer, "The capital of France is Paris, and the capital")]
    )
    layers = (0, 15, 29)
    got = capture(
        smollm2.adapter, ids, CaptureSpec.of("head_out", "attn_out", "neuron", "mlp_out", layers=layers)
    )
    for layer in layers:
        b_O = smollm2.adapter.head_weights(layer).b_O
        torch.testing.assert_close(
            got["head_out", layer].sum(2) + b_O, got["attn_out", layer], atol=1e-4, rtol=1e-4
        )
        W = smollm2.adapter.neuron_weights(layer)
        torch.testing.assert_close(
            got["neuron", layer] @ W.W_out + W.b_out, got["mlp_out", layer], atol=1e-4, rtol=1e-4
        )


def test_real_model_copies_repeated_random_tokens(smollm2: LoadedModel) -> None:
    """Induction works in the loaded weights: the second repeat is far easier than the first."""
    generator = torch.Generator().manual_seed(0)
    r = torch.randint(1000, 10000, (4, 50), generator=generator)
    ids = smollm2.bos.prepend(torch.cat([r, r], dim=1))
    got = capture(smollm2.adapter, ids, CaptureSpec.of("pattern", layers=(0,)), keep_logits=True)
    logprobs = got.logits.log_softmax(-1)[:, :-1]
    loss = -logprobs.gather(-1, ids[:, 1:, None])[..., 0]  # [batch, pos-1]
    first, second = loss[:, :50].mean(), loss[:, 50:].mean()
    assert first > 8 and second < first / 2, (float(first), float(second))


def test_survey_twice_stores_one_row_per_head_and_validates_induction_and_ioi(
    smollm2: LoadedModel, tmp_path: Path
) -> None:
    from classifiers import classifier_names, parse_selection
    from db.engine import open_database
    from survey.run.runner import survey_model
    from survey.units.base import RunConfig

    engine = open_database(f"sqlite:///{tmp_path / 's.db'}")
    lines: list[str] = []
    for _ in range(2):
        error = survey_model(engine, smollm2, parse_selection(None), RunConfig(), False, lines.append).error
        assert error is None
    assert any("up to date" in line for line in lines)
    with engine.connect() as connection:
        counts = connection.execute(text(
            "SELECT u.name, u.version, h.layer, h.head, count(*) FROM head_scores h "
            "JOIN units u ON u.id = h.unit_id GROUP BY 1, 2, 3, 4"
        )).all()  # fmt: skip
        assert len(counts) == len(classifier_names()) * 270 and {c[-1] for c in counts} == {1}
        assert {c[0] for c in counts} == set(classifier_names())
        assert connection.execute(text("SELECT count(*) FROM runs")).scalar() == 1
        validations = {
            name: (rank, supported, k)
            for name, rank, supported, k in connection.execute(text(
                "SELECT u.name, v.rank, v.supported, v.k FROM validations v JOIN units u ON u.id = v.unit_id"
            ))
        }  # fmt: skip
        top = connection.execute(text(
            "SELECT h.layer, h.head FROM head_scores h JOIN units u ON u.id = h.unit_id "
            "WHERE u.name = 'induction' AND h.rank = 1"
        )).one()  # fmt: skip
        labelled = connection.execute(text(
            "SELECT u.name, h.layer, h.head FROM head_scores h JOIN units u ON u.id = h.unit_id WHERE h.label"
        )).all()  # fmt: skip
        statistics = dict(
            connection.execute(
                text("SELECT name, statistics FROM units WHERE kind = 'head_classifier'")
            ).all()
        )
    engine.dispose()
    assert_label_statistics({name: json.loads(value) for name, value in statistics.items()})
    rank, supported, k = validations["induction"]
    assert supported and rank == 1 and k >= 3
    assert 10 <= top.layer <= 25  # induction heads sit in the middle-to-late layers, never at the ends
    ioi = {name: {(layer, head) for n, layer, head in labelled if n == name} for name in IOI_NAMES}
    assert len(ioi["name_mover"]) >= 2 and ioi["s_inhibition"] and ioi["negative_name_mover"]
    assert (23, 3) in ioi["copy_suppression"]  # the largest direct effect: attends S2, writes against S
    assert (24, 4) not in ioi["backup_name_mover"]  # a negative head that suppresses less is no backup
    assert max(layer for layer, _ in ioi["s_inhibition"]) < min(layer for layer, _ in ioi["name_mover"])
    assert validations["name_mover"][:2] == (1, True)  # ablating the movers beats all 20 random draws
    assert validations["backup_induction"][:2] == (1, True)  # holding the backups matters, unlike random
    assert_wiki_of_real_model(tmp_path, top, sorted(ioi["name_mover"])[0])


def assert_label_statistics(statistics: dict[str, dict[str, Any]]) -> None:
    """On its null, no class labels more than 1% of SmolLM2's heads; the pattern classes store
    their labels on three probe seeds, and their Jaccard."""
    for name, stored in statistics.items():
        assert stored["null_label_rate"] is not None and stored["null_label_rate"] <= 0.01, name
        # SmolLM2: hardly any class's null even passes its threshold. Copy suppression's null is a
        # contrast (the attended name against an absent one): a head that raises IO without
        # attending it has a null as large as its score, which is what rejects it (1.9% here)
        limit = 0.05 if name == "copy_suppression" else 0.01
        assert stored["null_fp_rate"] <= limit, name
    for name in ("previous_token", "duplicate_token", "induction", "attention_sink"):
        assert len(statistics[name]["labels_by_seed"]) == 3 and 0.8 <= statistics[name]["seed_jaccard"] <= 1


def assert_wiki_of_real_model(tmp_path: Path, induction_top: Any, name_mover: tuple[int, int]) -> None:
    """The wiki of the surveyed SmolLM2: a head page per head, real token texts in the example
    pattern and the OV tokens, and the model page linking its top induction head."""
    from survey.wiki.build import build_site
    from survey.wiki.release import oversized
    from tests.support.sitetools import parse, visible_text

    report = build_site(f"sqlite:///{tmp_path / 's.db'}", tmp_path / "site", lambda line: None)
    model = report.out / "models/smollm2-135m-instruct"
    assert len(list(model.glob("layer-*/head-*.html"))) == 270
    top_page = f"layer-{induction_top.layer}/head-{induction_top.head}.html"
    assert top_page in {a.get("href") for tag, a in parse(model / "index.html").elements if tag == "a"}
    head = model / top_page
    patterns = [a for tag, a in parse(head).elements if tag == "svg" and a.get("class") == "pattern"]
    assert len(patterns) == 2  # one per probe: repeated random tokens and natural text
    layer, head_index = name_mover
    mover = visible_text(model / f"layer-{layer}/head-{head_index}.html")
    assert "Top OV tokens" in mover and "name_mover" in mover
    assert oversized(report.out) == []
    assert_search_and_sql_work_in_chromium(
        report.out, f"models/smollm2-135m-instruct/{top_page}", f"L{induction_top.layer}H{induction_top.head}"
    )


def assert_search_and_sql_work_in_chromium(site: Path, top_head: str, name: str) -> None:
    """Served over HTTP: search finds the top induction head by ``name``, and the SQL page answers
    the strongest-induction-head example from the chunked database with a link to that head's page
    ``top_head``."""
    from playwright.sync_api import sync_playwright

    from db.examples import EXAMPLES
    from tests.browser.test_site_browser import chromium, search
    from tests.browser.test_sql_browser import run
    from tests.support.sitetools import serving

    with serving(site) as base, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        page = browser.new_page()
        assert any(href.endswith(top_head) for href in search(page, base, name))
        page.goto(base + "sql.html")
        page.locator("#sql-status.sql-ok", has_text="Ready").wait_for(timeout=30_000)
        sql = next(sql for title, sql in EXAMPLES if title.startswith("The strongest induction head"))
        run(page, sql)
        assert page.locator("#sql-status.sql-ok").count() == 1  # answered, not an error
        assert page.locator(f'#sql-results a[href$="{top_head}"]').count() >= 1
        browser.close()


def test_wiki_news_corpus_is_read_from_the_gensim_wheel() -> None:
    from survey.corpus.sources import resolve_corpus

    docs = list(resolve_corpus("wiki-news").documents())
    news = [d for d in docs if d.title.startswith("news story")]
    assert len(news) == 300 and len(docs) - len(news) == 106  # 107 pages, one a redirect
    assert sum(len(d.text.split()) for d in docs) > 400_000
    assert not any("{{" in d.text or "[[" in d.text or "<ref" in d.text for d in docs)


def test_neuron_summaries_cover_every_layer_of_smollm2(smollm2: LoadedModel, tmp_path: Path) -> None:
    from classifiers import parse_selection
    from db.common.neuron_config import NeuronConfig
    from db.engine import open_database
    from survey.run.runner import survey_model
    from survey.units.base import RunConfig

    engine = open_database(f"sqlite:///{tmp_path / 's.db'}")
    config = RunConfig(neurons=NeuronConfig(token_budget=2048))
    error = survey_model(engine, smollm2, parse_selection(""), config, False, lambda line: None).error
    assert error is None
    with engine.connect() as connection:
        per_layer = connection.execute(text("SELECT layer, count(*) FROM neurons GROUP BY layer")).all()
        by_tail = dict(
            connection.execute(text("SELECT tail, count(*) FROM neuron_examples GROUP BY tail")).all()
        )
        by_family = text("SELECT family, count(*) FROM neurons GROUP BY family")
        families = {name: count for name, count in connection.execute(by_family)}
        negative = connection.execute(text("SELECT avg(sign < 0) FROM neurons")).scalar()
        statistics = connection.execute(
            text("SELECT statistics FROM units WHERE kind = 'neuron_summary'")
        ).scalar_one()
    engine.dispose()
    assert per_layer == [(layer, 1536) for layer in range(30)]
    assert by_tail["positive"] == by_tail["negative"] == 30 * 1536
    assert by_tail.get("first", 0) == families.get("first_position", 0) > 0
    assert families.get("prediction", 0) > 10 and families.get("suppression", 0) > 10
    assert 0.3 < negative < 0.7  # a gated MLP's neurons fire negative about as often as positive
    check = json.loads(statistics)["intervention"]
    last = check["by_layer"]["29"]  # the read-out is the direct path, which is all a last-layer neuron has
    assert check["neurons"] == 200 and last["neurons"] > 0
    assert last["confirmed"] / last["neurons"] >= 0.75 > check["agreement"]  # it holds there, not overall


def test_smollm2_does_ioi_and_its_dla_decomposes_the_logit_difference(smollm2: LoadedModel) -> None:
    from classifiers.ioi_prompts import generate_ioi
    from survey.engine.readouts import direct_logit_attribution, end_components, logit_diff

    prompts = generate_ioi(smollm2.tokenizer, smollm2.bos.token_id, per_group=4)
    assert len({g.template for g in prompts.groups}) >= 15 and len(prompts.names) >= 30
    lds, clean = [], []
    for group in prompts.groups[:6]:
        components = end_components(smollm2.adapter, group.clean, group.positions)
        ld = logit_diff(components.logits, group.io_ids, group.s_ids)
        dla = direct_logit_attribution(smollm2.adapter, components, group.io_ids, group.s_ids)
        total = (
            dla["heads"].sum((1, 2)) + dla["mlps"].sum(1) + dla["embed"] + dla["attn_bias"] + dla["constant"]
        )
        torch.testing.assert_close(total, ld, atol=1e-3, rtol=1e-3)
        lds.append(ld)
    for group in prompts.groups:
        with torch.inference_mode():
            logits = smollm2.model(input_ids=group.clean).logits[:, group.positions["end"]].float()
        clean.append(logit_diff(logits, group.io_ids, group.s_ids))
    assert (torch.cat(clean) > 0).float().mean() >= 0.95
