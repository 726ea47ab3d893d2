"""Model directories: `config.json` + `model.safetensors` + `tokenizer.json`, written atomically.

A directory is built under a temporary name beside its destination and renamed into place, so a crash at any
point leaves either the previous complete model or the new complete one. Loading reads JSON and safetensors
only: nothing a user hands us is ever unpickled.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer

from gru_sentiment import __version__
from gru_sentiment.errors import ModelError
from gru_sentiment.model import GRUClassifier, ModelConfig

FORMAT = "gru-sentiment"
FORMAT_VERSION = 1
FILES = ("config.json", "model.safetensors", "tokenizer.json")


@dataclass
class Bundle:
    """Everything needed to use a trained model again."""

    model: GRUClassifier
    tokenizer: Tokenizer
    labels: list[str]
    max_length: int | None = None
    tokenizer_kind: str = "wordpiece"
    training: dict = field(default_factory=dict)

    def to_config(self) -> dict:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "package_version": __version__,
            "model": self.model.config.to_dict(),
            "labels": list(self.labels),
            "tokenizer": {"kind": self.tokenizer_kind, "vocab_size": self.tokenizer.get_vocab_size(),
                          "max_length": self.max_length},
            "training": self.training,
        }


def save(bundle: Bundle, directory: str | os.PathLike) -> Path:
    """Write the bundle to `directory` atomically, replacing a previous model there."""
    target = Path(directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        state = {k: v.detach().cpu().contiguous() for k, v in bundle.model.state_dict().items()}
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": FORMAT})
        bundle.tokenizer.save(str(tmp / "tokenizer.json"))
        (tmp / "config.json").write_text(json.dumps(bundle.to_config(), indent=2) + "\n", encoding="utf-8")
        for name in FILES:
            _fsync(tmp / name)
        _swap_into_place(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _swap_into_place(tmp: Path, target: Path) -> None:
    if not target.exists():
        os.replace(tmp, target)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    os.replace(target, old / "model")
    try:
        os.replace(tmp, target)
    except BaseException:
        os.replace(old / "model", target)
        raise
    shutil.rmtree(old, ignore_errors=True)


def read_config(directory: str | os.PathLike) -> dict:
    """The parsed and checked `config.json` of a model directory."""
    path = Path(directory)
    if not path.is_dir():
        raise ModelError(f"model directory not found: {path}")
    missing = [name for name in FILES if not (path / name).is_file()]
    if missing:
        raise ModelError(f"{path} is not a complete model directory: missing {', '.join(missing)}")
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path / 'config.json'} is not valid JSON: {exc}") from exc
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ModelError(f"{path / 'config.json'} is not a gru-sentiment model config")
    version = config.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelError(f"{path} has model format version {version}; this gru-sentiment ({__version__}) reads "
                         f"up to version {FORMAT_VERSION}: upgrade gru-sentiment")
    return config


def load(directory: str | os.PathLike, device: str | torch.device = "cpu") -> Bundle:
    """Load a model directory, checking that config, weights and tokenizer agree."""
    path = Path(directory)
    config = read_config(path)
    try:
        model_config = ModelConfig.from_dict(config["model"])
        labels = list(config["labels"])
        tok_settings = config.get("tokenizer", {})
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{path / 'config.json'} has invalid model settings: {exc}") from exc
    if len(labels) != model_config.num_labels:
        raise ModelError(f"{path}: {len(labels)} label names for a model with {model_config.num_labels} outputs")
    try:
        tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
    except Exception as exc:
        raise ModelError(f"{path / 'tokenizer.json'} is not a valid tokenizer: {str(exc).splitlines()[0]}") from exc
    if tokenizer.get_vocab_size() != model_config.vocab_size:
        raise ModelError(f"{path}: tokenizer has {tokenizer.get_vocab_size()} tokens but the model's embedding has "
                         f"{model_config.vocab_size}")
    try:
        state = load_file(str(path / "model.safetensors"), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(f"{path / 'model.safetensors'} is corrupted or truncated: {exc}") from exc
    model = GRUClassifier(model_config)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelError(f"{path / 'model.safetensors'} does not match config.json: "
                         f"{str(exc).splitlines()[0]}") from exc
    model.to(device).eval()
    return Bundle(model, tokenizer, labels, tok_settings.get("max_length"), tok_settings.get("kind", "wordpiece"),
                  config.get("training", {}))
