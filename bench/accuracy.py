"""Accuracy of a gru-sentiment model on every review test set, against baselines run here in the same run.

    python bench/accuracy.py --model models/gru-reviews [--data ../shared/data]
        [--baseline imdb+sst2+apps+hotels --baseline all] [--no-vader] [--baseline-model DIR] [--teacher DIR]

Evaluates the model on IMDB test (25,000 film reviews), SST-2 validation (872 film sentences), apps test
(3,038 app-store reviews), hotels test (2,355 hotel reviews of 1-2 or 4-5 stars; the 3-star ones carry no
label), yelp test (2,000 restaurant reviews), the test splits of restaurants (Zomato), clothing, insurance
(Trustpilot) and airline (tweets; the neutral ones carry no label), and the everyday set
(`bench/everyday.csv`: short review sentences written and labelled by hand before any model read them; also
reported for its sentences with negation or idiom alone). Baselines:
- TF-IDF word 1-2 grams (sublinear TF) + logistic regression, fitted in this run on each --baseline training
  set: `+`-joined train splits, `all` for every labelled one (default: imdb+sst2+apps+hotels, and all);
- VADER (Hutto & Gilbert 2014, the `vaderSentiment` lexicon), no training: positive when its compound score
  is >= 0;
- `--baseline-model DIR` (repeatable): another gru-sentiment model, for example the one a new model replaces
  (`git archive 82b98d8 models/gru-imdb-sst2 | tar -x -C /tmp` gives the film-only model);
- `--teacher DIR`: a transformer teacher that `gru-sentiment teacher fit` wrote (needs the `teacher` extra).
Prints system, data set, accuracy, macro F1 and prediction throughput (texts/s, including tokenization /
vectorization). Needs the `bench` extra.

Each difference in accuracy comes with McNemar's exact test on the same texts: of the texts exactly one of
the two systems gets right, how many each gets, and the two-sided binomial p-value of that split under "both
are equally accurate". A small p means the difference is unlikely to be only the luck of this test set's draw.
"""

import argparse
import time
from pathlib import Path

import torch

from gru_sentiment import checkpoint, data, jobs
from gru_sentiment.metrics import report

SETS = (
    ("imdb", "test"),
    ("sst2", "validation"),
    ("apps", "test"),
    ("hotels", "test"),
    ("yelp", "test"),
    ("restaurants", "test"),
    ("clothing", "test"),
    ("insurance", "test"),
    ("airline", "test"),
)
TRAIN_SETS = ("imdb", "sst2", "apps", "hotels", "restaurants", "clothing", "insurance", "airline")
EVERYDAY = Path(__file__).resolve().parent / "everyday.csv"


def tfidf_baseline(train: data.TextData):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    pipeline = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), min_df=2, max_df=0.9, sublinear_tf=True, strip_accents="unicode"),
        LogisticRegression(C=4.0, max_iter=2000),
    )
    return pipeline.fit(train.texts, train.labels)


def mcnemar(truth: list[int], ours: list[int], other: list[int]) -> tuple[int, int, float]:
    """(texts only ours gets right, texts only the other gets right, exact two-sided p-value)."""
    from scipy.stats import binomtest

    only_ours = sum(o == t != p for t, o, p in zip(truth, ours, other))
    only_other = sum(p == t != o for t, o, p in zip(truth, ours, other))
    n = only_ours + only_other
    return only_ours, only_other, binomtest(only_ours, n, 0.5).pvalue if n else 1.0


class ModelBaseline:
    """Another gru-sentiment model, its predictions given as indices into `label_names` (the tested model's)."""

    def __init__(self, directory: str, label_names: list[str]):
        self.bundle = checkpoint.load(directory)
        if sorted(self.bundle.labels) != sorted(label_names):
            raise SystemExit(f"{directory} has labels {self.bundle.labels}, the model under test {label_names}")
        self.index = [label_names.index(name) for name in self.bundle.labels]

    def predict(self, texts: list[str]) -> list[int]:
        unlabelled = data.TextData(list(texts), [0] * len(texts), list(self.bundle.labels), "baseline")
        return [self.index[p] for p in jobs.predicted_labels(self.bundle, unlabelled)[1]]


class TeacherBaseline:
    """A fine-tuned transformer teacher (`gru-sentiment teacher fit`), its first 512 tokens of a text."""

    def __init__(self, directory: str, label_names: list[str]):
        from gru_sentiment import teacher

        self.teacher = teacher.Teacher(directory, "cuda" if torch.cuda.is_available() else "cpu")
        if sorted(self.teacher.labels) != sorted(label_names):
            raise SystemExit(f"{directory} has labels {self.teacher.labels}, the model under test {label_names}")
        self.index = [label_names.index(name) for name in self.teacher.labels]

    def predict(self, texts: list[str]) -> list[int]:
        predicted = [0] * len(texts)
        for rows, logits in self.teacher.logits(texts):
            for row, p in zip(rows, logits.argmax(-1).tolist()):
                predicted[row] = self.index[p]
        return predicted


