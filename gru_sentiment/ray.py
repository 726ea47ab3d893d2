"""Batch inference with Ray Data: score folders of parquet, CSV or JSON-lines files on many workers.

    import ray
    from gru_sentiment.ray import Predictor

    ds = ray.data.read_parquet("reviews/")
    scored = ds.map_batches(
        Predictor,
        fn_constructor_kwargs={"threads": 1},        # model=DIR, device="cuda", text_column="review", ...
        compute=ray.data.ActorPoolStrategy(size=2),  # two workers (concurrency=2 on older Ray)
        num_cpus=1,                                  # num_gpus=1 for a GPU each
        batch_size=1024,
    )
    scored.write_parquet("scored/")

On a small machine the workers must leave Ray a CPU to read and write with, or the job waits forever (see
`worker_cpus`): two workers of one CPU need three.

or, in one call that also picks the resources, starts (or joins) Ray and writes the output atomically:

    from gru_sentiment.ray import predict_files

    predict_files("reviews/*.parquet", "scored/", workers=2)

Each worker (a Ray actor) loads the model once and scores batch after batch. Each output row keeps every input
column but the text (an id, a date, a true label) and adds `label`, `p_<label>` for each of the model's labels,
`truncated` and `notes`. Ray Data retries the batches of a worker that dies (its actor is restarted), so a job
that loses a worker still writes every row exactly once.

Needs `pip install 'gru-sentiment[ray]'`: this module is the only one that imports ray, and nothing imports it
unless asked to. Nothing here prints; Ray's own progress shows only with `predict_files(progress=True)`.
"""

from __future__ import annotations

import glob
import math
import os
import time
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gru_sentiment.errors import DataError, UsageError, UserError, first_line

EMPTY_TEXT_NOTE = "empty text: nothing to predict"  # the note of a row whose text is missing or blank
OUTPUT_FORMATS = ("parquet", "csv", "jsonl")
INPUT_FORMATS = {".parquet": "parquet", ".csv": "csv", ".jsonl": "json", ".json": "json"}
ROWS_PER_CALL = 1024  # rows Ray Data hands a worker per call (map_batches' batch_size)
SPARE_CPUS = 1.0  # logical CPUs the workers leave free for Ray Data's listing, read and write tasks (see below)
IO_TASK_CPUS = 0.5  # logical CPUs a read or write task asks for


