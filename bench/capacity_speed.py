"""What prediction speed a bigger network would cost: the forward pass of networks of other shapes, in process.

    python bench/capacity_speed.py [--model models/gru-reviews] [--data ../shared/data] [--limit 2000]
                                   [--repeats 3]

Encodes the first --limit IMDB test reviews with the model's tokenizer and cut, then times the forward pass
(`batching.logits_for`, what `predict` runs) of the model's own shape and of wider, deeper and
wider-embedding ones, with random weights (speed does not depend on the values): once as one batch at a time
on every thread, once as batches side by side on one thread each. The shapes are timed in turn, --repeats
times round, and the median is reported (the machine's speed drifts). Tokenizing and start-up come on top:
`bench/predict_speed.py` times the real command.
"""

import argparse
import statistics
import time
from pathlib import Path

import torch

from gru_sentiment import batching, checkpoint, data, tokenizer
from gru_sentiment.model import GRUClassifier, ModelConfig

SHAPES = {
    "the model's own": {},
    "hidden 192": {"hidden_size": 192},
    "hidden 256": {"hidden_size": 256},
    "2 layers": {"num_layers": 2},
    "embedding 256": {"embed_dim": 256},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models/gru-reviews")
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--limit", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.repeats < 1 or args.limit < 1:
        raise SystemExit("--repeats and --limit must be at least 1")
    bundle = checkpoint.load(args.model)
    test = data.load(str(args.data / "imdb"), "test", label_names=["neg", "pos"])
    texts = test.texts[: args.limit]
    start = time.perf_counter()
    seqs = [e.ids for e in tokenizer.encode_batch(bundle.tokenizer, texts, bundle.cut, False)]
    tokenizing = len(texts) / (time.perf_counter() - start)
    threads = torch.get_num_threads()
    models = {}
    for name, change in SHAPES.items():
        torch.manual_seed(0)
        models[name] = GRUClassifier(ModelConfig(**{**bundle.model.config.to_dict(), **change})).eval()
    rates: dict[tuple[str, int], list[float]] = {(name, w): [] for name in SHAPES for w in (1, threads)}
    for _ in range(args.repeats):
        for name, model in models.items():
            for workers in (1, threads):
                start = time.perf_counter()
                batching.logits_for(model, seqs, 64, "cpu", model.config.pad_id, workers=workers)
                rates[name, workers].append(len(seqs) / (time.perf_counter() - start))
    median = {key: statistics.median(values) for key, values in rates.items()}
    own = median["the model's own", threads]
    read = f"each read as the model reads it: {bundle.cut.describe()} at most"
    print(f"forward pass only, {len(seqs)} IMDB test reviews ({read}), {threads} threads")
    print(f"{'network':<34}{'1 batch x all threads':>22}{'batches side by side':>22}{'vs own shape':>14}")
    for name, change in SHAPES.items():
        config = models[name].config
        label = name if change else f"own: embedding {config.embed_dim}, hidden {config.hidden_size}"
        one, side = median[name, 1], median[name, threads]
        print(f"{label:<34}{one:>20,.0f}/s{side:>20,.0f}/s{side / own:>14.2f}")
    print(f"tokenizing the same reviews (ids only, as predict does), once: {tokenizing:,.0f}/s")


if __name__ == "__main__":
    main()
