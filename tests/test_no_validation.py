"""`train --val-fraction 0`: once settings are chosen on a held-out split, a final run trains on every text and
keeps its last weights."""

import json

import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from gru_sentiment.cli import app
from gru_sentiment.loop import LoopConfig, Score, fit
from gru_sentiment.model import GRUClassifier, ModelConfig
from gru_sentiment.objectives import cross_entropy
from gru_sentiment.sources import InMemoryBatches
from tests.corpus import reviews, write_splits


def _loop_run(validate):
    torch.manual_seed(0)
    seqs = [[3 + (i * 5 + j) % 17 for j in range(1 + i % 6)] for i in range(48)]
    source = InMemoryBatches(seqs, [i % 2 for i in range(48)], 8)
    model = GRUClassifier(ModelConfig(vocab_size=24, num_labels=2, embed_dim=8, hidden_size=6, dropout=0.2))
    checkpoints, evals = [], []
    history = fit(
        model,
        source,
        cross_entropy,
        validate,
        LoopConfig(epochs=3, lr=1e-2, patience=1, evals_per_epoch=2, seed=3),
        torch.device("cpu"),
        on_eval=evals.append,
        on_checkpoint=lambda best, snapshot, hist: checkpoints.append((hist.steps, snapshot.meta["step"])),
    )
    return model.state_dict(), history, checkpoints, evals


def test_without_validation_the_loop_keeps_the_last_weights_and_still_checkpoints():
    scores = iter(range(100))  # every validation improves: the kept weights are the last ones too
    improving, _, _, evals = _loop_run(lambda model: Score(float(next(scores))))
    kept, history, checkpoints, no_evals = _loop_run(None)
    assert len(evals) == 6 and no_evals == [] and history.evals == [] and history.best is None
    assert [step for step, _ in checkpoints] == [3, 6, 9, 12, 15, 18]  # where validations would be
    assert all(a == b for a, b in checkpoints)  # each checkpoint carries the state to resume from
    assert history.steps == 18 and not history.stopped_early  # patience 1 never stops a run that is not scored
    assert all(torch.equal(kept[k], improving[k]) for k in kept)


def test_cli_trains_on_every_text_and_refuses_to_carve_validation_from_its_training_texts(tmp_path):
    texts, labels = reviews(120, seed=5)
    folder = write_splits(tmp_path / "data", "csv", texts, labels)
    runner = CliRunner()
    small = [
        "--set",
        "tokenizer.vocab_size=120",
        "--set",
        "model.embed_dim=8",
        "--set",
        "model.hidden_size=6",
        "--epochs",
        "2",
        "--batch-size",
        "16",
    ]
    first = runner.invoke(app, ["train", "-d", str(folder), "-o", str(tmp_path / "all"), "--val-fraction", "0", *small])
    assert first.exit_code == 0, first.output
    assert "no validation, the last step's weights" in first.stdout
    record = json.loads((tmp_path / "all" / "config.json").read_text())["training"]
    assert record["train_examples"] == 120 and record["validation_examples"] == 0
    assert record["best"] == {"step": record["steps"], "validation": None} and record["steps"] == 16

    # a run from it that carves validation would validate on texts it was trained on
    init = ["--init-from", str(tmp_path / "all")]
    refused = runner.invoke(app, ["train", "-d", str(folder), "-o", str(tmp_path / "carved"), *init, "--epochs", "1"])
    assert refused.exit_code == 2 and "trained on every text of this data" in refused.output
    assert not (tmp_path / "carved").exists()
    again = runner.invoke(
        app, ["train", "-d", str(folder), "-o", str(tmp_path / "again"), *init, "--val-fraction", "0", "--epochs", "1"]
    )
    assert again.exit_code == 0, again.output
    before, after = (load_file(str(tmp_path / name / "model.safetensors")) for name in ("all", "again"))
    assert not torch.equal(before["embedding.weight"], after["embedding.weight"])  # it trained on

    bad = runner.invoke(app, ["train", "-d", str(folder), "-o", str(tmp_path / "x"), "--val-fraction", "-0.1", *small])
    assert bad.exit_code != 0 and "data.val_fraction must be between 0 and 1" in bad.output
    read = ["--val-split", "test", "--val-fraction", "0"]
    unused = runner.invoke(app, ["train", "-d", str(folder), "-o", str(tmp_path / "x"), *read, *small])
    assert unused.exit_code == 2 and "carve validation from train: not with a validation split" in unused.output
