"""Labels for many texts at the pace of the hardware: tokenize the next chunk while the model reads this one.

A stream of texts is cut into chunks. Each chunk is prepared (tokenized, cut, noted: `prepare.Preparer`) in
this process or, with `workers`, in a pool of worker processes (forked, as PyTorch's data loader's are) that
tokenize several chunks side by side while the model reads. On a GPU, a chunk's ids go over in one pinned,
non-blocking copy and are padded there, batches are long and length-sorted, and the probabilities come back in
one copy per chunk, read only while the GPU works on the next chunk: the host is not meant to wait for the
GPU, nor the GPU for the host (`bench/predict_stages.py --device cuda` measures how far that holds). On the
CPU, the model's forward pass is the cost and the chunks are read as `batching.logits_for` reads them.

Labels are those of the per-text path (`predict.predict`), probabilities within float rounding; cuDNN's GRU
runs in true fp32 here (no TF32), so that a GPU's probabilities stay within 1e-4 of the CPU's
(`tests/test_cuda.py` checks it on a GPU). Nothing here prints.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager

import numpy as np
import torch

from gru_sentiment import batching
from gru_sentiment.api import GPU_PREDICT_BATCH_SIZE, PREDICT_BATCH_SIZE
from gru_sentiment.checkpoint import Bundle
from gru_sentiment.predict import Prediction
from gru_sentiment.prepare import Chunk, Preparer, prepare_in_worker, start_worker

CPU_CHUNK = 2048  # texts prepared at a time on the CPU (memory stays flat for any input)
GPU_CHUNK = 4096  # on a GPU: a few batches, so that the first arrive soon and the sorting still pays


def default_workers(device: torch.device) -> int:
    """Worker processes that tokenize for `device`: on a GPU all cores but one (this process feeds the GPU and
    writes the output), at most 32; on the CPU none, the model's forward pass wanting the cores."""
    if device.type == "cpu":
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(cores - 1, 32))


def label_stream(
    bundle: Bundle,
    texts: Iterable[str],
    device: str | torch.device = "cpu",
    batch_size: int | None = None,
    chunk_size: int | None = None,
    workers: int | None = None,
) -> Iterator[Prediction]:
    """A `predict.Prediction` (label, probabilities, truncated, notes; no gates) for each text, in input order.

    `batch_size` and `chunk_size` default to `api.GPU_PREDICT_BATCH_SIZE` and `GPU_CHUNK` on a GPU, to
    `api.PREDICT_BATCH_SIZE` and `CPU_CHUNK` on the CPU; `workers` to `default_workers(device)`. Worker
    processes start only for a second chunk: one sentence never waits for them."""
    device = torch.device(device)
    gpu = device.type != "cpu"
    batch_size = batch_size or (GPU_PREDICT_BATCH_SIZE if gpu else PREDICT_BATCH_SIZE)
    chunk_size = chunk_size or (GPU_CHUNK if gpu else CPU_CHUNK)
    workers = default_workers(device) if workers is None else workers
    chunks = prepared(Preparer(bundle.tokenizer, bundle.cut), _chunks(texts, chunk_size), workers)
    if gpu:
        yield from queued(bundle, chunks, device, batch_size)
        return
    for chunk in chunks:
        packed = batching.Packed(torch.from_numpy(chunk.ids), torch.from_numpy(chunk.lengths))
        logits = batching.logits_for(bundle.model, packed, batch_size, device, bundle.model.config.pad_id)
        yield from _predictions(bundle, chunk, torch.softmax(logits, -1).tolist())


def prepared(preparer: Preparer, chunks: Iterator[list[str]], workers: int) -> Iterator[Chunk]:
    """Each chunk of texts, prepared, in order: in this process, or by `workers` processes with up to two
    chunks each in flight (so that memory stays bounded whatever the input's length). A chunk is handed on as
    soon as it and those before it are ready: a slow input (a pipe) gets its first predictions early."""
    if workers < 1:
        for texts in chunks:
            yield preparer(texts)
        return
    first = next(chunks, None)
    second = next(chunks, None) if first is not None else None
    if second is None:  # one chunk: no pool to start
        if first is not None:
            yield preparer(first)
        return
    pool = _pool(workers, preparer)
    try:
        pending: deque = deque()  # (texts, future of their chunk)
        for texts in _chained(first, second, chunks):
            pending.append((texts, pool.submit(prepare_in_worker, texts)))
            while pending and (len(pending) >= 2 * workers or pending[0][1].done()):
                yield _with_texts(*pending.popleft())
        while pending:
            yield _with_texts(*pending.popleft())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _pool(workers: int, preparer: Preparer) -> ProcessPoolExecutor:
    """Worker processes, each with its copy of the preparer. Forked on Linux, as PyTorch's data loader starts
    its workers: they inherit the tokenizer, start at once and need no guard around a script's top level; they
    never touch the GPU, and their tokenizer runs on one thread (`prepare.start_worker`)."""
    fork = sys.platform.startswith("linux")  # macOS can fork, but not safely (its default is spawn)
    context = multiprocessing.get_context("fork" if fork else "spawn")
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=start_worker, initargs=(preparer,))
    try:
        pool.submit(int).result()  # the processes start now, not while a chunk waits
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    return pool


