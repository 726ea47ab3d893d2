"""Pre-training the embedding and GRU as a language model (`pretrain`): the encoder a classifier starts from."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from tokenizers import Tokenizer

from gru_sentiment import __version__, checkpoint, tokenizer
from gru_sentiment import data as data_mod
from gru_sentiment.errors import DataError
from gru_sentiment.jobs_train import ModelSettings, TokenizerSettings, load_tokenizer
from gru_sentiment.loop import Eval, History, StepInfo
from gru_sentiment.model import GRUClassifier, ModelConfig
from gru_sentiment.pretrain import LanguageModel, PretrainConfig, fit_lm, frequency_rank


@dataclass(frozen=True)
class PretrainJob:
    """Everything `gru-sentiment pretrain` was asked to do."""

    sources: tuple[tuple[str, str], ...]  # (data set, split) pairs; labels are ignored
    output: str
    config: PretrainConfig = PretrainConfig()
    model: ModelSettings = ModelSettings()
    tokenizer: TokenizerSettings = TokenizerSettings()
    tokenizer_from: str | None = None
    text_column: str | None = None
    val_size: int = 1000
    command: str = ""


def pretrain_encoder(
    sources: list[tuple[str, str]],
    tok_settings: TokenizerSettings,
    model_settings: dict,
    config: PretrainConfig,
    output: str,
    device: torch.device,
    val_size: int = 1000,
    text_column: str | None = None,
    tok: Tokenizer | None = None,
    command: str = "",
    on_step: Callable[[StepInfo], None] | None = None,
    on_eval: Callable[[Eval], None] | None = None,
) -> tuple[checkpoint.Encoder, History]:
    """Pre-train an embedding and GRU stack as a language model on the texts of `sources` ((data set, split)
    pairs; labels ignored) and write it to `output` (atomically, whenever validation perplexity improves).

    `val_size` texts, drawn with the seed, are held out to measure perplexity. The tokenizer is learned from
    the training texts unless one is given.
    """
    parts = [data_mod.load_texts(spec, split, text_column) for spec, split in sources]
    order = list(range(sum(len(p) for p in parts)))
    random.Random(config.seed).shuffle(order)
    if not 0 < val_size < len(order):
        raise DataError(f"{len(order)} texts cannot hold out {val_size} for validation (--val-size)")
    val_index, train_index = order[:val_size], order[val_size:]
    texts = [t for p in parts for t in p.texts]
    start = time.perf_counter()
    tok = tok_settings.learn([texts[i] for i in train_index]) if tok is None else tok_settings.adapt(tok)
    tokenizer_seconds = time.perf_counter() - start
    seqs = [ids for p in parts for ids in tokenizer.encode_data(p, tok, tok_settings.cut)]
    train_seqs, val_seqs = [seqs[i] for i in train_index], [seqs[i] for i in val_index]
    torch.manual_seed(config.seed)
    encoder = GRUClassifier(
        ModelConfig(
            vocab_size=tok.get_vocab_size(), num_labels=1, pad_id=tok.token_to_id(tokenizer.PAD), **model_settings
        )
    )
    lm = LanguageModel(encoder, frequency_rank(train_seqs, tok.get_vocab_size()), config.cutoffs)
    record = {
        "data": [f"{spec}:{split}" for spec, split in sources],
        "train_texts": len(train_seqs),
        "validation_texts": len(val_seqs),
        "config": config.to_dict(),
        "package_version": __version__,
        "dropout": encoder.config.dropout,
        "tokenizer_seconds": round(tokenizer_seconds, 1),
        "command": command,
    }

    def save(history: History) -> None:
        best = history.best
        record.update(
            best={"step": best.step, "val_loss": best.loss, "val_perplexity": best.perplexity},
            steps=history.steps,
            seconds=round(history.seconds, 1),
            tokens=history.tokens,
        )
        checkpoint.save_encoder(
            checkpoint.Encoder.of(encoder, tok, tok_settings.max_length, tok_settings.kind, record), output
        )

    history = fit_lm(lm, train_seqs, val_seqs, config, device, on_step, on_eval, save)
    record.update(
        steps=history.steps,
        seconds=round(history.seconds, 1),
        tokens=history.tokens,
        tokens_per_s=round(history.tokens / history.seconds) if history.seconds else None,
    )
    result = checkpoint.Encoder.of(encoder, tok, tok_settings.max_length, tok_settings.kind, record)
    checkpoint.save_encoder(result, output)
    return result, history


def run_pretrain(
    job: PretrainJob,
    device: torch.device,
    on_step: Callable[[StepInfo], None] | None = None,
    on_eval: Callable[[Eval], None] | None = None,
) -> tuple[checkpoint.Encoder, History]:
    """Pre-train an encoder as `job` says and write its directory."""
    tok = load_tokenizer(job.tokenizer_from) if job.tokenizer_from else None
    settings = {k: v for k, v in job.model.to_dict().items() if k != "pooling"}
    return pretrain_encoder(
        list(job.sources),
        job.tokenizer,
        settings,
        job.config,
        job.output,
        device,
        job.val_size,
        job.text_column,
        tok,
        job.command,
        on_step,
        on_eval,
    )
