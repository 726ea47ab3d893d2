"""Model directories: `config.json` + `model.safetensors` + `tokenizer.json`, written atomically.

A directory is built under a temporary name beside its destination and renamed into place, so a crash at any
point leaves either the previous complete model or the new complete one. Loading reads JSON and safetensors
only: nothing a user hands us is ever unpickled.
"""

from __future__ import annotations

import ctypes
import errno
import glob
import json
import os
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer

from gru_sentiment import __version__
from gru_sentiment.errors import ModelError
from gru_sentiment.model import GRUClassifier, ModelConfig, weight_shapes
from gru_sentiment.textio import give_default_modes
from gru_sentiment.tokenizer import Cut

FORMAT = "gru-sentiment"
FORMAT_VERSION = 1
FILES = ("config.json", "model.safetensors", "tokenizer.json")
RESUME_TENSORS, RESUME_META = "resume/state.safetensors", "resume/state.json"


@dataclass
class RunRecord:
    """What the training run that made a model did: `training` in its config.json, filled in as the run goes.

    `config` and `data` are the run's `TrainConfig` and `DataSpec` (what `train --resume` reads back); `best`
    the validation figures of the kept weights. Keys a newer version wrote are kept in `extra`.
    """

    command: str = ""
    package_version: str = __version__
    dataset: str = ""
    validation: str = ""
    train_examples: int | None = None
    validation_examples: int = 0
    config: dict = field(default_factory=dict)
    data: dict | None = None
    streaming: dict | None = None
    init_from: dict | None = None
    mix: dict | None = None
    sentence_weight: dict | None = None  # --sentence-weight: per data set, W and how many whole texts it lifted
    vat_unlabelled_texts: int | None = None
    teacher_pool: dict | None = None  # distillation: the pool of teacher logits, and how many texts each part had
    merged: dict | None = None  # made by `merge`: the weight, and the two models' own records
    tokenizer_seconds: float | None = None
    best: dict | None = None
    steps: int = 0
    seconds: float = 0.0
    tokens_per_s: int | None = None
    stopped_early: bool = False
    distributed: dict | None = None
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        record = {k: v for k, v in asdict(self).items() if v is not None and k != "extra"}
        return {**self.extra, **record}

    @classmethod
    def from_dict(cls, data: dict) -> RunRecord:
        if not isinstance(data, dict):
            return cls()
        known = {f.name for f in fields(cls)} - {"extra"}
        return cls(
            **{k: v for k, v in data.items() if k in known}, extra={k: v for k, v in data.items() if k not in known}
        )


@dataclass
class Bundle:
    """Everything needed to use a trained model again."""

    model: GRUClassifier
    tokenizer: Tokenizer
    labels: list[str]
    cut: Cut = Cut()  # what the model reads of a text
    tokenizer_kind: str = "wordpiece"
    training: RunRecord = field(default_factory=RunRecord)

    def to_config(self) -> dict:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "package_version": __version__,
            "model": self.model.config.to_dict(),
            "labels": list(self.labels),
            "tokenizer": {
                "kind": self.tokenizer_kind,
                "vocab_size": self.tokenizer.get_vocab_size(),
                "max_length": self.cut.max_length,
                "tail": self.cut.tail,
            },
            "training": self.training.to_dict(),
        }


def save(bundle: Bundle, directory: str | os.PathLike, weights: dict | None = None, snapshot=None) -> Path:
    """Write the bundle to `directory` atomically, replacing a previous model there.

    `weights` replaces the model's current state dict (training saves the best weights while it goes on);
    `snapshot` (a `loop.Snapshot`) is written to `resume/` so that `train --resume` can continue.
    """

    def write(tmp: Path) -> list[Path]:
        state = {k: v.detach().cpu().contiguous() for k, v in (weights or bundle.model.state_dict()).items()}
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": FORMAT})
        bundle.tokenizer.save(str(tmp / "tokenizer.json"))
        (tmp / "config.json").write_text(json.dumps(bundle.to_config(), indent=2) + "\n", encoding="utf-8")
        written = [tmp / name for name in FILES]
        if snapshot is not None:
            (tmp / "resume").mkdir()
            save_file({k: v.contiguous() for k, v in snapshot.tensors.items()}, str(tmp / RESUME_TENSORS))
            (tmp / RESUME_META).write_text(json.dumps(snapshot.meta) + "\n", encoding="utf-8")
            written += [tmp / RESUME_TENSORS, tmp / RESUME_META]
        return written

    return write_directory(directory, write)


