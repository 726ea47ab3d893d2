"""Validation accuracy of models trained on several data sets together, per data set: choose settings without
touching a test split.

    python bench/val_by_source.py runs/a runs/b [--data ../shared/data] [-d imdb -d sst2] [--seed 0]
                                  [--longest sst2] [--extra yelp:validation] [--unseen-by-both-carves]
                                  [--tail 0 --tail 382]

Rebuilds the validation split `gru-sentiment train -d imdb -d sst2` carved from the data sets' train splits
(same `--val-fraction`, `--seed` and grouping), and prints each model's accuracy on the part that came from
each data set. On IMDB + SST-2 about 73% of that split is SST-2 phrases, so the overall validation accuracy
says little about full reviews.
- `--longest sst2`: also the accuracy on the longest text of each held-out group of that part (SST-2's
  sentences, without their phrases: what SST-2's own validation split holds).
- `--extra DATASET:SPLIT`: also a split no model trained on (yelp validation, say).
- `--unseen-by-both-carves`: only texts held out by both the grouped and the random carve and with no copy in
  either training part, so that models trained on either carve can be compared. SST-2's held-out texts are
  nearly all pieces of sentences the random carve trained on: leave it out of the mean (`--not-in-mean sst2`;
  it stays in `-d`, or the carve would change).
- The mean is over the parts and extras, each once (`longest` columns are not in it).
- `--tail N` (repeatable): score each model as if it had been trained with `train --tail N` (head+tail
  truncation, see README), one row per value, instead of with the cut saved in its config: to choose N on
  validation before writing it into a model.
"""

import argparse
from pathlib import Path

from gru_sentiment import checkpoint, data, jobs, splits, tokenizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("-d", "--dataset", action="append", help="data set names under --data (default: imdb sst2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--no-val-groups", action="store_true", help="the random carve of models trained before")
    parser.add_argument("--longest", action="append", default=[], help="data set: also its groups' longest texts")
    parser.add_argument("--extra", action="append", default=[], help="DATASET:SPLIT under --data, also scored")
    parser.add_argument("--unseen-by-both-carves", action="store_true", help="compare models of either carve")
    parser.add_argument("--not-in-mean", action="append", default=[], help="data set to leave out of the mean")
    parser.add_argument("--label-names", default="neg,pos")
    parser.add_argument("--tail", type=int, action="append", help="read long texts head+tail, N from the end")
    args = parser.parse_args()
    names = args.dataset or ["imdb", "sst2"]
    labels = tuple(args.label_names.split(","))

    def spec(grouped: bool) -> jobs.DataSpec:
        paths = tuple(str(args.data / n) for n in names)
        return jobs.DataSpec(paths, val_fraction=args.val_fraction, label_names=labels, val_groups=grouped)

    grouped = not args.no_val_groups
    train, val = jobs.load_training_data(spec(grouped), args.seed)
    parts = val.groups or [0] * len(val)  # which data set each held-out text came from
    keep = range(len(val))
    if args.unseen_by_both_carves:
        other_train, other_val = jobs.load_training_data(spec(not grouped), args.seed)
        seen = {t.strip() for t in train.texts} | {t.strip() for t in other_train.texts}
        both = {t.strip() for t in other_val.texts}
        keep = [i for i, t in enumerate(val.texts) if t.strip() in both and t.strip() not in seen]
    columns = {f"{n} val": [i for i in keep if parts[i] == p] for p, n in enumerate(names)}
    for name in args.longest:
        rows = columns[f"{name} val"]
        group = splits.overlap_groups([val.texts[i] for i in rows])
        columns[f"{name} longest"] = [rows[k] for k, g in enumerate(group) if g == k]
    extras = {}
    for source in args.extra:
        dataset, split = jobs.split_source(source)
        extras[source] = data.load(str(args.data / dataset), split, label_names=list(labels))
    sizes = ", ".join(f"{c} {len(rows):,}" for c, rows in columns.items())
    print(f"validation texts: {sizes}" + "".join(f", {s} {len(d):,}" for s, d in extras.items()))
    heads = [*columns, *extras]
    left_out = {f"{n} val" for n in args.not_in_mean}
    in_mean = [h for h in heads if not h.endswith(" longest") and h not in left_out]
    print(f"{'model':<28}" + "".join(f"{h:>16}" for h in heads) + f"{'mean':>10}")
    for model in args.models:
        bundle = checkpoint.load(model)
        recorded = jobs.DataSpec.from_dict(bundle.training.data) if bundle.training.data else None
        if recorded and recorded.val_fraction == 0:
            raise SystemExit(f"{model} was trained on every text (--val-fraction 0): no carve is held out from it")
        if recorded and not args.unseen_by_both_carves:
            carve_seed = recorded.carve_seed(bundle.training.config.get("seed", 0))
            if carve_seed != args.seed:
                raise SystemExit(f"{model} held out the carve of seed {carve_seed}: give --seed {carve_seed}")
            if recorded.val_groups != grouped:
                carve = "in groups" if grouped else "at random"
                raise SystemExit(f"{model} was trained on another carve than this split ({carve}): see --no-val-groups")
        for tail in args.tail or [bundle.cut.tail]:
            try:
                bundle.cut = tokenizer.Cut(bundle.cut.max_length, tail)
            except ValueError as exc:
                raise SystemExit(f"{model}: --tail {tail}: {exc}") from exc
            row = [jobs.evaluate_model(bundle, val.subset(rows))["accuracy"] for rows in columns.values()]
            row += [jobs.evaluate_model(bundle, d)["accuracy"] for d in extras.values()]
            scored = [a for h, a in zip(heads, row) if h in in_mean]
            mean = sum(scored) / len(scored)
            name = f"{model} tail {tail}" if args.tail else str(model)
            print(f"{name:<28}" + "".join(f"{a:>16.4f}" for a in row) + f"{mean:>10.4f}", flush=True)


if __name__ == "__main__":
    main()
