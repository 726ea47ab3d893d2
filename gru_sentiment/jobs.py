"""The jobs the commands run, end to end, as library calls: data -> tokenizer -> model -> fit -> model directory.

Each command parses its options into one typed job (`TrainJob`, `PretrainJob`) and hands it to one call
(`run_train`, `run_pretrain`); `evaluate_model` and `predicted_labels` serve `evaluate` and the benchmarks.
The work is in `jobs_data` (the texts and the carve), `jobs_train` (training runs, resume, streams) and
`jobs_pretrain`; this module checks a job, runs it, and names everything public in one place.
Silent like the rest of the library; the CLI passes callbacks to show progress.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from gru_sentiment import batching, checkpoint, tokenizer
from gru_sentiment import data as data_mod
from gru_sentiment.data import TextData
from gru_sentiment.distributed import Dist
from gru_sentiment.errors import DataError, UsageError
from gru_sentiment.jobs_data import (
    DataSpec,
    check_init_carve,
    check_trainable,
    load_training_data,
    short_names,
    split_source,
    unlabelled_texts,
)
from gru_sentiment.jobs_pretrain import PretrainJob, pretrain_encoder, run_pretrain
from gru_sentiment.jobs_train import (
    ModelSettings,
    TokenizerSettings,
    init_settings,
    load_tokenizer,
    resume_model,
    train_model,
    train_streaming,
)
from gru_sentiment.loop import Eval, History, StepInfo
from gru_sentiment.metrics import report
from gru_sentiment.sources import mix_counts
from gru_sentiment.splits import sentence_weights
from gru_sentiment.streaming import open_stream
from gru_sentiment.train import TrainConfig

__all__ = [  # the jobs' public names, wherever they are defined
    "DataSpec", "ModelSettings", "PretrainJob", "StreamSettings", "TokenizerSettings", "TrainJob",
    "check_init_carve", "check_train_job", "check_trainable", "evaluate_model", "init_settings", "load_tokenizer",
    "load_training_data", "predicted_labels", "pretrain_encoder", "resume_model", "run_pretrain", "run_train",
    "split_source", "train_model", "train_streaming", "unlabelled_texts",
]  # fmt: skip


@dataclass(frozen=True)
class StreamSettings:
    """`train --streaming`: rows the tokenizer learns from, rows in the shuffle buffer, validation rows (when
    the data set has no validation split)."""

    tokenizer_sample: int = 10000
    shuffle_buffer: int = 10000
    val_size: int = 1000


@dataclass(frozen=True)
class TrainJob:
    """Everything `gru-sentiment train` was asked to do."""

    data: DataSpec
    output: str
    config: TrainConfig = TrainConfig()
    model: ModelSettings = ModelSettings()
    tokenizer: TokenizerSettings = TokenizerSettings()
    tokenizer_from: str | None = None  # reuse this tokenizer (a tokenizer.json or a model directory)
    init_from: str | None = None  # start from this pre-trained encoder directory
    streaming: StreamSettings | None = None  # read the training split as a stream
    command: str = ""


def check_train_job(job: TrainJob, dist: Dist | None = None) -> None:
    """Refuse a job whose options cannot work, before any data is read: what the options alone decide (the
    validation share, what streaming allows, --mix and --sentence-weight against the data sets given,
    --label-map), and that the tokenizer and teacher pool it names can be read."""
    spec, config = job.data, job.config
    cut = job.tokenizer
    if cut.max_length is not None and cut.tail > cut.max_length:
        raise UsageError(f"tokenizer.tail {cut.tail} does not fit in tokenizer.max_length {cut.max_length}")
    if (spec.val_split or job.streaming is not None) and (
        spec.val_seed is not None or spec.val_fraction != DataSpec.val_fraction
    ):
        raise UsageError(
            "data.val_fraction and data.val_seed carve validation from train: not with a validation"
            " split (--val-split) or --streaming"
        )
    plain = TrainConfig()
    distilling = (config.distill_weight, config.distill_temperature) != (
        plain.distill_weight,
        plain.distill_temperature,
    )
    if distilling and not spec.teacher_pool:
        raise UsageError("train.distill_weight and train.distill_temperature need a teacher pool (--teacher-pool)")
    if not 0.0 <= spec.val_fraction < 1.0:
        raise UsageError(f"data.val_fraction must be between 0 and 1 (or 0: no validation), not {spec.val_fraction}")
    if job.streaming is not None:
        needs_memory = {
            "data.teacher_pool": spec.teacher_pool,
            "data.sentence_weight": spec.sentence_weight,
            "data.train_only": spec.train_only,
            "train.vat": config.vat,
            "train.entmin": config.entmin,
            "data.label_map": spec.label_map,
        }
        given = [key for key, value in needs_memory.items() if value]
        if given:
            raise UsageError(f"{given[0]} needs the training texts in memory: not with stream.enabled (--streaming)")
        if config.max_steps is None or spec.limit or len(spec.datasets) != 1:
            raise UsageError("stream.enabled (--streaming) needs train.max_steps and one data set, and no data.limit")
    if config.adversarial.active and dist is not None:
        raise UsageError("train.adv, train.vat and train.entmin run in a single process, not under torchrun")
    pool = (spec.teacher_pool,) if spec.teacher_pool else ()
    sources = short_names(spec.datasets + tuple(split_source(s)[0] for s in spec.train_only) + pool)
    try:
        mix_counts([1] * len(sources), spec.mix)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    sentence_weights(spec.sentence_weight, sources)
    data_mod.parse_label_map(spec.label_map)
    if job.tokenizer_from:
        load_tokenizer(job.tokenizer_from)
    if spec.teacher_pool and not Path(spec.teacher_pool).exists():
        raise DataError(f"no such teacher pool: {spec.teacher_pool}")


def run_train(
    job: TrainJob,
    device: torch.device,
    on_step: Callable[[StepInfo], None] | None = None,
    on_eval: Callable[[Eval], None] | None = None,
    on_data: Callable[[str], None] | None = None,
    dist: Dist | None = None,
    encoder: checkpoint.Encoder | None = None,
) -> tuple[checkpoint.Bundle, History]:
    """Load the data, train, and write the model directory (after every validation); `on_data` hears one line
    on the data once it is loaded. `encoder`: the `job.init_from` encoder, when the caller has read it already."""
    spec, config = job.data, job.config
    check_train_job(job, dist)
    tok = load_tokenizer(job.tokenizer_from) if job.tokenizer_from else None
    init = encoder or (checkpoint.load_encoder(job.init_from) if job.init_from else None)
    say = on_data or (lambda line: None)
    if job.streaming is not None:
        names = list(spec.label_names) if spec.label_names else None
        stream = open_stream(
            spec.datasets[0], spec.split, spec.text_column, spec.label_column, names, job.streaming.tokenizer_sample
        )
        val = (
            data_mod.load(spec.datasets[0], spec.val_split, spec.text_column, spec.label_column, stream.label_names)
            if spec.val_split
            else None
        )
        say(f"streaming {stream.source}, labels {', '.join(stream.label_names)}")
        s = job.streaming
        return train_streaming(
            stream,
            val,
            s.val_size,
            job.tokenizer,
            job.model.to_dict(),
            config,
            job.output,
            device,
            s.tokenizer_sample,
            s.shuffle_buffer,
            job.command,
            on_step,
            on_eval,
            tok,
            dist,
            init,
        )
    check_init_carve(init, spec, config.seed)
    train, val = load_training_data(spec, config.seed)
    unlabelled = f", {len(train.unlabelled):,} without a label" if train.unlabelled else ""
    say(f"{len(train):,} training and {len(val):,} validation texts{unlabelled}, labels {', '.join(train.label_names)}")
    return train_model(
        train,
        val,
        job.tokenizer,
        job.model.to_dict(),
        config,
        job.output,
        device,
        job.command,
        on_step,
        on_eval,
        tok,
        spec,
        dist,
        init,
    )


def predicted_labels(
    bundle: checkpoint.Bundle, data: TextData, batch_size: int = 128, device: torch.device = torch.device("cpu")
) -> tuple[list[int], list[int]]:
    """(true, predicted) label indices, in the model's label order, for labelled data whose labels it knows."""
    unknown = sorted(set(data.label_names[i] for i in set(data.labels)) - set(bundle.labels))
    if unknown:
        raise DataError(
            f"{data.source}: labels the model was not trained on: {', '.join(unknown[:5])} "
            f"(model labels: {', '.join(bundle.labels)})"
        )
    index = {name: i for i, name in enumerate(bundle.labels)}
    labels = [index[data.label_names[i]] for i in data.labels]
    ids = tokenizer.encode_data(data, bundle.tokenizer, bundle.cut)
    model = bundle.model.to(device).eval()
    return labels, batching.logits_for(model, ids, batch_size, device).argmax(-1).tolist()


def evaluate_model(
    bundle: checkpoint.Bundle, data: TextData, batch_size: int = 128, device: torch.device = torch.device("cpu")
) -> dict:
    """Metrics of a trained model on labelled data whose labels it knows."""
    labels, predicted = predicted_labels(bundle, data, batch_size, device)
    return report(labels, predicted, bundle.labels)
