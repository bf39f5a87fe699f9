"""The IOI classifiers on a hand-set IOI circuit whose answer is known by construction, and
path patching checked against an independent reference on tiny models of several families."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from classifiers.ioi import BackupNameMover, NameMover, NegativeNameMover, SInhibition
from classifiers.validation import AblationConfig
from survey.adapters import adapt
from survey.engine.capture import CaptureSpec, capture
from survey.engine.patching import path_patched_attention
from survey.engine.readouts import end_components
from survey.units.ioi import IOIOutcome, run_ioi
from tests.support.planted_ioi import BOS, D_HEAD, PLANTED, planted_ioi_gpt2, planted_ioi_prompts
from tests.support.tiny import VOCAB, tiny_model

CLASSIFIERS = [NameMover(), NegativeNameMover(), BackupNameMover(), SInhibition()]


@pytest.fixture(scope="module")
def planted() -> IOIOutcome:
    return run_ioi(adapt(planted_ioi_gpt2()), planted_ioi_prompts(), CLASSIFIERS, BOS, AblationConfig())


def labelled(outcome: IOIOutcome, name: str) -> list[tuple[int, int]]:
    scores = outcome.scores[name][0]
    threshold = next(c.threshold for c in CLASSIFIERS if c.name == name)
    return [(int(layer), int(head)) for layer, head in scores.labels(threshold).nonzero().tolist()]


def others(outcome: IOIOutcome, name: str) -> torch.Tensor:
    """The scores of every head but the planted one (which is set to -inf)."""
    scores = outcome.scores[name][0].scores.clone()
    scores[PLANTED[name]] = -torch.inf
    return scores


def test_the_planted_model_does_ioi(planted: IOIOutcome) -> None:
    assert planted.measures.ld > 5.0 and planted.measures.ld_positive == 1.0


@pytest.mark.parametrize("name", list(PLANTED))
def test_each_planted_ioi_head_is_the_only_one_labelled(planted: IOIOutcome, name: str) -> None:
    assert labelled(planted, name) == [PLANTED[name]]
    assert planted.scores[name][0].scores[PLANTED[name]] > 0.4
    statistics = planted.scores[name][0].statistics
    assert statistics is not None and statistics.p_value[PLANTED[name]] < 1e-3
    assert others(planted, name).max() < 0.02


def test_the_negative_copier_is_found_with_negative_dla_and_sign(planted: IOIOutcome) -> None:
    evidence = planted.scores["negative_name_mover"][0].evidence[2][1]
    assert evidence["dla"] < -1.0 and evidence["negative_copy_score"] == 1.0 and evidence["copy_score"] == 0.0
    assert planted.scores["name_mover"][0].scores[2, 1] < 0  # the name mover's score has the sign flipped
    assert evidence["attention_end_io"] > 0.9


def test_name_mover_evidence_and_validation(planted: IOIOutcome) -> None:
    evidence = planted.scores["name_mover"][0].evidence[2][0]
    assert evidence["dla"] > 5.0 and evidence["copy_score"] == 1.0 and evidence["attention_end_io"] > 0.9
    validation = planted.scores["name_mover"][1]
    assert validation is not None and validation.heads == [(2, 0)] and validation.effect_top > 0.5
    assert validation.per_head_effect[(2, 0)] == pytest.approx(validation.effect_top)
    assert len(validation.effect_random) == 20 and all((2, 0) not in draw for draw in validation.random_heads)


def test_the_name_mover_validation_fails_honestly_when_its_backup_compensates(planted: IOIOutcome) -> None:
    """The backup recovers most of the LD the name mover carried, so ablating the mover drops LD
    less than ablating the S-inhibition head (1, 0) that every name-moving path needs: each draw
    that holds it beats the movers, the rank says so, and the label stays unconfirmed."""
    validation = planted.scores["name_mover"][1]
    assert validation is not None
    beaten_by = [
        d
        for d, e in zip(validation.random_heads, validation.effect_random, strict=True)
        if e >= validation.effect_top
    ]
    assert beaten_by and all(draw == [PLANTED["s_inhibition"]] for draw in beaten_by)
    assert validation.rank == 1 + len(beaten_by) and not validation.supported


def test_the_backup_compensates_when_the_name_mover_is_ablated(planted: IOIOutcome) -> None:
    scores, validation = planted.scores["backup_name_mover"]
    evidence = scores.evidence[3][0]
    assert abs(evidence["dla"]) < 0.1 and evidence["compensation"] > 5.0  # silent until needed
    assert (
        scores.evidence[2][0]["compensation"] < 0 and not scores.labels(0.05)[2, 0]
    )  # ablated, not a backup
    assert validation is not None and validation.heads == [(3, 0)] and validation.effect_top > 1.0
    assert validation.details["recovered_share"] > 0.5 and validation.rank == 1 and validation.supported


def test_s_inhibition_moves_the_name_movers_attention(planted: IOIOutcome) -> None:
    evidence = planted.scores["s_inhibition"][0].evidence[1][0]
    assert evidence["name_movers"] == [[2, 0]] and evidence["receiver_attention_io"] > 0.9
    assert evidence["receiver_attention_drop"] > 0.4


def test_path_patching_matches_activation_patching_on_the_planted_model() -> None:
    """Between L1H0 and the name mover there is only the direct path: the two must agree."""
    model = planted_ioi_gpt2()
    adapter, group = adapt(model), planted_ioi_prompts().groups[0]
    corrupted_z = capture(adapter, group.corrupted, CaptureSpec.of("z"), batch_size=16)["z", 1][:, 7, 0]

    def swap(_m: nn.Module, args: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        z = args[0].clone()
        z[:, 7, :D_HEAD] = corrupted_z
        return (z,)

    handle = model.transformer.h[1].attn.c_proj.register_forward_pre_hook(swap)
    try:
        patterns = capture(adapter, group.clean, CaptureSpec.of("pattern"), batch_size=16)["pattern", 2]
    finally:
        handle.remove()
    got = path_patched_attention(
        adapter, group.clean, group.corrupted, group.positions, [(2, 0)], [(1, 0), (0, 0)]
    )
    torch.testing.assert_close(got[0, :, 0], patterns[:, 0, 7, group.positions["io"]], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(
        got[1, :, 0], patterns[:, 0, 7, group.positions["io"]] * 0 + 1, atol=1e-3, rtol=0
    )


POSITIONS = {"io": 2, "s1": 4, "s2": 6, "end": 9}


def reference_patch(
    model_type: str, clean: torch.Tensor, corrupted: torch.Tensor, sender: tuple[int, int]
) -> torch.Tensor:
    """Full-sequence reference: every query of layer 1 at END is recomputed from the residual with
    the sender's END output swapped; keys and everything else stay clean."""
    model = tiny_model(model_type, seed=1)
    adapter = adapt(model)
    end = POSITIONS["end"]
    spec = CaptureSpec.of("head_out", layers=(0,))
    delta = (capture(adapter, corrupted, spec)["head_out", 0] - capture(adapter, clean, spec)["head_out", 0])[
        :, end, sender[1]
    ]
    kept: dict[str, torch.Tensor] = {}
    block = adapter.blocks()[1]
    handle = block.register_forward_pre_hook(
        lambda _m, a, k: kept.__setitem__("x", (a[0] if a else k["hidden_states"])[:, end].clone()),
        with_kwargs=True,
    )
    model(input_ids=clean)
    handle.remove()
    norm, q_module = adapter.attn_in_norm(1), adapter.qkv_projections(1)["q"].module
    with torch.no_grad():
        x = kept["x"] + delta
        patched_q = q_module((x if norm is None else norm(x))[:, None])[:, 0]

    def write(_m: nn.Module, _a: object, out: torch.Tensor) -> torch.Tensor:
        out = out.clone()
        out[:, end] = patched_q
        return out

    handle = q_module.register_forward_hook(write)
    try:
        patterns = capture(adapter, clean, CaptureSpec.of("pattern"))["pattern", 1]
    finally:
        handle.remove()
    return patterns[:, :, end, POSITIONS["io"]]  # [prompt, head]


