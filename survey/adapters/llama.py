"""Llama and Mistral: pre-norm decoder, RMSNorm, gated SiLU MLP, GQA."""

from survey.adapters.base import ArchitectureAdapter


class LlamaAdapter(ArchitectureAdapter):
    """Llama 1/2/3, SmolLM2, CodeLlama."""

    model_types = ("llama",)


class MistralAdapter(ArchitectureAdapter):
    """Mistral: the Llama layout with sliding-window attention."""

    model_types = ("mistral",)


ADAPTERS = (LlamaAdapter, MistralAdapter)
