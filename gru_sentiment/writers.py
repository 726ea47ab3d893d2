"""Writing predictions for `predict`: a table, JSON, JSON lines or CSV on stdout, gate heatmaps or gate tables
in the terminal, and the HTML page. Predictions arrive as a stream and are written as they come, except a
table or JSON array, which needs them all.
"""

from __future__ import annotations

import sys

from rich.console import Console

from gru_sentiment import explain, render
from gru_sentiment.errors import UserError
from gru_sentiment.options import PredictFormat


def gate_views(preds, layer, direction, words):
    for pred in preds:
        view = explain.select(pred.gates, layer, direction)
        pred.gates = explain.merge_words(pred.text, view) if words else view
        yield pred


def emit(
    preds, format: PredictFormat, labels: list[str], gates: str | None, unit, top_units, html, max_length: int | None
) -> None:
    kept = [] if html is not None else None
    count = 0
    items = []  # json: records; table without gates: predictions for one table at the end
    if format is PredictFormat.csv:
        import csv

        fields = explain.CSV_FIELDS if gates else ("text_index", "text", "label", *(f"p_{n}" for n in labels))
        writer = csv.DictWriter(sys.stdout, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
    truncated = 0
    for index, pred in enumerate(preds):
        count += 1
        truncated += pred.truncated
        if kept is not None:
            kept.append(pred)
        record = render.prediction_dict(pred)
        if gates and format in (PredictFormat.json, PredictFormat.jsonl):
            record["gates"] = explain.to_json(pred.gates, full=gates == "full")
        if format is PredictFormat.jsonl:
            render.write_json_line(sys.stdout, record)
        elif format is PredictFormat.json:
            items.append(record)
        elif format is PredictFormat.csv:
            if gates:
                writer.writerows(explain.csv_rows(index, pred.gates))
            else:
                writer.writerow(
                    {
                        "text_index": index,
                        "text": pred.text,
                        "label": pred.label,
                        **{f"p_{n}": round(p, 6) for n, p in pred.probabilities.items()},
                    }
                )
        elif gates:
            print_prediction(pred, labels, unit, top_units)
        else:
            items.append(pred)
    if count == 0:
        raise UserError("no texts to predict: the input was empty")
    if truncated:
        Console(stderr=True).print(
            f"note: {truncated} of {count} texts were longer than {max_length} tokens; "
            f"the model read only their first {max_length}",
            highlight=False,
            soft_wrap=True,
        )
    if format is PredictFormat.json:
        import json

        sys.stdout.write(json.dumps(items, ensure_ascii=False, indent=2) + "\n")
    elif format is PredictFormat.table and not gates:
        Console().print(render.predictions(items, labels))
    if html is not None:
        from gru_sentiment.html_report import page
        from gru_sentiment.textio import write_text_atomically

        write_text_atomically(html, page(kept))
        Console(stderr=True).print(f"wrote {html}", highlight=False)


def print_prediction(pred, labels, unit, top_units) -> None:
    from gru_sentiment.render_gates import gate_table, gate_view

    console = Console()
    console.print(render.predictions([pred], labels))
    units = (
        {
            (t.layer, t.direction): explain.top_units(t.values, top_units) if top_units else unit
            for t in pred.gates.layers
        }
        if (unit or top_units)
        else None
    )
    if console.color_system is None:  # piped or NO_COLOR: colours would be lost, print the numbers
        console.print(gate_table(pred.text, pred.gates, units))
    else:
        console.print(gate_view(pred.text, pred.gates, units))
