"""Ray Data batch inference: 1 vs 2 local Ray workers of one thread each, on IMDB test reviews.

    python bench/ray_speed.py [--data ../shared/data] [--limit 10000] [--files 4] [--rows-per-call 512]
                              [--repeats 2] [--model DIR]

Writes the first --limit IMDB test reviews (with an id column) to --files parquet files in a temporary folder,
starts one local Ray (a logical CPU per core), then scores the same files with `gru_sentiment.ray.predict_files`
on 1 and on 2 workers of 1 thread each, alternately (1, 2, 2, 1, ... for --repeats pairs), and reports the
median ratio of 2 workers to 1 (floor 1.6, goal 1.9 on 2 cores).

What is timed: each worker records its clock at the start and end of every batch it scores, and the rows/s
of a run are its rows over the span from the first batch's start to the last batch's end. That leaves out
Ray's start-up and each worker's (a new process that imports torch and loads the model, a few seconds),
which do not grow with the data, but keeps everything between batches (reading, handing blocks over, writing
as the job goes). The end-to-end time of each `predict_files` call, start-up included, is shown beside it.
Each run also reports its workers' CPU time over the span (1.0 a worker: it never waited for a core).

In the same run, before Ray starts, two baselines on the same texts (model loading excluded): one process,
`gru_sentiment.load(threads=2).predict`; and 1 and 2 processes of one thread started by hand, each on its share
of the texts, timed from the first one's start to the last one's end: their ratio is what 2 cores give 2
workers without Ray, the ceiling for Ray's.
"""

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

import gru_sentiment
from gru_sentiment.ray import Predictor, predict_files


class TimedPredictor(Predictor):
    """A Predictor whose rows also carry their batch's wall-clock start and end, its CPU seconds, the worker's
    pid and torch's thread count there (this class travels to the workers by value: it lives in __main__)."""

    def __call__(self, batch):
        import torch

        start, cpu = time.time(), time.process_time()
        out = super().__call__(batch)
        rows = len(out["label"])
        out["t_start"] = np.full(rows, start)
        out["t_end"] = np.full(rows, time.time())
        out["cpu_s"] = np.full(rows, time.process_time() - cpu)
        out["pid"] = np.full(rows, os.getpid())
        out["torch_threads"] = np.full(rows, torch.get_num_threads())
        return out


def single_process(texts: list[str], model: str | None) -> float:
    """Rows/s of one process with 2 threads, model loaded beforehand."""
    clf = gru_sentiment.load(model, device="cpu", threads=2)
    clf.predict(texts[:64])  # warm-up
    start = time.perf_counter()
    clf.predict(texts)
    return len(texts) / (time.perf_counter() - start)


def _by_hand_worker(texts: list[str], model: str | None, barrier, results) -> None:
    os.environ["RAYON_NUM_THREADS"], os.environ["TOKENIZERS_PARALLELISM"] = "1", "false"
    clf = gru_sentiment.load(model, device="cpu", threads=1)
    clf.predict(texts[:64])  # warm-up
    barrier.wait()
    start = time.time()
    clf.predict(texts)
    results.put((start, time.time()))


