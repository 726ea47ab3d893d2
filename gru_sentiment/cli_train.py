"""`gru-sentiment train`: parse the options into a recipe tree (`config`), build the job, run it, and report.

A run is a recipe (`--config FILE.toml`), dotted settings on top (`--set train.adv=1`), and the everyday options
on top of those; each option is one recipe key (`OPTION_KEYS`), and the job's dataclasses hold every default.
Heavy libraries (torch, datasets) are imported inside the command, so `--help` stays instant.
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
    typed,
    user_errors,
)
from gru_sentiment.options import Device, DeviceOpt, LabelMapOpt, TextColOpt, ThreadsOpt

OPTION_KEYS = {  # each everyday option is one recipe key
    "dataset": "data.datasets",
    "output": "output",
    "val_split": "data.val_split",
    "val_fraction": "data.val_fraction",
    "text_column": "data.text_column",
    "label_names": "data.label_names",
    "label_map": "data.label_map",
    "limit": "data.limit",
    "mix": "data.mix",
    "teacher_pool": "data.teacher_pool",
    "init_from": "model.init_from",
    "epochs": "train.epochs",
    "max_steps": "train.max_steps",
    "batch_size": "train.batch_size",
    "lr": "train.lr",
    "seed": "train.seed",
    "streaming": "stream.enabled",
}
# the defaults --help shows: the job's dataclasses hold them (importing those here would import torch and slow
# --help down; a test checks that these are theirs)
SHOWN_DEFAULTS = {"val_fraction": "0.1", "epochs": "4", "batch_size": "64", "lr": "0.003", "seed": "0"}


def _tree(ctx: typer.Context, config_file: Path | None, settings: list[str] | None) -> dict:
    """The recipe tree of this command line: the file, then --set, then the options given."""
    from gru_sentiment import config

    tree = config.override(config.read(config_file) if config_file else {}, settings or [])
    for name, key in OPTION_KEYS.items():
        if typed(ctx, name):
            value = ctx.params[name]
            if name == "label_names":
                value = value.split(",")
            config.set_key(tree, key, str(value) if isinstance(value, Path) else value)
    return tree


def _check_init(job, tree: dict):
    """`init_from`: the settings the pre-trained encoder fixes (its sizes and tokenizer), where the recipe
    `tree` gives them, may only repeat its values. Returns the encoder, read once."""
    from gru_sentiment import checkpoint, jobs
    from gru_sentiment.errors import UsageError

    if job.tokenizer_from:
        raise UsageError("model.init_from brings its own tokenizer: drop tokenizer.from")
    encoder = checkpoint.load_encoder(job.init_from)
    fixed = {
        **{f"model.{k}": v for k, v in jobs.init_settings(encoder).items()},
        "tokenizer.vocab_size": encoder.tokenizer.get_vocab_size(),
        "tokenizer.kind": encoder.tokenizer_kind,
    }
    given = {
        **{f"model.{k}": v for k, v in job.model.to_dict().items()},
        "tokenizer.vocab_size": job.tokenizer.vocab_size,
        "tokenizer.kind": job.tokenizer.kind,
    }
    for key, value in fixed.items():
        section, name = key.split(".")
        if name in tree.get(section, {}) and given[key] != value:
            raise UsageError(f"{key} {given[key]} differs from the pre-trained encoder's {value}: drop it")
    return encoder


def train(
    ctx: typer.Context,
    dataset: Annotated[
        Optional[list[str]],
        typer.Option(
            "--dataset",
            "-d",
            help="Data set: imdb, sst2, rotten_tomatoes, yelp_polarity, amazon_polarity, a hub id, or a local "
            "folder/file (parquet, csv, jsonl, aclImdb layout). Repeat to train on several together.",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        Optional[Path],
        typer.Option(
            "--output", "-o", help="Model directory to write (atomically, after every validation).", show_default=False
        ),
    ] = None,
    config_file: Annotated[
        Optional[Path],
        typer.Option(
            "--config",
            "-c",
            help="A recipe: a TOML file of settings (sections data, tokenizer, model, train, stream), e.g. "
            "recipes/gru-reviews/5-distil.toml. Options given beside it win.",
            show_default=False,
        ),
    ] = None,
    settings: Annotated[
        Optional[list[str]],
        typer.Option(
            "--set",
            help="KEY=VALUE: any recipe setting, e.g. `--set tokenizer.max_length=512 --set train.adv=1` (value "
            "in TOML syntax). Repeat for several. The keys are listed in gru_sentiment/config.py.",
            show_default=False,
        ),
    ] = None,
    resume: Annotated[
        Optional[Path],
        typer.Option(
            "--resume",
            help="Continue the interrupted training of this model directory, exactly where its last validation "
            "left it (same data, settings and seed; no other settings allowed).",
            show_default=False,
        ),
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing model at --output.")] = False,
    val_split: Annotated[
        Optional[str],
        typer.Option(
            help="Validate on this split of the data sets instead of one carved from train.", show_default=False
        ),
    ] = None,
    val_fraction: Annotated[
        Optional[float],
        typer.Option(
            help="Share of the training split held out for validation, in groups of overlapping texts. 0: no "
            "validation, every text is trained on and the last step's weights are kept.",
            show_default=SHOWN_DEFAULTS["val_fraction"],
        ),
    ] = None,
    text_column: TextColOpt = None,
    label_names: Annotated[
        Optional[str],
        typer.Option(help="Comma-separated names for integer labels 0..K-1, e.g. neg,pos.", show_default=False),
    ] = None,
    label_map: LabelMapOpt = None,
    limit: Annotated[
        Optional[int],
        typer.Option(
            min=2,
            help="Train on a seeded sample of N texts, every label in its share (quick runs).",
            show_default=False,
        ),
    ] = None,
    mix: Annotated[
        Optional[str],
        typer.Option(
            help="How many texts of each data set an epoch reads: `natural` (each once), an exponent a in "
            "(0,1] (shares proportional to size**a, so 0.5 lifts small sets), or one weight per data set, "
            "e.g. `1,0.3,2,2` (0.3 = 30% of that set per epoch; 0 = validated on, never drawn).",
            show_default=False,
        ),
    ] = None,
    teacher_pool: Annotated[
        Optional[Path],
        typer.Option(
            "--teacher-pool",
            help="Distil a teacher: a file (parquet, csv, jsonl) of texts with its `teacher_logits` (one per label) "
            "and an optional gold `label` (-1: none). Training texts found in it learn from its logits beside "
            "their labels; its other texts (none of validation's) train on the teacher alone, as one more source.",
            show_default=False,
        ),
    ] = None,
    init_from: Annotated[
        Optional[Path],
        typer.Option(
            help="Start from a pre-trained encoder (`pretrain`) or a trained model: its tokenizer, embedding and "
            "GRU, with a new classifier head.",
            show_default=False,
        ),
    ] = None,
    epochs: Annotated[Optional[int], typer.Option(min=1, show_default=SHOWN_DEFAULTS["epochs"])] = None,
    max_steps: Annotated[
        Optional[int], typer.Option(min=1, help="Stop after this many steps.", show_default=False)
    ] = None,
    batch_size: Annotated[Optional[int], typer.Option(min=1, show_default=SHOWN_DEFAULTS["batch_size"])] = None,
    lr: Annotated[
        Optional[float], typer.Option(min=0.0, help="Peak learning rate (AdamW).", show_default=SHOWN_DEFAULTS["lr"])
    ] = None,
    seed: Annotated[
        Optional[int],
        typer.Option(
            help="Random seed: the same seed and tokenizer give the same weights on CPU.",
            show_default=SHOWN_DEFAULTS["seed"],
        ),
    ] = None,
    streaming: Annotated[
        Optional[bool],
        typer.Option(
            "--streaming",
            help="Read the training data as a stream: constant memory for data sets of any size. Needs "
            "--max-steps and one data set.",
        ),
    ] = None,
    device: DeviceOpt = Device.auto,
    threads: ThreadsOpt = None,
) -> None:
    """Learn a tokenizer and a GRU classifier from labelled data; keep the best model on validation.

    Every setting is a recipe key: `--config` a TOML recipe, `--set KEY=VALUE` any key (tokenizer, network
    size, adversarial training, distillation, ...), and the options here the everyday ones. Under `torchrun`
    (`torchrun --nproc-per-node 2 -m gru_sentiment train ...`) training runs data-parallel; rank 0 writes.
    """
    with user_errors(ctx):
        from rich.markup import escape

        from gru_sentiment import config, distributed, jobs
        from gru_sentiment.errors import UsageError

        if resume is not None:
            given = [f"--{n.replace('_', '-')}" for n in OPTION_KEYS if typed(ctx, n)]
            given += ["--config"] * bool(config_file) + ["--set"] * bool(settings)
            if given:
                raise UsageError(f"--resume continues a run with its own settings: drop {', '.join(given)}")
            output = resume
            job = None
        else:
            tree = _tree(ctx, config_file, settings)
            job = config.build(tree, command_line())
            output = Path(job.output)
            refuse_to_replace(output, overwrite)
        dist = distributed.from_env()
        torch_device = setup_device(device, threads, dist.local_rank if dist else None)
        if dist is not None:
            if resume is not None:
                raise UsageError("--resume runs in a single process, not under torchrun")
            distributed.init(dist, torch_device)
        quiet = dist is not None and not dist.is_main
        err = err_console(quiet)
        encoder = None
        if job is not None:
            jobs.check_train_job(job, dist)
            encoder = _check_init(job, tree) if job.init_from else None
            for key in config.experimental(tree):
                err.print(
                    f"note: {key} is experimental: kept to repeat recorded runs, it did not help", highlight=False
                )
            sets = ", ".join(job.data.datasets)
            err.print(
                f"loading {sets} ({job.data.split}); device {torch_device}",
                highlight=False,
                markup=False,
                soft_wrap=True,
            )
        progress, task, on_step = training_progress(err, "epoch", "val acc")

        def on_eval(info):
            progress.console.print(_eval_line(info), highlight=False, markup=False, soft_wrap=True)
            progress.update(task, val=f"{info.accuracy:.4f}")

        def on_data(line: str) -> None:
            progress.console.print(line, highlight=False, markup=False, soft_wrap=True)

        with progress:
            finished = False
            try:
                if resume is not None:
                    bundle, history = jobs.resume_model(str(resume), torch_device, on_step, on_eval)
                else:
                    bundle, history = jobs.run_train(
                        job, torch_device, on_step=on_step, on_eval=on_eval, on_data=on_data, dist=dist, encoder=encoder
                    )
                finished = True
            except KeyboardInterrupt:
                if output.exists():
                    err.print(
                        f"[yellow]interrupted:[/yellow] the last saved model is in {escape(str(output))}; "
                        f"continue with: gru-sentiment train --resume {escape(str(output))}",
                        soft_wrap=True,
                    )
                else:
                    err.print("[yellow]interrupted[/yellow] before the first checkpoint: no model written")
                raise typer.Exit(130) from None
            finally:
                distributed.shutdown(together=finished)
        out_console(quiet).print(
            f"saved {output}: {_score(history)}, {history.steps} steps in {history.seconds:.0f}s",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )


def _eval_line(info) -> str:
    mark = " (best, saved)" if info.improved else ""
    by_source = info.metrics.get("by_source")
    sources = ""
    if by_source:
        mean_of = " of " + ", ".join(info.metrics["mean_of"]) if "mean_of" in info.metrics else ""
        parts = ", ".join(f"{k} {v:.4f}" for k, v in by_source.items())
        sources = f" (by source: {parts}; mean{mean_of} {info.value:.4f})"
    return (
        f"epoch {info.epoch} step {info.step}: val accuracy {info.accuracy:.4f}{sources}, "
        f"macro F1 {info.macro_f1:.4f}, loss {info.loss:.4f}{mark}"
    )


def _score(history) -> str:
    best = history.best
    if best is None:
        return "no validation, the last step's weights"
    if "by_source" in best.metrics:
        over = ", ".join(best.metrics.get("mean_of", ["sources"]))
        return f"best mean validation accuracy over {over} {best.value:.4f} (epoch {best.epoch})"
    return f"best validation accuracy {best.accuracy:.4f} (epoch {best.epoch})"
