"""Head+tail truncation (`train --tail`): what is cut, that it is saved with the model and used wherever the model
reads text, and how a view shows the part it skipped."""

import json
import random
import shutil

import pytest
import torch
from typer.testing import CliRunner

from gru_sentiment import checkpoint, predict, tokenizer
from gru_sentiment.cli import app
from gru_sentiment.data import TextData
from gru_sentiment.errors import ModelError
from gru_sentiment.jobs import TokenizerSettings, train_model
from gru_sentiment.render_gates import heat_line
from gru_sentiment.tokenizer import Cut
from gru_sentiment.train import TrainConfig
from tests.corpus import reviews

LONG = "the opening scene was slow . " + "the plot moved on . " * 30 + "in the end it was a dull , tedious film ."


def test_cut_keeps_the_first_and_the_last_items():
    seq = list(range(10))
    assert Cut(6, 4).apply(seq) == [0, 1, 6, 7, 8, 9]
    assert Cut(6).apply(seq) == [0, 1, 2, 3, 4, 5]
    assert Cut(6, 6).apply(seq) == [4, 5, 6, 7, 8, 9]
    assert Cut(6, 3).apply(seq[:5]) == [0, 1, 2, 3, 4]  # short enough: untouched
    assert Cut().apply(seq) == seq
    assert Cut(6).cuts(7) and not Cut(6).cuts(6) and not Cut().cuts(10**6)
    assert Cut(512, 382).describe() == "first 130 and last 382 tokens"
    assert Cut(512).describe() == "first 512 tokens"
    assert Cut(6, 6).describe() == "last 6 tokens"
    assert Cut().describe() == "all its tokens"


@pytest.mark.parametrize(
    "max_length, tail, message",
    [
        (64, 65, "tail 65 does not fit in max_length 64"),
        (None, 1, "tail 1 does not fit in max_length None"),
        (64, -1, "tail must be a non-negative integer, not -1"),
        (64, True, "tail must be a non-negative integer, not True"),
        (64, 1.5, "tail must be a non-negative integer, not 1.5"),
        (0, 0, "max_length must be a positive integer or null, not 0"),
        (True, 0, "max_length must be a positive integer or null, not True"),
        ("64", 0, "max_length must be a positive integer or null, not '64'"),
    ],
)
def test_a_cut_that_cannot_be_made_is_refused(max_length, tail, message):
    with pytest.raises(ValueError) as caught:
        Cut(max_length, tail)
    assert str(caught.value) == message


def test_encoding_cuts_ids_tokens_and_offsets_alike():
    tok = tokenizer.train(reviews(200)[0] + [LONG], "wordpiece", vocab_size=300, min_frequency=1)
    full = tokenizer.encode_batch(tok, [LONG], Cut())[0]
    enc = tokenizer.encode_batch(tok, [LONG, "a fine film ."], Cut(20, tail=8))
    long, short = enc
    assert long.truncated and not short.truncated and len(long.ids) == 20
    assert long.ids == full.ids[:12] + full.ids[-8:]
    assert long.tokens == full.tokens[:12] + full.tokens[-8:] and long.offsets == full.offsets[:12] + full.offsets[-8:]
    assert LONG[long.offsets[-1][0] : long.offsets[-1][1]] == "."  # the text's very last token is read
    assert "tedious" in [LONG[a:b] for a, b in long.offsets[12:]]
    assert tokenizer.encode_ids(tok, [LONG], Cut(20, 8)) == [long.ids]
    assert short.ids == tokenizer.encode_batch(tok, ["a fine film ."], Cut(20))[0].ids


@pytest.fixture(scope="module")
def tail_model(tmp_path_factory):
    """A small model trained with a max length of 24 tokens, the last 10 of them from a long text's end."""
    torch.set_num_threads(1)
    texts, labels = reviews(300, seed=3)
    out = tmp_path_factory.mktemp("models") / "tail"
    train_model(
        TextData(texts + [LONG], labels + [0], ["neg", "pos"], "corpus:train"),
        TextData(*reviews(60, seed=4), ["neg", "pos"], "corpus:val"),
        TokenizerSettings("wordpiece", 200, 24, tail=10),
        dict(embed_dim=16, hidden_size=12, num_layers=1, bidirectional=True, dropout=0.1),
        TrainConfig(epochs=1, batch_size=16, lr=1e-2),
        str(out),
        torch.device("cpu"),
    )
    return out


def test_the_tail_is_saved_and_used_by_predict(tail_model):
    assert json.loads((tail_model / "config.json").read_text())["tokenizer"]["tail"] == 10
    bundle = checkpoint.load(tail_model)
    assert bundle.cut == Cut(24, 10)
    ids = Cut(24, 10).apply(tokenizer.encode_batch(bundle.tokenizer, [LONG], Cut())[0].ids)
    with torch.no_grad():
        expected = torch.softmax(bundle.model(torch.tensor([ids]), torch.tensor([len(ids)])), -1)[0]
    pred = predict.predict(bundle, [LONG], with_gates=True)[0]
    assert pred.truncated and len(pred.gates.tokens) == 24
    assert torch.allclose(torch.tensor(list(pred.probabilities.values())), expected, atol=1e-6)


