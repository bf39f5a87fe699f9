"""Head classifiers, neuron summaries, layer summaries and validations.

Everything here is a pure function of captured tensors and weights: it never loads a model and
never writes to the database. The classifier registry arrives with the head classifiers.
"""
