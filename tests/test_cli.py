"""The CLI end to end through typer's CliRunner, on small texts written for the tests."""

import json

import pytest
from typer.testing import CliRunner

from gru_sentiment.cli import app
from tests.corpus import reviews, small_model, write_splits

runner = CliRunner()


def invoke(*args, input=None):
    return runner.invoke(app, [str(a) for a in args], input=input)


def test_help_lists_commands():
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("train", "evaluate", "predict"):
        assert command in result.output


@pytest.fixture(scope="module")
def corpus_folder(tmp_path_factory):
    texts, labels = reviews(300, seed=5)
    return write_splits(
        tmp_path_factory.mktemp("data") / "corpus", "parquet", texts, [["neg", "pos"][i] for i in labels]
    )


def test_train_evaluate_predict_end_to_end(corpus_folder, tmp_path):
    out = tmp_path / "model"
    result = invoke(
        "train",
        "-d",
        corpus_folder,
        "-o",
        out,
        "--epochs",
        6,
        "--set",
        "train.patience=6",
        "--set",
        "tokenizer.vocab_size=200",
        "--set",
        "model.embed_dim=16",
        "--set",
        "model.hidden_size=12",
        "--set",
        "model.dropout=0.1",
        "--batch-size",
        16,
        "--lr",
        "0.01",
        "--set",
        "tokenizer.max_length=32",
        "--threads",
        1,
    )
    assert result.exit_code == 0, result.output
    assert "saved" in result.output and (out / "model.safetensors").is_file()
    config = json.loads((out / "config.json").read_text())
    assert config["labels"] == ["neg", "pos"] and config["training"]["best"]["val_accuracy"] >= 0.8

    result = invoke("evaluate", "-m", out, "-d", corpus_folder, "--split", "test", "--format", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report) >= {"accuracy", "macro_f1", "per_label", "confusion_matrix", "labels", "n"}
    assert report["n"] == 300 and report["labels"] == ["neg", "pos"] and report["accuracy"] >= 0.8

    result = invoke("evaluate", "-m", out, "-d", corpus_folder)
    assert result.exit_code == 0 and "true \\ predicted" in result.output and "macro F1" in result.output

    result = invoke("predict", "-m", out, "the film was wonderful .", "a dull , tedious plot .", "--format", "json")
    assert result.exit_code == 0, result.output
    preds = json.loads(result.stdout)
    assert [p["label"] for p in preds] == ["pos", "neg"]
    assert all(abs(sum(p["probabilities"].values()) - 1) < 1e-5 for p in preds)

    result = invoke(
        "predict", "-m", out, "--file", "-", "--format", "jsonl", input="superb acting .\n\nterrible ending .\n"
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(p["text"], p["label"]) for p in lines] == [("superb acting .", "pos"), ("terrible ending .", "neg")]

    result = invoke("predict", "-m", out, "a charming story")
    assert result.exit_code == 0 and "p(pos)" in result.output

    result = invoke("train", "-d", corpus_folder, "-o", out)
    assert result.exit_code == 2 and "--overwrite" in result.output


def test_three_classes_train(tmp_path):
    texts, labels = reviews(240, seed=7, classes=3)
    folder = write_splits(tmp_path / "three", "csv", texts, labels)
    out = tmp_path / "m3"
    result = invoke(
        "train",
        "-d",
        folder,
        "-o",
        out,
        "--epochs",
        2,
        "--set",
        "tokenizer.vocab_size=200",
        "--set",
        "model.embed_dim=8",
        "--set",
        "model.hidden_size=8",
        "--batch-size",
        16,
        "--set",
        "tokenizer.max_length=32",
        "--label-names",
        "neg,pos,neutral",
    )
    assert result.exit_code == 0, result.output
    result = invoke("predict", "-m", out, "okay plot .", "--format", "json")
    assert set(json.loads(result.stdout)[0]["probabilities"]) == {"neg", "pos", "neutral"}


