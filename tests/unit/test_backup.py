"""Backup induction heads on the planted GPT-2 of ``tests/planted_backup.py``: the backup is the
only head labelled, the ablated induction head is never labelled, and holding the backup at its
clean output shows the loss it held down; on ``tests/planted_selfrepair.py``, a head that rises
after any ablation stays within its null."""

from __future__ import annotations

import pytest
import torch

from classifiers.attention import REPEATED
from classifiers.backup import BackupInduction, BackupMeasures
from classifiers.base import HeadScores
from classifiers.probes import ProbeSet, generate
from classifiers.statistics import ALPHA, WITHIN_NULL
from classifiers.validation import AblationConfig, AblationResult
from survey.adapters import adapt
from survey.units.backup import measure_backups
from tests.support.planted_backup import PLANTED, planted_backup_gpt2
from tests.support.planted_selfrepair import PLANTED as SELF_REPAIR_PLANTED
from tests.support.planted_selfrepair import planted_selfrepair_gpt2
from tests.support.tiny import VOCAB, tiny_tokenizer

BACKUP, INDUCTION = PLANTED["backup_induction"], PLANTED["induction"]


@pytest.fixture(scope="module")
def measured() -> tuple[BackupMeasures, AblationResult]:
    return measure(planted_backup_gpt2())


def measure(model: torch.nn.Module) -> tuple[BackupMeasures, AblationResult]:
    """Backup induction measured on ``model`` with the default config, quietly."""
    return measure_backups(
        adapt(model), *probes(), BackupInduction.default_config, AblationConfig(), lambda _: None
    )


def probes() -> tuple[ProbeSet, ProbeSet]:
    """The induction probe and its null, for the tiny tokenizer."""
    null = REPEATED.null()
    assert null is not None
    return generate(REPEATED, tiny_tokenizer(), 1, VOCAB), generate(null, tiny_tokenizer(), 1, VOCAB)


def test_the_planted_backup_is_the_only_head_labelled(measured) -> None:  # type: ignore[no-untyped-def]
    measures, _ = measured
    assert measures.ablated == [INDUCTION]
    result = BackupInduction().score(measures)
    labels = result.labels(BackupInduction().threshold)
    assert labels.sum() == 1 and labels[BACKUP]
    assert result.statistics is not None and result.statistics.p_value[BACKUP] < 1e-3
    assert result.scores[BACKUP] > 0.5
    others = [
        float(result.scores[layer, h])
        for layer in range(3)
        for h in range(4)
        if (layer, h) not in (BACKUP, INDUCTION)
    ]
    assert max(abs(x) for x in others) < 0.01
    assert not labels[INDUCTION] and result.scores[INDUCTION] < 0  # the ablated head lost its effect
    evidence = result.evidence[BACKUP[0]][BACKUP[1]]
    assert evidence["induction_score"] < 0.05 and evidence["induction_score_ablated"] > 0.8
    assert evidence["induction_heads_ablated"] == [list(INDUCTION)]
    assert evidence["compensation"] == pytest.approx(
        evidence["dla_induction_ablated"] - evidence["dla"], abs=1e-5
    )


def test_holding_the_backup_at_its_clean_output_shows_the_loss_it_held_down(measured) -> None:  # type: ignore[no-untyped-def]
    _, validation = measured
    assert validation.metric == "loss_held_down" and validation.heads == [BACKUP]
    details = validation.details
    assert details["loss_induction_ablated"] > details["loss_clean"] + 0.5
    assert details["loss_backups_held"] > details["loss_induction_ablated"] + 5
    assert validation.effect_top == pytest.approx(
        details["loss_backups_held"] - details["loss_induction_ablated"]
    )
    assert max(validation.effect_random) < 0.01 and validation.supported


def test_without_induction_heads_nothing_is_ablated_or_labelled() -> None:
    model = planted_backup_gpt2()
    with torch.no_grad():
        model.transformer.h[0].attn.c_proj.weight.zero_()  # no previous-token head: no induction
    measures, validation = measure(model)
    assert measures.ablated == [] and BackupInduction().score(measures).labels(0.05).sum() == 0
    assert (
        validation.k == 0 and not validation.supported and validation.details["note"] == "no head is labelled"
    )


SELF_REPAIR, SELF_REPAIR_INDUCTION = SELF_REPAIR_PLANTED["self_repair"], SELF_REPAIR_PLANTED["induction"]


@pytest.fixture(scope="module")
def self_repair() -> tuple[BackupMeasures, AblationResult]:
    """The planted self-repair model of ``tests/support/planted_selfrepair.py``, measured."""
    return measure(planted_selfrepair_gpt2())


def test_self_repair_after_any_ablation_gets_no_backup_label(
    self_repair: tuple[BackupMeasures, AblationResult],
) -> None:
    measures, validation = self_repair
    assert measures.ablated == [SELF_REPAIR_INDUCTION]
    classifier = BackupInduction()
    result = classifier.score(measures)
    assert result.scores[SELF_REPAIR] > classifier.threshold  # it does rise when induction is ablated
    assert result.reasons(classifier.threshold)[SELF_REPAIR[0]][SELF_REPAIR[1]] == WITHIN_NULL
    assert result.labels(classifier.threshold).sum() == 0
    assert validation.heads == [] and not validation.supported


def test_the_null_is_what_keeps_the_self_repair_head_unlabelled(
    self_repair: tuple[BackupMeasures, AblationResult],
) -> None:
    measures, _ = self_repair
    classifier = BackupInduction()
    result = classifier.score(measures)
    statistics = result.statistics
    assert statistics is not None
    # random heads' ablation raises it about as much as the induction head's
    assert statistics.null_score[SELF_REPAIR] > classifier.threshold
    assert statistics.p_value[SELF_REPAIR] > ALPHA and statistics.q_value[SELF_REPAIR] >= ALPHA
    without_null = HeadScores(result.scores, result.evidence, result.gate)
    assert without_null.labels(classifier.threshold)[SELF_REPAIR]
