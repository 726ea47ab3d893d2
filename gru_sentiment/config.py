"""Training recipes as files: a TOML tree whose sections are the settings of a `jobs.TrainJob`.

    [data]        jobs.DataSpec            datasets, mix, train_only, teacher_pool, val_fraction, ...
    [tokenizer]   jobs.TokenizerSettings   kind, vocab_size, max_length, tail, split_negations; from
    [model]       jobs.ModelSettings       embed_dim, hidden_size, num_layers, ...; init_from
    [train]       train.TrainConfig        epochs, max_steps, lr, adv, entmin, distill_weight, ...
    [stream]      jobs.StreamSettings      enabled, tokenizer_sample, shuffle_buffer, val_size
    output = "runs/name"

Every key is a field of those dataclasses (plus the few marked below), and their defaults are the only
defaults: a recipe says what differs. Relative paths in a recipe are read from the directory `train` runs in,
as on the command line. `override` applies dotted `KEY=VALUE` settings (`train.lr=1e-3`; VALUE in TOML
syntax, a bare word read as a string), as spaCy's `train` takes `--paths.train`. Errors name the key.
"""

from __future__ import annotations

import tomllib
from dataclasses import fields
from pathlib import Path
from typing import Any

from gru_sentiment.errors import UsageError
from gru_sentiment.jobs import DataSpec, ModelSettings, StreamSettings, TokenizerSettings, TrainJob
from gru_sentiment.train import TrainConfig

SECTIONS = {
    "data": DataSpec,
    "tokenizer": TokenizerSettings,
    "model": ModelSettings,
    "train": TrainConfig,
    "stream": StreamSettings,
}
EXTRA = {  # keys that are not fields of their section's dataclass, and where they go in the job
    ("tokenizer", "from"): "tokenizer_from",
    ("model", "init_from"): "init_from",
    ("stream", "enabled"): "streaming",
}
TOP = ("output",)
# kept for reproducing recorded runs; each was tried and did not ship (docs/experiments.md)
EXPERIMENTAL = ("train.vat", "train.vat_batch_size", "train.layer_lr_decay", "train.ema", "data.sentence_weight")


def experimental(tree: dict) -> list[str]:
    """The experimental keys a tree sets."""
    return [key for key in EXPERIMENTAL if key.split(".")[1] in tree.get(key.split(".")[0], {})]


def keys() -> list[str]:
    """Every key a recipe may set, dotted."""
    names = [f"{section}.{f.name}" for section, cls in SECTIONS.items() for f in fields(cls)]
    return [*TOP, *names, *(f"{s}.{k}" for s, k in EXTRA)]


def read(path: str | Path) -> dict:
    """A recipe file as a tree."""
    try:
        with open(path, "rb") as file:
            return tomllib.load(file)
    except FileNotFoundError:
        raise UsageError(f"no such recipe file: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML: {exc}") from None


def override(tree: dict, settings: list[str]) -> dict:
    """`tree` with each `KEY=VALUE` setting applied (a copy)."""
    tree = {k: dict(v) if isinstance(v, dict) else v for k, v in tree.items()}
    for setting in settings:
        key, eq, text = setting.partition("=")
        key = key.strip().removeprefix("--")
        if not eq or not key:
            raise UsageError(f"--set takes KEY=VALUE, e.g. train.lr=1e-3, not {setting!r}")
        set_key(tree, key, parse_value(text.strip()))
    return tree


def parse_value(text: str) -> Any:
    """A value in TOML syntax (1e-3, true, [\"a\", \"b\"], \"x\"); anything else is the string as written."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def set_key(tree: dict, key: str, value: Any) -> None:
    """Set a dotted key in a tree, after checking that a recipe may have it."""
    _check_key(key)
    if "." not in key:
        tree[key] = value
        return
    section, name = key.split(".", 1)
    tree.setdefault(section, {})[name] = value


def _check_key(key: str) -> None:
    if key not in keys():
        close = [k for k in keys() if k.split(".")[-1] == key.split(".")[-1]]
        hint = f" (did you mean {', '.join(close)}?)" if close else f" (keys: {', '.join(keys())})"
        raise UsageError(f"unknown setting '{key}'{hint}")


def build(tree: dict, command: str = "") -> TrainJob:
    """The training job a tree describes: every key checked and typed against its dataclass's default."""
    parts: dict[str, dict] = {section: {} for section in SECTIONS}
    extra: dict[str, Any] = {}
    for key, value in tree.items():
        if key in TOP:
            continue
        if key not in SECTIONS or not isinstance(value, dict):
            raise UsageError(f"unknown setting '{key}' (sections: {', '.join(SECTIONS)}; top level: output)")
        for name, item in value.items():
            dotted = f"{key}.{name}"
            _check_key(dotted)
            if (key, name) in EXTRA:
                extra[EXTRA[key, name]] = item
            else:
                parts[key][name] = _typed(dotted, item, SECTIONS[key])
    if not tree.get("output"):
        raise UsageError("a training job needs an output directory (output, or --output)")
    if not parts["data"].get("datasets"):
        raise UsageError("a training job needs data.datasets (or --dataset)")
    built = {section: cls(**parts[section]) for section, cls in SECTIONS.items()}
    return TrainJob(
        data=built["data"],
        output=str(tree["output"]),
        config=built["train"],
        model=built["model"],
        tokenizer=built["tokenizer"],
        tokenizer_from=_path(extra.get("tokenizer_from")),
        init_from=_path(extra.get("init_from")),
        streaming=built["stream"] if extra.get("streaming") else None,
        command=command,
    )


def _path(value) -> str | None:
    return str(value) if value else None


def _typed(key: str, value: Any, cls) -> Any:
    """`value` as the type of the field's default: lists as tuples, ints as floats where a float is wanted."""
    field = next(f for f in fields(cls) if f.name == key.split(".")[-1])
    default = field.default
    if isinstance(value, list):
        return tuple(value)
    if str(field.type).startswith("str") and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)  # mix = 0.5: the rule is text
    if isinstance(default, bool) and not isinstance(value, bool):
        raise UsageError(f"{key} must be true or false, not {value!r}")
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(default, (int, float)) and not isinstance(default, bool) and not isinstance(value, (int, float)):
        raise UsageError(f"{key} must be a number, not {value!r}")
    return value
