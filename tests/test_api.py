"""The Python API (`gru_sentiment.load` and `Classifier`): what it accepts, that it gives the command line's
numbers, its gate trace and report, its errors, and the README's Python examples."""

import contextlib
import io
import json
import re
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import gru_sentiment
from gru_sentiment import api, batching, gates, tokenizer
from gru_sentiment.cli import app
from gru_sentiment.cli_support import setup_device
from gru_sentiment.errors import DataError, ModelError, UsageError, UserError
from gru_sentiment.options import Device
from tests.corpus import reviews, write_splits

ROOT = Path(__file__).resolve().parents[1]
TEXTS = ["superb acting and a wonderful plot", "dull , boring and far too long", "a fine film", "awful"]
runner = CliRunner()


@pytest.fixture(scope="module")
def clf(tiny_model):
    return gru_sentiment.load(tiny_model, device="cpu")


def cli_json(*args) -> list | dict:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_load_exposes_labels_device_and_path(clf, tiny_model):
    assert clf.labels == ["neg", "pos"] and clf.device == torch.device("cpu") and clf.path == tiny_model
    assert "neg" in repr(clf) and gru_sentiment.Classifier is api.Classifier


@pytest.mark.parametrize("kind", [list, tuple, iter, lambda t: (x for x in t)])
def test_predict_takes_any_iterable_and_matches_the_command_line(clf, tiny_model, kind):
    preds = clf.predict(kind(TEXTS))
    expected = cli_json("predict", "-m", tiny_model, "-f", "json", *TEXTS)
    assert [p.text for p in preds] == TEXTS and all(isinstance(p, gru_sentiment.Prediction) for p in preds)
    assert [p.label for p in preds] == [e["label"] for e in expected]
    for pred, record in zip(preds, expected):
        assert list(pred.probabilities) == clf.labels
        assert pred.probabilities == pytest.approx(record["probabilities"], abs=1e-6)
        assert pred.to_dict() == {**record, "probabilities": pred.probabilities, "truncated": False}


def test_predict_in_batches_of_any_size_keeps_input_order(clf):
    many = reviews(50, seed=7)[0]
    whole = clf.predict(many)
    assert [p.text for p in clf.predict(many, batch_size=3)] == many
    assert [p.label for p in clf.predict(many, batch_size=3)] == [p.label for p in whole]


def test_a_single_string_gives_a_single_prediction(clf):
    one = clf.predict(TEXTS[0])
    assert isinstance(one, gru_sentiment.Prediction) and one.text == TEXTS[0]
    assert one == clf.predict([TEXTS[0]])[0]
    assert clf.predict([]) == []


def test_pandas_series_and_datasets_column(clf):
    pd = pytest.importorskip("pandas")
    from datasets import Dataset

    labels = [p.label for p in clf.predict(TEXTS)]
    assert [p.label for p in clf.predict(pd.Series(TEXTS, index=[9, 3, 5, 1]))] == labels
    assert [p.label for p in clf.predict(Dataset.from_dict({"text": TEXTS})["text"])] == labels


def test_long_texts_are_marked_truncated(clf):
    long = " ".join(["superb"] * 200)  # the tiny model reads 64 tokens
    assert clf.predict(long).truncated and clf.predict(long).to_dict()["truncated"] is True


def test_explain_gives_the_gate_trace_of_gates_py(clf):
    text = "I didn't quite enjoy the book."
    ex = clf.explain(text)
    (enc,) = tokenizer.encode_batch(clf.bundle.tokenizer, [text], clf.bundle.cut)
    ids, lengths = batching.pad([enc.ids], clf.bundle.model.config.pad_id)
    trace = gates.trace(clf.bundle.model, ids, lengths)
    assert ex.tokens == enc.tokens and ex.offsets == enc.offsets and ex.attributions is None
    assert [(t.layer, t.direction) for t in ex.layers] == [(t.layer, t.direction) for t in trace.layers]
    for mine, theirs in zip(ex.layers, trace.layers):
        for name in ("reset", "update", "candidate", "hidden"):
            assert torch.equal(getattr(mine.values, name), getattr(theirs.values, name)[0])
    probs = torch.softmax(trace.logits.float(), -1)[0].tolist()
    assert list(ex.probabilities.values()) == probs and ex.label == clf.labels[probs.index(max(probs))]