@pytest.mark.parametrize(
    "args, message, code",
    [
        (["predict", "-m", "/no/such/model", "hello"], "model directory not found", 1),
        (["predict", "   "], "empty text", 1),
        (["predict"], "nothing to predict", 2),
        (["evaluate", "-d", "./no/such/data"], "not found", 1),
        (["train", "-d", "./no/such/data", "-o", "/tmp/x-never"], "not found", 1),
        (["evaluate", "-d", "imdb"], "local", 1),
    ],
)
def test_errors_are_one_line_without_traceback(tiny_model, args, message, code):
    if args[0] == "predict" and "-m" not in args:
        args = ["predict", "-m", str(tiny_model), *args[1:]]
    if args[0] == "evaluate":
        args = [*args, "-m", str(tiny_model)]
    result = invoke(*args)
    assert result.exit_code == code, result.output
    assert message in result.output and "Traceback" not in result.output


def test_missing_text_column(tiny_model, tmp_path):
    folder = write_splits(tmp_path / "d", "csv", *reviews(10), column="body")
    result = invoke("evaluate", "-m", tiny_model, "-d", folder, "--split", "test")
    assert result.exit_code == 1 and "--text-column" in result.output


def test_single_class_training_data_is_refused(tmp_path):
    folder = write_splits(tmp_path / "d", "csv", ["good film", "great film"] * 5, [1, 1] * 5)
    result = invoke("train", "-d", folder, "-o", tmp_path / "m")
    assert result.exit_code == 1 and "at least two classes" in result.output


def test_same_seed_same_model_on_cpu(corpus_folder, tmp_path):
    from safetensors.torch import load_file

    """With the tokenizer pinned (trainers break vocabulary ties in hash order), a run repeats bit for bit."""
    args = [
        "-d",
        corpus_folder,
        "--epochs",
        1,
        "--set",
        "tokenizer.vocab_size=150",
        "--set",
        "model.embed_dim=8",
        "--set",
        "model.hidden_size=6",
        "--batch-size",
        32,
        "--set",
        "tokenizer.max_length=16",
        "--threads",
        1,
        "--seed",
        3,
    ]
    assert invoke("train", *args, "-o", tmp_path / "first").exit_code == 0
    args += ["--set", f"tokenizer.from={tmp_path / 'first'}"]
    for name in ("a", "b"):
        assert invoke("train", *args, "-o", tmp_path / name).exit_code == 0
    a, b = (load_file(str(tmp_path / n / "model.safetensors")) for n in ("a", "b"))
    assert a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a)


def test_module_entry_point_runs():
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "gru_sentiment", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "predict" in result.stdout


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--set", 'data.sentence_weight=["films=2"]'], "no data set is called 'films'"),
        (["--set", 'data.sentence_weight=["0"]'], "at least 1"),
        (["--set", 'data.sentence_weight=["2"]', "--streaming"], "needs the training texts in memory"),
        (["--set", 'data.train_only=["nowhere/at/all"]'], "nowhere/at/all"),
        (["--set", 'data.train_only=["nowhere"]', "--streaming"], "needs the training texts in memory"),
    ],
)
def test_bad_sentence_weights_and_train_only_sets_are_one_line_errors(tmp_path, extra, message):
    folder = write_splits(tmp_path / "d", "csv", *reviews(60, seed=2))
    small = [*small_model(vocab=120, max_length=16, embed=8, hidden=8), "--epochs", 1]
    result = invoke("train", "-d", folder, "-o", tmp_path / "m", *small, *extra)
    assert result.exit_code != 0 and message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "m" / "model.safetensors").exists()


def test_score_without_ray_says_how_to_install_it(tmp_path, monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else find_spec(name, *a))
    (tmp_path / "in.csv").write_text("id,text\n1,fine\n")
    result = invoke("score", tmp_path / "in.csv", "-o", tmp_path / "out")
    assert result.exit_code == 1 and "needs ray: pip install 'gru-sentiment[ray]'" in result.output
    assert not (tmp_path / "out").exists()


def test_predict_keeps_a_few_sentences_off_the_gpu(monkeypatch):
    """`--device auto` with texts as arguments computes on the CPU even where CUDA is present: a GPU's start-up
    takes seconds, a few sentences milliseconds. (Here CUDA is only claimed: had the command picked it, moving
    the model there would fail.)"""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    result = runner.invoke(app, ["predict", "--format", "jsonl", "Great hotel.", "Never again."])
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["label"] for line in result.stdout.splitlines()] == ["pos", "neg"]
