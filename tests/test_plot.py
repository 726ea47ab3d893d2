"""Unit maps as images (`predict --plot`): PNG and SVG files, attributions-only texts, the full view, long texts.

Skipped without matplotlib (an optional extra); the names the tests use are imported before the skip, so that
a renamed one fails collection where matplotlib is missing too."""

import xml.etree.ElementTree as ET

import pytest
import torch
from typer.testing import CliRunner

from gru_sentiment import checkpoint, plot, tokenizer
from gru_sentiment.attribution import Attribution
from gru_sentiment.cli import app
from gru_sentiment.errors import UsageError
from gru_sentiment.explain import unit_order
from gru_sentiment.gates import TextGates
from gru_sentiment.model import GRUClassifier, ModelConfig
from gru_sentiment.predict import Prediction, predict
from tests.corpus import reviews

pytest.importorskip("matplotlib")

TEXTS = ["salt & pepper < 3 was a great film", "bad plot, worse acting"]


@pytest.fixture(scope="module")
def bundle():
    """An untrained bidirectional model: the plot only draws what it is given."""
    texts, _ = reviews(60, seed=3)
    tok = tokenizer.train(texts + TEXTS * 2, vocab_size=150)
    torch.manual_seed(0)
    config = ModelConfig(
        vocab_size=tok.get_vocab_size(),
        num_labels=2,
        embed_dim=8,
        hidden_size=6,
        num_layers=1,
        dropout=0.0,
        pad_id=tok.token_to_id(tokenizer.PAD),
    )
    return checkpoint.Bundle(GRUClassifier(config).eval(), tok, ["neg", "pos"], tokenizer.Cut(64))


@pytest.fixture(scope="module")
def predictions(bundle):
    return predict(bundle, TEXTS, with_gates=True, with_attributions=True)


def test_png_is_written(tmp_path, predictions, bundle):
    out = tmp_path / "maps.png"
    plot.save_unit_maps(predictions, out, labels=bundle.labels)
    assert out.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert [p.name for p in tmp_path.iterdir()] == ["maps.png"]  # no temporary file left behind


def test_svg_is_valid_xml_with_the_escaped_tokens(tmp_path, predictions, bundle):
    out = tmp_path / "sub" / "maps.SVG"
    plot.save_unit_maps(predictions, out, full=True, labels=bundle.labels)
    svg = out.read_text(encoding="utf-8")
    ET.fromstring(svg)
    assert "&amp;" in svg and "&lt;" in svg and "film" in svg  # as comments beside the glyphs
    assert "attribution" in svg and f"(for {predictions[0].label})" in svg


@pytest.mark.parametrize("name", ["maps.pdf", "maps", "maps.png.txt"])
def test_other_suffixes_are_refused(tmp_path, predictions, name):
    with pytest.raises(UsageError, match=r"--plot: give a \.png or \.svg file name"):
        plot.save_unit_maps(predictions, tmp_path / name)
    assert not list(tmp_path.iterdir())


def test_full_adds_the_hidden_state_maps(predictions, bundle):
    z_r = plot.figure(predictions, labels=bundle.labels)
    full = plot.figure(predictions, full=True, labels=bundle.labels)
    traces = sum(len(p.gates.layers) for p in predictions)  # 2 texts x 2 directions
    images = [len(ax.images) for ax in z_r.get_axes() if ax.images]
    assert len(images) == 2 * traces + len(predictions)  # z and r per trace, one attribution strip per text
    full_images = [ax for ax in full.get_axes() if ax.images]
    assert len(full_images) == 3 * traces + len(predictions)
    labels = {ax.get_ylabel() for ax in full_images}
    assert "units (alike together:\nspectral seriation of z, r)" in labels
    assert any(label.startswith("attribution\n(for ") for label in labels)


def test_units_are_in_unit_order(predictions):
    fig = plot.figure(predictions[:1])
    trace = predictions[0].gates.layers[0]
    first_map = next(ax for ax in fig.get_axes() if ax.get_title(loc="left").startswith("layer 0 forward · update"))
    order = unit_order(trace.values)
    expected = trace.values.update[:, order].t()
    assert torch.equal(torch.as_tensor(first_map.images[0].get_array().data), expected)
    assert [t.get_text() for t in first_map.get_yticklabels()] == [str(u) for u in order]


