"""Options of `train` and `evaluate` that shape the data: --label-map, a sampled --limit, and options checked
before any data is read."""

import json

import pytest
import torch
from typer.testing import CliRunner

from gru_sentiment import checkpoint, data, jobs
from gru_sentiment.cli import app
from gru_sentiment.errors import UsageError
from tests.corpus import reviews, small_model, write_splits
from tests.test_resume import CONFIG, small_run, weights

runner = CliRunner()
SMALL = [
    *small_model(vocab=120, max_length=16, embed=8, hidden=8),
    "--threads",
    1,
]


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def sorted_by_label(folder, n=120, names=("negative", "positive")):
    """A data set whose first half is one label and second half the other, as IMDB's files are."""
    texts, labels = reviews(n, seed=8)
    rows = sorted(zip(labels, texts))
    return write_splits(folder, "csv", [t for _, t in rows], [names[y] for y, _ in rows])


@pytest.mark.parametrize(
    "spec, mapping",
    [
        ("negative=neg,positive=pos", {"negative": "neg", "positive": "pos"}),
        (" 0 = neg , 1=pos ", {"0": "neg", "1": "pos"}),
    ],
)
def test_label_map_parses(spec, mapping):
    assert data.parse_label_map(spec) == mapping
    assert data.parse_label_map(None) == {}


@pytest.mark.parametrize("spec", ["negative", "negative=", "=neg", "a=b,,c=d", "", "a=b,a=c"])
def test_bad_label_maps_are_usage_errors(spec):
    with pytest.raises(UsageError, match="--label-map"):
        data.parse_label_map(spec)


