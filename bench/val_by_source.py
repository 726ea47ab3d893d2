"""Validation accuracy of models trained on several data sets together, per data set: choose settings without
touching a test split.

    python bench/val_by_source.py runs/a runs/b [--data ../shared/data] [-d imdb -d sst2] [--seed 0]

Rebuilds the validation split `gru-sentiment train -d imdb -d sst2` carved from the data sets' train splits
(same `--val-fraction` and `--seed`), and prints each model's accuracy on the part that came from each data set.
On IMDB + SST-2 about 73% of that split is SST-2 phrases, so the overall validation accuracy says little
about full reviews.
"""

import argparse
from pathlib import Path

from gru_sentiment import checkpoint, data, jobs
from gru_sentiment.data import TextData


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("-d", "--dataset", action="append", help="data set names under --data (default: imdb sst2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--val-fraction", type=float, default=0.1)
    args = parser.parse_args()
    names = args.dataset or ["imdb", "sst2"]
    spec = jobs.DataSpec(tuple(str(args.data / n) for n in names), val_fraction=args.val_fraction)
    train, val = jobs.load_training_data(spec, args.seed)
    sizes = [len(data.load(d, "train")) for d in spec.datasets]
    # the same carve over a stand-in whose label is the data set each example came from
    part_of = [part for part, size in enumerate(sizes) for _ in range(size)]
    stand_in = TextData([""] * len(part_of), part_of, names, "parts")
    _, held_out = jobs.carve_validation(stand_in, args.val_fraction, args.seed)
    print(
        f"validation split: {len(val):,} texts "
        f"({', '.join(f'{n} {held_out.labels.count(i):,}' for i, n in enumerate(names))})"
    )
    print(f"{'model':<36}" + "".join(f"{n + ' val':>14}" for n in names) + f"{'all':>10}")
    for model in args.models:
        bundle = checkpoint.load(model)
        row = []
        for part in range(len(names)):
            rows = [k for k, p in enumerate(held_out.labels) if p == part]
            row.append(jobs.evaluate_model(bundle, val.subset(rows))["accuracy"])
        overall = jobs.evaluate_model(bundle, val)["accuracy"]
        print(f"{str(model):<36}" + "".join(f"{a:>14.4f}" for a in row) + f"{overall:>10.4f}")


if __name__ == "__main__":
    main()
