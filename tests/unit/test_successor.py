"""Successor heads on the planted GPT-2 of ``tests/planted_successor.py``, and the ordinal
sequences kept per tokenizer."""

from __future__ import annotations

import pytest

from classifiers.ordinal import SEQUENCES, OrdinalSpec, generate_ordinal
from classifiers.successor import SuccessorHead
from survey.adapters import adapt
from survey.units.successor import successor_measures
from tests.support.planted_successor import N_HEADS, SUCCESSOR, ordinal_tokenizer, planted_successor_gpt2
from tests.support.tiny import tiny_tokenizer


def test_the_planted_successor_head_scores_one_and_every_other_head_zero() -> None:
    tokenizer = ordinal_tokenizer()
    model = planted_successor_gpt2(tokenizer)
    tasks = generate_ordinal(tokenizer, OrdinalSpec())
    assert [t.name for t in tasks.tasks] == list(SEQUENCES)
    result = SuccessorHead().score(successor_measures(adapt(model), tasks, bos_id=1))
    assert result.scores[SUCCESSOR] == 1.0
    others = [
        result.scores[layer, head]
        for layer in range(2)
        for head in range(N_HEADS)
        if (layer, head) != SUCCESSOR
    ]
    assert max(others) == 0.0  # the copy head included: it ranks the token itself first
    labels = result.labels(SuccessorHead().threshold)
    assert labels.sum() == 1 and labels[SUCCESSOR]
    assert result.statistics is not None and result.statistics.p_value[SUCCESSOR] < 1e-3
    assert result.statistics.null_score[SUCCESSOR] == 0.0  # it never writes a deranged member
    evidence = result.evidence[1][0]
    assert evidence["per_task"] == {name: 1.0 for name in SEQUENCES}
    assert evidence["pairs"] == sum(len(words) - 1 for words in SEQUENCES.values())
    assert {"task": "days", "input": "Monday", "top": "Tuesday", "successor": "Tuesday"} in evidence[
        "successor_examples"
    ]
    copy = result.evidence[1][1]["successor_examples"]
    assert {"task": "days", "input": "Monday", "top": "Monday", "successor": "Tuesday"} in copy


def test_members_that_are_not_one_token_are_dropped_with_their_pairs() -> None:
    tasks = generate_ordinal(ordinal_tokenizer(missing={"Wednesday"}), OrdinalSpec())
    days = next(t for t in tasks.tasks if t.name == "days")
    assert days.words == ["Monday", "Tuesday", "Thursday", "Friday", "Saturday", "Sunday"]
    assert [(days.words[i], days.words[j]) for i, j in days.pairs] == [
        ("Monday", "Tuesday"), ("Thursday", "Friday"), ("Friday", "Saturday"), ("Saturday", "Sunday"),
    ]  # fmt: skip
    assert [t.name for t in generate_ordinal(ordinal_tokenizer(), OrdinalSpec(min_tokens=21)).tasks] == [
        "letters"
    ]
    with pytest.raises(ValueError, match="no ordinal sequence"):
        generate_ordinal(tiny_tokenizer(), OrdinalSpec())  # knows none of the words
