"""torchrun with two CPU processes (gloo): one model, the weights every rank held, the accuracy of one process."""

import json

from safetensors.torch import load_file

from gru_sentiment.distributed import weights_digest
from tests.corpus import reviews, train, write_pool, write_splits

ARGS = [
    "--epochs",
    "5",
    "--set",
    "tokenizer.vocab_size=150",
    "--set",
    "model.embed_dim=16",
    "--set",
    "model.hidden_size=12",
    "--lr",
    "0.01",
    "--set",
    "model.dropout=0.1",
    "--set",
    "tokenizer.max_length=32",
    "--threads",
    "1",
    "--label-names",
    "neg,pos",
]


def test_two_processes_write_one_model_with_the_weights_of_every_rank(tmp_path):
    texts, labels = reviews(400, seed=3)
    folder = write_splits(tmp_path / "data", "csv", texts, labels)
    models = tmp_path / "models"
    result = train("-d", str(folder), "-o", str(models / "ddp"), "--batch-size", "16", *ARGS, nproc=2)
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(p.name for p in models.iterdir()) == ["ddp"]  # one directory, no leftovers
    assert result.stdout.count("saved ") == 1  # only rank 0 talks

    config = json.loads((models / "ddp" / "config.json").read_text())
    digests = config["training"]["distributed"]["weights_sha256_by_rank"]
    assert config["training"]["distributed"]["world_size"] == 2 and len(digests) == 2
    saved = weights_digest(load_file(str(models / "ddp" / "model.safetensors")))
    assert digests[1] == saved == digests[0]  # rank 1 ended with exactly the weights rank 0 wrote

    single = train("-d", str(folder), "-o", str(models / "one"), "--batch-size", "32", *ARGS)  # same global batch
    assert single.returncode == 0, single.stderr[-2000:]
    one = json.loads((models / "one" / "config.json").read_text())["training"]["best"]["val_accuracy"]
    assert abs(config["training"]["best"]["val_accuracy"] - one) <= 0.1  # 40 validation texts: within noise


def test_distillation_runs_under_torchrun_and_records_its_teacher(tmp_path):
    texts, labels = reviews(200, seed=4)
    folder = write_splits(tmp_path / "data", "csv", texts, labels)
    extra = [f"a sentence {i} of the pool ." for i in range(30)]
    pool = write_pool(tmp_path / "pool.parquet", texts + extra, [[float(i % 3), 0.0] for i in range(230)])
    out = tmp_path / "ddp"
    teach = ["--teacher-pool", str(pool), "--set", "train.distill_weight=0.7"]
    result = train("-d", str(folder), "-o", str(out), "--batch-size", "16", *ARGS, *teach, nproc=2)
    assert result.returncode == 0, result.stderr[-2000:]
    training = json.loads((out / "config.json").read_text())["training"]
    record = training["teacher_pool"]
    assert record["without_gold_label"] == 30 and 150 <= record["texts_with_logits"] - 30 < 200  # the carve's rest
    digests = training["distributed"]["weights_sha256_by_rank"]
    assert digests[0] == digests[1] == weights_digest(load_file(str(out / "model.safetensors")))
