"""The Python API: load a model once, then predict, explain and evaluate texts in this process.

    import gru_sentiment

    clf = gru_sentiment.load()                      # the shipped model, or load("path/to/model")
    clf.predict(["Great hotel.", "Never again."])   # [Prediction(...), Prediction(...)]
    clf.predict("Great hotel.")                     # one str: one Prediction
    clf.explain("I didn't enjoy it.", attributions=True)
    clf.evaluate(texts, labels)                     # the report `gru-sentiment evaluate -f json` prints

The command line's `predict` and `evaluate` are built on `Classifier`: same batching, same numbers. torch is
imported by `load`, not by `import gru_sentiment`. Errors a caller can fix raise the `gru_sentiment.errors`
classes (`ModelError`, `DataError`, `UsageError`, all `UserError`); nothing here prints.
"""

from __future__ import annotations

import operator
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

from gru_sentiment.errors import DataError, UsageError

if TYPE_CHECKING:
    import torch

    from gru_sentiment import predict as predict_mod
    from gru_sentiment.attribution import Attribution
    from gru_sentiment.checkpoint import Bundle
    from gru_sentiment.data import TextData
    from gru_sentiment.gates import LayerTrace

DEFAULT_MODEL_NAME = "gru-reviews"
PREDICT_BATCH_SIZE = 64  # texts per batch of `predict` on the CPU, and of `explain` (the command's --batch-size)
GPU_PREDICT_BATCH_SIZE = 1024  # texts per batch of `predict` on a GPU: long batches keep it busy
EVALUATE_BATCH_SIZE = 128  # texts per batch of `evaluate` (and the `evaluate` command's --batch-size)


def default_model_dir() -> Path:
    """$GRU_SENTIMENT_MODEL, else the shipped model: inside the installed package (a wheel carries it as package
    data, `gru_sentiment/models/<default>`), or in `models/<default>` beside the package in a source checkout
    (an editable install)."""
    env = os.environ.get("GRU_SENTIMENT_MODEL")
    if env:
        return Path(env)
    from importlib.resources import files

    packaged = Path(str(files("gru_sentiment").joinpath("models", DEFAULT_MODEL_NAME)))
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "models" / DEFAULT_MODEL_NAME


