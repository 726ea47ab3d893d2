"""`gru-sentiment teacher fit` and `teacher label`: the teacher step of distillation (see `teacher`, `distill`).

Registered on the app in `cli` as a command group. transformers is imported inside the commands (through
`teacher`), so `--help` stays instant and the core install never needs it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from gru_sentiment.cli_support import err_console, refuse_to_replace, setup_device, user_errors
from gru_sentiment.options import Command, Device, DeviceOpt, Group, ThreadsOpt

app = typer.Typer(
    cls=Group,
    help="Fine-tune a transformer teacher and label texts with its logits, for `train --teacher-pool`. "
    "Needs `pip install 'gru-sentiment[teacher]'`; meant for a GPU, runs anywhere.",
    no_args_is_help=True,
)

DataOpt = Annotated[
    list[str],
    typer.Option(
        "--dataset",
        "-d",
        help="Data set (as for train): DATASET or DATASET:SPLIT (default split: train). Repeat for several.",
        show_default=False,
    ),
]


def _progress(console, what: str):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn(what), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=console, transient=False
    )


def _labelled(datasets: list[str], label_names: list[str], char_limit: int | None):
    from gru_sentiment import data, jobs

    parts = [data.load(*jobs.split_source(d), label_names=label_names) for d in datasets]
    texts = [t[:char_limit] if char_limit else t for p in parts for t in p.texts]
    return texts, [y for p in parts for y in p.labels], parts[0].label_names


@app.command("fit", cls=Command)
def fit(
    ctx: typer.Context,
    dataset: DataOpt,
    output: Annotated[Path, typer.Option("--output", "-o", help="Directory to write the teacher to.")],
    base: Annotated[
        Optional[Path],
        typer.Option(help="A local Hugging Face model directory to fine-tune (default: all-MiniLM-L6-v2)."),
    ] = None,
    label_names: Annotated[str, typer.Option(help="Label names, comma-separated, in label-index order.")] = "neg,pos",
    epochs: Annotated[int, typer.Option(min=1)] = 2,
    batch_size: Annotated[int, typer.Option(min=1)] = 64,
    lr: Annotated[float, typer.Option(min=0.0)] = 1e-4,
    max_length: Annotated[int, typer.Option(min=8, help="Tokens of a text the teacher reads (its first).")] = 256,
    chars: Annotated[
        Optional[int], typer.Option(min=1, help="Cut each text to this many characters (long reviews cost time).")
    ] = None,
    seed: int = 0,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing output directory.")] = False,
    device: DeviceOpt = Device.auto,
    threads: ThreadsOpt = None,
) -> None:
    """Fine-tune a transformer on labelled texts: the teacher whose logits `teacher label` writes."""
    with user_errors(ctx):
        from gru_sentiment import teacher

        refuse_to_replace(output, overwrite)
        config = teacher.TeacherConfig(epochs, batch_size, lr, max_length=max_length, seed=seed)
        torch_device = setup_device(device, threads)
        base_dir = str(base) if base else teacher.default_base()
        texts, labels, names = _labelled(dataset, label_names.split(","), chars)
        err = err_console()
        err.print(f"fine-tuning {base_dir} on {len(texts):,} texts; device {torch_device}", highlight=False)
        with _progress(err, "fine-tuning") as progress:
            task = progress.add_task("fit", total=None)
            record = teacher.fit(
                base_dir,
                texts,
                labels,
                names,
                str(output),
                config,
                torch_device,
                on_step=lambda step, steps, loss: progress.update(task, completed=step, total=steps),
            )
        err.print(f"saved {output}: {record['steps']} steps in {record['seconds']:.0f}s", highlight=False)


@app.command("label", cls=Command)
def label(
    ctx: typer.Context,
    dataset: DataOpt,
    teacher_dir: Annotated[Path, typer.Option("--teacher", "-t", help="A directory `teacher fit` wrote.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Parquet file to write the pool to.")],
    sentences: Annotated[
        bool,
        typer.Option(
            "--sentences/--no-sentences",
            help="Add the sentences (4-50 words) of every text of several, without a gold label: more, shorter "
            "texts for the student, as the shipped model's pool has.",
        ),
    ] = False,
    max_length: Annotated[int, typer.Option(min=8, help="Tokens of a text the teacher reads (its first).")] = 512,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing output file.")] = False,
    device: DeviceOpt = Device.auto,
    threads: ThreadsOpt = None,
) -> None:
    """Label texts with a teacher's logits: a pool (text, label, source, teacher_logits) for `train --teacher-pool`.
    A text keeps its gold label where its data set has one (-1 where not)."""
    with user_errors(ctx):
        from gru_sentiment import data, jobs, teacher
        from gru_sentiment.errors import UsageError

        if output.exists() and not overwrite:
            raise UsageError(f"{output} exists: give --overwrite to replace it")
        torch_device = setup_device(device, threads)
        model = teacher.Teacher(str(teacher_dir), torch_device)
        texts, labels, sources, seen = [], [], [], set()

        def add(text: str, gold: int, source: str) -> None:
            if text not in seen:
                seen.add(text)
                texts.append(text)
                labels.append(gold)
                sources.append(source)

        for spec in dataset:
            part = data.load(*jobs.split_source(spec), label_names=model.labels)
            name = Path(jobs.split_source(spec)[0]).name
            for text, gold in [*zip(part.texts, part.labels), *((t, -1) for t in part.unlabelled)]:
                add(text, gold, name)
            if sentences:
                for text in [*part.texts, *part.unlabelled]:
                    for sentence in teacher.sentences(text):
                        add(sentence, -1, name)
        err = err_console()
        with _progress(err, "labelling") as progress:
            task = progress.add_task("label", total=len(texts))
            teacher.label_pool(
                model,
                texts,
                {"label": labels, "source": sources},
                str(output),
                max_length,
                on_batch=lambda n: progress.advance(task, n),
            )
        err.print(f"wrote {output}: {len(texts):,} texts with {model.labels} logits", highlight=False)
