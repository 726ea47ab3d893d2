"""Training a classifier: tokenizer and model made (or taken from an encoder), batches and objective set up, the
one loop run, and the model directory written after every validation; resumed exactly after an interruption."""

from __future__ import annotations

import hashlib
import itertools
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer

from gru_sentiment import checkpoint, distributed, tokenizer
from gru_sentiment.checkpoint import RunRecord
from gru_sentiment.data import TextData
from gru_sentiment.distributed import Dist
from gru_sentiment.errors import ModelError, UsageError
from gru_sentiment.jobs_data import DataSpec, check_trainable, load_training_data, unlabelled_texts
from gru_sentiment.loop import Eval, History, StepInfo, fit
from gru_sentiment.model import GRUClassifier, ModelConfig
from gru_sentiment.sources import InMemoryBatches, UnlabelledPool, mix_counts
from gru_sentiment.splits import sentence_weights, whole_text_repeats
from gru_sentiment.streaming import BatchStream, TextStream
from gru_sentiment.train import TrainConfig, loss_function, validator


@dataclass(frozen=True)
class TokenizerSettings:
    """The tokenizer options of a job, as the command line gives them; `cut` is what the model reads of a text."""

    kind: str = "wordpiece"
    vocab_size: int = 20000
    max_length: int | None = 400
    tail: int = 0  # of a longer text, the tokens kept from its end (the rest of max_length from its start)
    split_negations: bool = False  # "doesn't" read as "does n't" (tokenizer.with_split_negations)

    @property
    def cut(self) -> tokenizer.Cut:
        return tokenizer.Cut(self.max_length, self.tail)

    def learn(self, texts: list[str]) -> Tokenizer:
        """A tokenizer of these settings, learned from `texts`."""
        return tokenizer.train(texts, self.kind, self.vocab_size, split_negations=self.split_negations)

    def adapt(self, tok: Tokenizer) -> Tokenizer:
        """A tokenizer given (`--tokenizer-from`, `--init-from`) as these settings read text: with
        `split_negations`, a copy that splits "n't" off (same vocabulary); else `tok` as it is."""
        split = self.split_negations and not tokenizer.splits_negations(tok)
        return tokenizer.with_split_negations(tok) if split else tok


@dataclass(frozen=True)
class ModelSettings:
    """The `ModelConfig` fields a user chooses (the rest follow from the tokenizer and the labels), with its
    defaults."""

    embed_dim: int = ModelConfig.embed_dim
    hidden_size: int = ModelConfig.hidden_size
    num_layers: int = ModelConfig.num_layers
    bidirectional: bool = ModelConfig.bidirectional
    dropout: float = ModelConfig.dropout
    pooling: str = ModelConfig.pooling

    def to_dict(self) -> dict:
        return asdict(self)


def load_tokenizer(path) -> Tokenizer:
    """A tokenizer.json, or the tokenizer of a model directory."""
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


def train_model(
    train: TextData,
    val: TextData,
    tok_settings: TokenizerSettings,
    model_settings: dict,
    config: TrainConfig,
    output: str,
    device: torch.device,
    command: str = "",
    on_step: Callable[[StepInfo], None] | None = None,
    on_eval: Callable[[Eval], None] | None = None,
    tok: Tokenizer | None = None,
    data_spec: DataSpec | None = None,
    dist: Dist | None = None,
    init: checkpoint.Encoder | None = None,
) -> tuple[checkpoint.Bundle, History]:
    """Train tokenizer (unless one is given) and model; after every validation, write the model directory
    (atomically) with the best weights so far and the state to resume from.

    `tokenizers`' trainers break frequency ties at the vocabulary cut-off in hash order, which differs between
    processes: two runs may disagree on a few rare tokens. Pass a tokenizer to make a run exactly repeatable.
    Under torchrun (`dist`), rank 0 learns the tokenizer and sends it to the others, and only rank 0 writes.
    """
    check_trainable(train)
    training = RunRecord(
        command=command,
        dataset=train.source,
        validation=val.source,
        train_examples=len(train),
        validation_examples=len(val),
        config=config.to_dict(),
        data=asdict(data_spec) if data_spec else None,
    )
    bundle = _new_bundle(
        lambda: train.texts, train.label_names, tok_settings, model_settings, config, tok, dist, training, init
    )
    return bundle, _run(bundle, train, val, config, output, device, on_step, on_eval, dist=dist, spec=data_spec)


