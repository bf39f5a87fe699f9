"""The neuron pass end to end on a tiny GPT-2 with a planted neuron that fires only on one
token, plus corpora, resumability after kill -9, and bad corpus input."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from sqlalchemy import create_engine, text

from classifiers import parse_selection
from db.common.neuron_config import NeuronConfig
from db.engine import open_database
from survey.corpus.sources import resolve_corpus
from survey.corpus.windows import cut_windows
from survey.engine.capture import CaptureSpec, capture
from survey.loading.loaders import LoadedModel
from survey.run.runner import survey_model
from survey.units.base import RunConfig
from tests.support.clitools import db_bytes, run_cli
from tests.support.tiny import loaded_in_memory, tiny_model, tiny_tokenizer

LAYER, NEURON, WORD = 0, 5, "w42"
CONFIG = dict(window=16, max_windows_per_doc=4, token_budget=4096, top_k=20, batch_size=8)


def planted_neuron_model():  # type: ignore[no-untyped-def]
    """Tiny GPT-2 whose layer-0 neuron 5 reads a residual dimension only WORD's embedding has."""
    model = tiny_model("gpt2")
    token = tiny_tokenizer().convert_tokens_to_ids(WORD)
    with torch.no_grad():
        t = model.transformer
        t.wte.weight[:, 0] = 0.0
        t.wte.weight[token, 0] = 8.0
        t.wpe.weight[:, 0] = 0.0
        block = t.h[LAYER]
        block.attn.c_proj.weight[:, 0] = 0.0  # attention never writes dimension 0
        block.attn.c_proj.bias[0] = 0.0
        block.ln_2.weight[0], block.ln_2.bias[0] = 1.0, 0.0
        block.mlp.c_fc.weight[:, NEURON] = 0.0
        block.mlp.c_fc.weight[0, NEURON] = 4.0
        block.mlp.c_fc.bias[NEURON] = -2.0
    return model


def word_corpus(path: Path, docs: int = 80, words: int = 70, seed: int = 0) -> Path:
    """Documents of random tiny-vocabulary words, blank-line separated."""
    rng = random.Random(seed)
    blocks = [" ".join(f"w{rng.randrange(3, 96)}" for _ in range(words)) for _ in range(docs)]
    path.write_text("\n\n".join(blocks) + "\n")
    return path


@pytest.fixture
def loaded() -> LoadedModel:
    return loaded_in_memory(planted_neuron_model(), "planted-neuron", "1" * 64)


def rows(engine, sql: str) -> list[tuple]:  # type: ignore[no-untyped-def, type-arg]
    with engine.connect() as connection:
        return [tuple(r) for r in connection.execute(text(sql))]


