"""The commands that write models: `train`, `pretrain` and `merge` (registered on the app in `cli`).

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
    typed,
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
    LabelColOpt,
    LabelMapOpt,
    LayersOpt,
    LrOpt,
    MaxLengthOpt,
    MaxStepsOpt,
    Pooling,
    SplitNegationsOpt,
    TailOpt,
    TextColOpt,
    ThreadsOpt,
    TokenizerKind,
    TokenizerOpt,
    VocabOpt,
)


def _changed_train_options(ctx: typer.Context):
    """(option, value, default) for every `train` option other than --resume and the run-time ones."""
    runtime = {"resume", "device", "threads", "ctx"}
    for param in ctx.command.params:
        if param.name not in runtime:
            value = ctx.params.get(param.name)
            off = value is False and getattr(param, "secondary_opts", None)  # --no-val-groups, as typed
            yield (param.secondary_opts[0] if off else f"--{param.name.replace('_', '-')}"), value, param.default


def _check_init_options(ctx: typer.Context, path: Path, model_settings: dict, tok_settings):
    """`train --init-from`: the options the pre-trained encoder fixes may only repeat its values."""
    from gru_sentiment import checkpoint, jobs
    from gru_sentiment.errors import UsageError

    if ctx.params.get("tokenizer_from"):
        raise UsageError("--init-from brings its own tokenizer: drop --tokenizer-from")
    encoder = checkpoint.load_encoder(path)
    fixed = {
        **jobs.init_settings(encoder),
        "vocab_size": encoder.tokenizer.get_vocab_size(),
        "tokenizer": encoder.tokenizer_kind,
    }
    given = {**model_settings, "vocab_size": tok_settings.vocab_size, "tokenizer": tok_settings.kind}
    option = {"num_layers": "layers"}
    for name, value in fixed.items():
        cli_name = option.get(name, name)
        if typed(ctx, cli_name) and given[name] != value:
            flag = f"--{cli_name.replace('_', '-')}"
            raise UsageError(f"{flag} {given[name]} differs from the pre-trained encoder's {value}: drop {flag}")
    return encoder


def train(
    ctx: typer.Context,
    dataset: Annotated[
        Optional[list[str]],
        typer.Option(
            "--dataset",
            "-d",
            help="Data set: imdb, sst2, rotten_tomatoes, yelp_polarity, amazon_polarity, a hub id, or a local "
            "folder/file (parquet, csv, jsonl, aclImdb layout). Repeat to train on several together (same "
            "label names).",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        Optional[Path],
        typer.Option(
            "--output", "-o", help="Model directory to write (atomically, after every validation).", show_default=False
        ),
    ] = None,
    resume: Annotated[
        Optional[Path],
        typer.Option(
            "--resume",
            help="Continue the interrupted training of this model directory, exactly where its last validation "
            "left it (same data, settings and seed; other options are not allowed).",
            show_default=False,
        ),
    ] = None,
    split: Annotated[str, typer.Option(help="Training split.")] = "train",
    val_split: Annotated[
        Optional[str],
        typer.Option(help="Use this split of the data set for validation instead of carving one from train."),
    ] = None,
    val_fraction: Annotated[
        float,
        typer.Option(
            help="Share of the training split held out for validation. 0: no validation, every text is trained on"
            " and the last step's weights are kept (a final run, once settings were chosen on a held-out split)."
        ),
    ] = 0.1,
    val_seed: Annotated[
        Optional[int],
        typer.Option(
            help="Seed of the validation carve (default: --seed). Give it to train again from another --seed on"
            " the same held-out texts, to see how much a figure moves from one run to the next.",
            show_default=False,
        ),
    ] = None,
    val_groups: Annotated[
        bool,
        typer.Option(
            help="Hold out whole groups of overlapping texts: copies, and a text of up to 400 characters with "
            "the longest text that contains its words in a row (SST-2's train split is phrases of its "
            "sentences). --no-val-groups holds out single texts, as models trained before this option did. "
            "Not used with --val-split or --streaming."
        ),
    ] = True,
    text_column: TextColOpt = None,
    label_column: LabelColOpt = None,
    label_names: Annotated[
        Optional[str], typer.Option(help="Comma-separated names for integer labels 0..K-1, e.g. neg,pos.")
    ] = None,
    label_map: LabelMapOpt = None,
    limit: Annotated[
        Optional[int],
        typer.Option(
            min=2,
            help="Use only N training examples (quick runs): a random sample drawn with --seed, each label and data "
            "set keeping its share.",
        ),
    ] = None,
    tokenizer: TokenizerOpt = TokenizerKind.wordpiece,
    vocab_size: VocabOpt = 20000,
    split_negations: SplitNegationsOpt = False,
    tokenizer_from: Annotated[
        Optional[Path],
        typer.Option(
            help="Reuse this tokenizer (a tokenizer.json or a model directory) instead of learning one: makes "
            "a run exactly repeatable.",
            show_default=False,
        ),
    ] = None,
    init_from: Annotated[
        Optional[Path],
        typer.Option(
            help="Start from an encoder made by `gru-sentiment pretrain`: its tokenizer, embedding and GRU "
            "weights (and their sizes), with a new classifier head.",
            show_default=False,
        ),
    ] = None,
    max_length: MaxLengthOpt = 400,
    tail: TailOpt = 0,
    embed_dim: EmbedOpt = 128,
    hidden_size: HiddenOpt = 128,
    layers: LayersOpt = 1,
    bidirectional: BidirectionalOpt = True,
    dropout: DropoutOpt = 0.3,
    pooling: Annotated[Pooling, typer.Option(help="How GRU states become one vector.")] = Pooling.mean_max,
    epochs: Annotated[int, typer.Option(min=1)] = 4,
    max_steps: MaxStepsOpt = None,
    batch_size: BatchOpt = 64,
    lr: LrOpt = 3e-3,
    weight_decay: Annotated[float, typer.Option(min=0.0)] = 0.01,
    clip: ClipOpt = 1.0,
    patience: Annotated[int, typer.Option(min=1, help="Stop after this many validations without improvement.")] = 2,
    evals_per_epoch: Annotated[int, typer.Option(min=1, help="Validations per epoch.")] = 1,
    seed: Annotated[
        int, typer.Option(help="Random seed: with --tokenizer-from, the same seed gives the same weights on CPU.")
    ] = 0,
    device: DeviceOpt = Device.auto,
    threads: ThreadsOpt = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing model at --output.")] = False,
    streaming: Annotated[
        bool,
        typer.Option(
            "--streaming",
            help="Read the training data as a stream (datasets IterableDataset): constant memory for data sets "
            "of any size. Needs --max-steps.",
        ),
    ] = False,
    tokenizer_sample: Annotated[
        int, typer.Option(min=100, help="With --streaming: rows the tokenizer is learned from.")
    ] = 10000,
    shuffle_buffer: Annotated[int, typer.Option(min=1, help="With --streaming: rows in the shuffle buffer.")] = 10000,
    val_size: Annotated[
        int,
        typer.Option(
            min=1, help="With --streaming and no --val-split: first rows of the stream held out for validation."
        ),
    ] = 1000,
    mix: Annotated[
        Optional[str],
        typer.Option(
            help="How many texts of each --dataset an epoch reads: `natural` (each once), an exponent a in "
            "(0,1] (temperature sampling: shares proportional to size**a, so 0.5 lifts small sets), or "
            "one weight per data set, e.g. `1,0.3,2,2` (0.3 = 30% of that set per epoch, 2 = twice; 0 = "
            "validated on, but never drawn and not watched by keep-best).",
            show_default=False,
        ),
    ] = None,
    sentence_weight: Annotated[
        Optional[list[str]],
        typer.Option(
            "--sentence-weight",
            help="SOURCE=W: in that data set (its name in the per-source report), draw every whole text (one "
            "that no longer text of the set contains: SST-2's sentences, not their phrases) W times as often as "
            "the others, within the set's share of an epoch. W alone: every data set. Repeat for several.",
            show_default=False,
        ),
    ] = None,
    adv: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="Weight of adversarial training (Miyato et al. 2017): cross-entropy on embeddings perturbed "
            "along the loss gradient. 0: off.",
        ),
    ] = 0.0,
    vat: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="Weight of virtual adversarial training on unlabelled text (the training texts, rows labelled "
            "-1 and --unlabelled). 0: off.",
        ),
    ] = 0.0,
    adv_eps: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="Size of the adversarial perturbation of a whole text, in standard deviations of the embedding.",
        ),
    ] = 5.0,
    layer_lr_decay: Annotated[
        float,
        typer.Option(
            min=1.0,
            help="Discriminative learning rates (Howard & Ruder 2018): the head learns at --lr, the GRU layer "
            "below it at --lr / D, the next at --lr / D^2, down to the embedding. 2.6 is theirs; 1: all alike.",
        ),
    ] = 1.0,
    ema: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=0.99999,
            help="Keep an exponential moving average of the weights, with this decay per step (0.999: about the "
            "last 1,000 steps), and validate and save the average instead of the latest weights. 0: off.",
        ),
    ] = 0.0,
    entmin: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="Weight of entropy minimisation on the same unlabelled text as --vat (Sachan et al. 2019): "
            "rewards confident predictions there. 0: off.",
        ),
    ] = 0.0,
    vat_batch_size: Annotated[
        Optional[int],
        typer.Option(
            min=1, help="Unlabelled texts per step for --vat and --entmin (default: --batch-size).", show_default=False
        ),
    ] = None,
    unlabelled: Annotated[
        Optional[list[str]],
        typer.Option(
            "--unlabelled",
            help="More unlabelled text for --vat and --entmin: DATASET or DATASET:SPLIT (repeat).",
            show_default=False,
        ),
    ] = None,
    train_only: Annotated[
        Optional[list[str]],
        typer.Option(
            "--train-only",
            help="A labelled data set to train on whole, none of it held out: DATASET or DATASET:SPLIT (repeat). "
            "The validation carved from the --dataset sets stays exactly as without it. Its texts are a source "
            "of their own, after the --dataset ones (for --mix weights and --sentence-weight).",
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
    distill_weight: Annotated[
        float,
        typer.Option(min=0.0, max=1.0, help="Share of the teacher's term for a text that has a gold label too."),
    ] = 0.5,
    distill_temperature: Annotated[
        float,
        typer.Option(min=0.1, help="Temperature that softens the teacher's and the student's logits."),
    ] = 2.0,
) -> None:
    """Learn a tokenizer and a GRU classifier from a labelled data set; keep the best model on validation.

    Under `torchrun` (e.g. `torchrun --nproc-per-node 2 -m gru_sentiment train ...`) training runs data-parallel:
    gloo on CPU, nccl on CUDA; rank 0 prints and writes.
    """
    with user_errors(ctx):
        from rich.markup import escape

        from gru_sentiment import jobs
        from gru_sentiment.errors import UsageError
        from gru_sentiment.train import TrainConfig

        if resume is not None:
            given = [
                name for name, value, default in _changed_train_options(ctx) if (value or None) != (default or None)
            ]
            if given:
                raise UsageError(f"--resume continues a run with its own settings: drop {', '.join(given)}")
            output = resume
        elif not dataset or output is None:
            raise UsageError("train needs --dataset and --output (or --resume DIR)")
        else:
            refuse_to_replace(output, overwrite)
        if tail > max_length:
            raise UsageError(f"--tail {tail} does not fit in --max-length {max_length}: give a smaller --tail")
        carving = [f"--{name.replace('_', '-')}" for name in ("val_fraction", "val_seed") if typed(ctx, name)]
        if carving and (val_split or streaming):
            raise UsageError(
                f"{' and '.join(carving)}: only for validation carved from train, not --val-split or --streaming"
            )
        distilling = [f"--{n.replace('_', '-')}" for n in ("distill_weight", "distill_temperature") if typed(ctx, n)]
        if distilling and not teacher_pool and resume is None:
            raise UsageError(f"{distilling[0]} needs --teacher-pool")
        from gru_sentiment import distributed

        dist = distributed.from_env()
        torch_device = setup_device(device, threads, dist.local_rank if dist else None)
        if dist is not None:
            if resume is not None:
                raise UsageError("--resume runs in a single process, not under torchrun")
            distributed.init(dist, torch_device)
        quiet = dist is not None and not dist.is_main
        err = err_console(quiet)
        job = jobs.TrainJob(
            data=jobs.DataSpec(
                datasets=tuple(dataset or ()),
                split=split,
                val_split=val_split,
                val_fraction=val_fraction,
                text_column=text_column,
                label_column=label_column,
                label_names=tuple(label_names.split(",")) if label_names else None,
                label_map=label_map,
                limit=limit,
                mix=mix,
                sentence_weight=tuple(sentence_weight or ()),
                unlabelled=tuple(unlabelled or ()),
                train_only=tuple(train_only or ()),
                teacher_pool=str(teacher_pool) if teacher_pool else None,
                val_groups=val_groups,
                val_seed=val_seed,
            ),
            output=str(output),
            config=TrainConfig(
                epochs=epochs,
                batch_size=batch_size,
                lr=lr,
                weight_decay=weight_decay,
                clip=clip,
                patience=patience,
                max_steps=max_steps,
                evals_per_epoch=evals_per_epoch,
                seed=seed,
                adv=adv,
                vat=vat,
                adv_eps=adv_eps,
                vat_batch_size=vat_batch_size,
                entmin=entmin,
                layer_lr_decay=layer_lr_decay,
                ema=ema,
                distill_weight=distill_weight,
                distill_temperature=distill_temperature,
            ),
            model=jobs.ModelSettings(
                embed_dim=embed_dim,
                hidden_size=hidden_size,
                num_layers=layers,
                bidirectional=bidirectional,
                dropout=dropout,
                pooling=pooling.value,
            ),
            tokenizer=jobs.TokenizerSettings(tokenizer.value, vocab_size, max_length, tail, split_negations),
            tokenizer_from=str(tokenizer_from) if tokenizer_from else None,
            init_from=str(init_from) if init_from else None,
            streaming=jobs.StreamSettings(tokenizer_sample, shuffle_buffer, val_size) if streaming else None,
            command=command_line(),
        )
        encoder = _check_init_options(ctx, init_from, job.model.to_dict(), job.tokenizer) if init_from else None
        if streaming and resume is not None:
            raise UsageError("--streaming needs --max-steps and one --dataset, and takes no --resume or --limit")
        if resume is None:
            jobs.check_train_job(job, dist)
            err.print(
                f"loading {', '.join(dataset)} ({split}); device {torch_device}",
                highlight=False,
                markup=False,
                soft_wrap=True,
            )
        progress, task, on_step = training_progress(err, "epoch", "val acc")

        def on_eval(info):
            mark = " (best, saved)" if info.improved else ""
            by_source = info.metrics.get("by_source")
            sources = (
                (
                    f" (by source: {', '.join(f'{k} {v:.4f}' for k, v in by_source.items())}; "
                    f"mean{' of ' + ', '.join(info.metrics['mean_of']) if 'mean_of' in info.metrics else ''} "
                    f"{info.value:.4f})"
                )
                if by_source
                else ""
            )
            progress.console.print(
                f"epoch {info.epoch} step {info.step}: val accuracy {info.accuracy:.4f}{sources}, "
                f"macro F1 {info.macro_f1:.4f}, loss {info.loss:.4f}{mark}",
                highlight=False,
                markup=False,
                soft_wrap=True,
            )
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
        best = history.best
        if best is None:
            score = "no validation, the last step's weights"
        elif "by_source" in best.metrics:
            over = ", ".join(best.metrics.get("mean_of", ["sources"]))
            score = f"best mean validation accuracy over {over} {best.value:.4f} (epoch {best.epoch})"
        else:
            score = f"best validation accuracy {best.accuracy:.4f} (epoch {best.epoch})"
        out_console(quiet).print(
            f"saved {output}: {score}, {history.steps} steps in {history.seconds:.0f}s",
            highlight=False,
            markup=False,
            soft_wrap=True,
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