def by_hand(texts: list[str], processes: int, model: str | None) -> float:
    """Rows/s of `processes` processes of 1 thread started by hand, each on its share of the texts: from the
    first one's start to the last one's end, model loading excluded (the ceiling Ray's workers can reach)."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(processes), ctx.Queue()
    shares = [texts[i::processes] for i in range(processes)]
    procs = [ctx.Process(target=_by_hand_worker, args=(share, model, barrier, results)) for share in shares]
    for proc in procs:
        proc.start()
    spans = [results.get() for _ in procs]
    for proc in procs:
        proc.join()
    return len(texts) / (max(end for _, end in spans) - min(start for start, _ in spans))


def ray_run(folder: Path, out: Path, workers: int, rows_per_call: int, model: str | None, n: int) -> dict:
    start = time.perf_counter()
    summary = predict_files(
        folder, out, model=model, workers=workers, threads_per_worker=1, rows_per_call=rows_per_call,
        predictor=TimedPredictor, overwrite=True,
    )  # fmt: skip
    end_to_end = time.perf_counter() - start
    scored = pd.read_parquet(out)
    if len(scored) != n or scored["id"].nunique() != n:
        raise SystemExit(f"{workers} workers wrote {len(scored)} rows ({scored['id'].nunique()} ids) for {n}")
    batches = scored.drop_duplicates(["pid", "t_start"])
    span = batches["t_end"].max() - batches["t_start"].min()
    return {
        "workers": workers,
        "rows_per_s": n / span,
        "span_s": span,
        "end_to_end_s": end_to_end,
        "end_to_end_rows_per_s": summary.rows / end_to_end,
        "batches": len(batches),
        "rows_by_worker": sorted(scored.groupby("pid").size().tolist()),
        "cpu_per_worker": batches["cpu_s"].sum() / span / workers,
        "torch_threads": sorted(set(batches["torch_threads"])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--limit", type=int, default=10000)
    parser.add_argument("--files", type=int, default=4, help="parquet files the reviews are written to")
    parser.add_argument("--rows-per-call", type=int, default=512, help="rows a worker scores at a time")
    parser.add_argument("--repeats", type=int, default=2, help="pairs of runs (1 worker, 2 workers)")
    parser.add_argument("--model", default=None)
    args = parser.parse_args()
    if args.repeats < 1 or args.files < 1:
        raise SystemExit("--repeats and --files must be at least 1")
    model = str(Path(args.model).resolve()) if args.model else None
    reviews = pd.read_parquet(args.data / "imdb" / "test.parquet", columns=["text"]).head(args.limit)
    reviews.insert(0, "id", np.arange(len(reviews)))
    n = len(reviews)
    cores = os.cpu_count()
    print(f"{n:,} IMDB test reviews in {args.files} parquet files; {cores} cores; {args.rows_per_call} rows a call")

    texts = reviews["text"].tolist()
    baseline = single_process(texts, model)
    print(f"single process, load(threads=2).predict: {baseline:7.0f} rows/s")
    hand = {k: by_hand(texts, k, model) for k in (1, 2)}
    print(
        f"processes by hand, 1 thread each: 1: {hand[1]:7.0f} rows/s, 2: {hand[2]:7.0f} rows/s = "
        f"{hand[2] / hand[1]:.2f}x (this machine's ceiling for 2 workers)"
    )

    import ray

    ray.init(
        num_cpus=cores,
        include_dashboard=False,
        log_to_driver=False,
        logging_level="ERROR",
        runtime_env={"worker_process_setup_hook": "gru_sentiment.ray.settle_fsspec_http"},
    )
    runs = []
    with tempfile.TemporaryDirectory(prefix="ray-speed-") as tmp:
        folder = Path(tmp) / "in"
        folder.mkdir()
        for i, rows in enumerate(np.array_split(np.arange(n), args.files)):
            reviews.iloc[rows].to_parquet(folder / f"part-{i}.parquet", index=False)
        for pair in range(args.repeats):
            for workers in (1, 2) if pair % 2 == 0 else (2, 1):
                run = ray_run(folder, Path(tmp) / "out", workers, args.rows_per_call, model, n)
                runs.append(run)
                print(
                    f"Ray, {workers} worker{'s' if workers > 1 else ' '} x 1 thread: {run['rows_per_s']:7.0f} rows/s "
                    f"over {run['span_s']:5.1f} s ({run['batches']} batches, rows by worker {run['rows_by_worker']},"
                    f" CPU {run['cpu_per_worker']:.2f} a worker, torch threads {run['torch_threads']}); end to end "
                    f"{run['end_to_end_s']:5.1f} s = {run['end_to_end_rows_per_s']:4.0f} rows/s",
                    flush=True,
                )
    ray.shutdown()
    one = [r["rows_per_s"] for r in runs if r["workers"] == 1]
    two = [r["rows_per_s"] for r in runs if r["workers"] == 2]
    ratios = [b / a for a, b in zip(one, two)]
    ends = [
        b["end_to_end_rows_per_s"] / a["end_to_end_rows_per_s"]
        for a, b in zip([r for r in runs if r["workers"] == 1], [r for r in runs if r["workers"] == 2])
    ]
    print(
        f"2 workers / 1 worker: {statistics.median(ratios):.2f}x (median of {', '.join(f'{r:.2f}' for r in ratios)};"
        f" end to end {statistics.median(ends):.2f}x); 2 workers / single process: "
        f"{statistics.median(two) / baseline:.2f}x"
    )


if __name__ == "__main__":
    main()
