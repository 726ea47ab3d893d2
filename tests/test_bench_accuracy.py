"""bench/accuracy.py --baseline-model: another model's predictions, in the tested model's label order."""

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

from gru_sentiment import checkpoint, data, jobs
from tests.corpus import reviews


def load_bench():
    path = Path(__file__).resolve().parents[1] / "bench" / "accuracy.py"
    spec = importlib.util.spec_from_file_location("bench_accuracy", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def swapped_labels(model: Path, out: Path) -> Path:
    """The same classifier with its labels listed the other way round (head rows swapped to match)."""
    shutil.copytree(model, out)
    config = json.loads((out / "config.json").read_text())
    config["labels"] = config["labels"][::-1]
    (out / "config.json").write_text(json.dumps(config))
    state = load_file(str(out / "model.safetensors"))
    state["head.weight"] = state["head.weight"].flip(0).contiguous()
    state["head.bias"] = state["head.bias"].flip(0).contiguous()
    save_file(state, str(out / "model.safetensors"))
    return out


def test_baseline_model_predicts_in_the_tested_models_label_order(tiny_model, tmp_path):
    bench = load_bench()
    texts, _ = reviews(40, seed=5)
    bundle = checkpoint.load(tiny_model)
    expected = jobs.predicted_labels(bundle, data.TextData(texts, [0] * len(texts), bundle.labels, "t"))[1]
    assert len(set(expected)) == 2  # both labels occur, so a swap would show
    swapped = swapped_labels(tiny_model, tmp_path / "swapped")
    assert checkpoint.load(swapped).labels == bundle.labels[::-1]
    assert bench.ModelBaseline(str(swapped), list(bundle.labels)).predict(texts) == expected
    assert bench.ModelBaseline(str(tiny_model), list(bundle.labels)).predict(texts) == expected


def test_baseline_model_with_other_labels_is_refused(tiny_model):
    with pytest.raises(SystemExit, match="labels"):
        load_bench().ModelBaseline(str(tiny_model), ["bad", "good"])


def test_the_everyday_set_is_short_sentences_a_third_with_negation_or_idiom():
    sets = dict(load_bench().test_sets("/nonexistent", ["neg", "pos"]))
    everyday, negation = sets["everyday"], sets["everyday negation"]
    assert len(everyday) >= 100 and 3 * len(negation) >= len(everyday)
    assert set(everyday.labels) == {0, 1} and set(negation.labels) == {0, 1}
    assert max(len(t.split()) for t in everyday.texts) <= 20
    assert len(set(everyday.texts)) == len(everyday)