def test_evaluate_renames_labels_with_label_map(tiny_model, tmp_path):
    folder = sorted_by_label(tmp_path / "d")
    result = invoke("evaluate", "-m", tiny_model, "-d", folder)
    assert result.exit_code == 1 and "negative, positive" in result.output and "--label-map" in result.output
    result = invoke(
        "evaluate", "-m", tiny_model, "-d", folder, "--label-map", "negative=neg,positive=pos", "-f", "json"
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["n"] == 120 and {k: v["support"] for k, v in report["per_label"].items()} == {"neg": 60, "pos": 60}
    result = invoke("evaluate", "-m", tiny_model, "-d", folder, "--label-map", "negative")
    assert result.exit_code == 2 and result.output.count("\n") == 1 and result.output.startswith("error: --label-map")


def test_train_renames_labels_with_label_map(tmp_path):
    folder, out = sorted_by_label(tmp_path / "d[2024]"), tmp_path / "m[1]"
    result = invoke("train", "-d", folder, "-o", out, "--label-map", "negative=neg,positive=pos", "--epochs", 1, *SMALL)
    assert result.exit_code == 0, result.output
    assert f"loading {folder} (train)" in result.output and f"saved {out}:" in result.output  # brackets as given
    assert checkpoint.load(out).labels == ["neg", "pos"]
    saved = json.loads((out / "config.json").read_text())["training"]["data"]
    assert saved["label_map"] == "negative=neg,positive=pos"  # a resumed run reads the data the same way


def test_evaluate_limit_is_a_seeded_sample_of_every_label(tiny_model, tmp_path):
    folder = sorted_by_label(tmp_path / "d", names=("neg", "pos"))
    run = [invoke("evaluate", "-m", tiny_model, "-d", folder, "--limit", 10, "-f", "json") for _ in range(2)]
    reports = [json.loads(r.stdout) for r in run]
    assert reports[0] == reports[1] and reports[0]["n"] == 10
    assert {k: v["support"] for k, v in reports[0]["per_label"].items()} == {"neg": 5, "pos": 5}


def test_training_limit_is_a_seeded_stratified_sample(tmp_path):
    folder = sorted_by_label(tmp_path / "d", names=("neg", "pos"))
    spec = jobs.DataSpec((str(folder),), limit=40, val_fraction=0.25)
    first, again, other = (jobs.load_training_data(spec, seed) for seed in (3, 3, 4))
    texts = [sorted(t.texts + v.texts) for t, v in (first, again, other)]
    assert texts[0] == texts[1] != texts[2] and len(texts[0]) == 40
    assert sorted(first[0].labels + first[1].labels) == [0] * 20 + [1] * 20
    old = jobs.DataSpec.from_dict({"datasets": [str(folder)], "limit": 40, "val_fraction": 0.25})
    train, val = jobs.load_training_data(old, 3)  # a run saved before sampling took the first rows: it still does
    assert set(train.labels + val.labels) == {0}

    result = invoke("train", "-d", folder, "-o", tmp_path / "m", "--limit", 40, "--epochs", 1, *SMALL)
    assert result.exit_code == 0, result.output
    assert checkpoint.load(tmp_path / "m").labels == ["neg", "pos"]


def test_label_map_and_limit_are_saved_and_a_resumed_run_reads_the_same_data(tmp_path):
    folder = sorted_by_label(tmp_path / "d[2024]")
    spec = jobs.DataSpec((str(folder),), label_map="negative=neg,positive=pos", limit=60)
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    run = small_run(spec, CONFIG)
    run(whole)
    run(cut, stop_at=9)
    saved = jobs.DataSpec.from_dict(json.loads((cut / "config.json").read_text())["training"]["data"])
    assert saved == spec and saved.limit_sampled
    jobs.resume_model(str(cut), torch.device("cpu"))
    a, b = weights(whole), weights(cut)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert checkpoint.load(cut).labels == ["neg", "pos"]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--mix", "abc"], "data.mix takes"),
        (["--mix", "1,2"], "data.mix has 2 weights for 1 data sets"),
        (["--val-fraction", "1.5"], "data.val_fraction must be between 0 and 1"),
        (["--set", 'data.sentence_weight=["films=2"]'], "no data set is called 'films'"),
        (["--label-map", "negative"], "--label-map takes OLD=NEW"),
        (["--streaming", "--max-steps", 5, "--set", "train.vat=1"], "train.vat needs the training texts in memory"),
        (["--streaming"], "stream.enabled (--streaming) needs train.max_steps"),
        (["--teacher-pool", "no/such/pool.parquet"], "no such teacher pool: no/such/pool.parquet"),
        (
            ["--streaming", "--max-steps", 5, "--teacher-pool", "p.parquet"],
            "data.teacher_pool needs the training texts",
        ),
        (
            ["--set", "train.distill_weight=0.3"],
            "train.distill_weight and train.distill_temperature need a teacher pool",
        ),
        (["--set", "tokenizer.from=no/such/tokenizer.json"], "no/such/tokenizer.json"),
    ],
)
def test_options_are_checked_before_any_data_is_read(tmp_path, monkeypatch, extra, message):
    folder = write_splits(tmp_path / "d", "csv", *reviews(40, seed=2))

    def no_reading(*args, **kwargs):
        raise AssertionError("the data was read")

    monkeypatch.setattr(data, "load", no_reading)
    monkeypatch.setattr(jobs, "open_stream", no_reading)
    result = invoke("train", "-d", folder, "-o", tmp_path / "m", *SMALL, *extra)
    assert result.exit_code != 0 and message in result.output, result.output
    assert result.output.startswith("error: ") and result.output.count("\n") == 1  # nothing before it, no progress


def test_a_data_error_is_not_preceded_by_a_progress_bar(tmp_path):
    folder = write_splits(tmp_path / "d", "csv", ["good film", "great film"] * 5, [1, 1] * 5)
    result = invoke("train", "-d", folder, "-o", tmp_path / "m", *SMALL)
    assert result.exit_code == 1 and "at least two classes" in result.output
    assert "epoch" not in result.output and "0/?" not in result.output


def test_an_experimental_setting_is_noted(tmp_path):
    folder = write_splits(tmp_path / "d", "csv", *reviews(40, seed=2))
    result = invoke("train", "-d", folder, "-o", tmp_path / "m", *SMALL, "--max-steps", 2, "--set", "train.ema=0.5")
    assert result.exit_code == 0, result.output
    assert "note: train.ema is experimental" in result.output
