"""gru-sentiment: train, evaluate and look inside a GRU sentiment classifier.

    import gru_sentiment

    clf = gru_sentiment.load()  # the shipped model; load("path/to/model", device="cpu") for another
    clf.predict(["Great hotel.", "Never again."])

See `gru_sentiment.api`. Importing the package is cheap: torch is imported by `load`.
"""

__version__ = "0.1.0"

from gru_sentiment.api import Classifier, Explanation, Prediction, load  # noqa: E402

__all__ = ["Classifier", "Explanation", "Prediction", "load", "__version__"]