def _new_bundle(
    sample_texts: Callable[[], list[str]],
    label_names: list[str],
    tok_settings: TokenizerSettings,
    model_settings: dict,
    config: TrainConfig,
    tok: Tokenizer | None,
    dist: Dist | None,
    training: RunRecord,
    init: checkpoint.Encoder | None = None,
) -> checkpoint.Bundle:
    """A fresh model and its tokenizer: the one given, or one learned from `sample_texts()` (on rank 0 only,
    then sent to the other ranks). With `init`, the pre-trained encoder's tokenizer, embedding and GRUs, and a
    new classifier head."""
    start = time.perf_counter()
    if init is not None:
        tok, model_settings = init.tokenizer, {**model_settings, **init_settings(init)}
        carried = ("command", "best", "seconds", "tokens", "init_from", "merged")
        training.init_from = {"encoder": init.source, **{k: v for k in carried if (v := init.pretraining.get(k))}}
    if tok is None and (dist is None or dist.is_main):
        tok = tok_settings.learn(sample_texts())
    elif tok is not None:
        tok = tok_settings.adapt(tok)
    if dist is not None:
        tok = Tokenizer.from_str(distributed.broadcast_text(tok.to_str() if dist.is_main else None))
    training.tokenizer_seconds = round(time.perf_counter() - start, 1)
    model_config = ModelConfig(
        vocab_size=tok.get_vocab_size(),
        num_labels=len(label_names),
        pad_id=tok.token_to_id(tokenizer.PAD),
        **model_settings,
    )
    torch.manual_seed(config.seed)
    model = GRUClassifier(model_config)
    if init is not None:
        missing, unexpected = model.load_state_dict(init.state, strict=False)
        if unexpected or any(not name.startswith("head.") for name in missing):
            raise ModelError("the pre-trained encoder does not fit this model")
    return checkpoint.Bundle(
        model,
        tok,
        list(label_names),
        tok_settings.cut,
        init.tokenizer_kind if init else tok_settings.kind,
        training,
    )


def init_settings(init: checkpoint.Encoder) -> dict:
    """The model settings a pre-trained encoder fixes (the rest, such as pooling and dropout, stay free)."""
    return {k: v for k, v in init.settings.items() if k not in ("vocab_size", "pad_id")}


def resume_model(
    output: str,
    device: torch.device,
    on_step: Callable[[StepInfo], None] | None = None,
    on_eval: Callable[[Eval], None] | None = None,
) -> tuple[checkpoint.Bundle, History]:
    """Continue an interrupted `train` from the state saved in its model directory, exactly."""
    if distributed.from_env() is not None:
        raise UsageError("--resume runs in a single process: a distributed run keeps no resume state")
    bundle = checkpoint.load(output, device)
    snapshot = checkpoint.load_snapshot(output)
    training = bundle.training
    if not training.data:
        raise UsageError(f"{output} does not record its training data, so it cannot be resumed")
    spec = DataSpec.from_dict(training.data)
    config = TrainConfig.from_dict(training.config)
    train, val = load_training_data(spec, config.seed)
    if len(val) != training.validation_examples:
        raise ModelError(
            f"{output}: its validation split comes out at {len(val):,} texts, not the {training.validation_examples:,}"
            " it was trained with (the data or the carve changed), so it cannot be resumed exactly"
        )
    best = {k: v.detach().clone() for k, v in bundle.model.state_dict().items()}
    history = _run(bundle, train, val, config, output, device, on_step, on_eval, snapshot, best, spec=spec)
    return bundle, history