def test_explain_json_and_attributions_match_the_command_line(clf, tiny_model):
    text = TEXTS[1]
    record = cli_json("predict", "-m", tiny_model, "--gates", "--attributions", "--words", "-f", "json", text)[0]
    ex = clf.explain(text, attributions=True, words=True)
    assert ex.to_dict() == {**record, "truncated": False}  # the same computation: the same numbers
    assert ex.attributions is not None and len(ex.attributions.scores) == len(ex.tokens)
    full = ex.to_dict(full=True)["gates"]["layers"][0]
    assert len(full["update"]) == len(ex.tokens) and len(full["update"][0]) == 12  # the tiny model's units
    assert [e.label for e in clf.explain(iter(TEXTS))] == [p.label for p in clf.predict(TEXTS)]


def test_evaluate_report_equals_the_command_line(clf, tiny_model, tmp_path):
    texts, labels = reviews(40, seed=11)
    folder = write_splits(tmp_path / "data", "parquet", texts, labels)
    expected = cli_json("evaluate", "-m", tiny_model, "-d", folder, "--split", "test", "-f", "json")
    assert clf.evaluate(texts, labels) == expected
    assert clf.evaluate(iter(texts), [clf.labels[i] for i in labels], batch_size=5) == expected


def test_errors_are_the_projects_own(clf, tmp_path):
    with pytest.raises(ModelError, match="model directory not found"):
        gru_sentiment.load(tmp_path / "nowhere")
    with pytest.raises(DataError, match="text 1 is int, not str"):
        clf.predict(["fine", 3])
    with pytest.raises(DataError, match="text 0 is float"):
        clf.predict([float("nan")])  # a missing value in a pandas column
    with pytest.raises(DataError, match="not NoneType"):
        clf.predict(None)
    with pytest.raises(DataError, match="not bytes"):
        clf.predict(b"great")
    with pytest.raises(UserError, match="empty text"):
        clf.predict(["fine", "  "])
    with pytest.raises(UsageError, match="batch_size=0"):
        clf.predict(["fine"], batch_size=0)
    with pytest.raises(DataError, match="2 texts but 1 labels"):
        clf.evaluate(["a", "b"], ["pos"])
    with pytest.raises(DataError, match=r"label 1 \('good'\) is not one of the model's labels \(neg, pos\)"):
        clf.evaluate(["a", "b"], ["pos", "good"])
    with pytest.raises(DataError, match="label 0 .2."):
        clf.evaluate(["a"], [2])
    with pytest.raises(DataError, match="no texts to evaluate"):
        clf.evaluate([], [])
    with pytest.raises(UsageError, match="device 'tpu'"):
        gru_sentiment.load(device="tpu")
    with pytest.raises(UsageError, match="threads=0"):
        gru_sentiment.load(threads=0)


def test_cuda_asked_for_without_a_gpu_is_a_usage_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UsageError, match="^device 'cuda': no CUDA device is available$"):
        api.select_device("cuda")
    with pytest.raises(UsageError, match="^--device cuda: no CUDA device is available$"):
        setup_device(Device.cuda, None)


@pytest.mark.parametrize("available", [True, False])
def test_auto_picks_cuda_exactly_when_torch_sees_it(monkeypatch, available):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: available)
    expected = "cuda" if available else "cpu"
    assert api.select_device("auto").type == expected
    assert setup_device(Device.auto, None).type == expected  # the command line's --device auto
    assert api.select_device("cpu").type == "cpu"


def test_the_shipped_model_by_default(monkeypatch):
    monkeypatch.delenv("GRU_SENTIMENT_MODEL", raising=False)
    clf = gru_sentiment.load()
    assert clf.path == api.default_model_dir() and clf.path.name == api.DEFAULT_MODEL_NAME
    assert clf.predict(["Great hotel."])[0].label == "pos"


def test_the_environment_variable_names_the_default_model(monkeypatch, tiny_model):
    monkeypatch.setenv("GRU_SENTIMENT_MODEL", str(tiny_model))
    assert gru_sentiment.load().path == tiny_model


def readme_python_blocks() -> list[tuple[str, str | None]]:
    """The ```python blocks of README.md's "Python API" section, each with the output block right after it."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "\n## Python API\n" in readme, "README.md has no Python API section"
    section = readme.split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```(\w*)\n(.*?)```", section, flags=re.S)
    out = []
    for i, (lang, code) in enumerate(blocks):
        if lang == "python":
            after = blocks[i + 1] if i + 1 < len(blocks) and blocks[i + 1][0] == "" else None
            out.append((code, after[1] if after else None))
    return out


def test_readme_python_examples_run_and_print_what_the_readme_shows(monkeypatch):
    monkeypatch.delenv("GRU_SENTIMENT_MODEL", raising=False)
    blocks = readme_python_blocks()
    assert blocks, "no ```python blocks under README.md's Python API heading"
    namespace: dict = {}
    for code, shown in blocks:
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(code, "README.md", "exec"), namespace)
        if shown is not None:
            assert printed.getvalue() == shown
