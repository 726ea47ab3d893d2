"""Distillation from a teacher's logits given with the data: the loss, the pool, and training with it."""

import json
import random

import pytest
import torch
from typer.testing import CliRunner

from gru_sentiment import batching, checkpoint, distill, jobs, objectives, tokenizer
from gru_sentiment.cli import app
from gru_sentiment.data import TextData
from gru_sentiment.errors import DataError
from gru_sentiment.sources import InMemoryBatches
from gru_sentiment.train import TrainConfig
from tests.corpus import reviews, small_model, write_pool, write_splits

NAN = float("nan")


def test_the_loss_blends_gold_labels_and_the_softened_teacher():
    torch.manual_seed(0)
    logits = torch.randn(4, 2, requires_grad=True)
    labels = torch.tensor([0, 1, -1, 1])  # the third text has no gold label
    teacher = torch.tensor([[NAN, NAN], [0.5, -1.0], [2.0, 0.0], [-1.0, 1.0]])  # the first has no teacher
    d = objectives.Distillation(temperature=2.0, weight=0.3)
    ce = torch.nn.functional.cross_entropy(logits, labels.clamp(min=0), reduction="none")
    p = (teacher.nan_to_num() / 2).softmax(-1)
    kl = (p * (p.log() - (logits / 2).log_softmax(-1))).sum(-1) * 4
    expected = (ce[0] + 0.7 * ce[1] + 0.3 * kl[1] + kl[2] + 0.7 * ce[3] + 0.3 * kl[3]) / 4
    assert d.loss(logits, labels, teacher).item() == pytest.approx(expected.item(), rel=1e-6)
    # gold labels alone: plain cross-entropy, whatever the settings
    none = torch.full((4, 2), NAN)
    gold = torch.tensor([0, 1, 0, 1])
    assert d.loss(logits, gold, none).item() == pytest.approx(
        torch.nn.functional.cross_entropy(logits, gold).item(), rel=1e-6
    )
    # a student that already gives the teacher's logits, taught by the teacher alone: no loss, no gradient
    alone = objectives.supervised(logits, (None, None, torch.full((4,), -1), logits.detach()), d)
    (grad,) = torch.autograd.grad(alone, logits)
    assert alone.item() == pytest.approx(0.0, abs=1e-6) and torch.allclose(grad, torch.zeros(4, 2), atol=1e-7)


def test_batches_carry_each_texts_own_teacher_logits():
    seqs = [[i + 1] * (1 + i % 4) for i in range(10)]  # text i is made of token i + 1
    labels = [i % 2 if i % 3 else -1 for i in range(10)]
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


def test_a_pool_is_read_with_its_logits_and_checked(tmp_path):
    pool = distill.read_pool(
        str(write_pool(tmp_path / "p.parquet", ["a b", "c d"], [[1, 2], [3, 4]], [1, -1])), ["neg", "pos"]
    )
    assert pool.texts == ["a b", "c d"] and pool.labels == [1, -1]
    assert [list(x) for x in pool.teacher] == [[1.0, 2.0], [3.0, 4.0]]
    with pytest.raises(DataError, match="row 0 has no 3 logits"):
        distill.read_pool(str(tmp_path / "p.parquet"), ["neg", "pos", "neutral"])
    write_splits(tmp_path / "plain", "csv", ["x"], [0])
    with pytest.raises(DataError, match="has no 'teacher_logits' column"):
        distill.read_pool(str(tmp_path / "plain" / "train.csv"), ["neg", "pos"])
    bad = write_pool(tmp_path / "bad.parquet", ["a"], [[1, 2]], [5])
    with pytest.raises(DataError, match="labels must be -1"):
        distill.read_pool(str(bad), ["neg", "pos"])


def test_attach_gives_training_texts_their_logits_and_keeps_validation_out():
    names = ["neg", "pos"]
    train = TextData(["the room was clean .", "the food was cold ."], [1, 0], names, "t")
    extra = TextData(["a new domain text ."], [1], names, "e")
    held = "Great stay. The staff at the front desk were so kind to us. We will be back."
    val = TextData([held, "short one"], [1, 0], names, "v")
    pool_texts = [
        "the food was cold .",  # a training text: its logits go to it
        held,  # a validation text
        "The staff at the front desk were so kind to us.",  # a piece of one
        "short one",  # a short validation text
        "An unrelated sentence about a quiet hotel room.",  # the rest: teacher-only training texts
    ]
    pool = TextData(pool_texts, [0, 1, -1, 0, -1], names, "pool", teacher=[[i, -i] for i in range(5)])
    rest, left_out = distill.attach([train, extra], val, pool)
    assert train.teacher == [None, [0, 0]] and extra.teacher == [None]
    assert rest.texts == [pool_texts[4]] and rest.labels == [-1] and rest.teacher == [[4, -4]]
    assert left_out == 3