@pytest.mark.parametrize("model_type", ["llama", "gemma3_text", "olmo2", "qwen2", "opt"])
def test_path_patching_matches_a_full_sequence_reference(model_type: str) -> None:
    clean, corrupted = torch.randint(3, VOCAB, (3, 10)), torch.randint(3, VOCAB, (3, 10))
    corrupted[:, POSITIONS["end"]] = clean[:, POSITIONS["end"]]
    adapter = adapt(tiny_model(model_type, seed=1))
    receivers = [(1, 0), (1, 3)]
    senders = [(0, 0), (0, 2), (1, 1)]
    got = path_patched_attention(adapter, clean, corrupted, POSITIONS, receivers, senders, rows_per_pass=6)
    assert got.shape == (3, 3, 2)
    for index, sender in enumerate(senders[:2]):
        expected = reference_patch(model_type, clean, corrupted, sender)[:, [0, 3]]
        torch.testing.assert_close(got[index], expected, atol=1e-5, rtol=1e-4)
    clean_attention = end_components(adapter, clean, POSITIONS).attention[:, 1, [0, 3], 0]
    torch.testing.assert_close(got[2], clean_attention, atol=1e-5, rtol=1e-4)  # same layer: no path
    assert (got[0] - clean_attention).abs().max() > 1e-5  # the patch did change something


