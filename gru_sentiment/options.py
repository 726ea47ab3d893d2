"""The command line's choices and shared option types: one place for what several commands accept.

Only `typer` is imported here, so `--help` stays instant.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from typer.core import TyperCommand


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class TableOrJson(str, Enum):
    table = "table"
    json = "json"


class TokenizerKind(str, Enum):
    wordpiece = "wordpiece"
    bpe = "bpe"


class Pooling(str, Enum):
    mean_max = "mean_max"
    mean = "mean"
    max = "max"
    last = "last"


ModelOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--model",
        "-m",
        help="Model directory. Default: $GRU_SENTIMENT_MODEL, else the model shipped in models/.",
        show_default=False,
    ),
]
DatasetOpt = Annotated[
    str,
    typer.Option(
        "--dataset",
        "-d",
        help="Data set: imdb, sst2, rotten_tomatoes, yelp_polarity, amazon_polarity, a hub id, or a local "
        "folder/file (parquet, csv, jsonl, aclImdb layout).",
    ),
]
TextColOpt = Annotated[
    Optional[str], typer.Option(help="Text column (default: guessed: text, sentence, review, content).")
]
LabelColOpt = Annotated[Optional[str], typer.Option(help="Label column (default: guessed: label, labels, sentiment).")]
DeviceOpt = Annotated[Device, typer.Option(help="Where to compute; auto picks CUDA when present.")]
ThreadsOpt = Annotated[
    Optional[int],
    typer.Option(
        min=1,
        help="CPU threads (default: all cores). On the CPU, predict (without gates), evaluate and validation during"
        " training run this many batches side by side.",
        show_default=False,
    ),
]
BatchOpt = Annotated[int, typer.Option(min=1, help="Texts per batch.")]
TokenizerOpt = Annotated[TokenizerKind, typer.Option(help="Subword tokenizer to learn.")]
VocabOpt = Annotated[int, typer.Option(min=10, help="Tokenizer vocabulary size.")]
SplitNegationsOpt = Annotated[
    bool,
    typer.Option(
        "--split-negations",
        help='Read "doesn\'t" as "does n\'t", as SST-2 (the Penn Treebank) writes it, so that both spellings of a '
        "negation give the same tokens; also applied to a tokenizer reused with --tokenizer-from or --init-from "
        "(same vocabulary).",
    ),
]
MaxLengthOpt = Annotated[int, typer.Option(min=2, help="Tokens kept per text (the rest is cut).")]
TailOpt = Annotated[
    int,
    typer.Option(
        min=0,
        help="Of a text longer than --max-length tokens, read the last TAIL tokens after the first "
        "(max-length - TAIL): head+tail truncation, as long reviews often end with their verdict. "
        "0 reads the beginning only. Saved with the model, so evaluate and predict cut the same way.",
    ),
]
EmbedOpt = Annotated[int, typer.Option(min=1)]
HiddenOpt = Annotated[int, typer.Option(min=1)]
LayersOpt = Annotated[int, typer.Option(min=1, help="Stacked GRU layers.")]
BidirectionalOpt = Annotated[bool, typer.Option("--bidirectional/--unidirectional")]
DropoutOpt = Annotated[float, typer.Option(min=0.0, max=0.95)]
MaxStepsOpt = Annotated[Optional[int], typer.Option(min=1, help="Stop after this many optimiser steps.")]
LrOpt = Annotated[float, typer.Option(min=0.0, help="Peak learning rate (AdamW, warm-up then linear decay).")]
ClipOpt = Annotated[float, typer.Option(min=0.0, help="Gradient norm clip (0: off).")]


class DecodeErrors(str, Enum):
    fail = "fail"
    replace = "replace"
    skip = "skip"


class PredictFormat(str, Enum):
    table = "table"
    json = "json"
    jsonl = "jsonl"
    csv = "csv"


class GateDetail(str, Enum):
    mean = "mean"
    full = "full"


class PredictCommand(TyperCommand):
    """`--gates` takes an optional value: `--gates` alone means `--gates=mean`; `--gates full` asks for everything."""

    def parse_args(self, ctx, args):
        rewritten, i = [], 0
        while i < len(args):
            if args[i] == "--gates":
                if i + 1 < len(args) and args[i + 1] in ("mean", "full"):
                    rewritten.append(f"--gates={args[i + 1]}")
                    i += 1
                else:
                    rewritten.append("--gates=mean")
            else:
                rewritten.append(args[i])
            i += 1
        return super().parse_args(ctx, rewritten)


class Direction(str, Enum):
    forward = "forward"
    backward = "backward"
