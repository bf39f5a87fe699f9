"""Whether a catalog entry can be loaded on this machine now, and if not, why."""

from __future__ import annotations

import os
from dataclasses import dataclass

from db.common.errors import SurveyError
from survey.catalog import CatalogEntry, HubEntry, RegistryEntry
from survey.loading.gguf_cache import cached_folder

_GIB = 1 << 30
# Peak RSS per fp32 parameter byte, measured: dequantizing a GGUF peaks near 3x the fp32 size
# (Gemma 3 270M: 3.3 GB), a plain safetensors load near 1.5x.
_PEAK_FACTOR = {"registry": 3.0, "hub": 1.5}


@dataclass(frozen=True)
class Availability:
    """A yes/no and the one-line reason."""

    loadable: bool
    reason: str


def total_memory_bytes() -> int:
    """Physical memory of this machine."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _memory_check(entry: CatalogEntry, cached: bool) -> Availability | None:
    factor = 1.5 if cached else _PEAK_FACTOR[entry.source]
    needed = entry.params * 4 * factor + 0.5 * _GIB
    have = total_memory_bytes()
    if needed > have:
        return Availability(
            False, f"needs ~{needed / _GIB:.0f} GiB RAM in fp32, this machine has {have / _GIB:.0f}"
        )
    return None


def availability(entry: CatalogEntry) -> Availability:
    """Can ``entry`` be loaded here now? Checks packages, local caches and memory; never the network."""
    if isinstance(entry, RegistryEntry):
        try:
            entry.part_paths()
        except SurveyError:
            return Availability(False, f"package missing: {entry.install_command()}")
        cached = cached_folder(entry.sha256) is not None
        return _memory_check(entry, cached) or Availability(
            True, "cached fp32" if cached else "package installed"
        )
    if isinstance(entry, HubEntry):
        from huggingface_hub import try_to_load_from_cache

        hit = try_to_load_from_cache(entry.hub_id, "config.json", revision=entry.revision)
        if not isinstance(hit, str):
            return Availability(False, "not in the local HF cache; needs a hub download")
        return _memory_check(entry, True) or Availability(True, "in the local HF cache")
    raise TypeError(f"unknown catalog entry type {type(entry).__name__}")
