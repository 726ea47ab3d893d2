"""Distillation: targets that blend the gold label with a teacher's probabilities, per data set."""

import json
import random

import pytest
import torch
from typer.testing import CliRunner

from gru_sentiment import batching, checkpoint, distill, jobs, objectives, tokenizer
from gru_sentiment.cli import app
from gru_sentiment.data import TextData
from gru_sentiment.errors import ModelError, UsageError
from gru_sentiment.sources import InMemoryBatches
from gru_sentiment.train import TrainConfig
from tests.corpus import reviews, write_splits


def test_teacher_options_name_a_model_for_all_or_one_model_per_data_set():
    assert distill.parse_teachers(["runs/a"]) == (("*", "runs/a"),)
    assert distill.parse_teachers(["sst2=runs/a", "imdb=runs/a", "apps=runs/b"]) == (
        ("sst2", "runs/a"),
        ("imdb", "runs/a"),
        ("apps", "runs/b"),
    )
    for bad in (["=runs/a"], ["sst2="], ["sst2=a", "sst2=b"], ["runs/a", "sst2=runs/b"]):
        with pytest.raises(UsageError):
            distill.parse_teachers(bad)
    assert distill.assign((("sst2", "a"), ("imdb", "a"), ("apps", "b")), ["imdb", "sst2", "apps", "hotels"]) == {
        "a": [1, 0],
        "b": [2],
    }
    with pytest.raises(UsageError, match="no data set is called 'yelp' .they are: imdb, sst2"):
        distill.assign((("yelp", "a"),), ["imdb", "sst2"])
    with pytest.raises(UsageError, match="with one data set, give --teacher a"):
        distill.assign((("yelp", "a"),), [])


def _probabilities_one_by_one(model_dir, texts):
    """The teacher's probabilities, text by text, without padding or batching."""
    bundle = checkpoint.load(model_dir)
    bundle.model.eval()
    out = []
    with torch.no_grad():
        for text in texts:
            ids = bundle.tokenizer.encode(text, add_special_tokens=False).ids[: bundle.cut.max_length]
            out.append(bundle.model(torch.tensor([ids]), torch.tensor([len(ids)])).softmax(-1)[0])
    return torch.stack(out)


def test_texts_of_a_taught_data_set_train_toward_the_blend_the_others_toward_their_label(tiny_model):
    texts, labels = reviews(12, seed=5)
    groups = [0] * 6 + [1] * 6
    targets, read = distill.blended_targets(
        texts, labels, groups, ["films", "hotels"], ["neg", "pos"], (("hotels", str(tiny_model)),), 0.3
    )
    assert list(read) == [str(tiny_model)] and read[str(tiny_model)]["texts"] == 6
    assert len(read[str(tiny_model)]["weights_sha256"]) == 64
    gold = torch.nn.functional.one_hot(torch.tensor(labels), 2).float()
    assert torch.equal(targets[:6], gold[:6])
    teacher = _probabilities_one_by_one(tiny_model, texts[6:])
    assert torch.allclose(targets[6:], 0.7 * gold[6:] + 0.3 * teacher, atol=1e-6)
    assert torch.allclose(targets.sum(-1), torch.ones(12))
    every, _ = distill.blended_targets(texts, labels, None, [], ["neg", "pos"], (("*", str(tiny_model)),), 1.0)
    assert torch.allclose(every, _probabilities_one_by_one(tiny_model, texts), atol=1e-6)


def test_a_teacher_must_know_the_students_labels(tiny_model):
    with pytest.raises(ModelError, match="teacher .* has labels neg, pos, the student pos, neg"):
        distill.blended_targets(["fine"], [0], None, [], ["pos", "neg"], (("*", str(tiny_model)),), 0.5)
    with pytest.raises(UsageError, match="between 0 and 1"):
        distill.blended_targets(["fine"], [0], None, [], ["neg", "pos"], (("*", str(tiny_model)),), 1.5)


def test_the_loss_of_a_distillation_batch_is_cross_entropy_against_its_targets():
    torch.manual_seed(0)
    logits = torch.randn(3, 2, requires_grad=True)
    labels = torch.tensor([0, 1, 1])
    onehot = torch.nn.functional.one_hot(labels, 2).float()
    plain = objectives.supervised(logits, (None, None, labels))
    assert torch.allclose(objectives.supervised(logits, (None, None, labels, onehot)), plain)
    # a student that already gives the teacher's probabilities, taught by the teacher alone: no gradient
    teacher = logits.detach().softmax(-1)
    loss = objectives.supervised(logits, (None, None, labels, teacher))
    (grad,) = torch.autograd.grad(loss, logits)
    assert torch.allclose(grad, torch.zeros(3, 2), atol=1e-7)
    entropy = -(teacher * teacher.log()).sum(-1).mean()
    assert loss.item() == pytest.approx(entropy.item())


