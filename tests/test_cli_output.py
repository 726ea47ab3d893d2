"""What `predict`, `evaluate` and `gates` write: user text exactly as given, uncut when piped, quiet on a closed
pipe, and CSV rows that say which prediction they belong to."""

import csv
import importlib.util
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gru_sentiment.cli import app
from tests.corpus import reviews, write_splits

runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]


def invoke(*args, **kwargs):
    return runner.invoke(app, [str(a) for a in args], **kwargs)


def test_square_brackets_in_texts_paths_and_hints_are_printed_as_given(tiny_model, tmp_path, monkeypatch):
    result = invoke("predict", "-m", tiny_model, "The ending [spoiler] was great", "Terrible [sic] service")
    assert result.exit_code == 0, result.output
    assert "The ending [spoiler] was great" in result.stdout and "Terrible [sic] service" in result.stdout

    result = invoke("predict", "-m", tiny_model, "--file", tmp_path / "reviews[red].txt")
    assert result.exit_code == 1 and f"error: no such file: {tmp_path / 'reviews[red].txt'}" in result.output

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else find_spec(name))
    result = invoke("predict", "-m", tiny_model, "--plot", tmp_path / "p.png", "fine")
    assert result.exit_code == 2 and "pip install 'gru-sentiment[plot]'" in result.output

    result = invoke("predict", "-m", tiny_model, "--gates", "--words", "the [best] film")
    assert result.exit_code == 0 and "[best]" in result.stdout


def test_square_brackets_in_data_set_names_and_patterns_are_printed_as_given(tiny_model, tmp_path):
    folder = write_splits(tmp_path / "reviews[2024]", "csv", *reviews(20, seed=3))
    result = invoke("evaluate", "-m", tiny_model, "-d", folder)
    assert result.exit_code == 0, result.output
    assert f"{folder}:test (20 texts)" in result.stdout

    result = invoke("gates", "-m", tiny_model, "-d", folder, "--find", "^[Tt]he$")
    assert result.exit_code == 0, result.output
    assert "'^[Tt]he$'" in result.stdout


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a_pipe_closed_early_stops_the_output_quietly(tiny_model, tmp_path, fmt):
    file = tmp_path / "many.txt"
    file.write_text("".join(f"review {i}: a wonderful film, charming and moving\n" for i in range(3000)))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "gru_sentiment", "predict", "-m", str(tiny_model), "--file", str(file), "-f", fmt]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    first = proc.stdout.readline()  # far more than a pipe holds follows: the next writes find it closed
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait() == 141, err  # as a Unix tool stopped by SIGPIPE
    assert first and err == ""


def test_piped_unit_tables_show_whole_numbers(tiny_model):
    result = invoke(
        "predict", "-m", tiny_model, "--gates", "--words", "--top-units", 3, "Not bad at all.", env={"COLUMNS": "40"}
    )
    assert result.exit_code == 0, result.output
    assert "…" not in result.stdout
    rows = [line.split() for line in result.stdout.splitlines() if line.split()[:1] == ["bad"]]
    assert len(rows) == 1 and len(rows[0]) == 1 + 2 * 2 * 3  # z and r of 3 units in each of two directions
    assert all(len(cell) == 5 and 0 <= float(cell) <= 1 for cell in rows[0][1:])


def test_csv_gate_rows_carry_each_texts_label_and_probabilities(tiny_model):
    result = invoke("predict", "-m", tiny_model, "--gates", "-f", "csv", "superb film", "dull plot")
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    plain = list(
        csv.DictReader(io.StringIO(invoke("predict", "-m", tiny_model, "-f", "csv", "superb film", "dull plot").stdout))
    )
    assert list(rows[0])[:4] == ["text_index", "label", "p_neg", "p_pos"]
    for row in rows:
        text = plain[int(row["text_index"])]
        assert (row["label"], row["p_neg"], row["p_pos"]) == (text["label"], text["p_neg"], text["p_pos"])
    assert {r["label"] for r in rows} == {"pos", "neg"}


@pytest.mark.parametrize("system", ["standard", "256", "truecolor"])
def test_gate_and_attribution_legends_name_values_not_colours(tiny_model, system):
    """An 8-colour terminal draws the palettes in its own nearest colours (grey to yellow, red to cyan): the
    legends show the colours drawn and name their ends by value or meaning, never by a colour name."""
    import re

    from rich.console import Console

    from gru_sentiment import checkpoint
    from gru_sentiment.predict import predict
    from gru_sentiment.render_gates import gate_view

    bundle = checkpoint.load(tiny_model)
    pred = predict(bundle, ["superb acting , dull plot ."], with_gates=True, with_attributions=True)[0]
    console = Console(color_system=system, force_terminal=True, record=True, width=200)
    console.print(gate_view(pred.text, pred.gates, labels=bundle.labels))
    shown = console.export_text()
    assert not re.search(r"\b(purple|violet|teal|yellow|blue|red|white|grey|gray|cyan|green)\b", shown)
    assert "0                       1" in shown and "against                       for" in shown
    assert "near 1 keeps the past state" in shown


def test_html_page_says_its_size_and_holds_at_most_html_limit_texts(tiny_model, tmp_path):
    from gru_sentiment.options import HTML_LIMIT

    page = tmp_path / "page.html"
    result = invoke("predict", "-m", tiny_model, "--html", page, "superb film", "dull plot", "-f", "jsonl")
    assert result.exit_code == 0, result.output
    kilobytes = page.stat().st_size / 1000
    assert f"wrote {page} ({kilobytes:.1f} kB)" in result.stderr

    page.unlink()
    result = invoke("predict", "-m", tiny_model, "--html", page, *["fine"] * (HTML_LIMIT + 1))
    assert result.exit_code == 2 and f"at most {HTML_LIMIT} texts" in result.output and "--html-limit" in result.output
    lines = tmp_path / "three.txt"
    lines.write_text("superb film\ndull plot\ngreat cast\n")
    result = invoke("predict", "-m", tiny_model, "--html", page, "--html-limit", 2, "--file", lines, "-f", "jsonl")
    assert result.exit_code == 2 and "at most 2 texts" in result.output and not page.exists()
    result = invoke("predict", "-m", tiny_model, "--html", page, "--html-limit", 3, "--file", lines, "-f", "jsonl")
    assert result.exit_code == 0 and page.exists()
