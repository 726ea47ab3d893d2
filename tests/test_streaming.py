"""--streaming: a data set read as a stream, larger than the shuffle buffer, trains a working model."""

import json
import random

from typer.testing import CliRunner

from gru_sentiment import tokenizer
from gru_sentiment.cli import app
from gru_sentiment.streaming import BatchStream
from tests.corpus import reviews, small_model, train, write_splits

runner = CliRunner()
SMALL = [
    *small_model(vocab=200, max_length=32, embed=16, hidden=12),
    "--batch-size",
    "16",
    "--lr",
    "0.01",
    "--label-names",
    "neg,pos",
    "--threads",
    "1",
]


def stream_folder(tmp_path, rows=3000):
    texts, labels = reviews(rows, seed=8)
    return write_splits(tmp_path / "stream", "jsonl", texts, labels)


def test_streaming_training_on_more_rows_than_the_buffer(tmp_path):
    folder, out = stream_folder(tmp_path), tmp_path / "model"
    result = runner.invoke(
        app,
        [
            "train",
            "--streaming",
            "-d",
            str(folder),
            "-o",
            str(out),
            "--max-steps",
            "120",
            "--set",
            "stream.shuffle_buffer=200",
            "--set",
            "stream.tokenizer_sample=500",
            "--set",
            "stream.val_size=200",
            "--set",
            "train.evals_per_epoch=3",
            *SMALL,
        ],
    )
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    assert config["training"]["streaming"] == {"shuffle_buffer": 200, "tokenizer_sample": 500}
    assert config["training"]["validation_examples"] == 200 and config["training"]["steps"] == 120
    preds = json.loads(
        runner.invoke(app, ["predict", "-m", str(out), "-f", "json", "a superb film .", "a dreadful plot ."]).stdout
    )
    assert [p["label"] for p in preds] == ["pos", "neg"]


def test_streaming_needs_max_steps(tmp_path):
    result = runner.invoke(
        app, ["train", "--streaming", "-d", str(stream_folder(tmp_path, 50)), "-o", str(tmp_path / "m")]
    )
    assert result.exit_code == 2 and "needs train.max_steps" in result.output


def test_batch_stream_reads_one_chunk_at_a_time():
    consumed = []
    texts, labels = reviews(1000)

    def pairs(epoch):
        for pair in zip(texts, labels):
            consumed.append(pair)
            yield pair

    tok = tokenizer.train(texts[:200], vocab_size=100)
    batches = BatchStream(pairs, tok, tokenizer.Cut(32), batch_size=8, pool=5).batches(1, random.Random(0))
    ids, lengths, target = next(batches)
    assert len(consumed) == 8 * 5 and ids.shape[0] == 8 and len(target) == 8  # one chunk, not the whole stream
    assert sum(t.shape[0] for _, _, t in batches) == 1000 - 8  # every row comes out once


def test_streaming_under_torchrun(tmp_path):
    folder, out = stream_folder(tmp_path, 1200), tmp_path / "ddp"
    result = train(
        "--streaming",
        "-d",
        str(folder),
        "-o",
        str(out),
        "--max-steps",
        "40",
        "--set",
        "stream.shuffle_buffer=100",
        "--set",
        "stream.tokenizer_sample=300",
        "--set",
        "stream.val_size=100",
        *SMALL,
        nproc=2,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    digests = json.loads((out / "config.json").read_text())["training"]["distributed"]["weights_sha256_by_rank"]
    assert len(digests) == 2 and digests[0] == digests[1]
