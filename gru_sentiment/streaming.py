"""Data sets read as a stream (`datasets` IterableDataset), and training batches from such a stream: tokenized
on the fly, chunk by chunk, in constant memory."""

from __future__ import annotations

import glob
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer

from gru_sentiment import batching, tokenizer
from gru_sentiment.data import (
    FORMATS,
    KNOWN,
    LABEL_COLUMNS,
    TEXT_COLUMNS,
    TextData,
    _datasets,
    _index_labels,
    _looks_like_path,
    _offline_unless_hub_reachable,
    _pick,
)
from gru_sentiment.errors import DataError, first_line


class BatchStream:
    """A `loop.BatchSource` of padded, length-bucketed training batches from `open_epoch(epoch)`, an iterable
    of (text, label) pairs.

    Texts are read `batch_size * pool` at a time, tokenized together, grouped by length and shuffled within
    the chunk; nothing more than one chunk is ever held.
    """

    def __init__(
        self,
        open_epoch: Callable[[int], Iterable[tuple[str, int]]],
        tok: Tokenizer,
        cut: tokenizer.Cut,
        batch_size: int,
        pad_id: int = 0,
        pool: int = 50,
    ):
        self.open_epoch, self.tok, self.cut = open_epoch, tok, cut
        self.batch_size, self.pad_id, self.pool = batch_size, pad_id, pool

    def steps_per_epoch(self, world_size: int = 1) -> None:
        return None  # a stream's length is unknown: the run's length is max_steps

    def batches(
        self, epoch: int, rng: random.Random, rank: int = 0, world_size: int = 1, skip: int = 0
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """One pass over the stream (already this rank's shard); streamed runs do not resume, so `skip` is 0."""
        chunk: list[tuple[str, int]] = []
        for pair in self.open_epoch(epoch):
            chunk.append(pair)
            if len(chunk) == self.batch_size * self.pool:
                yield from self._chunk_batches(chunk, rng)
                chunk = []
        if chunk:
            yield from self._chunk_batches(chunk, rng)

    def _chunk_batches(self, chunk, rng):
        ids = tokenizer.encode_ids(self.tok, [text for text, _ in chunk], self.cut)
        labels = [label for _, label in chunk]
        yield from batching.iterate(
            ids, labels, batching.bucketed([len(i) for i in ids], self.batch_size, rng, self.pool), self.pad_id
        )


@dataclass
class TextStream:
    """A data set read as a stream (`datasets` IterableDataset): (text, label index) pairs, never all in memory."""

    dataset: object  # datasets.IterableDataset with "text" and "label" (an index into label_names)
    label_names: list[str]
    source: str

    def pairs(self) -> Iterator[tuple[str, int]]:
        for row in self.dataset:
            yield row["text"], row["label"]

    def split_off(self, n: int) -> tuple[TextData, TextStream]:
        """The first n rows in memory (a validation set), and the stream of the rows after them."""
        head = list(self.dataset.take(n))
        held = TextData(
            [r["text"] for r in head], [r["label"] for r in head], self.label_names, f"{self.source} (first {n} rows)"
        )
        return held, TextStream(self.dataset.skip(n), self.label_names, self.source)

    def shuffled(self, seed: int, buffer_size: int, rank: int = 0, world_size: int = 1) -> TextStream:
        """Shuffled through a buffer of `buffer_size` rows (reshuffled each epoch), and this rank's shard."""
        ds = self.dataset.shuffle(seed=seed, buffer_size=buffer_size)
        if world_size > 1:
            from datasets.distributed import split_dataset_by_node

            ds = split_dataset_by_node(ds, rank=rank, world_size=world_size)
        return TextStream(ds, self.label_names, self.source)

    def epoch(self, epoch: int) -> Iterator[tuple[str, int]]:
        """The pairs of one pass, in that epoch's shuffled order."""
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)
        return self.pairs()


def open_stream(
    spec: str,
    split: str,
    text_column: str | None = None,
    label_column: str | None = None,
    label_names: list[str] | None = None,
    sample: int = 10000,
) -> TextStream:
    """Open one split as a stream. Label names come from a ClassLabel, `label_names`, or the first `sample` rows."""
    datasets = _datasets()
    path = Path(spec).expanduser()
    known = KNOWN.get(path.name.lower()) if path.exists() else KNOWN.get(spec.lower())
    try:
        if path.is_dir() and (path / split / "pos").is_dir():
            raise DataError(f"{spec}: aclImdb folders are read into memory; train without --streaming")
        if path.exists():
            files = (
                [path]
                if path.is_file()
                else sorted(p for p in path.iterdir() if p.stem == split and p.suffix.lower() in FORMATS)
            )
            if not files or FORMATS.get(files[0].suffix.lower()) is None:
                raise DataError(f"no split '{split}' to stream in {spec}")
            ds = datasets.load_dataset(
                FORMATS[files[0].suffix.lower()],
                data_files={"data": [glob.escape(str(f)) for f in files]},  # names, not patterns
                split="data",
                streaming=True,
            )
        elif _looks_like_path(spec):
            raise DataError(f"data set path not found: {spec}")
        else:
            _offline_unless_hub_reachable()
            ds = datasets.load_dataset(known.hub_id if known else spec, split=split, streaming=True)
        first = next(iter(ds), None)
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"could not stream '{spec}' ({split}): {first_line(exc)}") from exc
    if first is None:
        raise DataError(f"{spec}:{split}: no rows")
    columns = list(first)
    if known and text_column is None and known.text_column in columns:
        text_column = known.text_column
    text_col = _pick(columns, text_column, TEXT_COLUMNS, "text", "--text-column")
    label_col = _pick(columns, label_column, LABEL_COLUMNS, "label", "--label-column")
    feature = (ds.features or {}).get(label_col)
    if isinstance(feature, datasets.ClassLabel):
        names = list(feature.names)
    elif label_names or (known and isinstance(first[label_col], int)):
        names = list(label_names or known.label_names)
    else:
        _, names = _index_labels([row[label_col] for row in ds.take(sample)], None, f"{spec}:{split}")
    lookup = {name: i for i, name in enumerate(names)}
    source = f"{spec}:{split} (stream)"

    def convert(row: dict) -> dict:
        value = row[label_col]
        index = lookup.get(str(value)) if value is not None else None
        if index is None and isinstance(value, int) and 0 <= value < len(names):
            index = value  # integer labels 0..K-1 named by --label-names or the known data set
        if index is None or row[text_col] is None:
            raise DataError(f"{source}: a row has label {value!r}, not one of {', '.join(names)}")
        return {"text": row[text_col], "label": index}

    return TextStream(ds.map(convert, remove_columns=columns), names, source)