def _with_texts(texts: list[str], future) -> Chunk:
    chunk = future.result()
    chunk.texts = texts
    return chunk


def queued(bundle: Bundle, chunks: Iterator[Chunk], device: torch.device, batch_size: int) -> Iterator[Prediction]:
    """The GPU's way: queue each chunk's work on the device, then hand out the chunk before it while the device
    runs. On the CPU it runs too (in order, without the overlap): the tests' way of reading it."""
    waiting = None
    for chunk in chunks:
        with torch.no_grad(), _true_fp32():  # around the launches only: no setting is changed while we yield
            launched = _queue(bundle.model, chunk, device, batch_size)
        if waiting is not None:
            yield from _collect(bundle, *waiting)
        waiting = (chunk, *launched)
    if waiting is not None:
        yield from _collect(bundle, *waiting)


def _queue(model, chunk: Chunk, device: torch.device, batch_size: int) -> tuple[torch.Tensor, torch.cuda.Event | None]:
    """Every batch of `chunk` queued on the device, longest last, and its probabilities' copy back to pinned host
    memory; returns that memory and a CUDA event that fires when it holds them (None on the CPU). Everything,
    the event too, goes on `device`'s current stream, whichever GPU is the process's current one."""
    if device.type != "cuda":
        return _launch(model, chunk, device, batch_size), None
    with torch.cuda.device(device):
        probs = _launch(model, chunk, device, batch_size)
        host = torch.empty(probs.shape, dtype=probs.dtype, pin_memory=True)
        host.copy_(probs, non_blocking=True)
        done = torch.cuda.Event(blocking=True)  # its wait sleeps: the host has output to write meanwhile
        done.record(torch.cuda.current_stream(device))
    return host, done


def _launch(model, chunk: Chunk, device: torch.device, batch_size: int) -> torch.Tensor:
    """The probabilities of `chunk`, (texts, labels) on `device`, its batches padded there by one gather each."""
    order = np.argsort(chunk.lengths, kind="stable")
    cuda = device.type == "cuda"

    def over(array: np.ndarray) -> torch.Tensor:
        tensor = torch.from_numpy(array)
        return tensor.pin_memory().to(device, non_blocking=True) if cuda else tensor

    packed = batching.Packed(over(chunk.ids), over(chunk.lengths))
    rows = over(order)
    probs = torch.empty(len(chunk), model.config.num_labels, device=device)
    for start in range(0, len(chunk), batch_size):
        batch = rows[start : start + batch_size]
        width = int(chunk.lengths[order[min(start + batch_size, len(chunk)) - 1]])
        ids, lengths = packed.pad(batch, width, model.config.pad_id)
        probs[batch] = torch.softmax(model(ids, lengths).float(), -1)
    return probs


def _collect(bundle: Bundle, chunk: Chunk, host: torch.Tensor, done: torch.cuda.Event | None) -> Iterator[Prediction]:
    if done is not None:
        done.synchronize()
    yield from _predictions(bundle, chunk, host.tolist())


def _predictions(bundle: Bundle, chunk: Chunk, probs: list[list[float]]) -> Iterator[Prediction]:
    labels = bundle.labels
    for text, p, truncated, notes in zip(chunk.texts, probs, chunk.truncated.tolist(), chunk.notes, strict=True):
        best = max(range(len(p)), key=p.__getitem__)
        yield Prediction(text, labels[best], dict(zip(labels, p)), truncated, None, notes)


_FP32_LOCK = threading.Lock()


@contextmanager
def _true_fp32() -> Iterator[None]:
    """cuDNN's RNNs in IEEE fp32 for the duration (PyTorch lets them use TF32 by default, a few 1e-4 off). The
    setting is the process's: held only while a chunk's kernels are launched, one caller at a time; meanwhile
    other code that reads torch's older `allow_tf32` flag gets torch's error about mixing the two APIs."""
    with _FP32_LOCK:
        with _rnn_in_fp32():
            yield


@contextmanager
def _rnn_in_fp32() -> Iterator[None]:
    rnn = getattr(torch.backends.cudnn, "rnn", None)
    if rnn is not None and hasattr(rnn, "fp32_precision"):
        before = rnn.fp32_precision
        rnn.fp32_precision = "ieee"
        try:
            yield
        finally:
            rnn.fp32_precision = before
        return
    before = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32 = before


def _chunks(texts: Iterable[str], size: int) -> Iterator[list[str]]:
    chunk: list[str] = []
    for text in texts:
        chunk.append(text)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _chained(first, second, rest: Iterator) -> Iterator:
    for item in (first, second):
        if item is not None:
            yield item
    yield from rest
