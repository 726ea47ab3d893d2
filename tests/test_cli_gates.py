"""`predict --gates` in every output format, the HTML page, word merging and the saturation summary."""

import base64
import csv
import hashlib
import html
import io
import json
import re

import pytest
import torch
from typer.testing import CliRunner

from gru_sentiment import checkpoint, explain
from gru_sentiment.cli import app
from gru_sentiment.predict import predict
from tests.corpus import reviews, write_splits

runner = CliRunner()
BOOK = "This is a fantasy book. I didn't quite enjoy the book because I think it captures too many details."


def run(*args):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


def test_json_gates_means_and_full(tiny_model):
    means = json.loads(run("predict", "-m", tiny_model, "--gates", BOOK, "-f", "json").stdout)[0]["gates"]
    assert set(means) == {"tokens", "offsets", "layers"}
    assert [(l["layer"], l["direction"]) for l in means["layers"]] == [(0, "forward"), (0, "backward")]
    n = len(means["tokens"])
    assert len(means["offsets"]) == n and "".join(t.removeprefix("##") for t in means["tokens"][:6]) == "thisisa"
    for layer in means["layers"]:
        assert set(layer) == {"layer", "direction", "reset_mean", "update_mean"}
        assert len(layer["update_mean"]) == n and all(0 <= v <= 1 for v in layer["update_mean"] + layer["reset_mean"])
    full = json.loads(run("predict", "-m", tiny_model, "--gates", "full", BOOK, "-f", "jsonl").stdout)["gates"]
    layer = full["layers"][1]
    assert {"reset", "update", "candidate", "hidden"} <= set(layer)
    assert len(layer["update"]) == n and len(layer["update"][0]) == 12  # hidden size of the tiny model
    assert layer["update_mean"] == pytest.approx([sum(u) / len(u) for u in layer["update"]], abs=1e-5)


def test_gates_agree_with_library_trace_and_offsets_slice_the_text(tiny_model):
    bundle = checkpoint.load(tiny_model)
    pred = predict(bundle, [BOOK], with_gates=True)[0]
    out = json.loads(run("predict", "-m", tiny_model, "--gates", "-f", "json", BOOK).stdout)[0]
    assert out["gates"]["layers"][0]["update_mean"] == pytest.approx(
        pred.gates.layers[0].values.update.mean(-1).tolist(), abs=1e-6
    )
    tokens = out["gates"]["tokens"]
    spans = [BOOK[a:b].lower() for a, b in out["gates"]["offsets"]]
    assert [s for s, t in zip(spans, tokens) if t != "[UNK]"] == [t.removeprefix("##") for t in tokens if t != "[UNK]"]
    assert "'" in [s for s, t in zip(spans, tokens) if t == "[UNK]"]  # unknown pieces still point at their text


def test_csv_rows_per_token_per_layer_and_direction(tiny_model):
    out = run("predict", "-m", tiny_model, "--gates", "-f", "csv", "superb film", "dull plot").stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    assert list(rows[0]) == ["text_index", "label", "p_neg", "p_pos", *explain.CSV_FIELDS[1:]]
    assert [(r["text_index"], r["token"], r["direction"]) for r in rows][:2] == [
        ("0", "superb", "forward"),
        ("0", "film", "forward"),
    ]
    assert len(rows) == 2 * 2 + 2 * 2  # two texts x two tokens x two directions
    assert all(0 <= float(r["update_mean"]) <= 1 for r in rows)


def test_layer_and_direction_selection(tiny_model):
    out = json.loads(
        run("predict", "-m", tiny_model, "--gates", "--direction", "backward", "-f", "json", "fine").stdout
    )
    assert [l["direction"] for l in out[0]["gates"]["layers"]] == ["backward"]
    result = runner.invoke(app, ["predict", "-m", str(tiny_model), "--gates", "--layer", "3", "fine"])
    assert result.exit_code == 2 and "--layer 3" in result.output
    result = runner.invoke(app, ["predict", "-m", str(tiny_model), "--layer", "0", "fine"])
    assert result.exit_code == 2 and "needs --gates" in result.output


def test_word_merge_means_over_pieces(tiny_model):
    bundle = checkpoint.load(tiny_model)
    text = "unbelievably wonderful"
    pieces = predict(bundle, [text], with_gates=True)[0].gates
    assert len(pieces.tokens) > 2  # the tiny vocabulary splits 'unbelievably'
    merged = explain.merge_words(text, pieces)
    assert merged.tokens == ["unbelievably", "wonderful"]
    assert merged.offsets == [(0, 12), (13, 22)]
    first = [
        i for i, w in enumerate(__import__("gru_sentiment.tokenizer", fromlist=["x"]).word_ids(pieces.tokens)) if w == 0
    ]
    expected = pieces.layers[0].values.update[first].mean(0)
    assert merged.layers[0].values.update[0].tolist() == pytest.approx(expected.tolist())
    out = json.loads(run("predict", "-m", tiny_model, "--gates", "--words", "-f", "json", text).stdout)
    assert out[0]["gates"]["tokens"] == ["unbelievably", "wonderful"]