def test_the_planted_neuron_is_found_and_its_statistics_match_a_direct_computation(
    loaded: LoadedModel, tmp_path: Path, tmp_cache: Path
) -> None:
    corpus = word_corpus(tmp_path / "words.txt")
    config = NeuronConfig(corpus=str(corpus), **CONFIG)  # type: ignore[arg-type]
    engine = open_database(f"sqlite:///{tmp_path / 's.db'}")
    lines: list[str] = []
    error = survey_model(
        engine, loaded, parse_selection(""), RunConfig(neurons=config), False, lines.append
    ).error
    assert error is None, lines
    token = loaded.tokenizer.convert_tokens_to_ids(WORD)
    where = f"WHERE layer = {LAYER} AND neuron = {NEURON}"
    (row,) = rows(engine, "SELECT mean, std, max, frac_active, family, top_token_share, token_id, sign, "
                          f"min, frac_negative FROM neurons {where}")  # fmt: skip
    (examples,) = rows(engine, f"SELECT examples, context_acts FROM neuron_examples {where} "
                               "AND tail = 'positive'")  # fmt: skip
    import json

    found = json.loads(examples[0])
    assert len(found) == 20 and {e[2] for e in found} == {token}  # every top example is on WORD
    assert row[4] == "token" and row[5] == 1.0 and row[6] == token and row[7] == 1
    assert all(a >= b for a, b in zip([e[3] for e in found], [e[3] for e in found][1:], strict=False))
    contexts = np.frombuffer(examples[1], dtype=np.float16).reshape(20, 15)
    assert np.allclose(contexts[:, 10], [e[3] for e in found], rtol=1e-2)  # the token itself sits at 10

    windows = cut_windows(resolve_corpus(str(corpus)), loaded.tokenizer, config)
    ids = loaded.bos.prepend(windows.tokens)
    acts = capture(loaded.adapter, ids, CaptureSpec.of("neuron"))[("neuron", LAYER)][:, 1:, NEURON].double()
    assert row[0] == pytest.approx(float(acts.mean()), rel=1e-5, abs=1e-7)
    assert row[1] == pytest.approx(float(acts.std(unbiased=False)), rel=1e-5)
    assert row[2] == pytest.approx(float(acts.max()), rel=1e-6)
    assert row[3] == pytest.approx(float((acts > 0).double().mean()))
    assert row[8] == pytest.approx(float(acts.min()), rel=1e-6)
    assert row[9] == pytest.approx(float((acts < 0).double().mean()))
    on_word = acts[windows.tokens == token]
    assert float(on_word.min()) > 5.0 and float(acts[windows.tokens != token].max()) < 0.5

    # the example's document and token index point at WORD in the stored text
    doc_id, token_index = found[0][0], found[0][1]
    (offsets,) = rows(engine, f"SELECT offsets FROM tokenized_documents WHERE document_id = {doc_id}")
    (doc_text,) = rows(engine, f"SELECT text FROM documents WHERE id = {doc_id}")
    start, end = json.loads(offsets[0])[token_index]
    assert doc_text[0][start:end] == WORD
    assert rows(engine, f"SELECT text FROM tokens WHERE token_id = {token}") == [(WORD,)]

    again: list[str] = []
    survey_model(engine, loaded, parse_selection(""), RunConfig(neurons=config), False, again.append)
    assert any("up to date" in line for line in again)
    assert rows(engine, "SELECT count(*) FROM units") == [(2,)] and rows(
        engine, "SELECT count(*) FROM runs"
    ) == [(1,)]
    engine.dispose()


def test_text_and_jsonl_corpora_are_hashed_by_content(tmp_path: Path) -> None:
    a = word_corpus(tmp_path / "a.txt", docs=3)
    docs = [d.text for d in resolve_corpus(str(a)).documents()]
    assert len(docs) == 3
    jsonl = tmp_path / "c.jsonl"
    jsonl.write_text(
        "\n".join(f'{{"text": {d!r}, "title": "t{i}"}}'.replace("'", '"') for i, d in enumerate(docs))
    )
    as_jsonl = list(resolve_corpus(str(jsonl)).documents())
    assert [d.text for d in as_jsonl] == docs and as_jsonl[1].title == "t1"
    before = resolve_corpus(str(a)).hash()
    word_corpus(a, docs=3, seed=1)
    assert resolve_corpus(str(a)).hash() != before


def test_hub_dataset_corpus_reads_the_snapshot_files(offline_hub: Path) -> None:
    from db.common.errors import SurveyError

    repo = offline_hub / "datasets--org--words"
    snapshot = repo / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "train.jsonl").write_text('{"text": "w3 w4 w5"}\n{"text": "w6 w7", "title": "second"}\n')
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    docs = list(resolve_corpus("hf:org/words").documents())
    assert [(d.title, d.text) for d in docs] == [("line 1", "w3 w4 w5"), ("second", "w6 w7")]
    with pytest.raises(SurveyError, match="cannot fetch hub dataset org/missing@main"):
        list(resolve_corpus("hf:org/missing").documents())


def test_stdlib_corpus_reads_python_source() -> None:
    first = next(resolve_corpus("python-stdlib").documents())
    assert first.title.endswith(".py") and len(first.text) > 0


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: str(p / "missing.txt"), "unknown corpus"),
        (
            lambda p: (p / "bad.jsonl").write_text('{"text": "ok"}\nnot json\n') and str(p / "bad.jsonl"),
            r"bad.jsonl:2",
        ),
        (
            lambda p: (p / "short.txt").write_text("w3 w4\n") and str(p / "short.txt"),
            "no document of at least",
        ),
    ],
)
def test_bad_corpus_is_one_error_line_and_leaves_the_database_untouched(
    make,
    message: str,
    stored: Path,
    tmp_path: Path,
    monkeypatch,
    capsys,  # type: ignore[no-untyped-def]
) -> None:
    import re

    folder = tmp_path / "model"
    planted_neuron_model().save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    before = db_bytes(stored)
    corpus = make(tmp_path)
    args = ["run", str(folder), "--db", f"sqlite:///{stored}", "--classifiers", "", "--neurons"]
    code, _, err = run_cli([*args, "--window", "64", "--corpus", corpus], monkeypatch, capsys)
    errors = [line for line in err.splitlines() if line.startswith("Error:")]
    assert code == 1 and len(errors) == 1 and re.search(message, errors[0]), err
    assert db_bytes(stored) == before
    engine = create_engine(f"sqlite:///{stored}")
    assert rows(engine, "SELECT count(*) FROM neurons") == [(0,)]
    engine.dispose()


