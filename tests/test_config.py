"""Recipes as TOML files with dotted overrides: every key checked, typed, and defaulted by the job's dataclasses."""

from pathlib import Path

import pytest

from gru_sentiment import config
from gru_sentiment.errors import UsageError
from gru_sentiment.jobs import DataSpec, ModelSettings, TokenizerSettings
from gru_sentiment.train import TrainConfig

RECIPES = sorted((Path(__file__).resolve().parents[1] / "recipes").rglob("*.toml"))


def test_a_tree_builds_the_job_it_describes_with_the_dataclasses_defaults():
    tree = config.override(
        {"output": "runs/x", "data": {"datasets": ["a", "b"]}},
        [
            "train.lr=1e-3",
            "train.epochs=2",
            "data.mix=0.5",
            "model.init_from=runs/lm",
            "tokenizer.split_negations=true",
        ],
    )
    job = config.build(tree, command="gru-sentiment train ...")
    assert job.output == "runs/x" and job.data.datasets == ("a", "b") and job.data.mix == "0.5"
    assert job.config.lr == 1e-3 and job.config.epochs == 2 and job.init_from == "runs/lm"
    assert job.tokenizer.split_negations is True and job.command == "gru-sentiment train ..."
    # what the tree does not say is each dataclass's own default: one source for each
    assert job.config.batch_size == TrainConfig().batch_size and job.model == ModelSettings()
    assert job.tokenizer.vocab_size == TokenizerSettings().vocab_size
    assert job.data.val_fraction == DataSpec(("a",)).val_fraction and job.streaming is None


def test_values_are_read_as_toml_and_typed_by_their_field():
    assert config.parse_value("1e-3") == 1e-3 and config.parse_value("true") is True
    assert config.parse_value('["x", "y"]') == ["x", "y"] and config.parse_value("runs/x") == "runs/x"
    job = config.build({"output": "o", "data": {"datasets": ["a"]}, "train": {"lr": 1}})
    assert isinstance(job.config.lr, float)
    with pytest.raises(UsageError, match="train.epochs must be a number, not 'two'"):
        config.build({"output": "o", "data": {"datasets": ["a"]}, "train": {"epochs": "two"}})
    with pytest.raises(UsageError, match="model.bidirectional must be true or false"):
        config.build({"output": "o", "data": {"datasets": ["a"]}, "model": {"bidirectional": 1}})


def test_unknown_keys_and_bad_settings_are_one_line_errors():
    with pytest.raises(UsageError, match=r"unknown setting 'train.learning_rate' \(keys: output, data.datasets"):
        config.override({}, ["train.learning_rate=1"])
    with pytest.raises(UsageError, match=r"unknown setting 'loop.lr' \(did you mean train.lr"):
        config.override({}, ["loop.lr=1"])
    with pytest.raises(UsageError, match="--set takes KEY=VALUE"):
        config.override({}, ["train.lr"])
    with pytest.raises(UsageError, match="unknown setting 'optimiser'"):
        config.build({"output": "o", "optimiser": {"lr": 1}})
    with pytest.raises(UsageError, match="needs data.datasets"):
        config.build({"output": "o"})
    with pytest.raises(UsageError, match="needs an output directory"):
        config.build({"data": {"datasets": ["a"]}})


def test_a_recipe_file_is_read_and_a_broken_one_named(tmp_path):
    good = tmp_path / "r.toml"
    good.write_text('output = "runs/r"\n[data]\ndatasets = ["x"]\nmix = "0.5"\n[stream]\nenabled = true\n')
    job = config.build(config.read(good))
    assert job.data.mix == "0.5" and job.streaming is not None
    bad = tmp_path / "bad.toml"
    bad.write_text("[data\n")
    with pytest.raises(UsageError, match="bad.toml: not valid TOML"):
        config.read(bad)
    with pytest.raises(UsageError, match="no such recipe file"):
        config.read(tmp_path / "none.toml")


@pytest.mark.parametrize("recipe", RECIPES, ids=[p.stem for p in RECIPES])
def test_each_shipped_recipe_parses_into_its_job(recipe):
    job = config.build(config.read(recipe))
    assert job.data.datasets and job.output.startswith("runs/")
    assert all(d.startswith("../shared/data/") for d in (*job.data.datasets, *job.data.train_only))


def test_train_help_shows_the_defaults_of_the_job_and_imports_no_torch():
    import subprocess
    import sys

    from gru_sentiment.cli_train import SHOWN_DEFAULTS

    assert SHOWN_DEFAULTS == {
        "val_fraction": str(DataSpec(("a",)).val_fraction),
        "epochs": str(TrainConfig.epochs),
        "batch_size": str(TrainConfig.batch_size),
        "lr": str(TrainConfig.lr),
        "seed": str(TrainConfig.seed),
    }
    probe = "import sys, gru_sentiment.cli; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).stdout.strip() == "False"


def test_experimental_keys_are_named():
    tree = config.override({}, ["train.vat=1", "train.lr=1e-3", "data.sentence_weight=['sst2=3']"])
    assert config.experimental(tree) == ["train.vat", "data.sentence_weight"]