def test_colour_terminal_view_with_units(tiny_model, monkeypatch):
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.delenv("NO_COLOR", raising=False)
    out = run("predict", "-m", tiny_model, "--gates", "--unit", "3", "--unit", "5", BOOK).stdout
    assert "unit 3" in out and "unit 5" in out and "update gate z" in out and "lowest mean z" in out
    assert re.search(r"\x1b\[[0-9;]*(4[0-7]|48;[0-9;]+)m", out)  # coloured backgrounds
    out = run("predict", "-m", tiny_model, "--gates", "--top-units", "2", "--words", BOOK).stdout
    plain = re.sub(r"\x1b\[[0-9;]*m", "", out)
    maps = re.findall(r"layer 0 (forward|backward) · units (\d+) (\d+): z \| r", plain)
    assert [m[0] for m in maps] == ["forward", "backward"]  # a compact map of the two top units per direction
    words = ["This", "is", "a", "fantasy", "book", ".", "I", "quite", "enjoy"]
    for word in words:  # one line per word, with 2 units x (z, r) coloured cells
        assert any(line.strip() == word for line in plain.splitlines()), (word, plain)


def test_piped_view_prints_numbers_per_token(tiny_model):
    out = run("predict", "-m", tiny_model, "--gates", "--words", "superb acting , dull plot").stdout
    assert "\x1b[" not in out and "z L0 fwd" in out and "r L0 bwd" in out
    rows = [
        line.split() for line in out.splitlines() if line.split()[:1] in (["superb"], ["acting"], ["dull"], ["plot"])
    ]
    assert len(rows) == 4 and all(len(r) == 5 and all(0 <= float(v) <= 1 for v in r[1:]) for r in rows)
    result = runner.invoke(app, ["predict", "-m", str(tiny_model), "--gates", "--unit", "99", "fine"])
    assert result.exit_code == 2 and "0..11" in result.output


def test_html_report_is_self_contained_and_escaped(tiny_model, tmp_path):
    page_path = tmp_path / "report.html"
    evil = "<script>alert('x')</script> \"quoted\" & 'single' great film"
    run("predict", "-m", tiny_model, "--html", page_path, evil)
    page = page_path.read_text()
    assert page.count("<script") == 1 and "alert('x')" not in page  # only the page's own drawing script
    assert "http://" not in page and "https://" not in page and "default-src 'none'" in page
    assert "&lt;" in page and "&amp;" in page and "&quot;" in page and "&#x27;" in page
    assert page.count('class="gate"') == 4  # update and reset, forward and backward
    assert 'title="' in page and "update" in page
    # unit maps: z and r for each direction, 12 units x tokens, values packed as 16-bit integers
    canvases = re.findall(r'<canvas width="(\d+)" height="(\d+)"[^>]*data-meta="([^"]*)" data-values="([^"]*)"', page)
    assert len(canvases) == 4
    for width, height, meta, values in canvases:
        meta = json.loads(html.unescape(meta))
        assert int(height) == 12 and sorted(meta["units"]) == list(range(12)) and len(meta["tokens"]) == int(width)
        assert len(base64.b64decode(values)) == 2 * int(width) * int(height)
    raw_meta = canvases[0][2]
    assert "<" not in raw_meta and "&lt;" in raw_meta and "&quot;" in raw_meta  # escaped inside the attribute
    assert "<" in json.loads(html.unescape(raw_meta))["tokens"]  # and the text comes back whole in the browser
    policy = re.search(r'Content-Security-Policy" content="([^"]*)"', page).group(1)
    script = re.search(r"<script>(.*?)</script>", page, re.S).group(1)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in policy and "unsafe-inline" not in policy.split("script-src")[1]


def test_html_unit_map_values_and_size(tiny_model, tmp_path):
    """The packed values decode to the traced gates (in the page's unit order), and a long review's page stays small."""
    bundle = checkpoint.load(tiny_model)
    text = " ".join(reviews(60, seed=4)[0])
    pred = predict(bundle, [text], with_gates=True)[0]
    page_path = tmp_path / "long.html"
    run("predict", "-m", tiny_model, "--gates", "full", "--html", page_path, text, "-f", "jsonl")
    page = page_path.read_text()
    first = re.search(r'data-meta="([^"]*)" data-values="([^"]*)"', page)
    meta = json.loads(html.unescape(first.group(1)))
    packed = torch.frombuffer(bytearray(base64.b64decode(first.group(2))), dtype=torch.int16).to(torch.int32) & 0xFFFF
    shown = packed.view(len(meta["units"]), -1).double() / 65535
    expected = pred.gates.layers[0].values.update[:, meta["units"]].t().double()
    assert torch.allclose(shown, expected, atol=1e-4)
    assert meta["units"] == explain.unit_order(pred.gates.layers[0].values)
    tokens = len(pred.gates.tokens)
    assert page.count("<canvas") == 6  # z, r and h for both directions with --gates full
    assert len(page.encode()) / tokens < 3000  # a 1,000-token page of the shipped model: see bench/gates.py


def test_saturation_summary(tiny_model, tmp_path):
    texts, labels = reviews(40, seed=9)
    folder = write_splits(tmp_path / "d", "csv", texts, labels)
    summary = json.loads(run("gates", "--summary", "-m", tiny_model, "-d", folder, "--limit", 30, "-f", "json").stdout)
    assert summary["texts"] == 30 and len(summary["gates"]) == 4
    for row in summary["gates"]:
        assert row["gate"] in ("reset", "update") and 0 <= row["left_saturated"] <= 1 and 0 <= row["mean"] <= 1
        assert len(row["per_unit"]["left_saturated"]) == 12
        assert row["left_saturated"] == pytest.approx(sum(row["per_unit"]["left_saturated"]) / 12, abs=1e-3)
    assert "gate saturation" in run("gates", "-m", tiny_model, "-d", folder).stdout
