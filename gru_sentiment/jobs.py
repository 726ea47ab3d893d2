"""The jobs the commands run, end to end, as library calls: data -> tokenizer -> model -> fit -> model directory.

Each command parses its options into one typed job (`TrainJob`, `PretrainJob`) and hands it to one call
(`run_train`, `run_pretrain`); `evaluate_model` and `predicted_labels` serve `evaluate` and the benchmarks.
Silent like the rest of the library; the CLI passes callbacks to show progress.
"""

from __future__ import annotations

import hashlib
import itertools
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import torch
from tokenizers import Tokenizer

from gru_sentiment import __version__, batching, checkpoint, distill, distributed, tokenizer
from gru_sentiment import data as data_mod
from gru_sentiment.checkpoint import RunRecord
from gru_sentiment.data import TextData
from gru_sentiment.distributed import Dist
from gru_sentiment.errors import DataError, ModelError, UsageError
from gru_sentiment.loop import Eval, History, StepInfo, fit
from gru_sentiment.metrics import report
from gru_sentiment.model import GRUClassifier, ModelConfig
from gru_sentiment.pretrain import LanguageModel, PretrainConfig, fit_lm, frequency_rank
from gru_sentiment.sources import InMemoryBatches, UnlabelledPool, mix_counts
from gru_sentiment.splits import carve_validation, sentence_weights, stratified_sample, whole_text_repeats
from gru_sentiment.streaming import BatchStream, TextStream, open_stream
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


def check_trainable(data: TextData) -> None:
    classes = set(data.labels) - {-1}  # -1: a teacher pool's text without a gold label
    if len(classes) < 2:
        only = data.label_names[next(iter(classes))] if classes else "none"
        raise DataError(f"{data.source}: training needs at least two classes, found only '{only}'")


@dataclass(frozen=True)
class DataSpec:
    """Where the training texts come from; saved with the model so `--resume` can read them again."""

    datasets: tuple[str, ...]
    split: str = "train"
    val_split: str | None = None
    val_fraction: float = 0.1
    text_column: str | None = None
    label_column: str | None = None
    label_names: tuple[str, ...] | None = None
    limit: int | None = None
    mix: str | None = None  # how many texts of each data set an epoch reads: see sources.mix_counts
    unlabelled: tuple[str, ...] = ()  # DATASET:SPLIT sources of extra unlabelled text (for VAT)
    val_groups: bool = True  # carve whole overlap groups (see splits); runs saved before it existed carved texts
    val_seed: int | None = None  # seed of the carve; None: the run's seed (runs saved before it existed)
    sentence_weight: tuple[str, ...] = ()  # SOURCE=W: draw that set's whole texts W times as often as its phrases
    train_only: tuple[str, ...] = ()  # DATASET[:SPLIT] sources read whole for training, after the carve
    teacher_pool: str | None = None  # texts with a teacher's logits (see distill), matched to the training texts
    label_map: str | None = None  # OLD=NEW,...: labels renamed as they are read (see data.parse_label_map)
    limit_sampled: bool = True  # `limit` draws a stratified sample (seeded by the run); runs saved before: first rows

    def carve_seed(self, seed: int) -> int:
        """The seed the validation split is carved with, in a run of seed `seed`."""
        return seed if self.val_seed is None else self.val_seed

    @classmethod
    def from_dict(cls, saved: dict) -> DataSpec:
        """The spec a model directory recorded; one saved before `val_groups` existed carved single texts, one saved
        before `limit_sampled` existed took the first `limit` rows."""
        saved = {"val_groups": False, "limit_sampled": False, **saved}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in saved.items()})


def _short_names(specs: tuple[str, ...]) -> list[str]:
    """A short, unique name per data set for per-source reports: a local folder's name, or the hub name."""
    names = [Path(s).name if Path(s).exists() else s for s in specs]
    return [n if names.count(n) == 1 else f"{n}#{i + 1}" for i, n in enumerate(names)]


def load_training_data(spec: DataSpec, seed: int) -> tuple[TextData, TextData]:
    """Training and validation texts: the data sets' `split` together, validation carved from it (or read;
    none with `val_fraction` 0), then every text of the `train_only` sources added to training: the carve does
    not change with them. Texts without a label (-1) stay in `train.unlabelled`. With a `teacher_pool`, the
    training texts carry its logits where it has them, and its other texts, validation's left out, follow as
    one more source (see `distill`)."""
    names = list(spec.label_names) if spec.label_names else None
    load = partial(
        data_mod.load,
        text_column=spec.text_column,
        label_column=spec.label_column,
        label_map=data_mod.parse_label_map(spec.label_map),
    )
    full = data_mod.concat([load(d, spec.split, label_names=names) for d in spec.datasets])
    pool_name = (spec.teacher_pool,) if spec.teacher_pool else ()
    source_names = _short_names(spec.datasets + tuple(split_source(s)[0] for s in spec.train_only) + pool_name)
    if full.group_names:
        full.group_names = source_names[: len(spec.datasets)]
    train = full
    if spec.limit and spec.limit_sampled:
        train = stratified_sample(train, spec.limit, seed)
    elif spec.limit:
        train = train.subset(list(range(min(spec.limit, len(train)))))
    if spec.val_split:
        val = data_mod.concat([load(d, spec.val_split, label_names=train.label_names) for d in spec.datasets])
        if val.group_names:
            val.group_names = _short_names(spec.datasets)
    elif spec.val_fraction == 0:  # settings already chosen: train on every text
        val = train.subset([], f"{train.source} (no validation)")
    else:
        train, val = carve_validation(train, spec.val_fraction, spec.carve_seed(seed), spec.val_groups)
    train.unlabelled = full.unlabelled
    extra = [load(*split_source(s, spec.split), label_names=train.label_names) for s in spec.train_only]
    if spec.teacher_pool:
        pool = distill.read_pool(spec.teacher_pool, train.label_names, spec.text_column)
        extra.append(distill.attach([train, *extra], val, pool)[0])
    if extra:
        train = _append_sources(train, extra, source_names)
    return train, val


