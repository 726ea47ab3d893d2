"""The labels-only prediction path (chunks prepared as flat arrays, optionally by worker processes) gives what
the per-text path gives: the same labels, probabilities, truncation flags and reading notes, in input order."""

import multiprocessing
import os
import pickle
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import gru_sentiment
from gru_sentiment import batching, pipeline, reading, tokenizer
from gru_sentiment.cli import app
from gru_sentiment.errors import UserError
from gru_sentiment.predict import check_text
from gru_sentiment.prepare import Preparer, prepare_in_worker
from tests.corpus import reviews

runner = CliRunner()

LONG = " ".join(f"word{i % 50} is good" for i in range(400))  # over the shipped model's 512 tokens: cut
ODD = [
    "Not bad at all.",
    "Das Essen war schrecklich und viel zu teuer, nie wieder.",  # noted: may not be English
    "😡😡😡",  # noted: mostly unknown
    "\u200b",  # one [UNK]
    "<br />",  # no tokens at all (a line break is a space): reads as one [UNK]
    "[UNK] [PAD] fine",
    LONG,
    "I didnt quite enjoy the book because I think it captures too many details.",
]


@pytest.fixture(scope="module")
def shipped():
    return gru_sentiment.load(device="cpu")


def texts(n: int = 300) -> list[str]:
    return ODD + reviews(n, seed=3)[0]


def reference(bundle, texts: list[str]):
    """Labels, probabilities, truncation and notes computed text by text, the plain way."""
    whole = bundle.tokenizer.encode_batch(texts, add_special_tokens=False)
    encoded = tokenizer.cut_encodings(bundle.tokenizer, whole, bundle.cut)
    notes = reading.notes(bundle.tokenizer, whole)
    out = []
    with torch.no_grad():
        for enc, noted in zip(encoded, notes):
            ids, lengths = batching.pad([enc.ids])
            p = torch.softmax(bundle.model(ids, lengths), -1)[0].tolist()
            out.append((bundle.labels[int(np.argmax(p))], p, enc.truncated, noted))
    return out


def assert_same(preds, expected, texts):
    assert [p.text for p in preds] == texts
    for pred, (label, probs, truncated, notes) in zip(preds, expected):
        assert pred.label == label
        assert list(pred.probabilities.values()) == pytest.approx(probs, abs=1e-5)
        assert pred.truncated == truncated and pred.notes == notes


def test_chunks_read_as_the_per_text_path_reads(shipped):
    given = texts()
    expected = reference(shipped.bundle, given)
    assert any(t for _, _, t, _ in expected) and sum(bool(n) for *_, n in expected) >= 2  # the odd ones are odd
    preds = list(pipeline.label_stream(shipped.bundle, given, "cpu", batch_size=16, chunk_size=64, workers=0))
    assert_same(preds, expected, given)


def test_worker_processes_give_the_same_predictions_in_order(shipped):
    given = texts(400)
    here = list(pipeline.label_stream(shipped.bundle, given, "cpu", chunk_size=50, workers=0))
    pooled = list(pipeline.label_stream(shipped.bundle, given, "cpu", chunk_size=50, workers=2))
    assert [(p.text, p.label, p.probabilities, p.truncated, p.notes) for p in pooled] == [
        (p.text, p.label, p.probabilities, p.truncated, p.notes) for p in here
    ]


def test_the_api_takes_workers_and_says_what_it_needs(shipped):
    given = texts(120)
    assert [p.label for p in shipped.predict(given, workers=2)] == [p.label for p in shipped.predict(given)]
    with pytest.raises(UserError, match="workers"):
        shipped.predict(given, workers=-1)
    with pytest.raises(UserError, match="workers are for labels alone"):
        list(shipped.records(given[:3], gates=True, workers=2))


def test_a_bad_text_mid_stream_stops_the_workers_with_its_error(shipped):
    def stream():
        yield from texts(200)
        yield check_text("   ")  # blank: refused, as the API refuses it, with chunks already with the workers

    with pytest.raises(UserError, match="empty text"):
        list(pipeline.label_stream(shipped.bundle, stream(), "cpu", chunk_size=40, workers=2))
    with pytest.raises(UserError, match="empty text"):
        list(shipped.records([*texts(20), " "]))


def test_a_reader_that_stops_early_stops_the_pool(shipped):
    given = texts(300) * 3
    stream = pipeline.label_stream(shipped.bundle, given, "cpu", chunk_size=40, workers=2)
    first = next(stream)
    assert multiprocessing.active_children()  # the pool is up
    stream.close()  # the pool shuts down: close returns, nothing hangs
    assert first.text == given[0] and not multiprocessing.active_children()


