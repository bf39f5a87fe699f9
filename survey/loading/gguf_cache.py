"""GGUF files: assemble parts, verify sha256, dequantize once, cache fp32 safetensors.

Dequantizing takes 15-50 s, so the result is cached as a plain Hugging Face folder
(``config.json``, ``model.safetensors``, tokenizer files) under the user cache dir, keyed by the
GGUF's sha256. A marker file written last makes a half-written cache entry invisible; an
interrupted run leaves only a ``*.partial`` folder that the next run replaces.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from db.common.errors import SurveyError
from db.common.provenance import library_versions
from db.common.settings import cache_root

CACHE_FORMAT = 1
MARKER = "interp-survey-cache.json"
_CHUNK = 1 << 20

# GGUF ``general.architecture`` -> Hugging Face ``model_type``, where they differ.
_GGUF_ARCH_TO_MODEL_TYPE = {"gemma3": "gemma3_text", "phi2": "phi", "gptneox": "gpt_neox"}


def cache_key(sha256: str) -> str:
    """The cache entry's name: the GGUF's sha256 and the versions of the libraries that
    dequantize it (gguf, transformers), so an upgrade that reads the file differently never
    reuses an old entry."""
    versions = library_versions()
    return f"{sha256}-gguf{versions['gguf']}-transformers{versions['transformers']}"


def sha256_of(paths: Iterable[Path], copy_to: Path | None = None) -> str:
    """The sha256 of the concatenated files, optionally writing the concatenation to ``copy_to``."""
    digest = hashlib.sha256()
    with open(copy_to, "wb") if copy_to else open(os.devnull, "wb") as out:
        for path in paths:
            with open(path, "rb") as part:
                while block := part.read(_CHUNK):
                    digest.update(block)
                    if copy_to:
                        out.write(block)
    return digest.hexdigest()


def gguf_model_type(path: Path) -> str:
    """The Hugging Face ``model_type`` a GGUF file declares; SurveyError if it is not a valid GGUF."""
    import gguf

    try:
        reader = gguf.GGUFReader(path)
        arch = str(reader.fields["general.architecture"].contents())
    except (ValueError, KeyError, OSError, IndexError) as exc:
        raise SurveyError(f"corrupt or truncated GGUF file {path}: {exc}") from None
    return _GGUF_ARCH_TO_MODEL_TYPE.get(arch, arch)


def cached_folder(sha256: str) -> Path | None:
    """The complete cache folder for a GGUF sha256, or None when there is none yet."""
    folder = cache_root() / "gguf" / cache_key(sha256)
    try:
        marker = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return folder if marker.get("sha256") == sha256 and marker.get("format") == CACHE_FORMAT else None


def dequantize_to_cache(gguf_path: Path, sha256: str) -> Path:
    """Load a GGUF dequantized to fp32 and write it as a Hugging Face folder in the cache."""
    import torch
    from safetensors.torch import save_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    root = cache_root() / "gguf"
    root.mkdir(parents=True, exist_ok=True)
    final = root / cache_key(sha256)
    partial = Path(tempfile.mkdtemp(prefix=f"{sha256}.", suffix=".partial", dir=root))
    try:
        kwargs = {"gguf_file": gguf_path.name}
        tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(
            gguf_path.parent,
            quantization_config=GgufConfig(dequantize=True),
            dtype=torch.float32,
            attn_implementation="eager",
            **kwargs,
        )
        config = model.config.to_dict()
        config.pop("quantization_config", None)
        (partial / "config.json").write_text(json.dumps(config, indent=2))
        save_model(model, str(partial / "model.safetensors"))  # save_pretrained refuses GGUF models
        tokenizer.save_pretrained(partial)
        marker = {"sha256": sha256, "format": CACHE_FORMAT, "gguf_file": gguf_path.name, **library_versions()}
        (partial / MARKER).write_text(json.dumps(marker))
        shutil.rmtree(final, ignore_errors=True)
        partial.rename(final)
    except SurveyError:
        raise
    except Exception as exc:
        raise SurveyError(f"cannot dequantize GGUF {gguf_path.name}: {type(exc).__name__}: {exc}") from None
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return final


def prepare_gguf(parts: list[Path], expected_sha256: str | None, label: str) -> tuple[Path, str]:
    """Return the cached fp32 folder for a GGUF made of ``parts``, and the GGUF's sha256.

    Parts are concatenated into a scratch file beside the cache and hashed in the same pass; a
    sha256 that differs from ``expected_sha256`` is an error and nothing is cached.
    """
    from survey.adapters import adapter_class

    if expected_sha256 and (folder := cached_folder(expected_sha256)):
        return folder, expected_sha256
    scratch_dir = cache_root() / "gguf"
    scratch_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=scratch_dir, suffix=".assemble") as tmp:
        if len(parts) == 1:
            gguf_path, sha = parts[0], sha256_of(parts)
        else:
            gguf_path = Path(tmp) / "model.gguf"
            sha = sha256_of(parts, copy_to=gguf_path)
        if expected_sha256 and sha != expected_sha256:
            raise SurveyError(
                f"sha256 mismatch for {label}: expected {expected_sha256}, got {sha}; "
                "the files are damaged or not the pinned release, so reinstall the package"
            )
        if folder := cached_folder(sha):
            return folder, sha
        adapter_class(gguf_model_type(gguf_path))  # unsupported architecture fails before the slow part
        return dequantize_to_cache(gguf_path, sha), sha
