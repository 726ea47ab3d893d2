"""gru-sentiment: train, evaluate and look inside a GRU sentiment classifier."""

__version__ = "0.1.0"