def test_batches_carry_each_texts_own_targets():
    seqs = [[i + 1] * (1 + i % 4) for i in range(10)]  # text i is made of token i + 1
    labels = [i % 2 for i in range(10)]
    targets = torch.stack([torch.tensor([i / 10, 1 - i / 10]) for i in range(10)])
    seen = []
    for ids, _, batch_labels, batch_targets in InMemoryBatches(seqs, labels, 3, targets=targets).batches(
        1, random.Random(0)
    ):
        for row, label, target in zip(ids.tolist(), batch_labels.tolist(), batch_targets):
            index = row[0] - 1
            seen.append(index)
            assert labels[index] == label and torch.equal(target, targets[index])
    assert sorted(seen) == list(range(10))


def test_train_with_a_teacher_records_it_and_rejects_an_unknown_data_set(tiny_model, tmp_path):
    texts, labels = reviews(120, seed=7)
    films = write_splits(tmp_path / "films", "csv", texts, labels)
    hotels = write_splits(tmp_path / "hotels", "csv", *reviews(60, seed=8))
    base = ["train", "-d", str(films), "-d", str(hotels), "--label-names", "neg,pos", "--vocab-size", "150"]
    base += ["--max-length", "32", "--embed-dim", "8", "--hidden-size", "6", "--epochs", "1", "--threads", "1"]
    runner = CliRunner()
    out = tmp_path / "student"
    result = runner.invoke(app, [*base, "-o", str(out), "--teacher", f"hotels={tiny_model}", "--teacher-weight", "0.4"])
    assert result.exit_code == 0, result.output
    training = json.loads((out / "config.json").read_text())["training"]
    assert training["config"]["teachers"] == [["hotels", str(tiny_model)]]
    assert training["config"]["teacher_weight"] == 0.4
    record = training["teachers"][str(tiny_model)]
    assert 42 <= record["texts"] < 60  # hotels' training part only (the carve held some of its 60 texts out)
    assert "best" in record
    result = runner.invoke(app, [*base, "-o", str(tmp_path / "x"), "--teacher", f"yelp={tiny_model}"])
    assert result.exit_code == 2
    assert "no data set is called 'yelp' (they are: films, hotels)" in result.output
    assert not (tmp_path / "x").exists()
    result = runner.invoke(app, [*base, "-o", str(tmp_path / "y"), "--teacher-weight", "0.3"])
    assert result.exit_code == 2 and "--teacher-weight needs --teacher" in result.output


def test_the_teachers_targets_reach_the_loss(tiny_model, tmp_path):
    """Labels all flipped: trained on them the student learns the flip; trained toward the teacher alone (weight
    1) it learns what the teacher says."""
    torch.set_num_threads(1)
    texts, labels = reviews(200, seed=12)
    labels = [1 - y for y in labels]
    train = TextData(texts, labels, ["neg", "pos"], "corpus:train")
    val = TextData(*reviews(32, seed=13), ["neg", "pos"], "corpus:val")
    tok = checkpoint.load(tiny_model).tokenizer
    results = {}
    for name, teachers in (("labels", ()), ("teacher", (("*", str(tiny_model)),))):
        config = TrainConfig(epochs=6, batch_size=16, lr=2e-2, patience=9, teachers=teachers, teacher_weight=1.0)
        out = tmp_path / name
        jobs.train_model(
            train,
            val,
            jobs.TokenizerSettings("wordpiece", 200, 64),
            dict(embed_dim=16, hidden_size=12),
            config,
            str(out),
            torch.device("cpu"),
            tok=tok,
        )
        bundle = checkpoint.load(out)
        bundle.model.eval()
        seqs = tokenizer.encode_ids(tok, texts, bundle.cut)
        results[name] = batching.logits_for(bundle.model, seqs, 32, "cpu").softmax(-1)
    teacher = _probabilities_one_by_one(tiny_model, texts)
    agree = {k: float((p.argmax(-1) == teacher.argmax(-1)).float().mean()) for k, p in results.items()}
    assert agree["teacher"] > 0.9 and agree["labels"] < 0.5, agree  # keep-best watched true validation labels
