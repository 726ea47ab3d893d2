"""Arbitrary text never crashes predict or the gate trace; bad files give one line and an exit code."""

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from gru_sentiment import checkpoint
from gru_sentiment.cli import app
from gru_sentiment.predict import predict

runner = CliRunner()
ODD_TEXTS = [
    "nul\x00byte",
    "ctrl\x07\x1b[31m",
    "emoji 😀🎬👍🏽",
    "עברית מימין לשמאל",
    "عربي",
    "e\u0301\u0301\u0301",
    "<br /><br />",
    "\u200b\u200d",
    "a" * 20000,
]


def test_odd_texts_predict_with_gates(tiny_model):
    bundle = checkpoint.load(tiny_model)
    for pred in predict(bundle, ODD_TEXTS, with_gates=True):
        assert abs(sum(pred.probabilities.values()) - 1) < 1e-5
        for t in pred.gates.layers:
            assert 0 <= t.values.update.min() and t.values.update.max() <= 1
            assert len(pred.gates.tokens) == t.values.update.shape[0] == len(pred.gates.offsets)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(st.text(min_size=1, max_size=300), min_size=1, max_size=4))
def test_any_unicode_gives_probabilities_and_bounded_gates(tiny_model, texts):
    bundle = _bundle(tiny_model)
    plain = predict(bundle, texts)
    traced = predict(bundle, texts, with_gates=True)
    for p, q in zip(plain, traced):
        assert abs(sum(p.probabilities.values()) - 1) < 1e-5
        assert all(abs(p.probabilities[k] - q.probabilities[k]) < 1e-5 for k in p.probabilities)
        for t in q.gates.layers:
            for name in ("reset", "update"):
                values = getattr(t.values, name)
                assert values.min() >= 0 and values.max() <= 1
        for start, end in q.gates.offsets:
            assert 0 <= start <= end <= len(p.text)


_cache = {}


def _bundle(path):
    if path not in _cache:
        _cache[path] = checkpoint.load(path)
    return _cache[path]


def test_long_text_truncation_is_said(tiny_model):
    result = runner.invoke(app, ["predict", "-m", str(tiny_model), "-f", "json", "great " * 500])
    assert result.exit_code == 0 and json.loads(result.stdout)[0]["truncated"] is True


def test_file_that_is_not_utf8(tiny_model, tmp_path):
    path = tmp_path / "reviews.txt"
    path.write_bytes(b"a wonderful film\n\xff\xfe broken \x80 line\nterrible plot\n")
    base = ["predict", "-m", str(tiny_model), "--file", str(path), "-f", "jsonl"]
    result = runner.invoke(app, base)
    assert result.exit_code == 1 and "reviews.txt:2: not valid UTF-8" in result.output
    result = runner.invoke(app, [*base, "--errors", "skip"])
    assert [json.loads(l)["text"] for l in result.stdout.splitlines()] == ["a wonderful film", "terrible plot"]
    result = runner.invoke(app, [*base, "--errors", "replace"])
    assert "\ufffd" in json.loads(result.stdout.splitlines()[1])["text"]


def test_missing_and_empty_files(tiny_model, tmp_path):
    result = runner.invoke(app, ["predict", "-m", str(tiny_model), "--file", str(tmp_path / "nope.txt")])
    assert result.exit_code == 1 and "no such file" in result.output
    (tmp_path / "empty.txt").write_text("\n\n")
    result = runner.invoke(app, ["predict", "-m", str(tiny_model), "--file", str(tmp_path / "empty.txt")])
    assert result.exit_code == 1 and "input was empty" in result.output