def test_ctrl_c_is_the_callers_alone(shipped):
    """A worker ignores SIGINT (Ctrl-C reaches the whole process group): the caller stops the pool, and no
    worker prints a traceback of its own."""
    pool = pipeline._pool(2, Preparer(shipped.bundle.tokenizer, shipped.bundle.cut))
    try:
        for child in multiprocessing.active_children():
            os.kill(child.pid, signal.SIGINT)
        assert len(pool.submit(prepare_in_worker, ODD).result().lengths) == len(ODD)  # the workers are still up
    finally:
        pool.shutdown()


def test_the_gpu_way_queues_chunks_and_gives_them_back_in_order(shipped):
    """`pipeline.queued` (what a GPU runs: one gather per batch, long batches, probabilities a chunk at a time)
    read on the CPU: the same predictions as the per-text path."""
    given = texts(200)
    preparer = Preparer(shipped.bundle.tokenizer, shipped.bundle.cut)
    chunks = (preparer(given[i : i + 70]) for i in range(0, len(given), 70))
    preds = list(pipeline.queued(shipped.bundle, chunks, torch.device("cpu"), batch_size=32))
    assert_same(preds, reference(shipped.bundle, given), given)


def test_packed_batches_pad_as_lists_do():
    seqs = [[5, 9, 2], [7], [3, 3, 3, 3, 3], [8, 1]]
    packed = batching.Packed(torch.tensor(sum(seqs, [])), torch.tensor([len(s) for s in seqs]))
    rows = [3, 0, 2]
    ids, lengths = packed.pad(torch.tensor(rows), 5, pad_id=0)
    expected_ids, expected_lengths = batching.pad([seqs[i] for i in rows])
    assert torch.equal(ids, expected_ids) and torch.equal(lengths, expected_lengths)


def test_a_preparer_travels_as_its_tokenizer(shipped):
    bundle = shipped.bundle
    preparer = pickle.loads(pickle.dumps(Preparer(bundle.tokenizer, bundle.cut)))
    chunk, again = preparer(ODD), Preparer(bundle.tokenizer, bundle.cut)(ODD)
    assert np.array_equal(chunk.ids, again.ids) and np.array_equal(chunk.lengths, again.lengths)
    assert chunk.ids.dtype == np.int32 and chunk.notes == again.notes
    assert chunk.lengths[ODD.index("<br />")] == 1  # the text with no tokens reads as [UNK]
    expected = {"Das Essen": [reading.NOT_ENGLISH], "😡😡😡": [reading.UNKNOWN], "\u200b": [reading.UNKNOWN]}
    assert chunk.notes == [next((v for k, v in expected.items() if t.startswith(k)), []) for t in ODD]
    assert chunk.truncated.tolist() == [t == LONG for t in ODD]
    assert chunk.lengths[ODD.index(LONG)] == bundle.cut.max_length


def test_the_command_tokenizes_in_worker_processes_when_asked(tmp_path):
    """`predict --workers 2` over more than one chunk of lines writes what `--workers 0` writes."""
    file = tmp_path / "texts.txt"
    file.write_text("\n".join(texts(pipeline.CPU_CHUNK + 100)) + "\n", encoding="utf-8")
    args = ["predict", "--file", str(file), "--format", "jsonl", "--device", "cpu"]
    pooled, here = (runner.invoke(app, [*args, "--workers", n]) for n in ("2", "0"))
    assert pooled.exit_code == 0 and here.exit_code == 0, pooled.output + here.output
    lines = pooled.stdout.splitlines()
    assert len(lines) == pipeline.CPU_CHUNK + 100 + len(ODD) and lines == here.stdout.splitlines()
    refused = runner.invoke(app, ["predict", "--gates", "--workers", "2", "Fine."])
    assert refused.exit_code != 0 and "--workers is for labels alone" in refused.output


def test_a_script_without_a_main_guard_can_use_workers(tmp_path):
    """Worker processes are forked, as PyTorch's data loader's are: a plain script, with no `if __name__ ==
    "__main__":`, predicts with them (a spawned pool would run the script again in every worker)."""
    script = tmp_path / "score.py"
    script.write_text(
        "import gru_sentiment\n"
        "clf = gru_sentiment.load(device='cpu')\n"
        "clf.predict(['fine'] * 500)  # the tokenizer's threads ran before the fork\n"
        f"preds = clf.predict(['a good film', 'a dull film'] * {pipeline.CPU_CHUNK}, workers=2)\n"
        "print(len(preds), sorted({p.label for p in preds}))\n",
        encoding="utf-8",
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{2 * pipeline.CPU_CHUNK} ['neg', 'pos']"
    assert "Traceback" not in done.stderr and "Warning" not in done.stderr, done.stderr
