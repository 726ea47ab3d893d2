"""`gru-sentiment pretrain` and `merge`: the commands that make encoders and merged models (registered on the app
in `cli`; `train` is in `cli_train`).

Heavy libraries (torch, datasets) are imported inside the commands, so `--help` stays instant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from gru_sentiment.cli_support import (
    command_line,
    err_console,
    out_console,
    refuse_to_replace,
    setup_device,
    training_progress,
    user_errors,
)
from gru_sentiment.options import (
    BatchOpt,
    BidirectionalOpt,
    ClipOpt,
    Device,
    DeviceOpt,
    DropoutOpt,
    EmbedOpt,
    HiddenOpt,
    LayersOpt,
    LrOpt,
    MaxLengthOpt,
    MaxStepsOpt,
    SplitNegationsOpt,
    TextColOpt,
    ThreadsOpt,
    TokenizerKind,
    TokenizerOpt,
    VocabOpt,
)


def pretrain(
    ctx: typer.Context,
    dataset: Annotated[
        list[str],
        typer.Option(
            "--dataset",
            "-d",
            help="Texts to learn from: DATASET or DATASET:SPLIT (default split: train), e.g. `-d "
            "imdb:unsupervised -d imdb:train`; labels are ignored. Repeat to pool several.",
            show_default=False,
        ),
    ],
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            help="Encoder directory to write (atomically, whenever validation perplexity improves).",
            show_default=False,
        ),
    ],
    text_column: TextColOpt = None,
    val_size: Annotated[int, typer.Option(min=1, help="Texts held out to measure perplexity.")] = 1000,
    tokenizer: TokenizerOpt = TokenizerKind.wordpiece,
    vocab_size: VocabOpt = 20000,
    split_negations: SplitNegationsOpt = False,
    tokenizer_from: Annotated[
        Optional[Path],
        typer.Option(
            help="Reuse this tokenizer (a tokenizer.json or a model directory) instead of learning one.",
            show_default=False,
        ),
    ] = None,
    max_length: MaxLengthOpt = 400,
    embed_dim: EmbedOpt = 128,
    hidden_size: HiddenOpt = 128,
    layers: LayersOpt = 1,
    bidirectional: BidirectionalOpt = True,
    dropout: DropoutOpt = 0.3,
    epochs: Annotated[int, typer.Option(min=1)] = 1,
    max_steps: MaxStepsOpt = None,
    batch_size: BatchOpt = 64,
    lr: LrOpt = 3e-3,
    clip: ClipOpt = 1.0,
    evals: Annotated[int, typer.Option(min=1, help="Validations over the run (evenly spread).")] = 4,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    device: DeviceOpt = Device.auto,
    threads: ThreadsOpt = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing directory at --output.")] = False,
) -> None:
    """Pre-train the embedding and GRU layers as a language model on unlabelled text, for `train --init-from`.

    The forward GRU learns to predict the next token, the backward GRU the previous one (an adaptive softmax
    over the vocabulary); IMDB's 50,000 unlabelled reviews are `-d imdb:unsupervised`. Writes an encoder
    directory: tokenizer, embedding and GRU weights, and the perplexity reached on held-out texts.
    """
    with user_errors(ctx):
        from rich.markup import escape

        from gru_sentiment import jobs
        from gru_sentiment.pretrain import PretrainConfig

        refuse_to_replace(output, overwrite)
        sources = [jobs.split_source(spec) for spec in dataset]
        torch_device = setup_device(device, threads)
        err = err_console()
        job = jobs.PretrainJob(
            sources=tuple(sources),
            output=str(output),
            config=PretrainConfig(
                epochs=epochs, batch_size=batch_size, lr=lr, clip=clip, max_steps=max_steps, evals=evals, seed=seed
            ),
            model=jobs.ModelSettings(
                embed_dim=embed_dim,
                hidden_size=hidden_size,
                num_layers=layers,
                bidirectional=bidirectional,
                dropout=dropout,
            ),
            tokenizer=jobs.TokenizerSettings(tokenizer.value, vocab_size, max_length, split_negations=split_negations),
            tokenizer_from=str(tokenizer_from) if tokenizer_from else None,
            text_column=text_column,
            val_size=val_size,
            command=command_line(),
        )
        progress, task, on_step = training_progress(err, "pre-training epoch", "val ppl")

        def on_eval(info):
            mark = " (best, saved)" if info.improved else ""
            progress.console.print(
                f"step {info.step}: val loss {info.loss:.4f}, perplexity {info.perplexity:.1f}{mark}",
                highlight=False,
                soft_wrap=True,
            )
            progress.update(task, val=f"{info.perplexity:.1f}")

        err.print(
            f"reading {', '.join(f'{d}:{s}' for d, s in sources)}; device {torch_device}",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
        with progress:
            try:
                encoder, history = jobs.run_pretrain(job, torch_device, on_step=on_step, on_eval=on_eval)
            except KeyboardInterrupt:
                where = f"the best encoder so far is in {output}" if output.exists() else "no encoder written"
                err.print(f"[yellow]interrupted:[/yellow] {escape(where)}", soft_wrap=True)
                raise typer.Exit(130) from None
        best = history.best
        out_console().print(
            f"saved {output}: validation perplexity {best.perplexity:.1f} (step {best.step}), "
            f"{history.steps} steps in {history.seconds:.0f}s; next: gru-sentiment train --init-from "
            f"{output} ...",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )


def merge(
    ctx: typer.Context,
    first: Annotated[Path, typer.Argument(help="Model A: the result reads texts as it does.", show_default=False)],
    second: Annotated[Path, typer.Argument(help="Model B.", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="Directory to write the merged model to.")],
    weight: Annotated[float, typer.Option(min=0.0, max=1.0, help="Share of B: the result is (1 - W) x A + W x B.")],
    overwrite: Annotated[bool, typer.Option(help="Replace an existing model at --output.")] = False,
) -> None:
    """Interpolate the weights of two models fine-tuned from the same pre-trained encoder (WiSE-FT, model soups):
    for example a model of many domains with a specialist of one. Both need the same network, tokenizer and
    labels. Choose the weight on validation data (bench/val_by_source.py), never on a test split."""
    with user_errors(ctx):
        from gru_sentiment import checkpoint
        from gru_sentiment import merge as merge_mod

        refuse_to_replace(output, overwrite)
        a, b = checkpoint.load(first), checkpoint.load(second)
        command = command_line()
        merged = merge_mod.interpolate(a, b, weight, (str(first), str(second)), command)
        checkpoint.save(merged, output)
        out_console().print(
            f"saved {output}: {1 - weight:g} x {first} + {weight:g} x {second}", highlight=False, markup=False
        )
