"""interp-survey: attention-head classifiers and neuron summaries across open causal LMs."""

__version__ = "0.1.0"
