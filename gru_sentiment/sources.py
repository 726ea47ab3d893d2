"""Batch sources for the training loop (`loop.BatchSource`): token ids held in memory, in length buckets.

`InMemoryBatches` serves classifier batches (ids, lengths, labels), with distillation targets (ids, lengths,
labels, targets), or, without labels, language-model batches (ids, lengths). With `groups` (which data set
each text came from) and per-group `counts`, every epoch draws that many texts of each group: the mixing rule
of `--mix` (see `mix_counts`); with per-text `repeats`, a text with repeat w is drawn w times as often as one with
1 within its group (`--sentence-weight`, see `splits.whole_text_repeats`). Streams are in `streaming.py`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence

import torch

from gru_sentiment import batching


def mix_counts(sizes: Sequence[int], rule: str | None) -> list[int]:
    """Texts per epoch of each data set under a mixing rule.

    - None or "natural": every text once (count = size);
    - a number a in (0, 1]: temperature sampling (T = 1/a): data set i gets a share proportional to size_i ** a
      of an epoch as long as all data sets together, so 0.5 gives small sets more and large ones less;
    - numbers "w1,w2,...", one per data set: count_i = round(w_i * size_i) (0.3 reads 30% of a set per epoch,
      2 reads it twice).
    """
    sizes = list(sizes)
    if rule is None or rule.strip() in ("", "natural"):
        return sizes
    parts = [p.strip() for p in rule.split(",")]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise ValueError(
            f"data.mix takes 'natural', an exponent in (0, 1] or one weight per data set, not {rule!r}"
        ) from None
    if len(parts) == 1:
        alpha = values[0]
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"a data.mix exponent must be in (0, 1], not {alpha}")
        weights = [n**alpha for n in sizes]
        total = sum(sizes)
        return [max(1, round(total * w / sum(weights))) for w in weights]
    if len(values) != len(sizes):
        raise ValueError(f"data.mix has {len(values)} weights for {len(sizes)} data sets")
    if any(v < 0 for v in values) or not any(v > 0 for v in values):
        raise ValueError("data.mix weights must be non-negative, and one must be positive")
    return [round(v * n) for v, n in zip(values, sizes)]


class InMemoryBatches:
    """Length-bucketed, shuffled batches of encoded texts; every epoch planned from the loop's `rng`."""

    def __init__(
        self,
        seqs: Sequence[Sequence[int]],
        labels: Sequence[int] | None,
        batch_size: int,
        pad_id: int = 0,
        groups: Sequence[int] | None = None,
        counts: Sequence[int] | None = None,
        targets: torch.Tensor | None = None,
        repeats: Sequence[int] | None = None,
    ):
        self.seqs, self.labels, self.batch_size, self.pad_id = seqs, labels, batch_size, pad_id
        self.targets = targets  # (N, K) target distributions (see distill), or None
        self.lengths = [len(s) for s in seqs]
        self.members: list[list[int]] | None = None
        if repeats is not None and counts is None:
            raise ValueError("repeats weigh draws within a group: give counts too")
        if counts is not None:
            groups = groups if groups is not None else [0] * len(seqs)
            self.members = [[] for _ in counts]
            for index, group in enumerate(groups):
                self.members[group].extend([index] * (repeats[index] if repeats is not None else 1))
            self.counts = list(counts)
            self.epoch_size = sum(self.counts)
        else:
            self.epoch_size = len(seqs)

    def steps_per_epoch(self, world_size: int = 1) -> int:
        return math.ceil(self.epoch_size / self.batch_size) // world_size

    def _epoch_indices(self, rng: random.Random) -> list[int]:
        if self.members is None:
            return list(range(len(self.seqs)))
        chosen = []
        for members, count in zip(self.members, self.counts):
            whole, rest = divmod(count, len(members)) if members else (0, 0)
            chosen += members * whole + rng.sample(members, rest)
        return chosen

    def batches(
        self, epoch: int, rng: random.Random, rank: int = 0, world_size: int = 1, skip: int = 0
    ) -> Iterator[tuple[torch.Tensor, ...]]:
        indices = self._epoch_indices(rng)
        plan = batching.bucketed([self.lengths[i] for i in indices], self.batch_size, rng)
        mine = plan[rank : self.steps_per_epoch(world_size) * world_size : world_size][skip:]
        for batch in mine:
            rows = [indices[i] for i in batch]
            ids, lengths = batching.pad([self.seqs[i] for i in rows], self.pad_id)
            if self.labels is None:
                yield ids, lengths
            elif self.targets is None:
                yield ids, lengths, torch.tensor([self.labels[i] for i in rows], dtype=torch.long)
            else:
                labels = torch.tensor([self.labels[i] for i in rows], dtype=torch.long)
                yield ids, lengths, labels, self.targets[rows]


class UnlabelledPool:
    """Batches of unlabelled texts for VAT and entropy minimisation: fixed length-sorted batches, one drawn per
    training step with torch's random generator (which a resume snapshot restores, so a resumed run draws the
    same ones)."""

    def __init__(self, seqs: Sequence[Sequence[int]], batch_size: int, pad_id: int = 0):
        seqs = [s for s in seqs if len(s)]
        if not seqs:
            raise ValueError("no unlabelled texts")
        self.seqs, self.pad_id = seqs, pad_id
        self.plan = batching.bucketed([len(s) for s in seqs], batch_size)

    def __len__(self) -> int:
        return len(self.seqs)

    def sample(self) -> tuple[torch.Tensor, torch.Tensor]:
        batch = self.plan[int(torch.randint(len(self.plan), ()))]
        return batching.pad([self.seqs[i] for i in batch], self.pad_id)
