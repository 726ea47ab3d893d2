"""Integrated-gradient attributions (`predict --attributions`): completeness, the reuse of points when the
step count doubles, agreement with captum, and the JSON, CSV and terminal outputs."""

import csv
import io
import json
import re
from types import SimpleNamespace

import pytest
import torch
from typer.testing import CliRunner

from gru_sentiment import checkpoint, explain
from gru_sentiment.attribution import FLOOR, integrated_gradients, log_odds
from gru_sentiment.cli import app, default_model_dir
from gru_sentiment.predict import predict

runner = CliRunner()
TEXTS = [
    "superb acting and a wonderful plot",
    "dull , boring and far too long",
    "The hotel room was clean and the staff were friendly.",
    "I didn't quite enjoy the book because I think it captures too many details.",
]


def run(*args):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def shipped():
    return checkpoint.load(default_model_dir())


def ids_of(bundle, text):
    return bundle.tokenizer.encode(text).ids


@pytest.mark.parametrize("which", ["tiny", "shipped"])
def test_completeness_gap_is_within_the_documented_tolerance(which, tiny_model, shipped):
    bundle = checkpoint.load(tiny_model) if which == "tiny" else shipped
    for text in TEXTS:
        ids = ids_of(bundle, text)
        found = integrated_gradients(bundle.model, ids)
        with torch.no_grad():
            logits = bundle.model(torch.tensor([ids]), torch.tensor([len(ids)]))
            blank = bundle.model(torch.zeros(1, len(ids), dtype=torch.long), torch.tensor([len(ids)]))
        assert found.label == int(logits.argmax())
        assert found.value == pytest.approx(float(log_odds(logits, found.label)[0]), abs=1e-5)
        assert found.baseline_value == pytest.approx(float(log_odds(blank, found.label)[0]), abs=1e-5)
        change = found.value - found.baseline_value
        assert len(found.scores) == len(ids)
        # 1% of the change; where text and baseline have almost the same log-odds, 1% of FLOOR (the contract)
        assert abs(sum(found.scores) - change) < 0.01 * max(abs(change), FLOOR), text
        assert found.gap == pytest.approx(abs(sum(found.scores) - change) / abs(change), rel=1e-6)


def test_the_one_strongly_positive_word_gets_the_largest_attribution(shipped):
    text = "The parcel came on Tuesday with the manual and a cable. Excellent."
    pred = predict(shipped, [text], with_attributions=True)[0]
    assert pred.label == "pos"
    words = explain.merge_words(text, pred.gates)
    scores = words.attribution.scores
    assert words.tokens[max(range(len(scores)), key=scores.__getitem__)] == "Excellent"


class Switch(torch.nn.Module):
    """A stand-in for a GRU that flips state: its log-odds go from -5 to +5 within 0.001 of alpha, around
    alpha = 0.3137 (the mean embedding of any text is alpha on the path from the all-zero baseline)."""

    config = SimpleNamespace(pad_id=0)

    def __init__(self):
        super().__init__()
        self.embedding = torch.nn.Embedding(5, 3, padding_idx=0)
        with torch.no_grad():
            self.embedding.weight[1:] = 1.0

    def forward(self, ids, lengths, delta=None):
        x = self.embedding(ids) if delta is None else self.embedding(ids) + delta
        switch = 5 * torch.tanh(2000 * (x.mean((1, 2)) - 0.3137))
        return torch.stack([torch.zeros_like(switch), switch], 1)


def test_refining_where_the_error_is_beats_an_even_grid():
    """Small GRUs switch state within a tiny stretch of the path (a test model once jumped by 5 within 0.005 of
    alpha): 512 even intervals miss such a switch, halving the intervals that hold the error finds it."""
    ids = [1, 2, 3, 4]
    even = integrated_gradients(Switch(), ids, min_steps=512, max_points=513)
    adaptive = integrated_gradients(Switch(), ids)
    assert even.steps == 512 and even.gap > 0.01
    assert adaptive.gap < 0.01 and adaptive.steps < 128
    assert adaptive.value == pytest.approx(5) and adaptive.baseline_value == pytest.approx(-5)
    assert adaptive.scores == pytest.approx([2.5] * 4, rel=0.01)  # the four tokens are alike


