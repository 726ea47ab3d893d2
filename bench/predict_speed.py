"""Batch prediction throughput and memory: `gru-sentiment predict --file ... --format jsonl` on IMDB test.

    python bench/predict_speed.py [--data ../shared/data] [--limit 25000] [--model DIR] [--big-mib 1024]
                                  [--baseline-model DIR] [--baseline-src DIR] [--device cuda] [--stages N]

Writes the first --limit IMDB test reviews one per line, then times the real command (a new process) on half,
all, and twice that many reviews (the file repeated), reporting reviews/s, the time ratio of 2x to 1x (linear
is 2.0) and each process's peak memory (flat means streamed). In the same run, fits TF-IDF + logistic
regression on IMDB train and times its prediction on the same reviews (needs the `bench` extra).
`--big-mib 1024` adds a run on a file of at least that many MiB (the reviews repeated): memory should stay
where it was for the small files (about 20 minutes for 1 GiB on 2 cores).
Same-run baselines: `--baseline-model DIR` times another model with this code; `--baseline-src DIR` times the
same model with another version of the code (a source tree holding a `gru_sentiment/` package, e.g.
`git worktree add /tmp/before <commit>`), run from inside it and first on PYTHONPATH. Each is timed against
this model and code on the half file, alternately, `--ab-repeats` times (the machine's speed drifts by more
than the differences being measured), and the median ratio is reported.
`--device D` runs every command on that device (default: the command's own, auto); `--stages N` then also
prints, in this process, where the time goes on N reviews (`predict_stages.py`: the tokenizer alone, the bare
forward pass on the same batches, the whole path).
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gru_sentiment import data

DEVICE: list[str] = []  # the --device given to every predict command, if any


def run_predict(file: Path, model: str | None, src: Path | None = None) -> tuple[float, float, int]:
    """Seconds, peak RSS in MiB, and lines written by one predict process (with the code in `src`, if given)."""
    args = [sys.executable, "-m", "gru_sentiment", "predict", "--file", str(file), "--format", "jsonl", *DEVICE]
    if model:
        args += ["--model", model]
    env = dict(os.environ)
    if src is not None:
        if not (src / "gru_sentiment" / "__init__.py").is_file():
            raise SystemExit(f"{src} holds no gru_sentiment package")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(src.resolve()), env.get("PYTHONPATH")]))
    with tempfile.TemporaryFile() as out:
        start = time.perf_counter()
        # from inside `src`: `python -m` puts the working directory ahead of PYTHONPATH
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.DEVNULL, env=env, cwd=src)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode:
            raise SystemExit(f"predict failed with exit code {proc.returncode}")
        out.seek(0)
        lines = sum(1 for _ in out)
    return seconds, usage.ru_maxrss / 1024, lines


def ab_pair(file: Path, a: tuple, b: tuple, first_a: bool) -> tuple[tuple, tuple]:
    """One timing of each of two (model, src) setups on `file`, in the order given (alternate it between pairs,
    so that neither side always runs on a machine just warmed or just slowed); both must write every line."""
    first, second = (a, b) if first_a else (b, a)
    one, two = run_predict(file, *first), run_predict(file, *second)
    if one[2] != two[2]:
        raise SystemExit(f"the two setups wrote {one[2]} and {two[2]} lines for the same file")
    return (one, two) if first_a else (two, one)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--limit", type=int, default=25000)
    parser.add_argument("--model", default=None)
    parser.add_argument("--big-mib", type=int, default=0, help="also predict a file of this many MiB (0: skip)")
    parser.add_argument("--baseline-model", default=None, help="also time this model (on the half file)")
    parser.add_argument("--baseline-src", type=Path, default=None, help="also time this code (on the half file)")
    parser.add_argument("--ab-repeats", type=int, default=3, help="alternating pairs per baseline (default 3)")
    parser.add_argument("--device", default=None, help="run the commands on this device (default: theirs, auto)")
    parser.add_argument("--stages", type=int, default=0, help="also time the stages on this many reviews (0: skip)")
    args = parser.parse_args()
    if args.device:
        DEVICE[:] = ["--device", args.device]
    if args.model:  # the baseline code runs from its own folder
        args.model = str(Path(args.model).resolve())
    if args.ab_repeats < 1:
        raise SystemExit("--ab-repeats must be at least 1")
    if args.baseline_src and not args.model:
        raise SystemExit("--baseline-src needs --model, so that both versions of the code read the same model")
    test = data.load(str(args.data / "imdb"), "test", label_names=["neg", "pos"])
    texts = [" ".join(t.split()) for t in test.texts[: args.limit]]
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for name, chunk in (("half", texts[: len(texts) // 2]), ("all", texts), ("twice", texts + texts)):
            files[name] = Path(tmp) / f"{name}.txt"
            files[name].write_text("\n".join(chunk) + "\n", encoding="utf-8")
        if args.big_mib:
            files["big"] = Path(tmp) / "big.txt"
            block = files["all"].read_bytes()
            with open(files["big"], "wb") as big:
                for _ in range(-(-args.big_mib * 2**20 // len(block))):
                    big.write(block)
        sizes = {name: path.stat().st_size for name, path in files.items()}
        results = {name: run_predict(path, args.model) for name, path in files.items()}
        others = {}
        if args.baseline_model:
            others[f"model {args.baseline_model}, this code"] = (args.baseline_model, None)
        if args.baseline_src:
            others[f"this model, code in {args.baseline_src}"] = (args.model, args.baseline_src)
        baselines = {
            name: [
                ab_pair(files["half"], (args.model, None), baseline, first_a=i % 2 == 0) for i in range(args.ab_repeats)
            ]
            for name, baseline in others.items()
        }

    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    train = data.load(str(args.data / "imdb"), "train", label_names=["neg", "pos"])
    baseline = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), min_df=2, max_df=0.9, sublinear_tf=True),
        LogisticRegression(C=4.0, max_iter=2000),
    ).fit(train.texts, train.labels)
    start = time.perf_counter()
    baseline.predict(texts)
    tfidf_rate = len(texts) / (time.perf_counter() - start)

    print(
        f"gru-sentiment predict --file F --format jsonl {' '.join(DEVICE)}, IMDB test reviews, one process each "
        f"({os.cpu_count()} cores)"
    )
    print(f"{'reviews':>8} {'seconds':>8} {'reviews/s':>10} {'peak MiB':>9}")
    for name, (seconds, peak, lines) in results.items():
        size = f"   ({sizes[name] / 2**20:,.0f} MiB file)" if name == "big" else ""
        print(f"{lines:>8} {seconds:>8.1f} {lines / seconds:>10.0f} {peak:>9.0f}{size}")
    print(f"time for 2x the reviews / time for 1x: {results['twice'][0] / results['all'][0]:.2f} (linear: 2.00)")
    print(
        f"TF-IDF 1-2gram + LR prediction, same {len(texts)} reviews, in process: {tfidf_rate:,.0f} reviews/s; "
        f"gru-sentiment / TF-IDF = {len(texts) / results['all'][0] / tfidf_rate:.2f}"
    )
    for name, pairs in baselines.items():
        lines = pairs[0][0][2]
        rates = ", ".join(f"{lines / this[0]:,.0f} vs {lines / other[0]:,.0f}" for this, other in pairs)
        speedup = statistics.median(other[0] / this[0] for this, other in pairs)
        print(
            f"baseline, {name}: {lines} reviews, this vs baseline reviews/s, alternating: {rates}; "
            f"median speed ratio this / baseline = {speedup:.2f}"
        )
    if args.stages:
        import predict_stages

        texts = predict_stages.imdb_texts(args.data / "imdb", args.stages)
        rows = predict_stages.stages(texts, args.model, args.device or "auto", None)
        predict_stages.print_stages(rows, len(texts), args.device or "auto")


if __name__ == "__main__":
    main()