def test_sets(data_dir: str, label_names: list[str]):
    """(name, labelled texts) of every test set present: the shared ones, then the everyday set and its
    sentences with negation or idiom."""
    for name, split in SETS:
        if not Path(f"{data_dir}/{name}").is_dir():
            print(f"skipping {name} {split}: not in {data_dir}")
            continue
        yield f"{name} {split}", data.load(f"{data_dir}/{name}", split, label_names=label_names)
    everyday = data.load(str(EVERYDAY), "test", label_names=label_names)
    yield "everyday", everyday
    marked = everyday.table["negation_or_idiom"]
    yield "everyday negation", everyday.subset([i for i, m in enumerate(marked) if m == 1])


class Vader:
    """VADER's compound score, >= 0 read as positive (label 1)."""

    def __init__(self):
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        self.analyzer = SentimentIntensityAnalyzer()

    def predict(self, texts: list[str]) -> list[int]:
        return [int(self.analyzer.polarity_scores(t)["compound"] >= 0) for t in texts]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--baseline",
        action="append",
        help="training data of a TF-IDF baseline: train splits joined by +, or all (repeatable; default: "
        "imdb+sst2+apps+hotels and all)",
    )
    parser.add_argument("--no-vader", action="store_true", help="leave out the VADER baseline")
    parser.add_argument("--baseline-model", action="append", default=[], help="another model to compare with")
    parser.add_argument("--teacher", help="a fine-tuned transformer teacher directory, as a baseline")
    args = parser.parse_args()
    args.baseline = args.baseline or ["imdb+sst2+apps+hotels", "all"]
    for name in args.baseline:
        unknown = [part for part in name.split("+") if part not in (*TRAIN_SETS, "all")]
        if unknown:
            raise SystemExit(f"--baseline {name}: unknown training sets {unknown} (known: {', '.join(TRAIN_SETS)})")
    if args.threads:
        torch.set_num_threads(args.threads)
    bundle = checkpoint.load(args.model)
    model_baselines = {  # loaded and checked before the TF-IDF baselines are fitted
        f"model {Path(d).resolve().name}": ModelBaseline(d, list(bundle.labels)) for d in args.baseline_model
    }
    if len(model_baselines) < len(args.baseline_model):
        raise SystemExit("two --baseline-model directories have the same name: rename one")
    if args.teacher:
        model_baselines[f"teacher {Path(args.teacher).name}"] = TeacherBaseline(args.teacher, list(bundle.labels))
    baselines = {}
    for name in args.baseline:
        start = time.perf_counter()
        parts = TRAIN_SETS if name == "all" else name.split("+")
        train = data.concat([data.load(f"{args.data}/{part}", "train", label_names=["neg", "pos"]) for part in parts])
        baselines[f"TF-IDF 1-2gram + LR ({name})"] = tfidf_baseline(train)
        print(f"TF-IDF baseline trained on {name} train ({len(train):,} texts) in {time.perf_counter() - start:.0f}s")
    if not args.no_vader:
        baselines["VADER (lexicon, no training)"] = Vader()
    baselines.update(model_baselines)
    rows = []
    for set_name, test in test_sets(args.data, list(bundle.labels)):
        start = time.perf_counter()
        _, ours = jobs.predicted_labels(bundle, test)
        rows.append(
            (
                "gru-sentiment " + Path(args.model).name,
                set_name,
                report(test.labels, ours, test.label_names),
                len(test) / (time.perf_counter() - start),
                test.labels,
                ours,
            )
        )
        for base_name, baseline in baselines.items():
            start = time.perf_counter()
            predicted = list(baseline.predict(test.texts))
            rate = len(test) / (time.perf_counter() - start)
            rows.append(
                (
                    base_name,
                    set_name,
                    report(test.labels, [int(p) for p in predicted], test.label_names),
                    rate,
                    test.labels,
                    predicted,
                )
            )
    print(f"\n{'system':<50} {'data set':<22} {'accuracy':>9} {'macro F1':>9} {'texts/s':>9}")
    for system, dataset, r, rate, _, _ in rows:
        print(f"{system:<50} {dataset:<22} {r['accuracy']:>9.4f} {r['macro_f1']:>9.4f} {rate:>9.0f}")
    ours_rows = [r for r in rows if r[0].startswith("gru-sentiment")]
    for ours in ours_rows:
        for other in rows:
            if other[1] == ours[1] and other is not ours:
                delta = ours[2]["accuracy"] - other[2]["accuracy"]
                only_ours, only_other, p = mcnemar(ours[4], ours[5], other[5])
                print(
                    f"{ours[1]}: gru-sentiment minus {other[0]} = {delta * 100:+.2f} accuracy points; "
                    f"right only by gru-sentiment {only_ours:,}, only by the other {only_other:,}, "
                    f"McNemar exact p = {p:.2g}"
                )
    print(f"({torch.get_num_threads()} torch threads)")


if __name__ == "__main__":
    main()