def test_five_megabyte_text_is_cut_and_the_cut_is_said(tiny_model, tmp_path):
    path = tmp_path / "big.txt"
    path.write_text("this film is great fun . " * 210_000 + "\n")  # one line of 5 MB
    assert path.stat().st_size > 5_000_000
    result = runner.invoke(app, ["predict", "-m", str(tiny_model), "--file", str(path), "-f", "jsonl"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["truncated"] is True
    assert "were longer than 64 tokens" in result.stderr


def test_no_pickle_anywhere_in_the_package(monkeypatch, tiny_model):
    """Weights load through safetensors only: the package never calls torch.load or pickle."""
    import pathlib
    import pickle

    import torch

    import gru_sentiment

    source = "\n".join(p.read_text() for p in pathlib.Path(gru_sentiment.__file__).parent.glob("*.py"))
    for banned in ("torch.load(", "torch.save(", "import pickle", "pickle.load", "import dill"):
        assert banned not in source

    def refuse(*args, **kwargs):
        raise AssertionError("unpickling was attempted")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    result = runner.invoke(app, ["predict", "-m", str(tiny_model), "-f", "json", "a superb film"])
    assert result.exit_code == 0, result.output


def test_path_tricks_in_dataset_names_are_checked_paths():
    for spec in ("../../etc/passwd", "/etc/passwd", "/etc"):
        result = runner.invoke(app, ["train", "-d", spec, "-o", "/tmp/never-written-model"])
        assert result.exit_code == 1 and "Traceback" not in result.output
        assert any(s in result.output for s in ("not found", "unsupported file type", "no split"))


def test_evaluate_with_labels_the_model_never_saw(tiny_model, tmp_path):
    from tests.corpus import write_splits

    folder = write_splits(tmp_path / "d", "csv", ["fine", "great", "bad"], ["neutral", "pos", "neg"])
    result = runner.invoke(app, ["evaluate", "-m", str(tiny_model), "-d", str(folder)])
    assert result.exit_code == 1 and "neutral" in result.output


def test_training_data_with_some_empty_texts_trains(tmp_path):
    from tests.corpus import reviews, write_splits

    texts, labels = reviews(60)
    texts[:5] = [""] * 5
    folder = write_splits(tmp_path / "d", "jsonl", texts, labels)
    result = runner.invoke(
        app,
        [
            "train",
            "-d",
            str(folder),
            "-o",
            str(tmp_path / "m"),
            "--epochs",
            "1",
            "--set",
            "tokenizer.vocab_size=100",
            "--set",
            "model.embed_dim=4",
            "--set",
            "model.hidden_size=4",
        ],
    )
    assert result.exit_code == 0, result.output


def test_streaming_keeps_input_order_across_chunks(tiny_model):
    from gru_sentiment.predict import predict_stream

    bundle = _bundle(tiny_model)
    texts = [f"{'great ' * (i % 7 + 1)}film number {i}" for i in range(23)]
    streamed = list(predict_stream(bundle, iter(texts), chunk_size=5, batch_size=3))
    whole = predict(bundle, texts, batch_size=64)
    assert [p.text for p in streamed] == texts
    assert all(abs(a.probabilities["pos"] - b.probabilities["pos"]) < 1e-5 for a, b in zip(streamed, whole))


def test_threads_option_sets_torch_threads(tiny_model):
    import torch

    before = torch.get_num_threads()
    try:
        result = runner.invoke(app, ["predict", "-m", str(tiny_model), "--threads", "1", "fine"])
        assert result.exit_code == 0 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_predictions_are_the_same_with_one_thread_and_with_batches_side_by_side(tiny_model, tmp_path):
    import torch

    path = tmp_path / "reviews.txt"
    path.write_text("\n".join(f"{'great ' * (i % 5)}{'awful ' * (i % 3)}film {i}" for i in range(300)) + "\n")
    before = torch.get_num_threads()
    outputs = {}
    try:
        for threads in ("1", "3"):
            args = ["predict", "-m", str(tiny_model), "--file", str(path), "--format", "jsonl", "--threads", threads]
            result = runner.invoke(app, args)
            assert result.exit_code == 0, result.output
            outputs[threads] = [json.loads(line) for line in result.stdout.splitlines()]
            assert torch.get_num_threads() == int(threads)  # the workers put the setting back
    finally:
        torch.set_num_threads(before)
    one, three = outputs["1"], outputs["3"]
    assert len(one) == len(three) == 300
    assert [p["label"] for p in one] == [p["label"] for p in three]
    assert all(abs(a["probabilities"]["pos"] - b["probabilities"]["pos"]) < 1e-5 for a, b in zip(one, three))