def test_models_saved_before_the_tail_read_the_beginning(tiny_model, tmp_path):
    copy = tmp_path / "old"
    shutil.copytree(tiny_model, copy)
    config = json.loads((copy / "config.json").read_text())
    config["tokenizer"].pop("tail", None)
    (copy / "config.json").write_text(json.dumps(config))
    assert checkpoint.load(copy).cut == Cut(64, 0)


@pytest.mark.parametrize("tail, message", [(65, "does not fit in max_length 64"), (-1, "non-negative integer")])
def test_a_tail_that_cannot_be_cut_is_refused(tiny_model, tmp_path, tail, message):
    copy = tmp_path / "bad"
    shutil.copytree(tiny_model, copy)
    config = json.loads((copy / "config.json").read_text())
    config["tokenizer"]["tail"] = tail
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match=message):
        checkpoint.load(copy)


def test_cli_refuses_a_tail_longer_than_the_text_it_is_cut_from(tmp_path):
    cut = ["--set", "tokenizer.tail=50", "--set", "tokenizer.max_length=40"]
    result = CliRunner().invoke(app, ["train", "-d", str(tmp_path), "-o", str(tmp_path / "m"), *cut])
    assert result.exit_code == 2 and "tokenizer.tail 50 does not fit in tokenizer.max_length 40" in result.output


def test_predict_says_which_part_of_a_long_text_was_read(tail_model):
    result = CliRunner().invoke(app, ["predict", "-m", str(tail_model), LONG, "--format", "json"])
    assert result.exit_code == 0, result.output
    assert "read only their first 14 and last 10 tokens" in result.stderr
    assert json.loads(result.stdout)[0]["truncated"] is True


def test_a_view_marks_the_skipped_middle():
    text = "good start . boring middle . great end"
    offsets = [(0, 4), (5, 10), (29, 34), (35, 38)]  # "good start" then "great end": the middle was cut
    shown = heat_line(text, ["good", "start", "great", "end"], offsets, [0.5] * 4).plain
    assert shown == "good start … great end"
    whole = heat_line(text, ["good", "start"], offsets[:2], [0.5, 0.5]).plain
    assert whole == "good start"


def test_line_breaks_are_not_shown_as_skipped_text():
    tok = tokenizer.train(reviews(200)[0], "wordpiece", vocab_size=300, min_frequency=1)
    text = "a good film .<br /><br />i liked it ."
    enc = tokenizer.encode_batch(tok, [text], Cut())[0]
    assert heat_line(text, enc.tokens, enc.offsets, [0.5] * len(enc.ids)).plain == "a good film . i liked it ."
    assert tokenizer.skipped(text, 13, 25) is False and tokenizer.skipped("a b c", 1, 4) is True


def test_a_continuation_piece_after_the_cut_starts_a_word_of_its_own():
    text = "wonderful plot in between sentimentalism"
    tokens = ["wonder", "##ful", "sentiment", "##alism"]
    offsets = [(0, 6), (6, 9), (26, 35), (35, 40)]
    assert tokenizer.word_ids(tokens, offsets) == [0, 0, 1, 1]
    cut_tokens, cut_offsets = tokens[:2] + tokens[3:], offsets[:2] + offsets[3:]  # head 2, tail 1: "##alism"
    assert tokenizer.word_ids(cut_tokens, cut_offsets) == [0, 0, 1]
    assert text[cut_offsets[2][0] : cut_offsets[2][1]] == "alism"


def test_every_way_of_reading_training_text_cuts_the_same(tail_model, tmp_path):
    from gru_sentiment import data as data_module
    from gru_sentiment.streaming import BatchStream
    from tests.corpus import write_splits

    bundle = checkpoint.load(tail_model)
    expected = Cut(24, 10).apply(tokenizer.encode_batch(bundle.tokenizer, [LONG], Cut())[0].ids)
    folder = write_splits(tmp_path / "long", "parquet", [LONG, "a fine film ."], ["neg", "pos"])
    table = data_module.load(str(folder), "train", label_names=["neg", "pos"])
    assert expected in tokenizer.encode_data(table, bundle.tokenizer, Cut(24, 10))  # datasets.map: test_data.py
    stream = BatchStream(lambda epoch: [(LONG, 0)], bundle.tokenizer, Cut(24, 10), batch_size=1)
    (ids, lengths, _), *_ = stream.batches(0, random.Random(0))
    assert ids[0, : int(lengths[0])].tolist() == expected
