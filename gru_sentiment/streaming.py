"""Batches from a stream of (text, label) pairs: tokenized on the fly, chunk by chunk, in constant memory."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator

import torch
from tokenizers import Tokenizer

from gru_sentiment import batching, tokenizer


class BatchStream:
    """A `loop.BatchSource` of padded, length-bucketed training batches from `open_epoch(epoch)`, an iterable of (text, label) pairs.

    Texts are read `batch_size * pool` at a time, tokenized together, grouped by length and shuffled within
    the chunk; nothing more than one chunk is ever held.
    """

    def __init__(self, open_epoch: Callable[[int], Iterable[tuple[str, int]]], tok: Tokenizer,
                 max_length: int | None, batch_size: int, pad_id: int = 0, pool: int = 50):
        self.open_epoch, self.tok, self.max_length = open_epoch, tok, max_length
        self.batch_size, self.pad_id, self.pool = batch_size, pad_id, pool

    def steps_per_epoch(self, world_size: int = 1) -> None:
        return None  # a stream's length is unknown: the run's length is max_steps

    def batches(self, epoch: int, rng: random.Random, rank: int = 0, world_size: int = 1,
                skip: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
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
        ids = tokenizer.encode_ids(self.tok, [text for text, _ in chunk], self.max_length)
        labels = [label for _, label in chunk]
        yield from batching.iterate(ids, labels, batching.bucketed([len(i) for i in ids], self.batch_size, rng,
                                                                   self.pool), self.pad_id)
