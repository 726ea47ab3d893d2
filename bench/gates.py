"""Cost of tracing the gates of a 1,000-token review, against a plain forward pass of the same model.

    python bench/gates.py [--model DIR] [--tokens 1000] [--repeats 20]

Prints milliseconds for each and the ratio (target: trace <= 3x forward). Without --model, a model with the
default architecture (bidirectional, 128 units) and random weights: the cost does not depend on the weights.
"""

import argparse
import statistics
import time

import torch

from gru_sentiment import checkpoint, gates
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


if __name__ == "__main__":
    main()
