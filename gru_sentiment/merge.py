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
from gru_sentiment.errors import ModelError, UsageError
from gru_sentiment.jobs import DataSpec
from gru_sentiment.model import GRUClassifier


def interpolate(a: Bundle, b: Bundle, weight: float, names: tuple[str, str] = ("A", "B"), command: str = "") -> Bundle:
    """The model (1 - weight) x a + weight x b; `names` say which model is which in errors and in its record."""
    if not 0.0 <= weight <= 1.0:
        raise UsageError(f"the weight of {names[1]} must be between 0 and 1, not {weight}")
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
    with torch.no_grad():  # floating-point tensors interpolated; any other (none today) taken from A
        state = {k: torch.lerp(v, wb[k], weight) if v.is_floating_point() else v for k, v in wa.items()}
    model = GRUClassifier(a.model.config)
    model.load_state_dict(state)
    model.eval()
    kept = ("dataset", "validation", "train_examples", "validation_examples", "config", "data")
    # A's data and carve, only when B held out the same texts: only then is that split validation for the merge
    carve = {k: getattr(a.training, k) for k in kept} if same_carve(a.training, b.training) else {}
    record = RunRecord(
        command=command,
        merged={
            "weight": weight,
            "a": {"model": names[0], **a.training.to_dict()},
            "b": {"model": names[1], **b.training.to_dict()},
        },
        **carve,
    )
    return Bundle(model, a.tokenizer, list(a.labels), a.cut, a.tokenizer_kind, record)


def same_carve(a: RunRecord, b: RunRecord) -> bool:
    """Whether two runs held out the same validation texts: the same data sets, split, carve and carve seed (the
    run's seed unless `--val-seed` was given). Only then is the merged model's validation split that of each of
    them (`bench/val_by_source.py` rebuilds it)."""
    keys = ("datasets", "split", "val_split", "val_fraction", "limit", "val_groups")
    if not a.data or not b.data:
        return False
    seeds = [DataSpec.from_dict(r.data).carve_seed(r.config.get("seed", 0)) for r in (a, b)]
    return all(a.data.get(k) == b.data.get(k) for k in keys) and seeds[0] == seeds[1]
