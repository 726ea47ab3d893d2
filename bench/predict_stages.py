"""Where prediction's time goes, in this process: the tokenizer alone, preparation in worker processes, the bare
forward pass on the same batches (the ceiling), and the whole `Classifier.predict` path, on one device.

    python bench/predict_stages.py [--device cuda] [--limit 100000] [--workers N] [--model DIR] [--data DIR]

Reads --limit IMDB reviews (test, then train, then unsupervised: 100,000 distinct reviews; repeated where the
folder holds fewer), with pyarrow alone.
Every stage reads the same texts, after a warm-up of 2,000 of them (CUDA context, cuDNN plans, allocator):
- tokenizer alone: `Tokenizer.encode_batch` (Rust, all cores) in chunks of the pipeline's size;
- prepare: tokenize, cut and note (`prepare.Preparer`) in --workers processes, as the pipeline runs it;
- bare forward: the model's forward pass and softmax on every length-sorted batch the pipeline makes, the ids
  already padded on the device (what the GPU alone could do: the ceiling of the whole path);
- predict, workers=W: `list(clf.records(texts, workers=W))`, everything included but the model's loading, with
  the default workers and with 0 (or 1 where the default is 0); "steady" counts from the first prediction out
  to the last (worker start-up and the first chunk's latency excluded);
- host alone: the same path with a model that returns zeros at once, the default workers: how fast this
  machine's cores can feed a device that took no time at all.
`predict_speed.py --device D` prints these below its command-line figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
import types
from pathlib import Path

import torch

import gru_sentiment
from gru_sentiment import batching, pipeline
from gru_sentiment.prepare import Preparer

SPLITS = ("test", "train", "unsupervised")


def imdb_texts(folder: Path, limit: int) -> list[str]:
    """The first `limit` IMDB reviews of the splits found in `folder` (test, then train, then unsupervised),
    read with pyarrow alone; repeated from the start when there are fewer."""
    import pyarrow.parquet as pq

    texts: list[str] = []
    for split in SPLITS:
        if len(texts) < limit and (folder / f"{split}.parquet").is_file():
            texts += pq.read_table(folder / f"{split}.parquet", columns=["text"]).column("text").to_pylist()
    if not texts:
        raise SystemExit(f"no IMDB parquet files in {folder}")
    return (texts * -(-limit // len(texts)))[:limit]


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def stages(texts: list[str], model: str | None, device: str, workers: int | None) -> list[tuple[str, float, str]]:
    """(stage, reviews/s, note) for each stage, on `texts`."""
    clf = gru_sentiment.load(model, device)
    dev, bundle = clf.device, clf.bundle
    gpu = dev.type == "cuda"
    workers = pipeline.default_workers(dev) if workers is None else workers
    chunk = pipeline.GPU_CHUNK if gpu else pipeline.CPU_CHUNK
    batch = gru_sentiment.api.GPU_PREDICT_BATCH_SIZE if gpu else gru_sentiment.api.PREDICT_BATCH_SIZE
    list(clf.records(texts[:2000], workers=0))  # warm-up
    synchronize(dev)
    pieces = [texts[i : i + chunk] for i in range(0, len(texts), chunk)]
    rows: list[tuple[str, float, str]] = []

    preparer = Preparer(bundle.tokenizer, bundle.cut)
    seconds, _ = timed(lambda: [preparer.encode(p, add_special_tokens=False) for p in pieces])
    rows.append(("tokenizer alone", len(texts) / seconds, "ids-only batch encoding, Rust threads on every core"))

    seconds, chunks = timed(lambda: list(pipeline.prepared(preparer, iter(pieces), workers)))
    rows.append(("prepare", len(texts) / seconds, f"tokenize + cut + notes, {workers} worker processes"))

    model = bundle.model
    with torch.no_grad():
        if gpu:  # the pipeline's batches, padded on the GPU beforehand, run one after another
            padded = []
            for c in chunks:
                packed = batching.Packed(torch.from_numpy(c.ids).to(dev), torch.from_numpy(c.lengths).to(dev))
                for b in batching.bucketed(c.lengths.tolist(), batch):
                    width = int(c.lengths[b].max())
                    padded.append(packed.pad(torch.tensor(b, device=dev), width, model.config.pad_id))
            synchronize(dev)
            with pipeline._true_fp32():
                seconds, _ = timed(lambda: ([torch.softmax(model(i, n), -1) for i, n in padded], synchronize(dev)))
        else:  # as the CPU path runs them: one batch per thread (`batching.logits_for`)
            packs = [batching.Packed(torch.from_numpy(c.ids), torch.from_numpy(c.lengths)) for c in chunks]
            pad_id = model.config.pad_id
            seconds, _ = timed(lambda: [batching.logits_for(model, p, batch, dev, pad_id) for p in packs])
    tokens = sum(int(c.lengths.sum()) for c in chunks)
    batches = sum(-(-len(c) // batch) for c in chunks)
    note = f"{batches} batches of up to {batch}, {tokens / seconds / 1e6:.1f}M tokens/s"
    rows.append(("bare forward (ceiling)", len(texts) / seconds, note))

    def run(records) -> tuple[float, float]:
        """(reviews/s, steady reviews/s from the first prediction out) of consuming `records`."""
        start, first, count = time.perf_counter(), None, 0
        for _ in records:
            first = first or time.perf_counter()
            count += 1
        end = time.perf_counter()
        return count / (end - start), (count - 1) / (end - first)

    for n_workers in (workers, 0 if workers else 1):
        rate, steady = run(clf.records(texts, workers=n_workers))
        rows.append((f"predict, workers={n_workers}", rate, f"steady {steady:,.0f}/s from the first prediction out"))
    # the same path with a model that does nothing: what the host can feed, the ceiling the GPU sees from here
    idle = dataclasses.replace(bundle, model=NoModel(model.config.num_labels, model.config.pad_id, dev))
    rate, steady = run(pipeline.label_stream(idle, texts, dev, workers=workers))
    rows.append(("host alone", rate, f"steady {steady:,.0f}/s; a model that computes nothing, {workers} workers"))
    return rows


class NoModel:
    """A stand-in for the model that returns zero logits at once: `host alone` times everything else."""

    def __init__(self, num_labels: int, pad_id: int, device: torch.device) -> None:
        self.config = types.SimpleNamespace(num_labels=num_labels, pad_id=pad_id)
        self.device = device

    def __call__(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return torch.zeros(len(lengths), self.config.num_labels, device=ids.device)


def print_stages(rows: list[tuple[str, float, str]], n: int, device: str) -> None:
    ceiling = next(rate for name, rate, _ in rows if name.startswith("bare forward"))
    print(f"\nin process, {n:,} IMDB reviews, device {device}, model load excluded")
    print(f"{'stage':<24} {'reviews/s':>10} {'/ forward':>9}  note")
    for name, rate, note in rows:
        print(f"{name:<24} {rate:>10,.0f} {rate / ceiling:>9.2f}  {note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--limit", type=int, default=100_000)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workers", type=int, default=None, help="tokenizing processes (default: the pipeline's)")
    parser.add_argument("--model", default=None)
    args = parser.parse_args()
    texts = imdb_texts(args.data / "imdb", args.limit)
    rows = stages(texts, args.model, args.device, args.workers)
    print_stages(rows, len(texts), str(gru_sentiment.api.select_device(args.device)))


if __name__ == "__main__":
    main()
