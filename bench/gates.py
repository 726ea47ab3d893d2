"""Cost of tracing the gates of a 1,000-token review, against a plain forward pass of the same model; and the
time of a unit search over 1,000 IMDB test reviews.

    python bench/gates.py [--model DIR] [--tokens 1000] [--repeats 20] [--find REGEX] [--data ../shared/data]

Prints milliseconds for each and the ratio (target: trace <= 3x forward), and the same for integrated-gradient
attributions (`predict --attributions`; target <= 10x a plain prediction). Without --model, a model with the
default architecture (bidirectional, 128 units) and random weights: the cost does not depend on the weights.
With the shared data present, also times `explain.find_units` (what `gates --find` runs) on the first 1,000
IMDB test reviews (target: under a minute on the 2-core machine), beside a plain prediction of the same texts.
"""

import argparse
import statistics
import time
from pathlib import Path

import torch

from gru_sentiment import attribution, batching, checkpoint, explain, gates, tokenizer
from gru_sentiment.model import GRUClassifier, ModelConfig


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model")
    parser.add_argument("--tokens", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--find", default=r"\b(not|never|no|nothing)\b|n't\b")
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.model:
        model = checkpoint.load(args.model).model
    else:
        torch.manual_seed(0)
        model = GRUClassifier(ModelConfig(vocab_size=20000, num_labels=2)).eval()
    ids = torch.randint(2, model.config.vocab_size, (1, args.tokens))
    lengths = torch.tensor([args.tokens])
    with torch.inference_mode():
        plain = timed(lambda: model(ids, lengths), args.repeats)
        traced = timed(lambda: gates.trace(model, ids, lengths), args.repeats)
        same = torch.allclose(gates.trace(model, ids, lengths).logits, model(ids, lengths), atol=1e-5)
    c = model.config
    print(
        f"model: {c.num_layers} layer(s), {'bi' if c.bidirectional else 'uni'}directional, {c.hidden_size} units; "
        f"{args.tokens} tokens; {torch.get_num_threads()} threads; median of {args.repeats}"
    )
    print(f"plain forward        {plain * 1000:8.2f} ms")
    print(f"forward + gate trace {traced * 1000:8.2f} ms")
    print(f"ratio trace/forward  {traced / plain:8.2f}x   (target <= 3x)   same logits: {same}")
    attributions(model, args)
    unit_search(args)


def attributions(model, args) -> None:
    """Integrated gradients on a 1,000-token review against a plain forward pass; with --model and the shared
    data, also on a real review, from the command line (what a user waits for), and the HTML page's size."""
    ids = torch.randint(2, model.config.vocab_size, (1, args.tokens))
    if args.model and (args.data / "imdb" / "test.parquet").exists():
        import pyarrow.parquet as pq

        texts = pq.read_table(args.data / "imdb" / "test.parquet", columns=["text"]).column("text").to_pylist()
        bundle = checkpoint.load(args.model)
        long = [t for t in texts if len(bundle.tokenizer.encode(t).ids) >= args.tokens][0]
        ids = torch.tensor([bundle.tokenizer.encode(long).ids[: args.tokens]])
    lengths = torch.tensor([ids.shape[1]])
    with torch.inference_mode():
        plain = timed(lambda: model(ids, lengths), args.repeats)
    found = []
    spent = timed(lambda: found.append(attribution.integrated_gradients(model, ids[0].tolist())), 3)
    last = found[-1]
    print(
        f"integrated gradients, {ids.shape[1]} tokens: {spent * 1000:.0f} ms, {spent / plain:.1f}x the plain forward "
        f"pass; {last.steps} intervals, completeness gap {last.gap:.3%} (target < 1%)"
    )
    if args.model and (args.data / "imdb" / "test.parquet").exists():
        cli(args, long)


def cli(args, text: str) -> None:
    """`gru-sentiment predict TEXT` against the same with --attributions, and with --gates full --html: wall time
    of a new process each (median of 3), and the page's size."""
    import statistics
    import subprocess
    import sys

    exe = [sys.executable, "-m", "gru_sentiment", "predict", "-m", args.model, "-f", "jsonl"]

    def wall(extra: list[str]) -> float:
        samples = []
        for _ in range(3):
            start = time.perf_counter()
            subprocess.run([*exe, *extra, "--", text], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            samples.append(time.perf_counter() - start)
        return statistics.median(samples)

    plain, attributed = wall([]), wall(["--attributions"])
    bundle = checkpoint.load(args.model)
    print(
        f"command line, one {len(text.split())}-word review (the model reads its "
        f"{bundle.cut.describe()}): predict {plain:.2f} s, predict --attributions "
        f"{attributed:.2f} s: {attributed / plain:.2f}x (target <= 10x)"
    )
    from gru_sentiment.html_report import page
    from gru_sentiment.predict import predict

    bundle = checkpoint.load(args.model)
    bundle.cut = tokenizer.Cut()  # the whole review, not only the tokens the shipped model reads
    pred = predict(bundle, [text], with_gates=True, with_attributions=True)[0]
    size = len(page([pred], labels=bundle.labels, full=True).encode())
    print(
        f"HTML page of a {len(pred.gates.tokens)}-token review with unit maps of z, r and h and attributions: "
        f"{size / 1e6:.2f} MB (target < 5 MB)"
    )


def unit_search(args) -> None:
    imdb = args.data / "imdb" / "test.parquet"
    if args.model and imdb.exists():
        import pyarrow.parquet as pq

        bundle = checkpoint.load(args.model)
        texts = pq.read_table(imdb, columns=["text"]).column("text").to_pylist()[:1000]
        start = time.perf_counter()
        ids = tokenizer.encode_ids(bundle.tokenizer, texts, bundle.cut)
        batching.logits_for(bundle.model, ids, 64, torch.device("cpu"), bundle.model.config.pad_id)
        predicted = time.perf_counter() - start
        start = time.perf_counter()
        found = explain.find_units(bundle, texts, args.find)
        searched = time.perf_counter() - start
        best = found["units"][0]
        print(
            f"unit search over 1,000 IMDB test reviews for {args.find!r}: {searched:.1f} s (target < 60 s); "
            f"plain prediction of the same texts {predicted:.1f} s; {found['n_match']:,} matching tokens; "
            f"first: layer {best['layer']} {best['direction']} unit {best['unit']} {best['gate']} "
            f"effect {best['effect']:+.2f}"
        )


if __name__ == "__main__":
    main()
