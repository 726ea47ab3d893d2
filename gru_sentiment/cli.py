"""The `gru-sentiment` command line: each command parses options, calls the library and renders the result.

One flat Typer app. `train` lives in `cli_train`, `pretrain` and `merge` in `cli_pretrain`, `teacher` in
`cli_teacher`, `score` (Ray Data) in `cli_score`; the plumbing every command shares (consoles, one-line errors,
device, default model) in `cli_support`.
Heavy libraries (torch, datasets) are imported inside the commands, so `--help` stays instant.
Exit codes: 0 success, 1 runtime failure (bad data, bad model, ...), 2 usage error, 141 stdout closed early
(`| head`: output stops quietly, as a Unix tool's does).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from gru_sentiment import api, cli_pretrain, cli_score, cli_teacher, cli_train
from gru_sentiment.cli_support import (  # noqa: F401  (default_model_dir, DEFAULT_MODEL_NAME: public here too)
    DEFAULT_MODEL_NAME,
    PIPE_CLOSED,
    default_model_dir,
    err_console,
    load_model,
    out_console,
    setup_device,
    silence_closed_stdout,
    typed,
    user_errors,
)
from gru_sentiment.options import (
    HTML_LIMIT,
    BatchOpt,
    Command,
    DatasetOpt,
    DecodeErrors,
    Device,
    DeviceOpt,
    Direction,
    GateDetail,
    Group,
    LabelColOpt,
    LabelMapOpt,
    ModelOpt,
    PredictBatchOpt,
    PredictCommand,
    PredictFormat,
    TableOrJson,
    TextColOpt,
    ThreadsOpt,
)

app = typer.Typer(
    cls=Group,
    help="Train, evaluate and look inside a GRU sentiment classifier.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _show_version(value: bool) -> None:
    if value:
        from gru_sentiment import __version__

        print(f"gru-sentiment {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", is_eager=True, callback=_show_version, help="Show the version and exit.")
    ] = False,
) -> None:
    """Train, evaluate and look inside a GRU sentiment classifier.

    Exit codes: 0 success, 1 runtime failure (bad data, bad or missing model), 2 usage error, 141 output
    closed early (as with `| head`: the command stops quietly).
    """
    ctx.obj = {"debug": debug}


for command in (cli_train.train, cli_pretrain.pretrain, cli_pretrain.merge):  # --help lists them first
    app.command(cls=Command)(command)
app.add_typer(cli_teacher.app, name="teacher")


@app.command(cls=Command)
def evaluate(
    ctx: typer.Context,
    dataset: DatasetOpt,
    model: ModelOpt = None,
    split: Annotated[str, typer.Option(help="Split to evaluate on.")] = "test",
    text_column: TextColOpt = None,
    label_column: LabelColOpt = None,
    label_map: LabelMapOpt = None,
    limit: Annotated[
        Optional[int],
        typer.Option(
            min=1, help="Evaluate only N examples: a random sample drawn with --seed, each label keeping its share."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the --limit sample.")] = 0,
    format: Annotated[
        TableOrJson, typer.Option("--format", "-f", help="table for people, json for machines.")
    ] = TableOrJson.table,
    batch_size: BatchOpt = api.EVALUATE_BATCH_SIZE,
    device: DeviceOpt = Device.auto,
    threads: ThreadsOpt = None,
) -> None:
    """Accuracy, per-label precision/recall/F1, macro F1 and confusion matrix of a model on a labelled split."""
    with user_errors(ctx):
        import json

        from rich.markup import escape

        from gru_sentiment import data as data_mod
        from gru_sentiment import render
        from gru_sentiment.splits import stratified_sample

        renamed = data_mod.parse_label_map(label_map)
        torch_device = setup_device(device, threads)
        clf = api.load(model, torch_device)
        bundle = clf.bundle
        with err_console().status(escape(f"loading {dataset} ({split})")):
            data = data_mod.load(dataset, split, text_column, label_column, bundle.labels, renamed)
        if limit:
            data = stratified_sample(data, limit, seed)
        with err_console().status(f"evaluating {len(data):,} texts"):
            report = clf.evaluate_data(data, batch_size=batch_size)
        if format is TableOrJson.json:
            sys.stdout.write(json.dumps(report, indent=2) + "\n")
        else:
            out_console().print(render.evaluation(report, f"{data.source} ({report['n']:,} texts)"))


@app.command(cls=PredictCommand)
def predict(
    ctx: typer.Context,
    texts: Annotated[
        Optional[list[str]],
        typer.Argument(help="Texts to classify; a lone '-' reads them from stdin.", show_default=False),
    ] = None,
    model: ModelOpt = None,
    file: Annotated[
        Optional[Path],
        typer.Option(
            "--file",
            help="Read the texts from this file: the text column of a .csv, .jsonl, .json or .parquet table (see "
            "--text-column), else one text per line ('-': stdin); blank texts are skipped.",
        ),
    ] = None,
    text_column: TextColOpt = None,
    format: Annotated[
        PredictFormat,
        typer.Option(
            "--format",
            "-f",
            help="table for people; json (one array), jsonl (one object per line) or csv for machines. csv: a row "
            "per text (text_index, text, label, p_LABEL..., notes); with --gates or --attributions, a row per token "
            "(and layer and direction) that starts with its text's text_index, label and p_LABEL columns.",
        ),
    ] = PredictFormat.table,
    gates: Annotated[
        Optional[GateDetail],
        typer.Option(
            "--gates",
            metavar="[mean|full]",
            help="Also show the per-token reset and update gates: `--gates` or `--gates mean` gives means over "
            "units, `--gates full` adds the per-unit arrays to json/jsonl. A single word right after --gates is "
            "its value, never a text.",
            show_default=False,
        ),
    ] = None,
    layer: Annotated[
        Optional[int],
        typer.Option(min=0, help="Show only this GRU layer (0 = closest to the words).", show_default=False),
    ] = None,
    direction: Annotated[
        Optional[Direction], typer.Option(help="Show only this direction.", show_default=False)
    ] = None,
    words: Annotated[
        bool,
        typer.Option(
            "--words",
            help="Merge subword pieces into words: a word's gate values are the means over its pieces, its "
            "attribution the sum.",
        ),
    ] = False,
    unit: Annotated[
        Optional[list[int]],
        typer.Option(
            "--unit", help="Show this hidden unit instead of the mean (repeatable; terminal view).", show_default=False
        ),
    ] = None,
    top_units: Annotated[
        Optional[int],
        typer.Option(
            min=1,
            help="Draw a compact map (a line per token, a cell per unit) of the K units whose gates vary most "
            "across the text (terminal view; piped: their numbers).",
            show_default=False,
        ),
    ] = None,
    errors: Annotated[
        DecodeErrors,
        typer.Option(help="Lines of --file that are not UTF-8: fail, replace bad bytes, or skip the line."),
    ] = DecodeErrors.fail,
    html: Annotated[
        Optional[Path],
        typer.Option(
            "--html",
            help="Also write a self-contained HTML page here: gate heatmaps, unit maps (units x tokens, hover for "
            "values) and, with --attributions, the attribution row.",
            show_default=False,
        ),
    ] = None,
    html_limit: Annotated[
        int,
        typer.Option(
            min=1,
            help="Most texts the --html page may hold: a long review adds up to megabytes, and a page of hundreds "
            "is too big for a browser. More texts are refused.",
        ),
    ] = HTML_LIMIT,
    plot: Annotated[
        Optional[Path],
        typer.Option(
            "--plot",
            help="Also draw the unit maps (and attributions) as an image: FILE.png or FILE.svg (needs matplotlib: "
            "pip install 'gru-sentiment[plot]').",
            show_default=False,
        ),
    ] = None,
    attributions: Annotated[
        bool,
        typer.Option(
            "--attributions",
            help="Also compute each token's contribution to the predicted label's log-odds (integrated gradients "
            "from an all-padding baseline, with its completeness gap). Works with or without --gates.",
        ),
    ] = False,
    batch_size: PredictBatchOpt = None,
    device: Annotated[
        Device,
        typer.Option(
            help="Where to compute; auto picks CUDA when present, except for texts given as arguments: a GPU's "
            "start-up (seconds) costs more than a few sentences take on the CPU."
        ),
    ] = Device.auto,
    threads: ThreadsOpt = None,
    workers: Annotated[
        Optional[int],
        typer.Option(
            min=0,
            help="Processes that tokenize the next texts while the model reads (default: all cores but one on a "
            "GPU, none on the CPU, where the model wants the cores). Without --gates and --attributions.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Label and class probabilities of each text (arguments, or --file with one text per line).

    With --gates, also the GRU's reset gate r and update gate z at every token, for every layer and direction:
    z near 1 keeps the past state, z near 0 replaces it with the new candidate; r near 0 makes the candidate
    ignore the past. With --attributions, which words drove the label: positive values push towards the
    predicted label, negative ones against it, and they add up to its log-odds minus the baseline's.

    The model reads English: a text mostly unknown to its tokenizer (emoji, other scripts) or that may not be
    English gets a note (stderr in the table view; `notes` in json, jsonl and csv).
    """
    with user_errors(ctx):
        from gru_sentiment import textio, writers
        from gru_sentiment.errors import UsageError
        from gru_sentiment.predict import check_text

        texts = list(texts or [])
        gates = gates.value if gates else ("mean" if html is not None or plot is not None else None)
        if texts == ["-"] and file is None:  # a lone '-': stdin, as Unix tools read it
            texts, file = [], Path("-")
        elif "-" in texts:
            raise UsageError("'-' reads the texts from stdin: give it alone")
        if texts and file is not None:
            raise UsageError("give texts as arguments or --file, not both")
        if text_column is not None and not textio.is_table(file):
            raise UsageError("--text-column needs a --file table: .csv, .jsonl, .json or .parquet")
        if typed(ctx, "errors") and textio.is_table(file):
            raise UsageError(f"--errors is for files of lines, not the table {file}")
        if not texts and file is None:
            raise UsageError("nothing to predict: give a text, or --file PATH ('-' for stdin)")
        gate_opts = [
            name
            for name, v in (
                ("--layer", layer),
                ("--direction", direction),
                ("--unit", unit),
                ("--top-units", top_units),
            )
            if v not in (None, [])
        ]
        if gates is None and gate_opts:
            raise UsageError(f"{gate_opts[0]} needs --gates")
        if words and gates is None and not attributions:
            raise UsageError("--words needs --gates or --attributions")
        if plot is not None and plot.suffix.lower() not in (".png", ".svg"):
            raise UsageError(f"--plot {plot}: give a .png or .svg file name")
        if plot is not None:
            import importlib.util

            if importlib.util.find_spec("matplotlib") is None:
                raise UsageError("--plot needs matplotlib: pip install 'gru-sentiment[plot]'")
        if unit and top_units:
            raise UsageError("give --unit or --top-units, not both")
        if workers is not None and (gates is not None or attributions):
            raise UsageError("--workers is for labels alone: --gates and --attributions run in this process")
        if html is not None and len(texts) > html_limit:
            raise UsageError(writers.too_many_for_html(html_limit))
        if device is Device.auto and file is None:  # a few sentences: no GPU start-up to wait for
            device = Device.cpu
        torch_device = setup_device(device, threads)
        clf = api.load(model, torch_device)
        bundle = clf.bundle
        if unit:
            from gru_sentiment.explain import check_units

            check_units(unit, bundle.model.config.hidden_size)
        lines = (
            check_text(t)
            for t in textio.read_texts(file, texts, errors.value, text_column)
            if file is None or t.strip()
        )
        views = writers.Views(gates, attributions, unit, top_units, html, plot, html_limit)
        preds = clf.records(
            lines, batch_size=batch_size, gates=gates is not None, attributions=attributions, workers=workers
        )
        if views.traced:
            preds = writers.gate_views(preds, layer, direction.value if direction else None, words)
        writers.emit(preds, format, bundle.labels, views, bundle.cut)


