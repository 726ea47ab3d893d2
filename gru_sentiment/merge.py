"""Weight interpolation of two classifiers fine-tuned from the same start: (1 - w) x A + w x B, weight by weight.

Two models trained from one pre-trained encoder stay in one basin of the loss, so the points between them are
models too, often better than either on data unlike their training data: WiSE-FT (Wortsman et al., CVPR
2022) interpolates a fine-tuned model with its start, model soups (Wortsman et al., ICML 2022) average
siblings. Here a mixed-domain model can take in some of a single-domain specialist. The result is an
ordinary model: one GRU, whose gates `predict --gates` traces as for any other.

Both models must have the same network, tokenizer and labels; the result reads texts as A does (its cut).
Silent like the rest of the library.
"""

from __future__ import annotations

import torch

from gru_sentiment.checkpoint import Bundle, RunRecord
from gru_sentiment.errors import ModelError
from gru_sentiment.model import GRUClassifier


def interpolate(a: Bundle, b: Bundle, weight: float, names: tuple[str, str] = ("A", "B"), command: str = "") -> Bundle:
    """The model (1 - weight) x a + weight x b; `names` say which model is which in errors and in its record."""
    if not 0.0 <= weight <= 1.0:
        raise ModelError(f"the weight of {names[1]} must be between 0 and 1, not {weight}")
    problem = None
    if a.model.config != b.model.config:
        problem = "their networks differ"
    elif a.tokenizer.to_str() != b.tokenizer.to_str():
        problem = "their tokenizers differ"
    elif list(a.labels) != list(b.labels):
        problem = f"their labels differ ({', '.join(a.labels)} against {', '.join(b.labels)})"
    if problem:
        raise ModelError(f"{names[0]} and {names[1]} cannot be merged: {problem}")
    wa, wb = a.model.state_dict(), b.model.state_dict()
    with torch.no_grad():
        state = {k: torch.lerp(wa[k].float(), wb[k].float(), weight).to(wa[k].dtype) for k in wa}
    model = GRUClassifier(a.model.config)
    model.load_state_dict(state)
    model.eval()
    made = a.training
    record = RunRecord(
        command=command,
        dataset=made.dataset,
        validation=made.validation,
        train_examples=made.train_examples,
        validation_examples=made.validation_examples,
        config=made.config,
        data=made.data,
        merged={
            "weight": weight,
            "a": {"model": names[0], **a.training.to_dict()},
            "b": {"model": names[1], **b.training.to_dict()},
        },
    )
    return Bundle(model, a.tokenizer, list(a.labels), a.cut, a.tokenizer_kind, record)