def write_directory(directory: str | os.PathLike, write) -> Path:
    """Build a directory with `write(tmp) -> [files written]` under a temporary name beside `directory`, fsync
    the files, and swap it into place: a crash at any point leaves the old directory or the new one, whole."""
    target = Path(directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-{os.getpid()}-", dir=target.parent))
    try:
        for path in write(tmp):
            _fsync(path)
        give_default_modes(tmp)  # mkdtemp made it private; a model is for whoever the umask lets read it
        _swap_into_place(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _remove_leftovers(target: Path) -> None:
    """Delete temporary directories that a killed process left beside `target` (their pid is in the name)."""
    for leftover in target.parent.glob(f".{glob.escape(target.name)}.*-*-*"):
        kind, _, rest = leftover.name[len(target.name) + 2 :].partition("-")
        pid = rest.split("-", 1)[0]
        if kind in ("tmp", "old") and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(leftover, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _swap_into_place(tmp: Path, target: Path) -> None:
    """Put the complete directory `tmp` at `target`. On Linux an existing target is exchanged with it in one
    atomic step (renameat2 RENAME_EXCHANGE): at every instant `target` is the old model or the new one."""
    if not target.exists():
        os.replace(tmp, target)
    elif _exchange(tmp, target):
        shutil.rmtree(tmp, ignore_errors=True)  # now holds the previous model
    else:  # no atomic exchange here: two renames, with a moment where `target` is missing
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-{os.getpid()}-", dir=target.parent))
        os.replace(target, old / "model")
        try:
            os.replace(tmp, target)
        except BaseException:
            os.replace(old / "model", target)
            raise
        shutil.rmtree(old, ignore_errors=True)
    _fsync_dir(target.parent)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically with Linux's renameat2(RENAME_EXCHANGE); False where that is unavailable."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


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
    if not isinstance(version, int):
        raise ModelError(f"{path} is not a gru-sentiment model directory: its config.json has no format_version")
    if version > FORMAT_VERSION:
        raise ModelError(
            f"{path} has model format version {version}; this gru-sentiment ({__version__}) reads "
            f"up to version {FORMAT_VERSION}: upgrade gru-sentiment"
        )
    return config


def check_weight_shapes(model_config: ModelConfig, file: Path, head: bool = True) -> None:
    """Refuse a weights file whose tensors do not have the shapes `model_config` implies, before anything of
    that size is allocated: the shapes come from the config (`model.weight_shapes`) and from the safetensors
    header (a few bytes), so a config that names a huge size costs nothing."""
    expected = {k: list(shape) for k, shape in weight_shapes(model_config).items() if head or not k.startswith("head.")}
    try:
        with safe_open(str(file), "pt") as handle:
            found = {k: list(handle.get_slice(k).get_shape()) for k in handle.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(f"{file} is corrupted or truncated: {exc}") from exc
    if found != expected:
        wrong = sorted(set(found) ^ set(expected)) or sorted(k for k in found if found[k] != expected[k])
        name = wrong[0]
        raise ModelError(
            f"{file} does not match config.json: {name} is {found.get(name, 'missing')} in the "
            f"weights, {expected.get(name, 'absent')} by the config"
        )


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
    if not all(isinstance(name, str) for name in labels) or len(set(labels)) != len(labels):
        raise ModelError(f"{path / 'config.json'}: labels must be distinct strings, not {labels!r}")
    if not isinstance(tok_settings, dict):
        tok_settings = {"max_length": "?"}  # refused just below, as no length at all
    try:  # models saved before head+tail truncation have no tail: they read the beginning only
        cut = Cut(tok_settings.get("max_length"), tok_settings.get("tail", 0))
    except ValueError as exc:
        raise ModelError(f"{path / 'config.json'}: tokenizer {exc}") from exc
    try:
        tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
    except Exception as exc:
        raise ModelError(f"{path / 'tokenizer.json'} is not a valid tokenizer: {str(exc).splitlines()[0]}") from exc
    if tokenizer.get_vocab_size() != model_config.vocab_size:
        raise ModelError(
            f"{path}: tokenizer has {tokenizer.get_vocab_size()} tokens but the model's embedding has "
            f"{model_config.vocab_size}"
        )
    check_weight_shapes(model_config, path / "model.safetensors")
    try:
        state = load_file(str(path / "model.safetensors"), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(f"{path / 'model.safetensors'} is corrupted or truncated: {exc}") from exc
    model = GRUClassifier(model_config)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelError(
            f"{path / 'model.safetensors'} does not match config.json: {str(exc).splitlines()[0]}"
        ) from exc
    model.to(device).eval()
    return Bundle(
        model,
        tokenizer,
        labels,
        cut,
        tok_settings.get("kind", "wordpiece"),
        RunRecord.from_dict(config.get("training", {})),
    )


def load_snapshot(directory: str | os.PathLike):
    """The training state saved in a model directory by an unfinished `train`, for `train --resume`."""
    from gru_sentiment.loop import Snapshot

    path = Path(directory)
    if not (path / RESUME_TENSORS).is_file() or not (path / RESUME_META).is_file():
        raise ModelError(f"{path} has no saved training state: its training finished, or it was not made by train")
    try:
        tensors = load_file(str(path / RESUME_TENSORS), device="cpu")
        meta = json.loads((path / RESUME_META).read_text(encoding="utf-8"))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(f"{path / 'resume'} is corrupted: {exc}") from exc
    return Snapshot(tensors, meta)


ENCODER_FORMAT = "gru-sentiment-encoder"
ENCODER_FILES = ("config.json", "encoder.safetensors", "tokenizer.json")
ENCODER_SETTINGS = ("vocab_size", "embed_dim", "hidden_size", "num_layers", "bidirectional", "pad_id")


@dataclass
class Encoder:
    """A pre-trained embedding and GRU stack (no classifier head) with its tokenizer: what `pretrain` writes and
    `train --init-from` starts from. `settings` are the `ModelConfig` fields that fix the weights' shapes."""

    settings: dict
    state: dict[str, torch.Tensor]
    tokenizer: Tokenizer
    max_length: int | None = None
    tokenizer_kind: str = "wordpiece"
    pretraining: dict = field(default_factory=dict)
    source: str | None = None  # the directory it was loaded from

    @classmethod
    def of(
        cls, model: GRUClassifier, tokenizer: Tokenizer, max_length: int | None, tokenizer_kind: str, pretraining: dict
    ) -> Encoder:
        state = {k: v for k, v in model.state_dict().items() if not k.startswith("head.")}
        settings = {k: v for k, v in model.config.to_dict().items() if k in ENCODER_SETTINGS}
        return cls(settings, state, tokenizer, max_length, tokenizer_kind, pretraining)


def save_encoder(encoder: Encoder, directory: str | os.PathLike) -> Path:
    """Write a pre-trained encoder directory atomically."""
    config = {
        "format": ENCODER_FORMAT,
        "format_version": FORMAT_VERSION,
        "package_version": __version__,
        "model": encoder.settings,
        "tokenizer": {
            "kind": encoder.tokenizer_kind,
            "vocab_size": encoder.tokenizer.get_vocab_size(),
            "max_length": encoder.max_length,
        },
        "pretraining": encoder.pretraining,
    }

    def write(tmp: Path) -> list[Path]:
        save_file(
            {k: v.detach().cpu().contiguous() for k, v in encoder.state.items()},
            str(tmp / "encoder.safetensors"),
            metadata={"format": ENCODER_FORMAT},
        )
        encoder.tokenizer.save(str(tmp / "tokenizer.json"))
        (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        return [tmp / name for name in ENCODER_FILES]

    return write_directory(directory, write)


def _classifier_encoder(path: Path) -> Encoder:
    """The embedding and GRUs of a trained classifier (its head is dropped): to train it further, on more steps
    or on a new domain, from where it stands."""
    bundle = load(path)
    run = bundle.training
    made = {"command": run.command, "best": run.best, "seconds": run.seconds, "init_from": run.init_from}
    if run.merged:  # a merge's command says little without the records of the two models it averaged
        made["merged"] = run.merged
    if run.data:  # what it trained and validated on, so that a run from it can check its carve
        made.update(data=run.data, seed=run.config.get("seed"))
    encoder = Encoder.of(bundle.model, bundle.tokenizer, bundle.cut.max_length, bundle.tokenizer_kind, made)
    encoder.source = str(path)
    return encoder


def load_encoder(directory: str | os.PathLike) -> Encoder:
    """Load a directory written by `pretrain`, checking that config, weights and tokenizer agree; or a trained
    model's directory, whose embedding and GRUs then serve as the encoder."""
    path = Path(directory)
    if not path.is_dir():
        raise ModelError(f"pre-trained encoder not found: {path}")
    if (path / "model.safetensors").is_file() and not (path / "encoder.safetensors").is_file():
        return _classifier_encoder(path)
    missing = [name for name in ENCODER_FILES if not (path / name).is_file()]
    if missing:
        raise ModelError(f"{path} is not a complete pre-trained encoder: missing {', '.join(missing)}")
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
        settings = {k: config["model"][k] for k in ENCODER_SETTINGS}
        model_config = ModelConfig(num_labels=1, **settings)
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{path / 'config.json'} is not a valid encoder config: {exc}") from exc
    if config.get("format") != ENCODER_FORMAT or not isinstance(config.get("format_version"), int):
        raise ModelError(f"{path / 'config.json'} is not a gru-sentiment encoder config")
    if config["format_version"] > FORMAT_VERSION:
        raise ModelError(
            f"{path} has encoder format version {config['format_version']}; this gru-sentiment "
            f"({__version__}) reads up to version {FORMAT_VERSION}: upgrade gru-sentiment"
        )
    check_weight_shapes(model_config, path / "encoder.safetensors", head=False)
    try:
        tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        state = load_file(str(path / "encoder.safetensors"), device="cpu")
    except Exception as exc:
        raise ModelError(f"{path} has a damaged tokenizer or weights: {str(exc).splitlines()[0]}") from exc
    if tokenizer.get_vocab_size() != settings["vocab_size"]:
        raise ModelError(
            f"{path}: tokenizer has {tokenizer.get_vocab_size()} tokens but the encoder's embedding has "
            f"{settings['vocab_size']}"
        )
    tok = config.get("tokenizer", {})
    return Encoder(
        settings,
        state,
        tokenizer,
        tok.get("max_length"),
        tok.get("kind", "wordpiece"),
        config.get("pretraining", {}),
        str(path),
    )
