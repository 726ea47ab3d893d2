"""The teacher step: fine-tune a (tiny, randomly initialised) BERT, label a pool with it, and distil the pool."""

import json
import sys

import pyarrow.parquet as pq
import pytest
import torch
from typer.testing import CliRunner

from gru_sentiment import teacher
from gru_sentiment.cli import app
from gru_sentiment.errors import UsageError
from tests.corpus import NEGATIVE, NEUTRAL, POSITIVE, reviews, small_model, write_splits

transformers = pytest.importorskip("transformers")  # the `teacher` extra


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A tiny BERT made from a config (no download): a word-level vocabulary of the test corpus."""
    folder = tmp_path_factory.mktemp("bert")
    words = sorted({w for t in reviews(400)[0] for w in t.split()} | set(POSITIVE + NEGATIVE + NEUTRAL))
    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words])}
    tok = transformers.BertTokenizerFast(vocab=vocab)
    config = transformers.BertConfig(
        vocab_size=len(words) + 5,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
    )
    torch.manual_seed(0)
    transformers.BertForSequenceClassification(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def fitted(base, tmp_path_factory):
    torch.set_num_threads(1)
    texts, labels = reviews(240, seed=3)
    out = tmp_path_factory.mktemp("teachers") / "tiny"
    steps = []
    config = teacher.TeacherConfig(epochs=4, batch_size=16, lr=3e-3, max_length=32)
    record = teacher.fit(str(base), texts, labels, ["neg", "pos"], str(out), config, "cpu", lambda *s: steps.append(s))
    return out, record, steps


def test_fit_learns_the_labels_and_records_how(fitted):
    out, record, steps = fitted
    assert record["texts"] == 240 and record["steps"] == 60 == len(steps) and steps[-1][:2] == (60, 60)
    assert json.loads((out / teacher.RECORD).read_text())["config"]["lr"] == 3e-3
    model = teacher.Teacher(str(out))
    assert model.labels == ["neg", "pos"]
    texts, labels = reviews(100, seed=9)
    logits = torch.zeros(100, 2)
    for rows, out_logits in model.logits(texts, tokens_per_batch=256):
        logits[rows] = out_logits
    assert float((logits.argmax(-1) == torch.tensor(labels)).float().mean()) > 0.9


def test_label_writes_a_pool_that_train_distils(fitted, tmp_path):
    out = fitted[0]
    texts, labels = reviews(60, seed=4)
    texts = [f"{t} The acting was superb and the film was moving." if i % 5 == 0 else t for i, t in enumerate(texts)]
    folder = write_splits(tmp_path / "films", "csv", texts, labels)
    pool = tmp_path / "pool.parquet"
    runner = CliRunner()
    args = ["teacher", "label", "-d", str(folder), "-t", str(out), "-o", str(pool), "--sentences", "--device", "cpu"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    table = pq.read_table(pool).to_pydict()
    gold = dict(zip(texts, labels))  # each text once, in order
    n = len(gold)
    assert table["text"][:n] == list(gold) and table["label"][:n] == list(gold.values())
    assert set(table["source"]) == {"films"}
    sentences = table["text"][n:]
    assert sentences and all(table["label"][n + i] == -1 and s not in gold for i, s in enumerate(sentences))
    model = teacher.Teacher(str(out))
    expected = torch.zeros(len(table["text"]), 2)
    for rows, logits in model.logits(table["text"]):
        expected[rows] = logits
    assert torch.allclose(torch.tensor(table["teacher_logits"]), expected, atol=1e-5)
    assert runner.invoke(app, args).exit_code == 2  # the pool exists: --overwrite to replace it

    student = tmp_path / "student"
    small = [*small_model(), "--epochs", "1"]
    result = runner.invoke(
        app, ["train", "-d", str(folder), "--teacher-pool", str(pool), "-o", str(student), *small, "--threads", "1"]
    )
    assert result.exit_code == 0, result.output
    record = json.loads((student / "config.json").read_text())["training"]["teacher_pool"]
    assert record["without_gold_label"] > 0 and record["texts_with_logits"] > 40


def test_without_transformers_the_teacher_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(UsageError, match=r"pip install 'gru-sentiment\[teacher\]'"):
        teacher.Teacher("anywhere")


def test_sentences_are_cut_as_the_pool_was():
    text = "Great hotel.<br />The staff were kind to us all week. Ok. We will come back next year for sure!"
    assert teacher.sentences(text) == ["The staff were kind to us all week.", "We will come back next year for sure!"]
    assert teacher.sentences("One sentence only, nothing to cut here.") == []
