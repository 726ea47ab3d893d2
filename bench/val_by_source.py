"""Validation accuracy of models trained on several data sets together, per data set: choose settings without
touching a test split.

    python bench/val_by_source.py runs/a runs/b [--data ../shared/data] [-d imdb -d sst2] [--seed 0]

Rebuilds the validation split `gru-sentiment train -d imdb -d sst2` carved from the data sets' train splits
(same `--val-fraction`, `--seed` and grouping), and prints each model's accuracy on the part that came from
each data set.
On IMDB + SST-2 about 73% of that split is SST-2 phrases, so the overall validation accuracy says little
about full reviews.
"""

import argparse
from pathlib import Path

from gru_sentiment import checkpoint, jobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("-d", "--dataset", action="append", help="data set names under --data (default: imdb sst2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--no-val-groups", action="store_true", help="the random carve of models trained before")
    args = parser.parse_args()
    names = args.dataset or ["imdb", "sst2"]
    spec = jobs.DataSpec(
        tuple(str(args.data / n) for n in names), val_fraction=args.val_fraction, val_groups=not args.no_val_groups
    )
    _, val = jobs.load_training_data(spec, args.seed)
    parts = val.groups or [0] * len(val)  # which data set each held-out text came from
    print(f"validation split: {len(val):,} texts ({', '.join(f'{n} {parts.count(i):,}' for i, n in enumerate(names))})")
    print(f"{'model':<36}" + "".join(f"{n + ' val':>14}" for n in names) + f"{'all':>10}")
    for model in args.models:
        bundle = checkpoint.load(model)
        recorded = bundle.training.data
        if recorded and jobs.DataSpec.from_dict(recorded).val_groups != spec.val_groups:
            carve = "in groups" if spec.val_groups else "at random"
            raise SystemExit(f"{model} was trained on another carve than this split ({carve}): see --no-val-groups")
        row = []
        for part in range(len(names)):
            rows = [k for k, p in enumerate(parts) if p == part]
            row.append(jobs.evaluate_model(bundle, val.subset(rows))["accuracy"])
        overall = jobs.evaluate_model(bundle, val)["accuracy"]
        print(f"{str(model):<36}" + "".join(f"{a:>14.4f}" for a in row) + f"{overall:>10.4f}")


if __name__ == "__main__":
    main()
