"""`gru-sentiment score`: score folders of files on several Ray workers (see `gru_sentiment.ray`).

Registered on the app in `cli`. ray is imported only when the command runs (by `gru_sentiment.ray`'s functions),
so `--help` stays instant and the core install never needs it.
"""

from __future__ import annotations

import os
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from gru_sentiment.cli_support import err_console, user_errors
from gru_sentiment.options import ModelOpt, PredictBatchOpt, TextColOpt
from gru_sentiment.ray import ROWS_PER_CALL  # (gru_sentiment.ray imports ray only when it runs a job)


class ScoreFormat(str, Enum):
    parquet = "parquet"
    csv = "csv"
    jsonl = "jsonl"


def score(
    ctx: typer.Context,
    inputs: Annotated[
        list[str],
        typer.Argument(
            metavar="INPUT",
            help="Files, folders or quoted glob patterns (`'data/*.parquet'`, `'data/**/*.csv'`) of .parquet, .csv "
            "or .jsonl/.json (JSON lines) tables, all of one kind.",
            show_default=False,
        ),
    ],
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            help="Folder to write the scored rows to (files named by Ray). Written under a temporary name and "
            "renamed when every row is in: it never holds part of a job.",
            show_default=False,
        ),
    ],
    workers: Annotated[int, typer.Option(min=1, help="Ray workers (actors), each with its own model.")] = 2,
    threads_per_worker: Annotated[
        int, typer.Option(min=1, help="CPU threads of each worker (torch and the tokenizer).")
    ] = 1,
    gpus_per_worker: Annotated[
        float, typer.Option(min=0.0, help="GPUs of each worker (0: compute on the CPU; 0.5: two workers a GPU).")
    ] = 0.0,
    address: Annotated[
        Optional[str],
        typer.Option(
            help="Join the Ray cluster at this address ('auto': the one this machine belongs to; the files must be "
            "readable on every node). Default: start a local Ray with every core, stopped at the end.",
            show_default=False,
        ),
    ] = None,
    text_column: TextColOpt = None,
    format: Annotated[
        ScoreFormat, typer.Option("--format", "-f", help="Format of the output files.")
    ] = ScoreFormat.parquet,
    model: ModelOpt = None,
    batch_size: PredictBatchOpt = None,
    rows_per_call: Annotated[int, typer.Option(min=1, help="Rows handed to a worker at a time.")] = ROWS_PER_CALL,
    keep_text: Annotated[bool, typer.Option("--keep-text", help="Also write the text column.")] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an output folder that already holds files.")
    ] = False,
) -> None:
    """Score every row of many files on several Ray workers, for data too big for one `predict --file`.

    Each output row keeps the input's other columns (ids, dates, a true label, renamed input_label) and adds
    label, p_LABEL for each of the model's labels, truncated and notes. A row whose text is empty keeps its
    place with an empty label, empty probabilities and the note "empty text: nothing to predict". A worker
    that dies is restarted and its rows are scored again: each row is written exactly once.
    Needs `pip install 'gru-sentiment[ray]'`.

    Example: `gru-sentiment score 'reviews/*.parquet' -o scored/ --workers 4`
    """
    with user_errors(ctx):
        from rich.markup import escape

        from gru_sentiment.ray import predict_files

        debug = bool(ctx.obj and ctx.obj.get("debug"))
        if not debug:  # Ray's C++ core logs notes of its own at error level (e.g. about actor restarts)
            os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
        summary = predict_files(
            inputs,
            output,
            text_column=text_column,
            model=model,
            workers=workers,
            threads_per_worker=threads_per_worker,
            gpus_per_worker=gpus_per_worker,
            batch_size=batch_size,
            rows_per_call=rows_per_call,
            output_format=format.value,
            keep_text=keep_text,
            overwrite=overwrite,
            address=address,
            progress=sys.stderr.isatty(),
        )
        files = f"{summary.input_files:,} file{'s' if summary.input_files != 1 else ''}"
        err_console().print(
            escape(
                f"scored {summary.rows:,} rows of {files} in {summary.seconds:.1f} s ({summary.rows_per_s:,.0f} "
                f"rows/s, {workers} worker{'s' if workers != 1 else ''}): {summary.output}"
            ),
            highlight=False,
            soft_wrap=True,
        )
