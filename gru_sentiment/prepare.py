"""Texts to what the model reads, a chunk at a time, as flat arrays: the token ids of every text end to end.

`Preparer` tokenizes a list of texts (the Rust tokenizer's batch encoding, ids only), applies the model's cut
(`tokenizer.Cut`) and the reading notes (`reading.notes_of`) to all of them at once, and returns a `Chunk`: no
Python list per text survives it, so a chunk is cheap to pass between processes and to copy to a GPU.

This module imports no torch: `gru_sentiment.pipeline`'s worker processes run it to tokenize while the GPU
reads (forked, or where a system cannot fork, spawned: then they import it, in a fraction of a second).
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass

import numpy as np
from tokenizers import Tokenizer

from gru_sentiment import reading
from gru_sentiment.tokenizer import UNK, Cut


@dataclass
class Chunk:
    """Texts and what the model reads of them: `ids` (int32) holds every text's ids after the cut, one text
    after another, `lengths` (int64) how many belong to each; `truncated` whether a text was cut and `notes` what
    `reading.notes_of` says of it. A text with no tokens reads as one `[UNK]`, as `tokenizer.encode_batch` has it."""

    texts: list[str]
    ids: np.ndarray
    lengths: np.ndarray
    truncated: np.ndarray
    notes: list[list[str]]

    def __len__(self) -> int:
        return len(self.texts)


class Preparer:
    """Makes a `Chunk` of a list of texts for one tokenizer and cut. Picklable as its tokenizer's JSON, so that
    a worker process builds it once (see `gru_sentiment.pipeline`)."""

    def __init__(self, tok: Tokenizer, cut: Cut) -> None:
        self.tok, self.cut = tok, cut
        self.unk = tok.token_to_id(UNK)
        # ids alone, without offsets or word ids (tokenizers >= 0.20): about 15% faster
        self.encode = getattr(tok, "encode_batch_fast", tok.encode_batch)

    def __getstate__(self) -> dict:
        return {"tokenizer": self.tok.to_str(), "cut": self.cut}

    def __setstate__(self, state: dict) -> None:
        self.__init__(Tokenizer.from_str(state["tokenizer"]), state["cut"])

    def __call__(self, texts: list[str]) -> Chunk:
        ids, lengths = reading.flat_ids(self.encode(texts, add_special_tokens=False))
        notes = reading.notes_of(self.tok, ids, lengths)
        truncated = lengths > self.cut.max_length if self.cut.max_length is not None else np.zeros(len(lengths), bool)
        ids, cut_lengths = cut_flat(ids, lengths, self.cut)
        empty = cut_lengths == 0
        if empty.any():  # nothing to read: one [UNK], as tokenizer.cut_encodings gives it
            ids = np.insert(ids, (np.cumsum(cut_lengths) - cut_lengths)[empty], self.unk)
            cut_lengths = np.where(empty, 1, cut_lengths)
        return Chunk(list(texts), ids.astype(np.int32), cut_lengths, truncated, notes)


def cut_flat(ids: np.ndarray, lengths: np.ndarray, cut: Cut) -> tuple[np.ndarray, np.ndarray]:
    """`cut.apply` on every text of a flat array at once: the kept ids and each text's new length."""
    if cut.max_length is None or not (lengths > cut.max_length).any():
        return ids, lengths
    position = np.arange(len(ids)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    length = np.repeat(lengths, lengths)
    head = cut.max_length - cut.tail
    keep = (length <= cut.max_length) | (position < head) | (position >= length - cut.tail if cut.tail else False)
    return ids[keep], np.minimum(lengths, cut.max_length)


_worker: Preparer | None = None


def start_worker(preparer: Preparer) -> None:
    """A worker process's start: its tokenizer runs on one thread (the pool's processes are the parallelism)."""
    global _worker
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: no traceback from each worker
    os.environ["RAYON_NUM_THREADS"] = "1"
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    _worker = preparer


def prepare_in_worker(texts: list[str]) -> Chunk:
    """What a worker process does with one chunk of texts: its `Chunk`, without the texts (the caller has them,
    and need not read them back)."""
    if _worker is None:
        raise RuntimeError("prepare_in_worker runs in a process started by start_worker")
    chunk = _worker(texts)
    chunk.texts = []
    return chunk