def _source_and_loss(
    bundle: checkpoint.Bundle,
    train: TextData | BatchStream,
    config: TrainConfig,
    spec: DataSpec | None,
    dist: Dist | None,
):
    """The loop's batch source (mixed as `spec.mix` says, with the teacher's logits where the texts have them) and
    the objective (with AT/VAT as `config` says)."""
    if config.adversarial.active and dist is not None:
        raise UsageError("train.adv, train.vat and train.entmin run in a single process, not under torchrun")
    if isinstance(train, BatchStream):
        if config.adversarial.needs_unlabelled or (spec is not None and spec.teacher_pool):
            raise UsageError("VAT, entropy minimisation and a teacher pool need the training texts in memory")
        return train, loss_function(bundle.model, config)
    tok, cut, pad_id = bundle.tokenizer, bundle.cut, bundle.model.config.pad_id
    seqs = tokenizer.encode_data(train, tok, cut)
    names, groups = train.group_names or [train.source], train.groups or [0] * len(train)
    sizes = [groups.count(g) for g in range(len(names))]
    counts = None
    if spec is not None and spec.mix:
        try:
            counts = mix_counts(sizes, spec.mix)
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
        bundle.training.mix = dict(zip(names, counts))
    targets = None
    if train.teacher is not None:
        missing = [float("nan")] * len(bundle.labels)
        targets = torch.tensor([x if x is not None else missing for x in train.teacher], dtype=torch.float32)
        record = {
            "pool": spec.teacher_pool if spec is not None else None,
            "texts_with_logits": int((~targets.isnan().any(-1)).sum()),
            "without_gold_label": sum(y < 0 for y in train.labels),
            "logits_sha256": hashlib.sha256(targets.numpy().tobytes()).hexdigest(),
        }
        before = bundle.training.teacher_pool
        if before is not None and before != record:  # a resumed run must learn from the very logits it started with
            raise ModelError(f"the teacher pool {record['pool']} has changed since this run started: cannot resume")
        bundle.training.teacher_pool = record
    repeats = None
    if spec is not None and spec.sentence_weight:
        weights = sentence_weights(spec.sentence_weight, names)
        repeats = whole_text_repeats(train.texts, groups, weights)
        counts = counts or sizes  # repeats weigh draws within a data set; its share stays
        lifted = [g for g, r in zip(groups, repeats) if r > 1]
        bundle.training.sentence_weight = {
            names[g]: {"weight": w, "whole_texts": lifted.count(g)} for g, w in weights.items()
        }
    source = InMemoryBatches(seqs, train.labels, config.batch_size, pad_id, train.groups, counts, targets, repeats)
    pool = None
    if config.adversarial.needs_unlabelled:
        extra = unlabelled_texts(spec, train)[len(train) :] if spec is not None else train.unlabelled
        pool = UnlabelledPool(
            [*seqs, *tokenizer.encode_ids(tok, extra, cut)],
            config.vat_batch_size or config.batch_size,
            pad_id,
        )
        bundle.training.vat_unlabelled_texts = len(pool)
    return source, loss_function(bundle.model, config, pool)