def _run(folder: Path, corpus: Path, db: Path, cache: Path) -> subprocess.Popen[str]:
    command = [
        sys.executable, "-m", "survey", "run", str(folder), "--db", f"sqlite:///{db}", "--classifiers", "",
        "--neurons", "--corpus", str(corpus), "--corpus-tokens", "40000", "--window", "64",
        "--checkpoint-every", "1",
    ]  # fmt: skip
    env = {**os.environ, "INTERP_SURVEY_CACHE": str(cache)}
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


NEURON_ROWS = (
    "SELECT n.layer, n.neuron, n.mean, n.std, n.skew, n.kurtosis, n.max, n.histogram, e.examples, "
    "e.context_acts FROM neurons n JOIN neuron_examples e "
    "ON e.unit_id = n.unit_id AND e.layer = n.layer AND e.neuron = n.neuron ORDER BY 1, 2"
)


def _neuron_rows(db: Path) -> list[tuple]:  # type: ignore[type-arg]
    engine = create_engine(f"sqlite:///{db}")
    result = rows(engine, NEURON_ROWS)
    engine.dispose()
    return result


def assert_same_rows(got: list[tuple], expected: list[tuple]) -> None:  # type: ignore[type-arg]
    """Equal row for row: integers, text and histograms exactly; floats (statistics, example
    activations, float16 contexts) up to the last bits a matmul may round differently when
    the same batch runs in another process."""
    import json

    assert len(got) == len(expected)
    for row, want in zip(got, expected, strict=True):
        assert row[:2] == want[:2] and row[7] == want[7]  # layer, neuron, histogram counts
        np.testing.assert_allclose(row[2:7], want[2:7], rtol=1e-6, atol=1e-9)
        examples, wanted = json.loads(row[8]), json.loads(want[8])
        assert [e[:3] for e in examples] == [e[:3] for e in wanted]  # the same tokens, in order
        np.testing.assert_allclose([e[3] for e in examples], [e[3] for e in wanted], rtol=1e-4, atol=1e-6)
        contexts = np.frombuffer(row[9], dtype="<f2").astype(np.float32)
        np.testing.assert_allclose(contexts, np.frombuffer(want[9], dtype="<f2"), rtol=2e-3, atol=1e-4)


@pytest.mark.slow
def test_a_pass_killed_with_sigkill_resumes_to_the_uninterrupted_result(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    planted_neuron_model().save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    corpus = word_corpus(tmp_path / "words.txt", docs=200, words=600)

    reference = _run(folder, corpus, tmp_path / "ref.db", tmp_path / "cache-ref")
    assert reference.wait(timeout=300) == 0, reference.stdout.read() if reference.stdout else ""

    cache = tmp_path / "cache"
    victim = _run(folder, corpus, tmp_path / "s.db", cache)
    deadline = time.monotonic() + 120
    while (
        not any((cache / "neuron-passes").glob("*.pt"))
        and victim.poll() is None
        and time.monotonic() < deadline
    ):
        time.sleep(0.01)
    time.sleep(0.2)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert victim.returncode == -signal.SIGKILL, "the pass finished before it could be killed"
    (saved,) = list((cache / "neuron-passes").glob("*.pt"))
    batches_done = torch.load(saved, weights_only=False)["batches_done"]
    assert batches_done >= 1

    resumed = _run(folder, corpus, tmp_path / "s.db", cache)
    output = resumed.communicate(timeout=300)[0]
    assert resumed.returncode == 0, output
    assert "resuming after batch" in output
    assert_same_rows(_neuron_rows(tmp_path / "s.db"), _neuron_rows(tmp_path / "ref.db"))
    assert not any((cache / "neuron-passes").glob("*.pt"))  # dropped once stored