class Predictor:
    """A callable class for `Dataset.map_batches`: one model per Ray actor, loaded in the constructor.

    `model`: a model directory as `gru_sentiment.load` takes it (default: the shipped model; the path must be
    readable where the actor runs). `device`: "auto" (the actor's GPU when Ray gave it one, else the CPU), "cpu"
    or "cuda". `threads`: CPU threads of this actor, for torch and for the tokenizer (default: all cores; give
    the actor's `num_cpus`). `text_column`: the column of texts. `batch_size`: texts per model batch (default:
    the device's, `api.PREDICT_BATCH_SIZE` or `api.GPU_PREDICT_BATCH_SIZE`, as `Classifier.predict` has it; a call's
    rows are sorted by length and run in batches of this many). `keep_text`: also keep the text column.

    A call takes Ray Data's default batch format (a dict of column name to numpy array) and returns one: every
    input column but the text (unless `keep_text`), then `label` (str), `p_<label>` (float) for each of the
    model's labels in its order, `truncated` (bool) and `notes` (str, "; "-joined, "" when none). An input
    column named like an output column (e.g. a true `label`) is kept as `input_<name>`. A row whose text is
    missing (null) or blank keeps its place: label "", NaN probabilities and the note "empty text: nothing to
    predict", so that the output has a row for every input row.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        *,
        device: str = "auto",
        threads: int | None = None,
        text_column: str = "text",
        batch_size: int | None = None,
        keep_text: bool = False,
    ) -> None:
        if threads is not None:
            # the tokenizer's thread pool (Rust's rayon) reads this once, when it starts: before the first text
            os.environ["RAYON_NUM_THREADS"] = str(threads)
            os.environ["TOKENIZERS_PARALLELISM"] = "true" if threads > 1 else "false"
        import gru_sentiment

        self.classifier = gru_sentiment.load(model, device=device, threads=threads)
        self.text_column = text_column
        self.batch_size = batch_size
        self.keep_text = keep_text
        self.columns = output_columns(self.classifier.labels)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        if self.text_column not in batch:
            raise DataError(f"no text column '{self.text_column}' in the batch (columns: {', '.join(batch) or 'none'})")
        raw = batch[self.text_column]
        texts = [_as_text(value) for value in raw]
        rows = len(texts)
        out: dict[str, Any] = {}
        for name, values in batch.items():
            if name != self.text_column or self.keep_text:
                out[f"input_{name}" if name in self.columns else name] = values
        labels = np.full(rows, "", dtype=object)
        probs = np.full((rows, len(self.classifier.labels)), np.nan, dtype=np.float64)
        truncated = np.zeros(rows, dtype=bool)
        notes = np.full(rows, EMPTY_TEXT_NOTE, dtype=object)
        kept = [i for i, text in enumerate(texts) if text.strip()]
        # tokenized here, in the actor: Ray's actors are the parallelism, not worker processes of their own
        preds = self.classifier.records((texts[i] for i in kept), batch_size=self.batch_size, workers=0)
        for i, pred in zip(kept, preds):
            labels[i] = pred.label
            probs[i] = [pred.probabilities[name] for name in self.classifier.labels]
            truncated[i] = pred.truncated
            notes[i] = "; ".join(pred.notes)
        out["label"] = labels
        for j, name in enumerate(self.classifier.labels):
            out[f"p_{name}"] = probs[:, j]
        out["truncated"] = truncated
        out["notes"] = notes
        return out


def output_columns(labels: Sequence[str]) -> list[str]:
    """The columns a `Predictor` adds to each row, for a model with these labels."""
    return ["label", *(f"p_{name}" for name in labels), "truncated", "notes"]


def _as_text(value: Any) -> str:
    """A cell of the text column as a str: null (None, or NaN as pandas writes a missing value) is empty."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value if isinstance(value, str) else str(value)


@dataclass
class ScoreSummary:
    """What `predict_files` did: the rows it wrote to `output` (in `output_files` files) from `input_files`
    files, and how long the job took (from Ray's start or join to the output in place)."""

    output: Path
    rows: int
    input_files: int
    output_files: int
    seconds: float

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


