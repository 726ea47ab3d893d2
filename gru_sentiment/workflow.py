"""The train and evaluate jobs, end to end, as library calls: data -> tokenizer -> model -> fit -> model directory.

Silent like the rest of the library; the CLI passes callbacks to show progress.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from tokenizers import Tokenizer

from gru_sentiment import __version__, checkpoint, tokenizer
from gru_sentiment.data import TextData
from gru_sentiment.errors import DataError, UsageError
from gru_sentiment.model import GRUClassifier, ModelConfig
from gru_sentiment.train import EvalInfo, History, StepInfo, TrainConfig, evaluate, fit


@dataclass(frozen=True)
class TokenizerSettings:
    kind: str = "wordpiece"
    vocab_size: int = 20000
    max_length: int | None = 400


def carve_validation(data: TextData, fraction: float, seed: int) -> tuple[TextData, TextData]:
    """Split off a stratified-by-shuffle validation share of `data` (at least one example)."""
    if not 0.0 < fraction < 1.0:
        raise UsageError(f"--val-fraction must be between 0 and 1, not {fraction}")
    order = list(range(len(data)))
    random.Random(seed).shuffle(order)
    n_val = max(1, round(len(order) * fraction))
    if n_val >= len(order):
        raise DataError(f"{data.source}: {len(order)} examples are too few to carve a validation split")
    val_idx, train_idx = order[:n_val], order[n_val:]

    def subset(idx, source):
        return TextData([data.texts[i] for i in idx], [data.labels[i] for i in idx], data.label_names, source)

    held_out = f"{data.source} (held out: {fraction:g}, seed {seed})"
    return subset(train_idx, f"{data.source} (rest)"), subset(val_idx, held_out)


def check_trainable(data: TextData) -> None:
    classes = set(data.labels)
    if len(classes) < 2:
        only = data.label_names[next(iter(classes))] if classes else "none"
        raise DataError(f"{data.source}: training needs at least two classes, found only '{only}'")


def train_model(train: TextData, val: TextData, tok_settings: TokenizerSettings, model_settings: dict,
                config: TrainConfig, output: str, device: torch.device, meta: dict | None = None,
                on_step: Callable[[StepInfo], None] | None = None,
                on_eval: Callable[[EvalInfo], None] | None = None,
                tok: Tokenizer | None = None) -> tuple[checkpoint.Bundle, History]:
    """Train tokenizer (unless one is given) and model; write the model directory at every validation
    improvement (atomically).

    `tokenizers`' trainers break frequency ties at the vocabulary cut-off in hash order, which differs between
    processes: two runs may disagree on a few rare tokens. Pass a tokenizer to make a run exactly repeatable.
    """
    check_trainable(train)
    start = time.perf_counter()
    if tok is None:
        tok = tokenizer.train(train.texts, tok_settings.kind, tok_settings.vocab_size)
    train_ids = tokenizer.encode_ids(tok, train.texts, tok_settings.max_length)
    val_ids = tokenizer.encode_ids(tok, val.texts, tok_settings.max_length)
    model_config = ModelConfig(vocab_size=tok.get_vocab_size(), num_labels=len(train.label_names),
                               pad_id=tok.token_to_id(tokenizer.PAD), **model_settings)
    torch.manual_seed(config.seed)
    model = GRUClassifier(model_config)
    training = {"dataset": train.source, "validation": val.source, "train_examples": len(train),
                "validation_examples": len(val), "config": config.to_dict(), "package_version": __version__,
                **(meta or {})}
    bundle = checkpoint.Bundle(model, tok, list(train.label_names), tok_settings.max_length, tok_settings.kind,
                               training)

    def saving_eval(info: EvalInfo) -> None:
        if info.improved:
            training["best"] = {"epoch": info.epoch, "step": info.step, "val_accuracy": info.accuracy,
                                "val_macro_f1": info.macro_f1, "val_loss": info.loss}
            training["seconds"] = round(time.perf_counter() - start, 1)
            checkpoint.save(bundle, output)
        if on_eval:
            on_eval(info)

    history = fit(model, (train_ids, train.labels), (val_ids, val.labels), train.label_names, config, device,
                  on_step, saving_eval)
    training["steps"], training["seconds"] = history.steps, round(time.perf_counter() - start, 1)
    training["tokens_per_s"] = round(history.tokens / history.seconds) if history.seconds else None
    training["stopped_early"] = history.stopped_early
    checkpoint.save(bundle, output)  # same best weights, final training record
    return bundle, history


def evaluate_model(bundle: checkpoint.Bundle, data: TextData, batch_size: int = 128,
                   device: torch.device = torch.device("cpu")) -> dict:
    """Metrics of a trained model on labelled data whose labels it knows."""
    unknown = sorted(set(data.label_names[i] for i in set(data.labels)) - set(bundle.labels))
    if unknown:
        raise DataError(f"{data.source}: labels the model was not trained on: {', '.join(unknown[:5])} "
                        f"(model labels: {', '.join(bundle.labels)})")
    index = {name: i for i, name in enumerate(bundle.labels)}
    labels = [index[data.label_names[i]] for i in data.labels]
    ids = tokenizer.encode_ids(bundle.tokenizer, data.texts, bundle.max_length)
    report, _ = evaluate(bundle.model.to(device), ids, labels, bundle.labels, batch_size, device)
    return report


def load_tokenizer(path) -> Tokenizer:
    """A tokenizer.json, or the tokenizer of a model directory."""
    from pathlib import Path

    from gru_sentiment.errors import ModelError

    path = Path(path)
    file = path / "tokenizer.json" if path.is_dir() else path
    if not file.is_file():
        raise ModelError(f"no tokenizer at {file}")
    try:
        tok = tokenizer.load(str(file))
    except Exception as exc:
        raise ModelError(f"{file} is not a valid tokenizer: {str(exc).splitlines()[0]}") from exc
    if tok.token_to_id(tokenizer.PAD) is None or tok.token_to_id(tokenizer.UNK) is None:
        raise ModelError(f"{file} lacks the {tokenizer.PAD} and {tokenizer.UNK} tokens")
    return tok
