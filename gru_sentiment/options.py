"""The command line's choices and shared option types: one place for what several commands accept.

Only `typer` is imported here, so `--help` stays instant.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from typer.core import TyperCommand, TyperGroup, TyperOption

from gru_sentiment.api import GPU_PREDICT_BATCH_SIZE, PREDICT_BATCH_SIZE


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
LabelMapOpt = Annotated[
    Optional[str],
    typer.Option(
        help="Rename labels as they are read: OLD=NEW pairs, e.g. negative=neg,positive=pos (0=neg for numbers).",
        show_default=False,
    ),
]
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
PredictBatchOpt = Annotated[  # predict's and score's: the device decides unless told
    Optional[int],
    typer.Option(
        min=1,
        help=f"Texts per model batch (default: {PREDICT_BATCH_SIZE} on the CPU, {GPU_PREDICT_BATCH_SIZE:,} on a GPU; "
        f"{PREDICT_BATCH_SIZE} for gates and attributions).",
        show_default=False,
    ),
]
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


HTML_LIMIT = 50  # texts on one --html page unless --html-limit says more: a long review adds up to a megabyte


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


class _FlagsAsFlags:
    """Help shows a flag (`--words`, `--bidirectional/--unidirectional`) as a flag, not with the `<bool>` typer
    gives it, which reads as if it took a value."""

    def get_params(self, ctx):
        params = super().get_params(ctx)
        for param in params:
            if getattr(param, "is_flag", False):
                param.metavar = ""
        return params


class Command(_FlagsAsFlags, TyperCommand):
    pass


class Group(_FlagsAsFlags, TyperGroup):
    pass


BOOLEAN_WORDS = frozenset({"true", "false", "yes", "no", "on", "off", "1", "0"})


class PredictCommand(Command):
    """`--gates` takes an optional value: `--gates` alone means `--gates=mean`; `--gates full` asks for everything.

    What follows an option is never silently taken for a text: a single word right after `--gates` is its value,
    and refused unless it is `mean` or `full`; a flag followed by true, false, yes, no, ... is refused, as a flag
    takes no value. Texts with spaces after `--gates`, and anything after `--`, are texts."""

    def parse_args(self, ctx, args):
        takes_value = {
            name
            for param in self.get_params(ctx)
            if isinstance(param, TyperOption) and not param.is_flag
            for name in param.opts
        }
        flags = {
            name
            for param in self.get_params(ctx)
            if getattr(param, "is_flag", False)
            for name in (*param.opts, *param.secondary_opts)
        }
        rewritten, i = [], 0
        while i < len(args):
            arg, following = args[i], args[i + 1] if i + 1 < len(args) else None
            if arg == "--":
                rewritten += args[i:]
                break
            if arg == "--gates":
                if following in ("mean", "full"):
                    rewritten.append(f"--gates={following}")
                    i += 1
                elif following is not None and not following.startswith("-") and len(following.split()) == 1:
                    raise typer.BadParameter(
                        f"{following!r} is not one of 'mean', 'full' (a one-word text goes before --gates, or "
                        "after --)",
                        ctx=ctx,
                        param_hint="'--gates'",
                    )
                else:
                    rewritten.append("--gates=mean")
            elif arg in flags and following is not None and following.lower() in BOOLEAN_WORDS:
                raise typer.BadParameter(
                    f"a flag takes no value: drop {following!r} (or give it after -- to classify it)",
                    ctx=ctx,
                    param_hint=f"'{arg}'",
                )
            elif arg in takes_value and following is not None:  # its value is never an option or a text
                rewritten += [arg, following]
                i += 1
            else:
                rewritten.append(arg)
            i += 1
        return super().parse_args(ctx, rewritten)


class Direction(str, Enum):
    forward = "forward"
    backward = "backward"