def _append_sources(train: TextData, extra: list[TextData], names: list[str]) -> TextData:
    """`train` followed by the `extra` data sets, each a source of its own (`names`: of them all, in order)."""
    known = len(names) - len(extra)
    joined = data_mod.concat([train, *extra])  # checks that the label names agree
    joined.groups = (train.groups or [0] * len(train)) + [known + k for k, p in enumerate(extra) for _ in p.texts]
    joined.group_names = [*(train.group_names or names[:known]), *names[known:]]
    joined.source = " + ".join([train.source, *(f"{p.source} (all, for training only)" for p in extra)])
    return joined


def check_init_carve(init: checkpoint.Encoder | None, spec: DataSpec, seed: int) -> None:
    """Refuse to train from a model that was trained on the same data carved another way (another seed or
    grouping, or a larger share): its training texts would sit in this run's validation split."""
    made = init.pretraining if init is not None else {}
    if not isinstance(made.get("data"), dict) or spec.val_split or spec.val_fraction == 0:
        return  # a language model's record lists its sources: it read them without labels
    before = DataSpec.from_dict(made["data"])
    if before.val_split or (before.datasets, before.split, before.limit) != (spec.datasets, spec.split, spec.limit):
        return
    if before.limit and (before.limit_sampled, made.get("seed", 0)) != (spec.limit_sampled, seed):
        return  # another sample of the data
    if before.val_fraction == 0:
        raise UsageError(
            f"{init.source} was trained on every text of this data (--val-fraction 0): its training texts would be"
            " in this run's validation; train from it with --val-fraction 0 too"
        )
    before_seed = before.carve_seed(made.get("seed", 0))
    same_order = (before_seed, before.val_groups) == (spec.carve_seed(seed), spec.val_groups)
    if not (same_order and spec.val_fraction <= before.val_fraction):  # a smaller share of one order: a subset
        grouping = "true" if before.val_groups else "false"
        settings = f"data.val_seed={before_seed}, data.val_fraction={before.val_fraction:g}, data.val_groups={grouping}"
        raise UsageError(
            f"{init.source} was trained on the same data carved another way: its training texts would be in this"
            f" run's validation; carve as it did: {settings}"
        )


def unlabelled_texts(spec: DataSpec, train: TextData) -> list[str]:
    """Text for VAT and entropy minimisation: the training texts, those without a label, and `spec.unlabelled`."""
    extra = [
        t for source in spec.unlabelled for t in data_mod.load_texts(*split_source(source), spec.text_column).texts
    ]
    return [*train.texts, *train.unlabelled, *extra]


def split_source(spec: str, default_split: str = "train") -> tuple[str, str]:
    """DATASET or DATASET:SPLIT (a path that exists as given is never split)."""
    head, colon, tail = spec.rpartition(":")
    if colon and head and tail and "/" not in tail and not Path(spec).exists():
        return head, tail
    return spec, default_split


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
        raise UsageError("--adv, --vat and --entmin run in a single process, not under torchrun")
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


@dataclass(frozen=True)
class ModelSettings:
    """The `ModelConfig` fields a user chooses (the rest follow from the tokenizer and the labels)."""

    embed_dim: int = 128
    hidden_size: int = 128
    num_layers: int = 1
    bidirectional: bool = True
    dropout: float = 0.3
    pooling: str = "mean_max"

    def to_dict(self) -> dict:
        return asdict(self)


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
        raise UsageError(f"--val-fraction must be between 0 and 1 (or 0: no validation), not {spec.val_fraction}")
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
            raise UsageError(f"{given[0]} needs the training texts in memory: drop --streaming")
        if config.max_steps is None or spec.limit or len(spec.datasets) != 1:
            raise UsageError("--streaming needs --max-steps and one --dataset, and takes no --resume or --limit")
    if config.adversarial.active and dist is not None:
        raise UsageError("--adv, --vat and --entmin run in a single process, not under torchrun")
    pool = (spec.teacher_pool,) if spec.teacher_pool else ()
    sources = _short_names(spec.datasets + tuple(split_source(s)[0] for s in spec.train_only) + pool)
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