def test_attributions_only(tmp_path):
    text = "good & <b>bold</b>"
    tokens = ["good", "&", "<", "b", ">", "bold"]
    offsets = [(0, 4), (5, 6), (7, 8), (8, 9), (9, 10), (10, 14)]
    gates = TextGates(tokens, offsets, [], Attribution([0.5, -0.2, 0.0, 0.1, 0.0, 0.3], 1, 1.0, 0.0, 0.002, 16))
    pred = Prediction(text, "pos", {"neg": 0.2, "pos": 0.8}, gates=gates)
    fig = plot.figure([pred], labels=["neg", "pos"])
    (strip,) = [ax for ax in fig.get_axes() if ax.images]
    assert strip.get_ylabel() == "attribution\n(for pos)"
    assert strip.images[0].get_clim() == (-0.5, 0.5)
    assert [t.get_text() for t in strip.get_xticklabels()] == tokens
    plot.save_unit_maps([pred], tmp_path / "a.svg")
    ET.fromstring((tmp_path / "a.svg").read_text(encoding="utf-8"))


def test_a_long_text_gives_an_image_of_sensible_size(bundle):
    text = " ".join(["film"] * 600 + ["was"] * 400)
    long = predict(
        checkpoint.Bundle(bundle.model, bundle.tokenizer, bundle.labels, tokenizer.Cut()), [text], with_gates=True
    )
    assert len(long[0].gates.tokens) == 1000
    fig = plot.figure(long)
    width, height = fig.get_size_inches()
    assert width <= 40 and height < 40
    axes = [ax for ax in fig.get_axes() if ax.images]
    shown = [t.get_text() for t in axes[-1].get_xticklabels()]
    assert 50 < len(shown) < 300 and set(shown) == {"film", "was"}


def test_missing_matplotlib_is_a_usage_error(monkeypatch, predictions, tmp_path):
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    with pytest.raises(UsageError, match=r"pip install 'gru-sentiment\[plot\]'"):
        plot.save_unit_maps(predictions, tmp_path / "maps.png")


def test_dollars_are_shown_as_they_are_and_texts_without_panels_get_a_title(tmp_path):
    from matplotlib import cbook

    gates = TextGates(["a", "$5$", "deal"], [(0, 1), (2, 5), (6, 10)], [])
    gates.attribution = Attribution([0.1, -0.1, 0.2], 0, 0.2, 0.0, 0.0, 16)
    dollars = Prediction("a $5$ deal", "$neg$", {"$neg$": 0.6, "pos": 0.4}, gates=gates)
    bare = Prediction("no gates", "pos", {"$neg$": 0.1, "pos": 0.9})
    fig = plot.figure([dollars, bare], labels=["$neg$", "pos"])
    texts = [t.get_text() for t in fig.findobj(lambda o: hasattr(o, "get_text")) if t.get_text()]
    assert r"\$5\$" in texts and "attribution\n(for \\$neg\\$)" in texts
    assert not [t for t in texts if cbook.is_math_text(t)]  # no pair of '$' starts math mode
    assert any(t.startswith("text 2: pos") for t in texts)
    plot.save_unit_maps([dollars, bare], tmp_path / "d.svg")
    assert "<!-- text 2: pos ($neg$ 0.100, pos 0.900) -->" in (tmp_path / "d.svg").read_text(encoding="utf-8")
    assert not [ax for ax in plot.figure([]).get_axes()]


def test_predict_plot_from_the_command_line(tiny_model, tmp_path):
    runner = CliRunner()
    out = tmp_path / "map.png"
    args = ["predict", "-m", str(tiny_model), "--attributions", "--plot", str(out), "great film", "-f", "jsonl"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    result = runner.invoke(app, ["predict", "-m", str(tiny_model), "--plot", str(tmp_path / "map.pdf"), "great"])
    assert result.exit_code == 2 and "give a .png or .svg file name" in result.output
    assert not (tmp_path / "map.pdf").exists()


def test_plot_refuses_more_texts_than_a_figure_can_show(tiny_model, tmp_path):
    texts = [f"great film number {i}" for i in range(21)]
    out = tmp_path / "many.png"
    result = CliRunner().invoke(app, ["predict", "-m", str(tiny_model), "--plot", str(out), "-f", "jsonl", *texts])
    assert result.exit_code == 2 and "--plot draws at most 20 texts" in result.output and not out.exists()