@pytest.mark.parametrize("model_type", ["gpt2", "gpt_neox", "phi", "gemma2"])
def test_path_patching_clean_into_clean_is_the_clean_attention(model_type: str) -> None:
    """Fused and interleaved projections: patching a prompt into itself changes nothing."""
    clean = torch.randint(3, VOCAB, (2, 10))
    adapter = adapt(tiny_model(model_type))
    got = path_patched_attention(adapter, clean, clean, POSITIONS, [(1, 1), (1, 2)], [(0, 0), (0, 3)])
    expected = end_components(adapter, clean, POSITIONS).attention[:, 1, [1, 2], 0]
    torch.testing.assert_close(got, expected[None].expand(2, -1, -1), atol=1e-5, rtol=1e-4)


def test_ioi_units_are_stored_with_evidence_and_validations(planted: IOIOutcome, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    from sqlalchemy import text

    from db.engine import open_database, session_factory
    from db.fixtures import model_with_run
    from db.store import RunIds
    from survey.units.base import PlannedUnit, RunConfig
    from survey.units.heads import HeadResult
    from survey.units.registry import head_unit

    engine = open_database(f"sqlite:///{tmp_path / 's.db'}")
    with session_factory(engine).begin() as session:
        model, run = model_with_run(session, "planted-ioi", 4, 4)
        ids = RunIds(model.id, run.id)
    prompts = planted_ioi_prompts()
    for classifier in CLASSIFIERS:
        scores, validation = planted.scores[classifier.name]
        unit = head_unit(type(classifier), RunConfig())
        planned = PlannedUnit(unit, prompts, unit.definition_key().with_dataset(prompts.hash))
        unit.write(engine, ids, planned, HeadResult(scores, validation), replace=False)
    with engine.connect() as connection:
        labelled = connection.execute(text(
            "SELECT u.name, h.layer, h.head, h.evidence, u.dataset_hash, u.dataset FROM head_scores h "
            "JOIN units u ON u.id = h.unit_id WHERE h.label ORDER BY u.name"
        )).all()  # fmt: skip
        validations = dict(connection.execute(text(
            "SELECT u.name, v.rank FROM validations v JOIN units u ON u.id = v.unit_id"
        )).all())  # fmt: skip
    engine.dispose()
    assert {(name, layer, head) for name, layer, head, *_ in labelled} == {
        (n, *h) for n, h in PLANTED.items()
    }
    by_name = {row[0]: json.loads(row[3]) for row in labelled}
    assert (
        by_name["backup_name_mover"]["compensation"] > 5.0
        and "receiver_attention_drop" in by_name["s_inhibition"]
    )
    assert all(row[4] == prompts.hash and json.loads(row[5])["kind"] == "ioi" for row in labelled)
    assert set(validations) == {"name_mover", "backup_name_mover"} and validations["backup_name_mover"] == 1