def test_agrees_with_captum(tiny_model):
    captum = pytest.importorskip("captum.attr")
    model = checkpoint.load(tiny_model).model.eval()
    ids = torch.tensor([ids_of(checkpoint.load(tiny_model), TEXTS[1])])
    lengths = torch.tensor([ids.shape[1]])
    ours = integrated_gradients(model, ids[0].tolist(), label=0, min_steps=16, max_points=17)
    embedded = model.embedding(ids).detach()

    def forward(x):
        n = x.shape[0]
        logits = model(ids.expand(n, -1), lengths.expand(n), delta=x - embedded)
        return log_odds(logits, 0)

    theirs = captum.IntegratedGradients(forward).attribute(
        embedded, baselines=torch.zeros_like(embedded), n_steps=17, method="riemann_trapezoid"
    )
    # captum's trapezoid puts the 17 points on [0, 1] but weighs them 1/17 (ends 1/34): its weights sum to 16/17,
    # not 1, so its attributions fall short of completeness by 1/17; the proper weights are 1/16 (ends 1/32)
    assert ours.scores == pytest.approx((theirs.sum(-1)[0] * 17 / 16).tolist(), abs=1e-5)


def test_json_and_csv_outputs(tiny_model):
    text = TEXTS[3]
    alone = json.loads(run("predict", "-m", tiny_model, "--attributions", "-f", "json", text).stdout)[0]
    assert set(alone["gates"]) == {
        "tokens",
        "offsets",
        "attributions",
        "attribution_label",
        "attribution_gap",
        "attribution_steps",
    }
    gates = alone["gates"]
    assert len(gates["attributions"]) == len(gates["tokens"]) and gates["attribution_label"] == alone["label"]
    bundle = checkpoint.load(tiny_model)  # the same text in process: the JSON reports what the library found
    found = integrated_gradients(bundle.model, ids_of(bundle, text))
    assert gates["attribution_steps"] == found.steps
    assert gates["attribution_gap"] == pytest.approx(found.gap, rel=1e-3, abs=1e-6)
    change = abs(found.value - found.baseline_value)  # the gap is relative, but under FLOOR the tolerance is not
    assert found.converged and found.gap * change < 0.01 * max(change, FLOOR)
    words = json.loads(
        run("predict", "-m", tiny_model, "--attributions", "--gates", "--words", "-f", "jsonl", text).stdout
    )
    merged = words["gates"]
    assert len(merged["attributions"]) == len(merged["tokens"]) < len(gates["tokens"]) and len(merged["layers"]) == 2
    assert sum(merged["attributions"]) == pytest.approx(sum(gates["attributions"]), abs=1e-4)  # words sum pieces
    rows = list(
        csv.DictReader(io.StringIO(run("predict", "-m", tiny_model, "--attributions", "-f", "csv", text).stdout))
    )
    assert [float(r["attribution"]) for r in rows] == pytest.approx(gates["attributions"], abs=1e-5)
    assert "layer" not in rows[0]
    rows = list(
        csv.DictReader(
            io.StringIO(run("predict", "-m", tiny_model, "--attributions", "--gates", "-f", "csv", text).stdout)
        )
    )
    assert len(rows) == 2 * len(gates["tokens"]) and {"attribution", "update_mean"} <= set(rows[0])


def test_terminal_views(tiny_model, monkeypatch):
    piped = run("predict", "-m", tiny_model, "--attributions", "--gates", TEXTS[0]).stdout
    assert "attr pos" in piped or "attr neg" in piped
    assert re.search(r"completeness\s+gap", piped)
    monkeypatch.setenv("FORCE_COLOR", "1")
    coloured = run("predict", "-m", tiny_model, "--attributions", TEXTS[0]).stdout
    assert "attribution to" in coloured and "completeness gap" in coloured and "\x1b[" in coloured
    result = runner.invoke(app, ["predict", "-m", str(tiny_model), "--words", TEXTS[0]])
    assert result.exit_code != 0 and "--words needs --gates or --attributions" in result.output