app.command(cls=Command)(cli_score.score)  # --help lists it after predict


@app.command(cls=Command)
def gates(
    ctx: typer.Context,
    dataset: DatasetOpt,
    summary: Annotated[
        bool, typer.Option("--summary", help="Gate saturation statistics over the data set's texts.")
    ] = True,
    find: Annotated[
        Optional[str],
        typer.Option(
            "--find",
            metavar="REGEX",
            help="Instead: rank the units whose gates (z, r) and state (h) behave most differently on words "
            'matching REGEX (case-insensitive, e.g. "\\b(not|never|no)\\b|n\'t\\b") than on other words.',
            show_default=False,
        ),
    ] = None,
    top: Annotated[int, typer.Option(min=1, help="With --find: show this many units.")] = 10,
    model: ModelOpt = None,
    split: Annotated[str, typer.Option(help="Split whose texts are traced.")] = "test",
    text_column: TextColOpt = None,
    label_column: LabelColOpt = None,
    limit: Annotated[int, typer.Option(min=1, help="Trace only the first N texts.")] = 1000,
    format: Annotated[
        TableOrJson,
        typer.Option("--format", "-f", help="table for people, json (with per-unit fractions) for machines."),
    ] = TableOrJson.table,
    batch_size: BatchOpt = 64,
    device: DeviceOpt = Device.auto,
    threads: ThreadsOpt = None,
) -> None:
    """Gate saturation over many texts (Karpathy et al. 2015): per layer, direction and gate, how often units
    are left-saturated (< 0.1) or right-saturated (> 0.9), and their mean. With --find REGEX: the units that
    react to the words matching REGEX (as LSTMVis finds them), ranked by effect size.

    For the gates of particular texts, use `predict --gates`.
    """
    with user_errors(ctx):
        import json

        from rich.markup import escape

        from gru_sentiment import data as data_mod
        from gru_sentiment import explain
        from gru_sentiment.errors import UsageError
        from gru_sentiment.render_gates import saturation_table, unit_search_table

        if not summary:
            raise UsageError("gates only computes --summary; use `predict --gates TEXT` for one text")
        torch_device = setup_device(device, threads)
        bundle = load_model(model, torch_device)
        with err_console().status(escape(f"loading {dataset} ({split})")):
            data = data_mod.load(dataset, split, text_column, label_column, bundle.labels)
        texts = data.texts[:limit]
        if find is not None:
            with err_console().status(escape(f"tracing {len(texts):,} texts for {find!r}")):
                found = explain.find_units(bundle, texts, find, batch_size, torch_device)
            if format is TableOrJson.json:
                sys.stdout.write(json.dumps(found["units"][:top], indent=2) + "\n")
            else:
                out_console().print(unit_search_table(found, top))
            return
        with err_console().status(f"tracing {len(texts):,} texts"):
            result = explain.saturation(bundle, texts, batch_size, torch_device)
        if format is TableOrJson.json:
            sys.stdout.write(json.dumps(result, indent=2) + "\n")
        else:
            out_console().print(saturation_table(result))


def main() -> None:
    try:
        app(prog_name="gru-sentiment")
    finally:
        try:
            sys.stdout.flush()  # what is still buffered: a reader that went away shows here, not at exit
        except BrokenPipeError:
            silence_closed_stdout()
            sys.exit(PIPE_CLOSED)
