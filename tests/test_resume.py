"""Interrupted training loses nothing: resume reaches the very weights of an uninterrupted run."""

import dataclasses
import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from gru_sentiment import checkpoint, jobs, tokenizer
from gru_sentiment.cli import app
from gru_sentiment.errors import ModelError
from gru_sentiment.train import TrainConfig
from tests.corpus import reviews, write_pool, write_splits

CONFIG = TrainConfig(epochs=3, batch_size=16, lr=1e-2, patience=10, evals_per_epoch=2, seed=4)


@pytest.fixture()
def folder(tmp_path):
    texts, labels = reviews(160, seed=11)
    return write_splits(tmp_path / "data", "csv", texts, labels)


def weights(path):
    return load_file(str(path / "model.safetensors"))


ADVERSARIAL = dataclasses.replace(
    CONFIG, adv=0.5, vat=0.5, adv_eps=1.0, vat_batch_size=8, entmin=0.2, layer_lr_decay=2.0
)


def small_run(spec, config):
    """Train a small model on `spec`: call it with an output directory, and `stop_at` a step to interrupt it
    there (Ctrl-C). Its runs share one data split and one tokenizer, as a resumed run reads them back."""
    train, val = jobs.load_training_data(spec, config.seed)
    tok = tokenizer.train(reviews(50)[0], vocab_size=120)
    settings = jobs.TokenizerSettings("wordpiece", 120, 24)
    model = dict(embed_dim=8, hidden_size=6, dropout=0.2)

    def run(out, stop_at=None):
        def interrupt(info):
            if info.step == stop_at:
                raise KeyboardInterrupt

        args = (train, val, settings, model, config, str(out), torch.device("cpu"))
        if stop_at is None:
            jobs.train_model(*args, tok=tok, data_spec=spec)
        else:
            with pytest.raises(KeyboardInterrupt):
                jobs.train_model(*args, tok=tok, data_spec=spec, on_step=interrupt)

    return run


DISTILLED = dataclasses.replace(ADVERSARIAL, distill_weight=0.6, distill_temperature=3.0)


def pool_of(folder, tmp_path, change_last=False):
    """A teacher pool for the `folder` fixture's texts (logits for half of them) and 40 sentences of its own;
    `change_last`: the same with the last sentence's logits changed."""
    import pandas as pd

    texts = list(pd.read_csv(folder / "train.csv")["text"])[::2]
    texts += [f"the extra sentence {i} was {'good' if i % 2 else 'bad'} ." for i in range(40)]
    rng = random.Random(5)
    logits = [[rng.gauss(0, 2), rng.gauss(0, 2)] for _ in texts]
    if change_last:
        logits[-1] = [9.0, -9.0]
    return write_pool(tmp_path / "pool.parquet", texts, logits)


@pytest.mark.parametrize(
    "config, mix, val_fraction, pool",
    [
        (CONFIG, None, 0.1, False),
        (ADVERSARIAL, "1,0.5", 0.1, False),
        (DISTILLED, "1,0.5,0.5", 0.1, True),
        (CONFIG, None, 0.0, False),
        (dataclasses.replace(CONFIG, ema=0.9), None, 0.1, False),
    ],
    ids=["plain", "mixed-adv-vat-entmin", "mixed-adv-distilled", "no-validation", "weight-average"],
)
def test_resume_reaches_the_uninterrupted_result(folder, tmp_path, config, mix, val_fraction, pool):
    torch.set_num_threads(1)
    datasets = (str(folder),) if mix is None else (str(folder), str(folder))
    spec = jobs.DataSpec(
        datasets,
        label_names=("neg", "pos"),
        mix=mix,
        val_fraction=val_fraction,
        teacher_pool=str(pool_of(folder, tmp_path)) if pool else None,
    )
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    run = small_run(spec, config)
    run(whole)
    run(cut, stop_at=13)  # steps per epoch: 9; validations after steps 4/5, 9, 13/14, ...: stop between
    assert checkpoint.load_snapshot(cut).meta["step"] < 13  # the last validation before the interruption
    jobs.resume_model(str(cut), torch.device("cpu"))

    a, b = weights(whole), weights(cut)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not (cut / "resume").exists()  # a finished run keeps no resume state
    if pool:  # the pool's logits reached the same texts in both runs
        read = [json.loads((d / "config.json").read_text())["training"]["teacher_pool"] for d in (whole, cut)]
        assert read[0] == read[1] and 0 < read[0]["without_gold_label"] <= 40 < read[0]["texts_with_logits"]
    with pytest.raises(Exception, match="no saved training state"):
        checkpoint.load_snapshot(cut)


