"""Terminal output with `rich`: tables, training progress and JSON lines. Computes nothing."""

from __future__ import annotations

import json
from typing import IO

from rich.console import Console, Group
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

UNCUT_WIDTH = 10_000  # columns of piped or redirected output: as wide as a table needs, never cut


class _Stdout(Console):
    def on_broken_pipe(self) -> None:
        raise BrokenPipeError  # the reader went away: the command stops as it does on any closed pipe


def stdout_console(quiet: bool = False) -> Console:
    """A console on stdout: as wide as the terminal when there is one; piped or redirected, as wide as its
    output needs (no guessed 80 columns that would cut numbers in tables)."""
    console = _Stdout(quiet=quiet)
    if not console.is_terminal:
        console.width = UNCUT_WIDTH
    return console


def evaluation(report: dict, title: str) -> Group:
    """Per-label table, overall figures and the confusion matrix of a `metrics.report`, under `title` (a line of
    its own: a long data set path is not wrapped to the table's width)."""
    table = Table()
    for col in ("label", "precision", "recall", "F1", "support"):
        table.add_column(col, justify="left" if col == "label" else "right")
    for name, m in report["per_label"].items():
        table.add_row(Text(name), f"{m['precision']:.4f}", f"{m['recall']:.4f}", f"{m['f1']:.4f}", str(m["support"]))
    table.add_section()
    table.add_row("accuracy", "", "", f"{report['accuracy']:.4f}", str(report["n"]))
    table.add_row("macro F1", "", "", f"{report['macro_f1']:.4f}", str(report["n"]))
    confusion = Table()
    confusion.add_column("true \\ predicted")
    for name in report["labels"]:
        confusion.add_column(Text(name), justify="right")
    for name, row in zip(report["labels"], report["confusion_matrix"]):
        confusion.add_row(Text(name), *map(str, row))
    return Group(Text(title, style="table.title"), table, confusion)


def prediction_dict(pred) -> dict:
    out = {"text": pred.text, "label": pred.label, "probabilities": pred.probabilities}
    if pred.truncated:
        out["truncated"] = True
    out["notes"] = list(pred.notes)
    return out


def predictions(preds: list, labels: list[str], max_text: int = 160) -> Table:
    table = Table(show_lines=False)
    table.add_column("text", ratio=1)
    table.add_column("label", no_wrap=True, min_width=max(5, *map(len, labels)))
    for name in labels:
        table.add_column(Text(f"p({name})"), justify="right", no_wrap=True, min_width=len(name) + 3)
    for p in preds:
        text = p.text if len(p.text) <= max_text else p.text[: max_text - 1] + "…"
        table.add_row(
            Text(text.replace("\n", " ")),
            Text(p.label, style="bold"),
            *(f"{p.probabilities[name]:.4f}" for name in labels),
        )
    return table


def write_json_line(stream: IO[str], obj: dict) -> None:
    stream.write(json.dumps(obj, ensure_ascii=False) + "\n")


def training_progress(console: Console, title: str = "epoch", val_label: str = "val acc") -> Progress:
    """The progress bar of train ("epoch", "val acc") and pretrain ("pre-training epoch", "val ppl")."""
    return Progress(
        TextColumn(title + " {task.fields[epoch]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}"),
        TextColumn(val_label + " {task.fields[val]}"),
        TextColumn("{task.fields[tps]:,.0f} tok/s"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    )