def _run(
    bundle: checkpoint.Bundle,
    train: TextData | BatchStream,
    val: TextData,
    config: TrainConfig,
    output: str,
    device: torch.device,
    on_step,
    on_eval,
    snapshot=None,
    best=None,
    dist: Dist | None = None,
    spec: DataSpec | None = None,
) -> History:
    training = bundle.training
    source, loss_fn = _source_and_loss(bundle, train, config, spec, dist)
    val_ids = tokenizer.encode_data(val, bundle.tokenizer, bundle.cut)
    trained_on = [name for name, count in (training.mix or {}).items() if count > 0] or None
    validate = (
        validator(
            val_ids,
            val.labels,
            bundle.labels,
            config.batch_size * 2,
            device,
            dist,
            val.groups,
            val.group_names or (),
            trained_on,
        )
        if len(val)
        else None
    )

    def save(best_weights: dict, state, history: History) -> None:
        best_info = history.best
        if best_info is None:  # no validation: the weights kept are the latest
            training.best = {"step": history.steps, "validation": None}
        else:
            training.best = {
                "epoch": best_info.epoch,
                "step": best_info.step,
                "val_accuracy": best_info.accuracy,
                "val_macro_f1": best_info.macro_f1,
                "val_loss": best_info.loss,
            }
            if "by_source" in best_info.metrics:
                training.best["val_by_source"] = best_info.metrics["by_source"]
                training.best["val_mean_source_accuracy"] = best_info.value
                if "mean_of" in best_info.metrics:
                    training.best["val_mean_of"] = best_info.metrics["mean_of"]
        training.seconds = round(history.seconds, 1)
        checkpoint.save(bundle, output, weights=best_weights, snapshot=state)

    main = dist is None or dist.is_main
    history = fit(
        bundle.model,
        source,
        loss_fn,
        validate,
        config.loop(),
        device,
        on_step if main else None,
        on_eval if main else None,
        save if main else None,
        snapshot,
        best,
        dist,
    )
    training.steps, training.seconds = history.steps, round(history.seconds, 1)
    training.tokens_per_s = round(history.tokens / history.seconds) if history.seconds else None
    training.stopped_early = history.stopped_early
    if dist is not None:  # every rank should hold the same weights: record each one's digest
        digests = distributed.gather_text(distributed.weights_digest(bundle.model.state_dict()))
        training.distributed = {"world_size": dist.world_size, "weights_sha256_by_rank": digests}
    if main:
        checkpoint.save(bundle, output)  # the best weights, the final record, no resume state: the run is done
    if dist is not None:  # no rank leaves, and tears its connections down, while rank 0 is still writing
        distributed.barrier()
    return history


def train_streaming(
    stream: TextStream,
    val: TextData | None,
    val_size: int,
    tok_settings: TokenizerSettings,
    model_settings: dict,
    config: TrainConfig,
    output: str,
    device: torch.device,
    tokenizer_sample: int = 10000,
    shuffle_buffer: int = 10000,
    command: str = "",
    on_step: Callable[[StepInfo], None] | None = None,
    on_eval: Callable[[Eval], None] | None = None,
    tok: Tokenizer | None = None,
    dist: Dist | None = None,
    init: checkpoint.Encoder | None = None,
) -> tuple[checkpoint.Bundle, History]:
    """Train on a data set read as a stream: constant memory whatever its size.

    Validation is `val`, or the first `val_size` rows of the stream (then skipped for training). The tokenizer
    is learned from the next `tokenizer_sample` rows (on rank 0). Training reads the rest through a shuffle
    buffer, this rank's shard only, tokenizing chunk by chunk, for `config.max_steps` steps.
    """
    if val is None:
        val, stream = stream.split_off(val_size)
    check_trainable(val)
    training = RunRecord(
        command=command,
        dataset=stream.source,
        validation=val.source,
        validation_examples=len(val),
        config=config.to_dict(),
        streaming={"shuffle_buffer": shuffle_buffer, "tokenizer_sample": tokenizer_sample},
    )
    bundle = _new_bundle(
        lambda: [text for text, _ in itertools.islice(stream.pairs(), tokenizer_sample)],
        stream.label_names,
        tok_settings,
        model_settings,
        config,
        tok,
        dist,
        training,
        init,
    )
    rank, world = (dist.rank, dist.world_size) if dist else (0, 1)
    shard = stream.shuffled(config.seed, shuffle_buffer, rank, world)
    batches = BatchStream(shard.epoch, bundle.tokenizer, bundle.cut, config.batch_size, bundle.model.config.pad_id)
    return bundle, _run(bundle, batches, val, config, output, device, on_step, on_eval, dist=dist)
