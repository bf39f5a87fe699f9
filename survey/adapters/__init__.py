"""Architecture adapters, registered by Hugging Face ``model_type``."""

from __future__ import annotations

from transformers import PreTrainedModel

from db.common.errors import SurveyError
from survey.adapters import gemma, gpt2, gpt_neo, gpt_neox, gptj, llama, olmo, opt, phi, qwen
from survey.adapters.base import ArchitectureAdapter, Dims, HeadWeights, NeuronWeights, Projection

_REGISTRY: dict[str, type[ArchitectureAdapter]] = {}


def register_adapter(cls: type[ArchitectureAdapter]) -> type[ArchitectureAdapter]:
    """Register an adapter class for each of its ``model_types``; a name registered twice raises."""
    for model_type in cls.model_types:
        if model_type in _REGISTRY:
            raise ValueError(f"adapter for {model_type!r} registered twice")
        _REGISTRY[model_type] = cls
    return cls


for _module in (gpt2, gpt_neox, gptj, gpt_neo, opt, llama, qwen, gemma, phi, olmo):
    for _cls in _module.ADAPTERS:
        register_adapter(_cls)


def supported_model_types() -> list[str]:
    """Every ``model_type`` with an adapter, sorted."""
    return sorted(_REGISTRY)


def adapter_class(model_type: str) -> type[ArchitectureAdapter]:
    """The adapter class for a ``model_type``, or a SurveyError naming the supported ones."""
    try:
        return _REGISTRY[model_type]
    except KeyError:
        raise SurveyError(
            f"unsupported architecture {model_type!r}; supported: {', '.join(supported_model_types())}"
        ) from None


def adapt(model: PreTrainedModel) -> ArchitectureAdapter:
    """Wrap a loaded Hugging Face causal LM in its family adapter."""
    return adapter_class(model.config.model_type)(model)


__all__ = [
    "ArchitectureAdapter",
    "Dims",
    "HeadWeights",
    "NeuronWeights",
    "Projection",
    "adapt",
    "adapter_class",
    "register_adapter",
    "supported_model_types",
]