def input_files(inputs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> tuple[list[Path], str]:
    """The files `inputs` names (files, folders, or glob patterns such as 'data/*.parquet', `**` for
    subfolders) and the one format they share ("parquet", "csv" or "json" for .jsonl and .json files of JSON
    lines). A folder gives its files of the known kinds, not those of its subfolders."""
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    files: list[Path] = []
    for item in inputs:
        spec = os.fspath(item)
        if glob.has_magic(spec):
            found = [Path(p) for p in sorted(glob.glob(spec, recursive=True)) if Path(p).is_file()]
            if not found:
                raise DataError(f"no files match {spec}")
        elif Path(spec).is_dir():
            found = sorted(p for p in Path(spec).iterdir() if p.is_file() and p.suffix.lower() in INPUT_FORMATS)
            if not found:
                raise DataError(f"no .parquet, .csv, .jsonl or .json files in {spec}")
        elif Path(spec).is_file():
            found = [Path(spec)]
        else:
            raise DataError(f"no such file or folder: {spec}")
        files += found
    if not files:
        raise DataError("no input files given")
    unknown = sorted({p.suffix or p.name for p in files if p.suffix.lower() not in INPUT_FORMATS})
    if unknown:
        raise DataError(f"unsupported file type {unknown[0]}: use .parquet, .csv, .jsonl or .json")
    kinds = sorted({INPUT_FORMATS[p.suffix.lower()] for p in files})
    if len(kinds) > 1:
        raise DataError(f"the inputs mix {' and '.join(kinds)} files: score each kind in its own run")
    unique = list(dict.fromkeys(p.resolve() for p in files))  # a file named twice is read once
    return unique, kinds[0]


def worker_cpus(total_cpus: float, workers: int, threads_per_worker: int) -> float:
    """The logical CPUs each worker (actor) asks Ray for: its threads, unless that leaves the cluster less than
    `SPARE_CPUS` free. Ray Data starts the workers before the tasks that list and read the files, and a listing
    task asks for a whole CPU: workers holding every CPU leave them waiting forever (a job that hangs, see
    ray-project/ray#44687). Then the workers share what is left; a logical CPU is a reservation, not a limit,
    so each still computes with `threads_per_worker` threads."""
    wanted = float(threads_per_worker)
    if workers * wanted + SPARE_CPUS <= total_cpus:
        return wanted
    return max(total_cpus - SPARE_CPUS, 0.0) / workers


def predict_files(
    inputs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    *,
    text_column: str | None = None,
    model: str | os.PathLike[str] | None = None,
    workers: int = 2,
    threads_per_worker: int = 1,
    gpus_per_worker: float = 0,
    batch_size: int | None = None,
    rows_per_call: int = ROWS_PER_CALL,
    output_format: str = "parquet",
    keep_text: bool = False,
    overwrite: bool = False,
    address: str | None = None,
    progress: bool = False,
    predictor: type[Predictor] = Predictor,
    predictor_kwargs: dict[str, Any] | None = None,
) -> ScoreSummary:
    """Score the rows of parquet, CSV or JSON-lines files with `workers` Ray actors and write them to the folder
    `output`, as `Predictor` describes each row (every input column but the text, then label, p_<label>,
    truncated, notes), in `output_format` ("parquet", "csv" or "jsonl"). Returns a `ScoreSummary`.

    `inputs`: a file, a folder, a glob pattern ('data/*.parquet') or a list of them, all of one kind (see
    `input_files`). `text_column`: default the first of text, sentence, review, content, document.
    `model`: a model directory (default: $GRU_SENTIMENT_MODEL, else the shipped model). `workers` actors each
    compute with `threads_per_worker` CPU threads and, with `gpus_per_worker` > 0, on that share of a GPU.
    `batch_size`: texts per model batch (default: the device's, as in `Predictor`); `rows_per_call`: rows
    handed to a worker at a time.

    The output is written to a temporary folder beside `output` and renamed into place when every row is
    written: `output` never holds part of a job. An existing `output` with files in it is refused unless
    `overwrite`. Ray: joins the cluster at `address` ("auto": the one this machine belongs to), else the one
    this process already started, else starts a local one with every core and shuts it down at the end.
    `predictor` (a `Predictor` subclass) and `predictor_kwargs` (more arguments of its constructor) change what
    each worker does.
    """
    start = time.perf_counter()
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        raise UserError("needs ray: pip install 'gru-sentiment[ray]'")
    _check_positive("workers", workers)
    _check_positive("threads_per_worker", threads_per_worker)
    if batch_size is not None:
        _check_positive("batch_size", batch_size)
    _check_positive("rows_per_call", rows_per_call)
    if isinstance(gpus_per_worker, bool) or not isinstance(gpus_per_worker, (int, float)) or gpus_per_worker < 0:
        raise UsageError(f"gpus_per_worker={gpus_per_worker!r}: give 0 (CPU) or a positive share of a GPU")
    if output_format not in OUTPUT_FORMATS:
        raise UsageError(f"output_format={output_format!r}: give one of {', '.join(OUTPUT_FORMATS)}")
    files, kind = input_files(inputs)
    target = Path(output).absolute()
    if target.exists() and not target.is_dir():
        raise UserError(f"{target} is a file: give a folder for the output")
    if target.is_dir() and any(target.iterdir()) and not overwrite:
        raise UsageError(f"{target} already holds files: give an empty or new folder, or overwrite (--overwrite)")
    column = _text_column(_columns(files[0], kind), text_column, files)
    model_dir = _model_dir(model)
    _check_model(model_dir)

    import ray

    started = _connect(ray, address)
    try:
        with _ray_data_quiet(ray, progress):
            ds = _read(ray, kind, files)
            total_cpus = float(ray.cluster_resources().get("CPU", 0))
            kwargs = dict(
                model=model_dir,
                device="cuda" if gpus_per_worker else "cpu",
                threads=threads_per_worker,
                text_column=column,
                batch_size=batch_size,
                keep_text=keep_text,
                **(predictor_kwargs or {}),
            )
            # blocks of `rows_per_call` rows at most, whatever the files: the work spreads evenly over the workers
            ds = ds.repartition(target_num_rows_per_block=rows_per_call)
            scored = ds.map_batches(
                predictor,
                fn_constructor_kwargs=kwargs,
                compute=ray.data.ActorPoolStrategy(size=workers),
                num_cpus=worker_cpus(total_cpus, workers, threads_per_worker),
                num_gpus=gpus_per_worker or None,
                batch_size=rows_per_call,
            )

            def write(tmp: Path) -> list[Path]:
                _write(scored, output_format, tmp)
                return [p for p in tmp.rglob("*") if p.is_file()]

            from gru_sentiment.checkpoint import write_directory

            try:
                write_directory(target, write)
            except Exception as exc:
                found = _user_error_inside(exc)
                if found is None:
                    raise
                raise found from None
    finally:
        if started:
            ray.shutdown()
    written = sorted(p for p in target.rglob("*") if p.is_file())
    return ScoreSummary(target, _count_rows(written, output_format), len(files), len(written), _since(start))


def _check_positive(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"{name}={value!r}: give a positive whole number")


def _since(start: float) -> float:
    return time.perf_counter() - start


def _model_dir(model: str | os.PathLike[str] | None) -> str | None:
    """The model as the workers receive it: an absolute path (they may run in another folder), or None for the
    model shipped with the package where they run ($GRU_SENTIMENT_MODEL is read here, on the driver)."""
    if model is None and not os.environ.get("GRU_SENTIMENT_MODEL"):
        return None
    from gru_sentiment.api import default_model_dir

    return str(Path(model if model is not None else default_model_dir()).absolute())


def _check_model(model_dir: str | None) -> None:
    """Load the model here once, so that a missing or broken one is a clear error before any worker starts."""
    import gru_sentiment

    gru_sentiment.load(model_dir, device="cpu")


def _connect(ray, address: str | None) -> bool:
    """Join or start Ray; True when this call started it (and so must shut it down)."""
    if ray.is_initialized():
        if address is not None:
            raise UsageError("Ray is already running in this process: leave out the address")
        return False
    import logging

    quiet = dict(logging_level=logging.ERROR, log_to_driver=False)
    if address is not None:
        ray.init(address=address, **quiet)
    else:
        setup = {"worker_process_setup_hook": f"{__name__}.settle_fsspec_http"}
        ray.init(include_dashboard=False, runtime_env=setup, **quiet)
    return True


@contextmanager
def _ray_data_quiet(ray, progress: bool):
    """Ray Data's progress bars, logs and warnings off for one job, unless `progress`."""
    import logging
    import warnings

    context = ray.data.DataContext.get_current()
    logger = logging.getLogger("ray.data")
    saved = context.enable_progress_bars, logger.level
    with warnings.catch_warnings():
        if not progress:
            context.enable_progress_bars = False
            logger.setLevel(logging.ERROR)
            warnings.filterwarnings("ignore", module=r"ray\.")
        try:
            yield
        finally:
            context.enable_progress_bars, _ = saved
            logger.setLevel(saved[1])


def settle_fsspec_http() -> None:
    """Make `import fsspec.implementations.http` fail cleanly where fsspec is installed without aiohttp.

    Ray Data resolves each input path in a pool of threads, and each asks whether its filesystem is fsspec's
    HTTP one by importing that module and catching ModuleNotFoundError. Without aiohttp, one thread's import
    fails while another finds the half-imported module and gets an ImportError that Ray does not catch: a
    read of several files fails now and then. With the module marked missing (None in sys.modules) every
    thread gets ModuleNotFoundError at once. Run in this process before a read, and in each worker process of
    a Ray that `predict_files` starts (its setup hook)."""
    import importlib.util
    import sys

    name = "fsspec.implementations.http"
    if name in sys.modules or importlib.util.find_spec("fsspec") is None:
        return
    try:
        has_aiohttp = importlib.util.find_spec("aiohttp") is not None
    except (ImportError, ValueError):
        has_aiohttp = False
    if not has_aiohttp:
        sys.modules[name] = None  # type: ignore[assignment]


def _read(ray, kind: str, files: list[Path]):
    settle_fsspec_http()
    paths = [str(p) for p in files]
    io = {"num_cpus": IO_TASK_CPUS}
    if kind == "parquet":
        return ray.data.read_parquet(paths, **io)
    if kind == "csv":
        return ray.data.read_csv(paths, **io)
    return ray.data.read_json(paths, **io)


def _columns(file: Path, kind: str) -> list[str]:
    """The columns of the first input file, read with pyarrow before Ray starts (Ray Data takes the schema of
    a read from its first file too)."""
    import pyarrow as pa

    try:
        if kind == "parquet":
            import pyarrow.parquet as pq

            return list(pq.read_schema(file).names)
        if kind == "csv":
            import pyarrow.csv as pacsv

            with pacsv.open_csv(file) as reader:
                return list(reader.schema.names)
        import json

        with open(file, encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    return list(json.loads(line))
        return []
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise DataError(f"cannot read {file} as {kind}: {first_line(exc)}") from exc


def _text_column(columns: list[str], wanted: str | None, files: list[Path]) -> str:
    from gru_sentiment.data import text_column

    where = str(files[0]) if len(files) == 1 else f"{files[0]} (and {len(files) - 1} more)"
    if not columns:
        raise DataError(f"{where}: no columns")
    try:
        return text_column(columns, wanted)
    except DataError as exc:
        raise DataError(f"{where}: {exc}") from None


def _write(ds, output_format: str, folder: Path) -> None:
    io = {"ray_remote_args": {"num_cpus": IO_TASK_CPUS}}
    if output_format == "parquet":
        ds.write_parquet(str(folder), **io)
    elif output_format == "csv":
        ds.write_csv(str(folder), **io)
    else:
        ds.write_json(str(folder), **io)


def _user_error_inside(exc: BaseException) -> UserError | None:
    """The `UserError` a worker raised (e.g. a file without the text column), which reaches the driver inside
    Ray's own exceptions, as its traceback's text only: raised again as it was, so that the caller gets it."""
    import re

    from gru_sentiment import errors

    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, UserError):
            return current
        todo += [current.__cause__, current.__context__, getattr(current, "cause", None)]
    found = re.search(r"^gru_sentiment\.errors\.(\w+): (.+)$", str(exc), re.MULTILINE)
    kind = getattr(errors, found.group(1), None) if found else None
    if isinstance(kind, type) and issubclass(kind, UserError):
        return kind(found.group(2))
    return None


def _count_rows(files: list[Path], output_format: str) -> int:
    if output_format == "parquet":
        import pyarrow.parquet as pq

        return sum(pq.ParquetFile(p).metadata.num_rows for p in files)
    if output_format == "csv":
        import pyarrow.csv as pacsv

        return sum(pacsv.read_csv(p).num_rows for p in files)
    rows = 0
    for p in files:
        with open(p, "rb") as handle:
            rows += sum(1 for line in handle if line.strip())
    return rows