def test_cli_resume_refuses_other_settings_and_finished_runs(tiny_model):
    runner = CliRunner()
    result = runner.invoke(app, ["train", "--resume", str(tiny_model), "--epochs", "9"])
    assert result.exit_code == 2 and "drop --epochs" in result.output
    result = runner.invoke(app, ["train", "--resume", str(tiny_model), "--set", "data.val_groups=false"])
    assert result.exit_code == 2 and "drop --set" in result.output
    result = runner.invoke(app, ["train", "--resume", str(tiny_model)])
    assert result.exit_code == 1 and "no saved training state" in result.output
    result = runner.invoke(app, ["train", "-d", "x"])
    assert result.exit_code == 2 and "--output" in result.output


def test_resume_refuses_a_split_that_no_longer_comes_out_the_same(folder, tmp_path):
    cut = tmp_path / "cut"
    small_run(jobs.DataSpec((str(folder),), label_names=("neg", "pos")), CONFIG)(cut, stop_at=13)
    config = json.loads((cut / "config.json").read_text())
    config["training"]["data"]["val_fraction"] = 0.2  # as if the data or the carve had changed since
    (cut / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match="cannot be resumed exactly"):
        jobs.resume_model(str(cut), torch.device("cpu"))
    assert checkpoint.load_snapshot(cut).meta["step"] < 13  # the saved state is still there


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_killing_training_never_leaves_a_partial_model(folder, tmp_path, sig):
    """Kill a real training process at random moments: the output is always absent, the previous complete
    model, or the new complete one."""
    out = tmp_path / "model"
    base = [
        sys.executable,
        "-m",
        "gru_sentiment",
        "train",
        "-d",
        str(folder),
        "-o",
        str(out),
        "--epochs",
        "300",
        "--set",
        "tokenizer.vocab_size=120",
        "--set",
        "model.embed_dim=8",
        "--set",
        "model.hidden_size=6",
        "--batch-size",
        "8",
        "--set",
        "train.evals_per_epoch=4",
        "--set",
        "tokenizer.max_length=24",
        "--threads",
        "1",
        "--set",
        "train.patience=10000",
    ]
    rng = random.Random(int(sig))
    for _ in range(3):
        args = base + (["--overwrite"] if out.exists() else [])
        proc = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, "HF_HUB_OFFLINE": "1"}
        )
        # Evidence, not a clock: wait for this process's first validation line (printed after it saved), then
        # kill at a random moment among the saves that follow, however fast or slow the machine is.
        seen = b""
        while b"val accuracy" not in seen:
            line = proc.stderr.readline()
            assert line or proc.poll() is None, f"training ended before its first save: {seen[-500:]!r}"
            seen += line
        time.sleep(rng.uniform(0.0, 1.5))
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=600)  # a guard against a hang, not a speed limit
        if out.exists():
            bundle = checkpoint.load(out)  # complete and loadable, or this raises
            assert bundle.labels == ["0", "1"]
        if sig == signal.SIGINT:
            assert proc.returncode == 130 and b"Traceback" not in err
    assert out.exists(), "the process was never given time to save a model"
    if (out / "resume").exists():
        assert checkpoint.load_snapshot(out).meta["step"] > 0


def test_resume_refuses_a_teacher_pool_that_changed(folder, tmp_path):
    pool = pool_of(folder, tmp_path)
    spec = jobs.DataSpec((str(folder),), label_names=("neg", "pos"), teacher_pool=str(pool))
    cut = tmp_path / "cut"
    small_run(spec, DISTILLED)(cut, stop_at=13)
    pool_of(folder, tmp_path, change_last=True)  # the teacher relabelled one text since
    with pytest.raises(ModelError, match="teacher pool .* has changed since this run started"):
        jobs.resume_model(str(cut), torch.device("cpu"))
    assert checkpoint.load_snapshot(cut).meta["step"] < 13  # the saved state is still there