def select_device(device: str | torch.device = "auto", option: str | None = None) -> torch.device:
    """The torch device for "auto" (CUDA when torch sees a GPU, else the CPU), "cpu", "cuda", "cuda:N" or a
    `torch.device`. Asking for CUDA where there is none is a `UsageError`, whose message names `option` (the
    command line's "--device") or else the argument."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    what = f"{option} {device}" if option else f"device {str(device)!r}"
    try:
        chosen = torch.device(device)
    except (RuntimeError, TypeError):
        raise UsageError(f"{what}: give 'auto', 'cpu', 'cuda' or 'cuda:N'") from None
    if chosen.type not in ("cpu", "cuda"):
        raise UsageError(f"{what}: give 'auto', 'cpu', 'cuda' or 'cuda:N'")
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"{what}: no CUDA device is available")
    return chosen


@dataclass
class Prediction:
    """The label a model gives a text and its probability for each label (in the model's label order);
    `truncated` when the text was longer than the model reads (see the model's `max_length`); `notes` when the
    model can hardly read the text: "mostly unknown to the model's tokenizer" (emoji, other scripts) or "may not
    be English (the model reads English)" (see `gru_sentiment.reading`), else empty."""

    text: str
    label: str
    probabilities: dict[str, float]
    truncated: bool
    notes: list[str] = field(default_factory=list, kw_only=True)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: text, label, probabilities, truncated, notes."""
        return {
            "text": self.text,
            "label": self.label,
            "probabilities": dict(self.probabilities),
            "truncated": self.truncated,
            "notes": list(self.notes),
        }


@dataclass
class Explanation(Prediction):
    """A prediction with what the GRU computed at each token, as `predict --gates` shows it.

    `tokens` are the pieces the model read and `offsets` their (start, end) character spans in `text`.
    `layers` holds one `gates.LayerTrace` per GRU layer and direction (layer 0 is closest to the words), whose
    `values.reset`, `.update`, `.candidate` and `.hidden` are (tokens, hidden units) tensors of r, z, h' and h,
    in token order for both directions. `attributions`, when asked for, holds the integrated-gradient attribution
    of each token to the predicted label's log-odds (`scores`) and its completeness `gap`.
    """

    tokens: list[str]
    offsets: list[tuple[int, int]]
    layers: list[LayerTrace] = field(repr=False)
    attributions: Attribution | None = None

    def to_dict(self, full: bool = False) -> dict[str, Any]:
        """A JSON-ready dict: the prediction's fields and `gates`, as `predict --gates -f json` writes it: tokens,
        offsets, per layer and direction the means of r and z over the units (with `full`, also r, z, h', h per
        unit) and, with attributions, `attributions`, `attribution_label`, `attribution_gap` and
        `attribution_steps`."""
        from gru_sentiment import explain, gates

        trace = gates.TextGates(self.tokens, self.offsets, self.layers, self.attributions)
        return {**super().to_dict(), "gates": explain.to_json(trace, full, list(self.probabilities))}


class Classifier:
    """A loaded model, ready to predict, explain and evaluate texts (`load` makes one).

    `labels` are the model's label names, `device` where it computes, `path` the directory it came from and
    `bundle` the model, tokenizer and settings themselves (`checkpoint.Bundle`)."""

    def __init__(self, bundle: Bundle, device: torch.device, path: Path | None = None) -> None:
        self.bundle = bundle
        self.device = device
        self.path = path

    @property
    def labels(self) -> list[str]:
        return list(self.bundle.labels)

    def __repr__(self) -> str:
        return f"Classifier(path={str(self.path)!r}, labels={self.labels!r}, device={str(self.device)!r})"

    @overload
    def predict(self, texts: str, *, batch_size: int | None = None, workers: int | None = None) -> Prediction: ...

    @overload
    def predict(
        self, texts: Iterable[str], *, batch_size: int | None = None, workers: int | None = None
    ) -> list[Prediction]: ...

    def predict(
        self, texts: str | Iterable[str], *, batch_size: int | None = None, workers: int | None = None
    ) -> Prediction | list[Prediction]:
        """The label and probabilities of each text, in input order. `texts` is any iterable of strings (a list,
        tuple, generator, pandas Series, a `datasets` column), read in chunks and run in length-sorted batches of
        `batch_size` (default: `PREDICT_BATCH_SIZE` on the CPU, `GPU_PREDICT_BATCH_SIZE` on a GPU); a single str
        gives a single `Prediction`. An empty or blank text, or an item that is not a str, raises a `UserError`.

        `workers`: processes that tokenize the next chunks while the model reads (default: on a GPU all cores but
        one, on the CPU none; see `gru_sentiment.pipeline`). They start only for inputs of more than one chunk."""
        if isinstance(texts, str):
            return self.predict([texts], batch_size=batch_size, workers=0)[0]
        records = self.records(texts, batch_size=batch_size, workers=workers)
        return [Prediction(p.text, p.label, p.probabilities, p.truncated, notes=p.notes) for p in records]

    @overload
    def explain(
        self, texts: str, *, attributions: bool = False, words: bool = False, batch_size: int | None = None
    ) -> Explanation: ...

    @overload
    def explain(
        self,
        texts: Iterable[str],
        *,
        attributions: bool = False,
        words: bool = False,
        batch_size: int | None = None,
    ) -> list[Explanation]: ...

    def explain(
        self,
        texts: str | Iterable[str],
        *,
        attributions: bool = False,
        words: bool = False,
        batch_size: int | None = None,
    ) -> Explanation | list[Explanation]:
        """Each text's prediction with its per-token gates r, z, h', h for every layer and direction, and with
        `attributions`, integrated gradients (a second or so a long text). `words` merges subword pieces into
        words: a word's gate values are the means over its pieces, its attribution their sum. A single str gives
        a single `Explanation`, an iterable a list."""
        if isinstance(texts, str):
            return self.explain([texts], attributions=attributions, words=words, batch_size=batch_size)[0]
        from gru_sentiment import explain

        out = []
        for p in self.records(texts, batch_size=batch_size, gates=True, attributions=attributions):
            t = explain.merge_words(p.text, p.gates) if words else p.gates
            out.append(
                Explanation(
                    p.text,
                    p.label,
                    p.probabilities,
                    p.truncated,
                    t.tokens,
                    t.offsets,
                    t.layers,
                    t.attribution,
                    notes=p.notes,
                )
            )
        return out

    def records(
        self,
        texts: Iterable[str],
        *,
        batch_size: int | None = None,
        gates: bool = False,
        attributions: bool = False,
        workers: int | None = None,
    ) -> Iterator[predict_mod.Prediction]:
        """The predictions behind `predict` and `explain`, as a stream (what the `predict` command writes): one
        `predict.Prediction` per text, in input order, computed chunk by chunk (memory stays flat for any number
        of texts); with `gates` or `attributions`, its `gates` holds the trace and/or attributions (in batches
        of `PREDICT_BATCH_SIZE` unless `batch_size` says otherwise). `workers` as in `predict`."""
        from gru_sentiment.predict import check_text, predict_stream

        if batch_size is not None:  # None: the device's (`pipeline.label_stream`), or PREDICT_BATCH_SIZE traced
            _check_batch_size(batch_size)
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 0):
            raise UsageError(f"workers={workers!r}: give a number of processes, 0 for none")
        if workers and (gates or attributions):
            raise UsageError("workers are for labels alone: gates and attributions run in this process")
        checked = (check_text(text) for text in _strings(texts))
        return predict_stream(
            self.bundle,
            checked,
            batch_size=batch_size,
            with_gates=gates,
            device=self.device,
            with_attributions=attributions,
            workers=workers,
        )

    def evaluate(
        self, texts: Iterable[str], labels: Iterable[str | int], *, batch_size: int = EVALUATE_BATCH_SIZE
    ) -> dict[str, Any]:
        """Accuracy, per-label precision/recall/F1/support, macro F1 and the confusion matrix (rows true, columns
        predicted) of the model on labelled texts: the report `gru-sentiment evaluate -f json` prints. `labels`
        are the model's label names or indices into `labels`, one per text."""
        from gru_sentiment.data import TextData

        texts = list(_strings(texts))
        labels = list(labels)
        if len(labels) != len(texts):
            raise DataError(f"{len(texts)} texts but {len(labels)} labels")
        data = TextData(texts, self._label_indices(labels), self.labels, "texts")
        return self.evaluate_data(data, batch_size=batch_size)

    def evaluate_data(self, data: TextData, *, batch_size: int = EVALUATE_BATCH_SIZE) -> dict[str, Any]:
        """`evaluate` on a `data.TextData` (as `data.load` reads a data set: a large table is tokenized in
        parallel, and cached); its labels must be among the model's."""
        from gru_sentiment import jobs

        _check_batch_size(batch_size)
        if not len(data):
            raise DataError("no texts to evaluate")
        return jobs.evaluate_model(self.bundle, data, batch_size, self.device)

    def _label_indices(self, labels: list) -> list[int]:
        index = {name: i for i, name in enumerate(self.labels)}
        out = []
        for i, label in enumerate(labels):
            if isinstance(label, str):
                found = index.get(label)
            else:
                try:
                    found = None if isinstance(label, bool) else operator.index(label)
                except TypeError:
                    found = None
                if found is not None and not 0 <= found < len(index):
                    found = None
            if found is None:
                raise DataError(
                    f"label {i} ({label!r}) is not one of the model's labels ({', '.join(self.labels)}) "
                    f"or their indices 0..{len(index) - 1}"
                )
            out.append(found)
        return out


def load(
    path: str | os.PathLike[str] | None = None,
    device: str | torch.device = "auto",
    threads: int | None = None,
) -> Classifier:
    """Load a model directory (default: $GRU_SENTIMENT_MODEL, else the shipped model) onto `device` ("auto":
    CUDA when present, else the CPU; "cpu"; "cuda"; "cuda:N"). `threads` sets torch's CPU threads for the whole
    process (default: torch's, all cores). A missing or broken directory raises `ModelError`."""
    import torch

    from gru_sentiment import checkpoint

    if threads is not None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise UsageError(f"threads={threads!r}: give a positive number of threads")
        torch.set_num_threads(threads)
    chosen = select_device(device)
    directory = Path(path) if path is not None else default_model_dir()
    return Classifier(checkpoint.load(directory, chosen), chosen, directory)


def _check_batch_size(batch_size: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise UsageError(f"batch_size={batch_size!r}: give a positive number of texts")


def _strings(texts: Iterable[str]) -> Iterator[str]:
    """The items of `texts`, each checked to be a str."""
    if isinstance(texts, (bytes, bytearray)) or not isinstance(texts, Iterable):
        raise DataError(f"texts must be a str or an iterable of str, not {type(texts).__name__}")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise DataError(f"text {i} is {type(text).__name__}, not str")
        yield text
