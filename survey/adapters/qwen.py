"""Qwen 1.5/2/2.5 (``qwen2``: q/k/v biases) and Qwen3 (per-head q/k RMSNorm)."""

from survey.adapters.base import ArchitectureAdapter


class Qwen2Adapter(ArchitectureAdapter):
    """Qwen1.5, Qwen2, Qwen2.5: the Llama layout with biases on q, k and v."""

    model_types = ("qwen2",)


class Qwen3Adapter(ArchitectureAdapter):
    """Qwen3: q_norm/k_norm act after the projections, so W_Q/W_K give the pre-norm q/k."""

    model_types = ("qwen3",)


ADAPTERS = (Qwen2Adapter, Qwen3Adapter)
