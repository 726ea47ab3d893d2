"""`merge`: weight interpolation of two models with the same network, tokenizer and labels."""

import json

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from gru_sentiment import checkpoint, merge
from gru_sentiment.cli import app
from gru_sentiment.data import TextData
from gru_sentiment.errors import ModelError
from gru_sentiment.jobs import TokenizerSettings, train_model
from gru_sentiment.train import TrainConfig
from tests.corpus import reviews, write_splits


def _sibling(tiny_model, out, seed=9, labels=("neg", "pos"), hidden=12, own_tokenizer=False):
    """Another small model with the tokenizer of `tiny_model` (or its own), trained from another seed."""
    torch.set_num_threads(1)
    tok = None if own_tokenizer else checkpoint.load(tiny_model).tokenizer
    texts, gold = reviews(200, seed=seed)
    train_model(
        TextData(texts, gold, list(labels), "corpus:train"),
        TextData(*reviews(40, seed=seed + 1), list(labels), "corpus:val"),
        TokenizerSettings("wordpiece", 200, 64),
        dict(embed_dim=16, hidden_size=hidden, num_layers=1, bidirectional=True, dropout=0.1),
        TrainConfig(epochs=1, batch_size=16, lr=1e-2, seed=seed),
        str(out),
        torch.device("cpu"),
        tok=tok,
    )
    return out


def test_merge_writes_the_interpolated_weights_and_both_records(tiny_model, tmp_path):
    other = _sibling(tiny_model, tmp_path / "other")
    runner = CliRunner()
    outputs = {}
    for w in (0.0, 0.25, 1.0):
        out = tmp_path / f"m{w}"
        result = runner.invoke(app, ["merge", str(tiny_model), str(other), "-o", str(out), "--weight", str(w)])
        assert result.exit_code == 0, result.output
        outputs[w] = load_file(str(out / "model.safetensors"))
    a, b = load_file(str(tiny_model / "model.safetensors")), load_file(str(other / "model.safetensors"))
    assert all(torch.equal(outputs[0.0][k], a[k]) and torch.equal(outputs[1.0][k], b[k]) for k in a)
    assert all(torch.allclose(outputs[0.25][k], 0.75 * a[k] + 0.25 * b[k], atol=1e-6) for k in a)
    assert any(not torch.equal(a[k], b[k]) for k in a)  # the two really differ
    training = json.loads((tmp_path / "m0.25" / "config.json").read_text())["training"]
    assert training["merged"]["weight"] == 0.25
    assert training["merged"]["a"]["model"] == str(tiny_model) and training["merged"]["b"]["model"] == str(other)
    assert "best" in training["merged"]["a"] and "best" not in training  # the merged model was never validated
    assert "data" not in training  # neither model records its data, so no carve is claimed for the merge
    result = runner.invoke(app, ["predict", "-m", str(tmp_path / "m0.25"), "a wonderful film", "-f", "json"])
    assert result.exit_code == 0 and json.loads(result.stdout)[0]["label"] in ("neg", "pos")
    texts, labels = reviews(120, seed=5)
    data = write_splits(tmp_path / "data", "csv", texts, [["neg", "pos"][i] for i in labels])
    result = runner.invoke(
        app, ["train", "-d", str(data), "-o", str(tmp_path / "on"), "--init-from", str(tmp_path / "m0.25"),
              "--max-steps", "1", "--threads", "1"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    on = json.loads((tmp_path / "on" / "config.json").read_text())["training"]["init_from"]
    assert on["merged"] == training["merged"]  # trained further, a merge still says what it averaged


def test_models_that_do_not_fit_together_are_refused(tiny_model, tmp_path):
    a = checkpoint.load(tiny_model)
    wider = checkpoint.load(_sibling(tiny_model, tmp_path / "wider", hidden=10))
    with pytest.raises(ModelError, match="cannot be merged: their networks differ"):
        merge.interpolate(a, wider, 0.5)
    own = checkpoint.load(_sibling(tiny_model, tmp_path / "own", seed=21, own_tokenizer=True))
    with pytest.raises(ModelError, match="their tokenizers differ"):
        merge.interpolate(a, own, 0.5)
    flipped = checkpoint.load(_sibling(tiny_model, tmp_path / "flipped", labels=("pos", "neg")))
    with pytest.raises(ModelError, match="their labels differ"):
        merge.interpolate(a, flipped, 0.5)
    result = CliRunner().invoke(
        app, ["merge", str(tiny_model), str(tmp_path / "wider"), "-o", str(tmp_path / "x"), "--weight", "0.5"]
    )
    assert result.exit_code == 1 and "cannot be merged: their networks differ" in result.output
    assert not (tmp_path / "x").exists()
    result = CliRunner().invoke(
        app, ["merge", str(tiny_model), str(tiny_model), "-o", str(tiny_model), "--weight", "1"]
    )
    assert result.exit_code == 2 and "already exists" in result.output


def test_the_merged_model_keeps_the_carve_only_when_both_models_held_out_the_same_texts(tmp_path):
    from gru_sentiment import jobs, tokenizer
    from gru_sentiment.errors import UsageError
    from tests.corpus import write_splits

    torch.set_num_threads(1)
    folder = write_splits(tmp_path / "data", "csv", *reviews(120, seed=30))
    tok = tokenizer.train(reviews(60)[0], vocab_size=120)
    models = {}
    for name, seed, lr in (("a", 0, 1e-2), ("b", 0, 2e-2), ("c", 1, 1e-2)):
        spec = jobs.DataSpec((str(folder),), label_names=("neg", "pos"))
        train, val = jobs.load_training_data(spec, seed)
        config = TrainConfig(epochs=1, batch_size=16, lr=lr, seed=seed)
        settings = jobs.TokenizerSettings("wordpiece", 120, 24)
        out = str(tmp_path / name)
        jobs.train_model(
            train,
            val,
            settings,
            dict(embed_dim=8, hidden_size=6),
            config,
            out,
            torch.device("cpu"),
            tok=tok,
            data_spec=spec,
        )
        models[name] = checkpoint.load(out)
    same = merge.interpolate(models["a"], models["b"], 0.5).training
    assert (
        same.data == models["a"].training.data and same.validation_examples == models["a"].training.validation_examples
    )
    other = merge.interpolate(models["a"], models["c"], 0.5).training  # seed 1 held out other texts
    assert other.data is None and other.config == {} and other.merged["b"]["config"]["seed"] == 1
    with pytest.raises(UsageError, match="between 0 and 1"):
        merge.interpolate(models["a"], models["b"], 1.5)