def test_training_data_with_a_pool_keeps_the_carve_and_adds_the_pool(tmp_path):
    texts, labels = reviews(120, seed=3)
    folder = write_splits(tmp_path / "films", "csv", texts, labels)
    extra_texts = [f"the extra sentence number {i} was fine ." for i in range(30)]
    pool = write_pool(
        tmp_path / "pool.parquet", texts + extra_texts, [[float(i), 0.0] for i in range(150)], labels + [-1] * 30
    )
    spec = jobs.DataSpec((str(folder),), label_names=("neg", "pos"))
    plain_train, plain_val = jobs.load_training_data(spec, 0)
    spec = jobs.DataSpec((str(folder),), label_names=("neg", "pos"), teacher_pool=str(pool))
    train, val = jobs.load_training_data(spec, 0)
    assert val.texts == plain_val.texts  # the carve is the same
    assert train.texts[: len(plain_train)] == plain_train.texts and train.group_names == ["films", "pool.parquet"]
    index = {t: i for i, t in enumerate(texts + extra_texts)}
    assert all(train.teacher[k] == [float(index[t]), 0.0] for k, t in enumerate(train.texts))
    pool_part = [t for t, g in zip(train.texts, train.groups) if g == 1]
    assert set(pool_part) <= set(extra_texts) and len(pool_part) >= 25  # validation's copies left out


def test_train_with_a_teacher_pool_records_it_and_checks_its_options(tmp_path):
    texts, labels = reviews(120, seed=7)
    films = write_splits(tmp_path / "films", "csv", texts, labels)
    pool = write_pool(tmp_path / "pool.parquet", texts[:40], [[1.0, -1.0]] * 40)
    base = ["train", "-d", str(films), "--label-names", "neg,pos", *small_model(), "--epochs", "1", "--threads", "1"]
    runner = CliRunner()
    out = tmp_path / "student"
    result = runner.invoke(
        app,
        [
            *base,
            "-o",
            str(out),
            "--teacher-pool",
            str(pool),
            "--set",
            "train.distill_weight=0.4",
            "--set",
            "train.distill_temperature=3",
        ],
    )
    assert result.exit_code == 0, result.output
    training = json.loads((out / "config.json").read_text())["training"]
    assert training["config"]["distill_weight"] == 0.4 and training["config"]["distill_temperature"] == 3.0
    record = training["teacher_pool"]
    assert record["pool"] == str(pool) and record["without_gold_label"] == 0  # every pool text is a training one
    assert 30 <= record["texts_with_logits"] <= 40  # those the carve kept for training
    result = runner.invoke(app, [*base, "-o", str(tmp_path / "y"), "--set", "train.distill_weight=0.3"])
    assert (
        result.exit_code == 2
        and "train.distill_weight and train.distill_temperature need a teacher pool" in result.output
    )
    result = runner.invoke(app, [*base, "-o", str(tmp_path / "z"), "--teacher-pool", str(pool), "--streaming"])
    assert result.exit_code == 2 and "data.teacher_pool needs the training texts in memory" in result.output


def test_the_teachers_logits_reach_the_loss(tiny_model, tmp_path):
    """Labels all flipped: trained on them the student learns the flip; trained toward the teacher alone (weight
    1) it learns what the teacher says."""
    torch.set_num_threads(1)
    texts, labels = reviews(200, seed=12)
    labels = [1 - y for y in labels]
    teacher_model = checkpoint.load(tiny_model)
    teacher_model.model.eval()
    tok = teacher_model.tokenizer
    seqs = tokenizer.encode_ids(tok, texts, teacher_model.cut)
    logits = batching.logits_for(teacher_model.model, seqs, 32, "cpu")
    val = TextData(*reviews(32, seed=13), ["neg", "pos"], "corpus:val")
    results = {}
    for name, teacher in (("labels", None), ("teacher", logits.tolist())):
        train = TextData(texts, labels, ["neg", "pos"], "corpus:train", teacher=teacher)
        config = TrainConfig(epochs=6, batch_size=16, lr=2e-2, patience=9, distill_weight=1.0, distill_temperature=1.0)
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
        results[name] = batching.logits_for(bundle.model, seqs, 32, "cpu").softmax(-1)
    agree = {k: float((p.argmax(-1) == logits.argmax(-1)).float().mean()) for k, p in results.items()}
    assert agree["teacher"] > 0.9 and agree["labels"] < 0.5, agree  # keep-best watched true validation labels


def test_a_run_that_distilled_from_a_gru_model_is_not_resumed_as_another():
    assert TrainConfig.from_dict({"teachers": [], "teacher_weight": 0.5}) == TrainConfig()
    with pytest.raises(Exception, match="GRU teacher model"):
        TrainConfig.from_dict({"teachers": [["*", "runs/film"]]})
