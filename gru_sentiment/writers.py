"""Writing predictions for `predict`: a table, JSON, JSON lines or CSV on stdout, gate heatmaps or gate tables
in the terminal, and the HTML page. Predictions arrive as a stream and are written as they come, except a
table or JSON array, which needs them all.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from gru_sentiment import explain, render
from gru_sentiment.errors import UsageError, UserError
from gru_sentiment.options import HTML_LIMIT, PredictFormat
from gru_sentiment.tokenizer import Cut


def gate_views(preds, layer, direction, words):
    for pred in preds:
        view = explain.select(pred.gates, layer, direction)
        pred.gates = explain.merge_words(pred.text, view) if words else view
        yield pred


MAX_PLOT_TEXTS = 20  # a figure of more is too tall to read (and to draw)


@dataclass
class Views:
    """What `predict` shows besides labels: the gates ("mean", "full" or None), the attributions, the chosen or
    top units for the terminal, and the HTML page and image files to write."""

    gates: str | None = None
    attributions: bool = False
    unit: list[int] | None = None
    top_units: int | None = None
    html: Path | None = None
    plot: Path | None = None
    html_limit: int = HTML_LIMIT  # texts the page may hold

    @property
    def traced(self) -> bool:
        return self.gates is not None or self.attributions


def emit(preds, format: PredictFormat, labels: list[str], views: Views, cut: Cut) -> None:
    kept = [] if (views.html is not None or views.plot is not None) else None
    count = 0
    items = []  # json: records; table without gates: predictions for one table at the end
    if format is PredictFormat.csv:
        import csv

        probabilities = tuple(f"p_{n}" for n in labels)
        fields = (
            ("text_index", "label", *probabilities)
            + tuple(f for f in explain.csv_fields(views.gates is not None, views.attributions) if f != "text_index")
            if views.traced
            else ("text_index", "text", "label", *probabilities, "notes")
        )
        writer = csv.DictWriter(sys.stdout, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
    truncated, loose = 0, 0
    noted = []  # table view: (index, text, notes) of each noted text, for stderr
    for index, pred in enumerate(preds):
        count += 1
        if views.plot is not None and count > MAX_PLOT_TEXTS:
            raise UsageError(f"--plot draws at most {MAX_PLOT_TEXTS} texts: use --html for more")
        if views.html is not None and count > views.html_limit:
            raise UsageError(too_many_for_html(views.html_limit))
        truncated += pred.truncated
        found = pred.gates.attribution if pred.gates is not None else None
        loose += found is not None and not found.converged
        if kept is not None:
            kept.append(pred)
        if pred.notes and format is PredictFormat.table:
            noted.append((index, pred.text, pred.notes))
        record = render.prediction_dict(pred)
        if views.traced and format in (PredictFormat.json, PredictFormat.jsonl):
            record["gates"] = explain.to_json(pred.gates, full=views.gates == "full", labels=labels)
        if format is PredictFormat.jsonl:
            render.write_json_line(sys.stdout, record)
        elif format is PredictFormat.json:
            items.append(record)
        elif format is PredictFormat.csv:
            row = {"text_index": index, "label": pred.label}
            row.update((f"p_{n}", round(p, 6)) for n, p in pred.probabilities.items())
            if views.traced:  # a row per token (and layer and direction), each with its text's prediction
                writer.writerows({**row, **token_row} for token_row in explain.csv_rows(index, pred.gates))
            else:
                writer.writerow({**row, "text": pred.text, "notes": "; ".join(pred.notes)})
        elif views.traced:
            print_prediction(pred, labels, views)
        else:
            items.append(pred)
    if count == 0:
        raise UserError("no texts to predict: the input was empty")
    for index, text, notes in noted:
        Console(stderr=True).print(reading_note(index, text, notes), highlight=False, markup=False, soft_wrap=True)
    if truncated:
        Console(stderr=True).print(
            f"note: {truncated} of {count} texts were longer than {cut.max_length} tokens; "
            f"the model read only their {cut.describe()}",
            highlight=False,
            soft_wrap=True,
        )
    if loose:
        Console(stderr=True).print(
            f"note: the attributions of {loose} of {count} texts miss completeness by 1% or more after 512 points "
            "on the path (see attribution_gap): read them with care",
            highlight=False,
            soft_wrap=True,
        )
    if format is PredictFormat.json:
        import json

        sys.stdout.write(json.dumps(items, ensure_ascii=False, indent=2) + "\n")
    elif format is PredictFormat.table and not views.traced:
        render.stdout_console().print(render.predictions(items, labels))
    if views.html is not None:
        from gru_sentiment.html_report import page
        from gru_sentiment.textio import write_text_atomically

        write_text_atomically(views.html, page(kept, labels=labels, full=views.gates == "full"))
        Console(stderr=True).print(
            f"wrote {views.html} ({_size(views.html)})", highlight=False, markup=False, soft_wrap=True
        )
    if views.plot is not None:
        from gru_sentiment.plot import save_unit_maps

        save_unit_maps(kept, views.plot, full=views.gates == "full", labels=labels)
        Console(stderr=True).print(
            f"wrote {views.plot} ({_size(views.plot)})", highlight=False, markup=False, soft_wrap=True
        )


NOTE_TEXT = 15  # characters of a noted text that its stderr note quotes


def reading_note(index: int, text: str, notes: list[str]) -> str:
    """The stderr line of a text the model can hardly read: `note: text 3 ("Das Essen war…"): may not be English
    (the model reads English)`."""
    flat = " ".join(text.split())
    quoted = flat if len(flat) <= NOTE_TEXT else flat[: NOTE_TEXT - 1].rstrip() + "…"
    return f'note: text {index} ("{quoted}"): {"; ".join(notes)}'


def too_many_for_html(limit: int) -> str:
    return (
        f"--html writes at most {limit} texts on a page (each long text adds up to megabytes): give "
        "--html-limit N for more, or fewer texts"
    )


def _size(path: Path) -> str:
    size = float(path.stat().st_size)
    for unit in ("bytes", "kB", "MB"):
        if size < 1000 or unit == "MB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1000


def print_prediction(pred, labels, views: Views) -> None:
    from gru_sentiment.render_gates import gate_table, gate_view

    console = render.stdout_console()
    console.print(render.predictions([pred], labels))
    units = (
        {
            (t.layer, t.direction): explain.top_units(t.values, views.top_units) if views.top_units else views.unit
            for t in pred.gates.layers
        }
        if (views.unit or views.top_units)
        else None
    )
    if console.color_system is None:  # piped or NO_COLOR: colours would be lost, print the numbers
        console.print(gate_table(pred.text, pred.gates, units, labels))
    else:
        console.print(gate_view(pred.text, pred.gates, units, labels=labels, unit_map=bool(views.top_units)))
