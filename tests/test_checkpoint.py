import json
import shutil
import subprocess
import sys

import pytest
import torch

from gru_sentiment import checkpoint, tokenizer
from gru_sentiment.batching import pad
from gru_sentiment.errors import ModelError


def test_save_load_gives_identical_logits(tiny_model, tmp_path):
    bundle = checkpoint.load(tiny_model)
    copy = checkpoint.save(bundle, tmp_path / "copy")
    again = checkpoint.load(copy)
    ids, lengths = pad(tokenizer.encode_ids(bundle.tokenizer, ["a wonderful film .", "dull ."], tokenizer.Cut(64)))
    with torch.no_grad():
        assert torch.equal(bundle.model(ids, lengths), again.model(ids, lengths))
    assert again.labels == ["neg", "pos"] and again.cut == tokenizer.Cut(64)
    config = json.loads((copy / "config.json").read_text())
    assert config["format_version"] == checkpoint.FORMAT_VERSION and config["model"]["hidden_size"] == 12
    assert config["training"]["best"]["val_accuracy"] > 0.5


def test_save_replaces_atomically_and_leaves_no_temporaries(tiny_model, tmp_path):
    bundle = checkpoint.load(tiny_model)
    target = tmp_path / "m"
    checkpoint.save(bundle, target)
    checkpoint.save(bundle, target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]
    assert sorted(p.name for p in target.iterdir()) == sorted(checkpoint.FILES)


def test_failed_save_keeps_the_previous_model(tiny_model, tmp_path, monkeypatch):
    bundle = checkpoint.load(tiny_model)
    target = checkpoint.save(bundle, tmp_path / "m")
    before = (target / "model.safetensors").read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint, "save_file", boom)
    with pytest.raises(OSError):
        checkpoint.save(bundle, target)
    assert (target / "model.safetensors").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def broken_copy(tiny_model, tmp_path):
    target = tmp_path / "broken"
    shutil.copytree(tiny_model, target)
    return target


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda d: (d / "model.safetensors").unlink(), "missing model.safetensors"),
        (lambda d: (d / "config.json").write_text("{not json"), "not valid JSON"),
        (
            lambda d: (d / "model.safetensors").write_bytes((d / "model.safetensors").read_bytes()[:100]),
            "corrupted or truncated",
        ),
        (lambda d: (d / "tokenizer.json").write_text("[]"), "not a valid tokenizer"),
    ],
)
def test_damaged_model_directories_give_clear_errors(tiny_model, tmp_path, damage, message):
    target = broken_copy(tiny_model, tmp_path)
    damage(target)
    with pytest.raises(ModelError, match=message):
        checkpoint.load(target)


def edit_config(target, fn):
    config = json.loads((target / "config.json").read_text())
    fn(config)
    (target / "config.json").write_text(json.dumps(config))


def test_newer_format_and_mismatched_vocabulary(tiny_model, tmp_path):
    target = broken_copy(tiny_model, tmp_path)
    vocab = json.loads((target / "config.json").read_text())["model"]["vocab_size"]
    edit_config(target, lambda c: c.update(format_version=checkpoint.FORMAT_VERSION + 1))
    with pytest.raises(ModelError, match="upgrade"):
        checkpoint.load(target)
    edit_config(target, lambda c: (c.update(format_version=1), c["model"].update(vocab_size=999)))
    with pytest.raises(ModelError, match="tokenizer has .* tokens but the model's embedding has 999"):
        checkpoint.load(target)
    edit_config(target, lambda c: c["model"].update(vocab_size=vocab, hidden_size=7))
    with pytest.raises(ModelError, match="does not match config.json"):
        checkpoint.load(target)


def test_missing_directory():
    with pytest.raises(ModelError, match="not found"):
        checkpoint.load("/no/such/model")


def test_leftovers_of_killed_writers_are_cleaned_but_live_ones_kept(tiny_model, tmp_path):
    import os
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    stale = tmp_path / f".m.tmp-{dead_pid}-abc"
    live = tmp_path / f".m.tmp-{os.getpid()}-xyz"
    other = tmp_path / ".mm.tmp-1-zzz"  # another model's name: not ours to touch
    for d in (stale, live, other):
        d.mkdir()
    checkpoint.save(checkpoint.load(tiny_model), tmp_path / "m")
    assert not stale.exists() and live.exists() and other.exists()


@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_written_files_get_the_modes_the_umask_gives(tiny_model, tmp_path, mask):
    import os
    import stat
    from pathlib import Path

    from gru_sentiment.textio import write_text_atomically

    old = os.umask(mask)
    try:
        bundle = checkpoint.load(tiny_model)
        out = checkpoint.save(bundle, tmp_path / "model")
        page = tmp_path / "report.html"
        write_text_atomically(page, "<p>hi</p>")
        plain = tmp_path / "plain"  # what any other program gets
        plain.write_text("x")
        (tmp_path / "plain_dir").mkdir()
    finally:
        os.umask(old)

    def mode(path):
        return stat.S_IMODE(Path(path).stat().st_mode)

    assert mode(out) == mode(tmp_path / "plain_dir") == 0o777 & ~mask
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        assert mode(out / name) == mode(plain) == 0o666 & ~mask, name
    assert mode(page) == 0o666 & ~mask


@pytest.mark.parametrize(
    "setting, value, message",
    [
        ("hidden_size", 2_000_000, "is \\[2, 48\\] in the weights"),  # 48 TB: refused from the header alone
        ("embed_dim", 17, "does not match config.json"),
        ("hidden_size", "12", "hidden_size must be an integer"),
        ("dropout", "lots", "dropout must be a number"),
        ("pad_id", -3, "pad_id must be a token id"),
    ],
)
def test_a_config_that_contradicts_the_weights_is_refused_before_allocating(
    tiny_model, tmp_path, setting, value, message
):
    copy = tmp_path / "m"
    shutil.copytree(tiny_model, copy)
    config = json.loads((copy / "config.json").read_text())
    config["model"][setting] = value
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match=message):
        checkpoint.load(copy)


def test_label_and_max_length_settings_are_checked(tiny_model, tmp_path):
    for key, value, message in (
        ("labels", ["neg", "neg"], "distinct strings"),
        ("tokenizer", {"max_length": -1}, "max_length must be a positive integer"),
    ):
        copy = tmp_path / key
        shutil.copytree(tiny_model, copy)
        config = json.loads((copy / "config.json").read_text())
        config[key] = value
        (copy / "config.json").write_text(json.dumps(config))
        with pytest.raises(ModelError, match=message):
            checkpoint.load(copy)


def test_loading_a_model_pulls_in_no_compiler_machinery(tiny_model):
    """Building a model on the meta device to check shapes once imported torch._dynamo and sympy: 1.8 s of every
    `predict`. Loading may import nothing heavy that `import torch` did not."""
    code = (
        "import sys, torch\n"
        "before = set(sys.modules)\n"
        "from gru_sentiment import checkpoint\n"
        f"checkpoint.load({str(tiny_model)!r})\n"
        "print(' '.join(sorted(m for m in set(sys.modules) - before if m.split('.')[0] == 'sympy' "
        "or m.startswith(('torch._dynamo', 'torch._inductor', 'torch._refs', 'torch.fx')))))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""
