"""The IOI classifiers on a hand-set IOI circuit whose answer is known by construction, and
path patching checked against an independent reference on tiny models of several families."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from classifiers.ioi import BackupNameMover, CopySuppression, NameMover, NegativeNameMover, SInhibition
from classifiers.validation import AblationConfig
from survey.adapters import ArchitectureAdapter, adapt
from survey.engine.capture import CaptureSpec, capture
from survey.engine.patching import path_patched_attention, path_patched_logit_diff
from survey.engine.readouts import end_components
from survey.units.ioi import IOIOutcome, run_ioi
from tests.support.planted_ioi import (
    ATTENDS_S_COPIES_S,
    BOS,
    D_HEAD,
    PLANTED,
    planted_ioi_gpt2,
    planted_ioi_prompts,
)
from tests.support.tiny import VOCAB, tiny_model

CLASSIFIERS = [NameMover(), NegativeNameMover(), CopySuppression(), BackupNameMover(), SInhibition()]


@pytest.fixture(scope="module")
def planted() -> IOIOutcome:
    return run_ioi(adapt(planted_ioi_gpt2()), planted_ioi_prompts(), CLASSIFIERS, BOS, AblationConfig())


def labelled(outcome: IOIOutcome, name: str) -> list[tuple[int, int]]:
    scores = outcome.scores[name][0]
    threshold = next(c.threshold for c in CLASSIFIERS if c.name == name)
    return [(int(layer), int(head)) for layer, head in scores.labels(threshold).nonzero().tolist()]


def others(outcome: IOIOutcome, name: str) -> torch.Tensor:
    """The scores of every head that passes the class's gate but the planted ones (the planted
    and the gated are set to -inf; the gated planted decoys have their own tests)."""
    scored = outcome.scores[name][0]
    scores = scored.scores.masked_fill(~scored.gate, -torch.inf)
    for head in PLANTED[name]:
        scores[head] = -torch.inf
    return scores


def test_the_planted_model_does_ioi(planted: IOIOutcome) -> None:
    assert planted.measures.ld > 3.0 and planted.measures.ld_positive == 1.0


@pytest.mark.parametrize("name", list(PLANTED))
def test_each_planted_ioi_head_is_the_only_one_labelled(planted: IOIOutcome, name: str) -> None:
    assert labelled(planted, name) == PLANTED[name]
    scores, statistics = planted.scores[name][0].scores, planted.scores[name][0].statistics
    assert statistics is not None
    for head in PLANTED[name]:
        assert scores[head] > 0.1 and statistics.p_value[head] < 1e-3
    assert others(planted, name).max() < 0.02


def test_the_negative_copier_is_found_with_negative_dla_and_sign(planted: IOIOutcome) -> None:
    evidence = planted.scores["negative_name_mover"][0].evidence[2][1]
    assert evidence["dla"] < -1.0 and evidence["negative_copy_score"] == 1.0 and evidence["copy_score"] == 0.0
    assert planted.scores["name_mover"][0].scores[2, 1] < 0  # the name mover's score has the sign flipped
    assert evidence["attention_end_io"] > 0.9


def test_copy_suppression_of_s_is_labelled_and_copying_s_is_not(planted: IOIOutcome) -> None:
    """(3, 2) attends S and writes against it: copy suppression, and no name mover although its
    DLA raises LD (it does not attend IO, and says so). (3, 3) attends S and copies it."""
    scores = planted.scores["copy_suppression"][0]
    suppressor, copier = scores.evidence[3][2], scores.evidence[ATTENDS_S_COPIES_S[0]][ATTENDS_S_COPIES_S[1]]
    assert suppressor["share_attending_io"] == 0.0 and suppressor["attention_attended"] > 0.9
    assert suppressor["negative_copy_score"] == 1.0 and suppressor["dla"] > 0
    mover = planted.scores["name_mover"][0]
    assert mover.scores[3, 2] > 0.05 and not mover.labels(0.05)[3, 2]
    assert mover.reasons(0.05)[3][2] == "gated" and "attention END→IO" in mover.evidence[3][2]["gate_failed"]
    assert copier["share_attending_io"] == 0.0 and copier["attention_attended"] > 0.9
    assert scores.scores[ATTENDS_S_COPIES_S] < -0.05 and copier["copy_score"] == 1.0
    assert "negative copy score 0.000 < 0.5" in copier["gate_failed"]
    statistics = scores.statistics
    assert statistics is not None and statistics.null_score[3, 2] < 0.02  # an absent name is not suppressed


def test_a_suppressor_that_loses_its_target_is_no_backup(planted: IOIOutcome) -> None:
    """With the name mover ablated, (3, 1) no longer finds IO: its DLA rises past the threshold
    (the old definition's backup) but it neither attends IO nor copies, so it is not a backup."""
    scores = planted.scores["backup_name_mover"][0]
    evidence = scores.evidence[3][1]
    assert scores.scores[3, 1] > 0.05 and evidence["compensation"] > 0
    assert scores.reasons(0.05)[3][1] == "gated"
    assert "copy score 0.000 < 0.5" in evidence["gate_failed"]
    assert "attention END→IO (name movers ablated)" in evidence["gate_failed"]


def test_name_mover_evidence_and_validation(planted: IOIOutcome) -> None:
    evidence = planted.scores["name_mover"][0].evidence[2][0]
    assert evidence["dla"] > 5.0 and evidence["copy_score"] == 1.0 and evidence["attention_end_io"] > 0.9
    validation = planted.scores["name_mover"][1]
    assert validation is not None and validation.heads == [(2, 0)]
    assert validation.per_head_effect[(2, 0)] == pytest.approx(validation.effect_top)
    assert len(validation.effect_random) == 20 and all((2, 0) not in draw for draw in validation.random_heads)


def test_the_name_mover_validation_fails_honestly_when_it_is_repaired(planted: IOIOutcome) -> None:
    """The backup (3, 0) takes over and the suppressor (3, 1) loses its target, so ablating the
    name mover barely moves LD, while ablating the S-inhibition head (1, 0) that every
    name-moving path needs drops it: the draws that hold it beat the movers, the rank says so,
    and the label stays unconfirmed."""
    validation = planted.scores["name_mover"][1]
    assert validation is not None
    ld = planted.measures.ld
    assert abs(validation.effect_top) < 0.1 * ld
    holding = [
        e for d, e in zip(validation.random_heads, validation.effect_random, strict=True) if d == [(1, 0)]
    ]
    assert holding and all(e > 0.2 * ld for e in holding)
    assert validation.rank > len(holding) and not validation.supported


def test_the_backup_compensates_when_the_name_mover_is_ablated(planted: IOIOutcome) -> None:
    scores, validation = planted.scores["backup_name_mover"]
    evidence = scores.evidence[3][0]
    assert abs(evidence["dla"]) < 0.1 and evidence["compensation"] > 5.0  # silent until needed
    assert (
        scores.evidence[2][0]["compensation"] < 0 and not scores.labels(0.05)[2, 0]
    )  # ablated, not a backup
    assert validation is not None and validation.heads == [(3, 0)] and validation.effect_top > 1.0
    assert validation.details["recovered_share"] > 0.5 and validation.rank == 1 and validation.supported


def test_s_inhibition_lowers_ld_through_the_name_movers_queries(planted: IOIOutcome) -> None:
    scores = planted.scores["s_inhibition"][0]
    evidence = scores.evidence[1][0]
    assert evidence["name_movers"] == [[2, 0]] and evidence["ld_drop"] > 0.2 * planted.measures.ld
    assert (
        abs(scores.evidence[0][0]["ld_drop"]) < 1e-4
    )  # the duplicate head reaches the mover only via (1, 0)
    assert not scores.gate[2:].any()  # no sender in or after the name mover's layer


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


def patched_layer1_queries(
    adapter: ArchitectureAdapter, clean: torch.Tensor, delta: torch.Tensor
) -> tuple[nn.Module, Callable[[nn.Module, object, torch.Tensor], torch.Tensor]]:
    """Layer 1's query module and a forward hook that writes, at END, the queries recomputed from
    the clean residual entering layer 1 plus ``delta`` (the sender's swapped END output)."""
    end = POSITIONS["end"]
    kept: dict[str, torch.Tensor] = {}
    handle = adapter.blocks()[1].register_forward_pre_hook(
        lambda _m, a, k: kept.__setitem__("x", (a[0] if a else k["hidden_states"])[:, end].clone()),
        with_kwargs=True,
    )
    adapter.model(input_ids=clean)
    handle.remove()
    norm, q_module = adapter.attn_in_norm(1), adapter.qkv_projections(1)["q"].module
    with torch.no_grad():
        x = kept["x"] + delta
        patched_q = q_module((x if norm is None else norm(x))[:, None])[:, 0]

    def write(_m: nn.Module, _a: object, out: torch.Tensor) -> torch.Tensor:
        out = out.clone()
        out[:, end] = patched_q
        return out

    return q_module, write


def reference_patch(
    model_type: str, clean: torch.Tensor, corrupted: torch.Tensor, sender: tuple[int, int]
) -> torch.Tensor:
    """Full-sequence reference: every query of layer 1 at END is recomputed from the residual with
    the sender's END output swapped; keys and everything else stay clean."""
    model = tiny_model(model_type, seed=1)
    adapter = adapt(model)
    spec = CaptureSpec.of("head_out", layers=(0,))
    delta = (capture(adapter, corrupted, spec)["head_out", 0] - capture(adapter, clean, spec)["head_out", 0])[
        :, POSITIONS["end"], sender[1]
    ]
    q_module, write = patched_layer1_queries(adapter, clean, delta)
    handle = q_module.register_forward_hook(write)
    try:
        patterns = capture(adapter, clean, CaptureSpec.of("pattern"))["pattern", 1]
    finally:
        handle.remove()
    return patterns[:, :, POSITIONS["end"], POSITIONS["io"]]  # [prompt, head]


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


def reference_patched_logit_diff(
    model_type: str,
    clean: torch.Tensor,
    corrupted: torch.Tensor,
    sender: tuple[int, int],
    receivers: list[int],
) -> torch.Tensor:
    """Full-sequence reference: layer 1's queries at END recomputed from the residual with the
    sender's END output swapped, every other head of layer 1 held at its clean END output, the
    rest of the model run on; LD between tokens 5 and 6 at END."""
    model = tiny_model(model_type, seed=1)
    adapter = adapt(model)
    end, d_head = POSITIONS["end"], adapter.dims.d_head
    spec = CaptureSpec.of("head_out", "z", layers=(0, 1))
    got_clean, got_corrupted = capture(adapter, clean, spec), capture(adapter, corrupted, spec)
    delta = (got_corrupted["head_out", 0] - got_clean["head_out", 0])[:, end, sender[1]]
    clean_z = got_clean["z", 1][:, end].flatten(1)
    q_module, write_q = patched_layer1_queries(adapter, clean, delta)

    def hold_others(_m: nn.Module, args: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        z = args[0].clone()
        held = clean_z.clone()
        for receiver in receivers:
            own = slice(receiver * d_head, (receiver + 1) * d_head)
            held[:, own] = z[:, end, own]
        z[:, end] = held
        return (z, *args[1:])

    handles = [
        q_module.register_forward_hook(write_q),
        adapter.attn_out_proj(1).register_forward_pre_hook(hold_others),
    ]
    try:
        with torch.no_grad():
            logits = model(input_ids=clean).logits[:, end]
    finally:
        for h in handles:
            h.remove()
    return logits[:, 5] - logits[:, 6]


@pytest.mark.parametrize("model_type", ["llama", "gemma3_text", "olmo2", "qwen2", "opt"])
def test_path_patched_logit_diff_matches_a_full_sequence_reference(model_type: str) -> None:
    clean, corrupted = torch.randint(3, VOCAB, (3, 10)), torch.randint(3, VOCAB, (3, 10))
    corrupted[:, POSITIONS["end"]] = clean[:, POSITIONS["end"]]
    adapter = adapt(tiny_model(model_type, seed=1))
    io, s = torch.full((3,), 5), torch.full((3,), 6)
    senders = [(0, 0), (0, 2), (1, 2)]
    receivers = [(1, 0), (1, 1), (1, 3)]
    got = path_patched_logit_diff(
        adapter, clean, corrupted, POSITIONS, receivers, senders, io, s, rows_per_pass=6
    )
    assert got.shape == (3, 3)
    for index, sender in enumerate(senders[:2]):
        expected = reference_patched_logit_diff(model_type, clean, corrupted, sender, [0, 1, 3])
        torch.testing.assert_close(got[index], expected, atol=1e-4, rtol=1e-4)
    logits = end_components(adapter, clean, POSITIONS).logits
    torch.testing.assert_close(got[2], logits[:, 5] - logits[:, 6], atol=1e-4, rtol=1e-4)  # no path
    assert (got[0] - got[2]).abs().max() > 1e-5  # the patch did change something


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
        (n, *h) for n, heads in PLANTED.items() for h in heads
    }
    by_name = {row[0]: json.loads(row[3]) for row in labelled}
    assert by_name["backup_name_mover"]["compensation"] > 5.0 and "ld_drop" in by_name["s_inhibition"]
    assert all(row[4] == prompts.hash and json.loads(row[5])["kind"] == "ioi" for row in labelled)
    assert set(validations) == {"name_mover", "backup_name_mover"} and validations["backup_name_mover"] == 1
