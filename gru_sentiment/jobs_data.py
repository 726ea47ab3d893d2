"""Where a training job's texts come from: the data sets, the validation carve, the sets trained on whole and the
teacher pool, read into one `TextData` with a source per data set (`DataSpec`, `load_training_data`)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

from gru_sentiment import checkpoint, distill
from gru_sentiment import data as data_mod
from gru_sentiment.data import TextData
from gru_sentiment.errors import DataError, UsageError
from gru_sentiment.splits import carve_validation, stratified_sample


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


def short_names(specs: tuple[str, ...]) -> list[str]:
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
    source_names = short_names(spec.datasets + tuple(split_source(s)[0] for s in spec.train_only) + pool_name)
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
            val.group_names = short_names(spec.datasets)
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
