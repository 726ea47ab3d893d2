"""Length-bucketed batches of token ids: little padding, random order, and one padded tensor per batch."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import torch


def bucketed(
    lengths: Sequence[int], batch_size: int, rng: random.Random | None = None, pool: int = 50
) -> list[list[int]]:
    """Indices grouped into batches of similar length.

    With `rng`, examples are shuffled, sorted by length within pools of `pool` batches, and the batches shuffled:
    random order with little padding. Without it, batches follow length order (deterministic, for inference).
    """
    order = list(range(len(lengths)))
    if rng is None:
        order.sort(key=lambda i: lengths[i])
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    rng.shuffle(order)
    batches = []
    step = batch_size * pool
    for start in range(0, len(order), step):
        chunk = sorted(order[start : start + step], key=lambda i: lengths[i])
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def pad(seqs: Sequence[Sequence[int]], pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded (B, T) int64 ids and (B,) lengths."""
    lengths = torch.tensor([len(s) for s in seqs], dtype=torch.long)
    ids = torch.full((len(seqs), int(lengths.max())), pad_id, dtype=torch.long)
    for row, seq in enumerate(seqs):
        ids[row, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
    return ids, lengths


class Packed:
    """Token ids of many sequences end to end (`ids`, 1-D) with each one's `lengths`, on any device: a batch is
    padded by one gather there (`pad`), with no Python list per sequence."""

    def __init__(self, ids: torch.Tensor, lengths: torch.Tensor) -> None:
        self.ids, self.lengths = ids, lengths
        self.starts = torch.cumsum(lengths, 0) - lengths

    def __len__(self) -> int:
        return len(self.lengths)

    def pad(self, rows: torch.Tensor, width: int, pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-padded (B, width) int64 ids and (B,) lengths of the sequences `rows`, as `pad` makes them;
        `width` is their longest length (given, so that a GPU batch needs no trip to the host)."""
        lengths = self.lengths[rows]
        steps = torch.arange(width, device=self.ids.device)
        where = (self.starts[rows].unsqueeze(1) + steps).clamp(max=max(len(self.ids) - 1, 0))
        ids = torch.where(steps < lengths.unsqueeze(1), self.ids[where].long(), pad_id)
        return ids, lengths


def padding_fraction(seqs: Sequence[Sequence[int]], batches: list[list[int]]) -> float:
    """Share of padded positions over all positions of the given batches."""
    real = sum(len(seqs[i]) for b in batches for i in b)
    total = sum(max(len(seqs[i]) for i in b) * len(b) for b in batches)
    return 1.0 - real / total if total else 0.0


def length_sorted(
    seqs: Sequence[Sequence[int]], batch_size: int, device: torch.device | str = "cpu", pad_id: int = 0
) -> Iterator[tuple[list[int], torch.Tensor, torch.Tensor]]:
    """For inference: (indices, ids, lengths) of padded batches in length order, ids and lengths on `device`."""
    for batch in bucketed([len(s) for s in seqs], batch_size):
        ids, lengths = pad([seqs[i] for i in batch], pad_id)
        yield batch, ids.to(device), lengths.to(device)


def inference_workers(device: torch.device | str) -> int:
    """Batches to run side by side at inference: on the CPU one per intra-op thread, each batch on one thread (a
    GRU step's small matrix products keep two cores busy less well than two batches do); elsewhere one."""
    return torch.get_num_threads() if torch.device(device).type == "cpu" else 1


@contextmanager
def threads_per_op(threads: int) -> Iterator[None]:
    """Torch's intra-op threads set to `threads` for the duration, then put back. The setting is the calling
    thread's and the default of threads started meanwhile (the workers); a thread already running keeps its own.
    Two threads predicting at once each get their own setting back, but one started while another is inside
    takes the lowered value as its default: this is meant for one caller at a time, as in the command line."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def logits_for(
    model: Callable,
    seqs: Sequence[Sequence[int]] | Packed,
    batch_size: int,
    device: torch.device | str,
    pad_id: int = 0,
    workers: int | None = None,
) -> torch.Tensor:
    """Logits (N, K) for every sequence, in input order, computed in length-sorted batches.

    `seqs` are lists of ids, or a `Packed` on the CPU. Up to `workers` batches (default: `inference_workers`)
    run at once, longest first, each in its own thread, and the intra-op threads are shared out among them (one
    each when there are batches enough). The logits may differ in the last bits of a float with the number of
    threads a batch ran on.
    """
    device = torch.device(device)
    packed = isinstance(seqs, Packed)
    sizes = seqs.lengths.tolist() if packed else [len(s) for s in seqs]
    batches = bucketed(sizes, batch_size)

    def run(batch: list[int]) -> tuple[list[int], torch.Tensor]:
        with torch.no_grad():  # grad mode is per thread
            if packed:
                ids, lengths = seqs.pad(torch.tensor(batch), max(sizes[i] for i in batch), pad_id)
            else:
                ids, lengths = pad([seqs[i] for i in batch], pad_id)
            return batch, model(ids.to(device), lengths.to(device)).float().cpu()

    workers = min(inference_workers(device) if workers is None else workers, len(batches))
    results: list[torch.Tensor | None] = [None] * len(seqs)
    if workers > 1:
        each = max(1, torch.get_num_threads() // workers)
        with threads_per_op(each), ThreadPoolExecutor(workers) as pool:  # longest first: none runs alone at the end
            done = list(pool.map(run, batches[::-1]))
    else:
        done = map(run, batches)
    for batch, out in done:
        for row, i in enumerate(batch):
            results[i] = out[row]
    return torch.stack(results) if results else torch.empty(0)


def iterate(
    seqs: Sequence[Sequence[int]], labels: Sequence[int], batches: list[list[int]], pad_id: int = 0
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    for batch in batches:
        ids, lengths = pad([seqs[i] for i in batch], pad_id)
        yield ids, lengths, torch.tensor([labels[i] for i in batch], dtype=torch.long)
