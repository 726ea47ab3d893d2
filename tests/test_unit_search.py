"""Unit search (`gates --find`): a unit built by hand to react to a marker word is found first."""

import json

import torch
from typer.testing import CliRunner

from gru_sentiment import checkpoint, explain, tokenizer
from gru_sentiment.cli import app
from gru_sentiment.model import GRUClassifier, ModelConfig
from tests.corpus import reviews


def _model_with_a_marker_unit(tmp_path):
    """A unidirectional GRU with 3 units whose unit 1's update gate saturates on the word 'zork' only."""
    texts, _ = reviews(60, seed=3)
    texts = [t.replace("the", "zork", 1) if i % 2 else t for i, t in enumerate(texts)]
    tok = tokenizer.train(texts, vocab_size=120)
    marker = tok.token_to_id("zork")
    torch.manual_seed(0)
    config = ModelConfig(
        vocab_size=tok.get_vocab_size(),
        num_labels=2,
        embed_dim=4,
        hidden_size=3,
        bidirectional=False,
        dropout=0.0,
        pad_id=tok.token_to_id(tokenizer.PAD),
    )
    model = GRUClassifier(config)
    with torch.no_grad():
        model.embedding.weight.mul_(0.1)
        model.embedding.weight[:, 0] = 0.0
        model.embedding.weight[marker, 0] = 1.0  # only the marker has a first embedding dimension
        gru = model.gru(0, "forward")
        gru.weight_ih_l0[:, 0] = 0.0
        gru.weight_ih_l0[3 + 1, 0] = 12.0  # update gate (rows H..2H) of unit 1 reads it
        gru.bias_ih_l0[3 + 1] = -4.0  # and is low otherwise
    bundle = checkpoint.Bundle(model.eval(), tok, ["neg", "pos"], tokenizer.Cut(64))
    return bundle, texts, checkpoint.save(bundle, tmp_path / "marker")


def test_the_unit_built_to_react_to_a_marker_word_ranks_first(tmp_path):
    bundle, texts, _ = _model_with_a_marker_unit(tmp_path)
    found = explain.find_units(bundle, texts, r"\bzork\b")
    first = found["units"][0]
    assert (first["gate"], first["unit"], first["direction"]) == ("update", 1, "forward")
    assert first["effect"] > 3 and first["mean_match"] > 0.99 and first["mean_other"] < 0.05
    assert first["n_match"] == sum(t.split().count("zork") for t in texts) > 10
    assert first["n_other"] > 10 * first["n_match"]
    other_gates = [r for r in found["units"] if r["gate"] == "update" and r["unit"] != 1]
    assert all(abs(r["effect"]) < first["effect"] / 2 for r in other_gates)


def test_gates_find_from_the_command_line(tmp_path):
    _, texts, model_dir = _model_with_a_marker_unit(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "test.jsonl").write_text("".join(json.dumps({"text": t, "label": 0}) + "\n" for t in texts))
    runner = CliRunner()
    args = ["gates", "--find", r"\bzork\b", "-d", str(tmp_path / "data"), "--model", str(model_dir)]
    result = runner.invoke(app, [*args, "-f", "json", "--top", "3"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert len(rows) == 3 and rows[0]["unit"] == 1 and rows[0]["gate"] == "update"
    assert set(rows[0]) == {
        "layer",
        "direction",
        "unit",
        "gate",
        "effect",
        "mean_match",
        "mean_other",
        "n_match",
        "n_other",
    }
    table = runner.invoke(app, args)
    assert table.exit_code == 0 and "zork" in table.stdout
    nothing = runner.invoke(app, ["gates", "--find", "qqqq", "-d", str(tmp_path / "data"), "--model", str(model_dir)])
    assert nothing.exit_code == 2 and "matched no word" in nothing.output
    bad = runner.invoke(app, ["gates", "--find", "(", "-d", str(tmp_path / "data"), "--model", str(model_dir)])
    assert bad.exit_code == 2 and "not a regular expression" in bad.output


def test_unit_order_puts_alike_units_together():
    from gru_sentiment.explain import unit_order
    from gru_sentiment.gates import GateValues

    torch.manual_seed(0)
    rising, falling = torch.linspace(0, 1, 12), torch.linspace(1, 0, 12)
    update = torch.stack([rising if u % 2 == 0 else falling for u in range(10)], dim=1)  # (T, H): two kinds
    update = update + 0.02 * torch.rand(12, 10)
    reset = update.clone()
    order = unit_order(GateValues(reset, update, update, update))
    kinds = [u % 2 for u in order]
    assert sorted(order) == list(range(10)) and kinds in ([0] * 5 + [1] * 5, [1] * 5 + [0] * 5)
    assert order == unit_order(GateValues(reset, update, update, update))  # the same text, the same order
    flat = torch.full((5, 4), 0.5)
    assert unit_order(GateValues(flat, flat, flat, flat)) == [0, 1, 2, 3]
