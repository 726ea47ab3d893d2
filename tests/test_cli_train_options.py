"""Options of `train` checked before any data is read."""

import pytest
from typer.testing import CliRunner

from gru_sentiment import data, jobs
from gru_sentiment.cli import app
from tests.corpus import reviews, write_splits

runner = CliRunner()
SMALL = ["--vocab-size", 120, "--embed-dim", 8, "--hidden-size", 8, "--max-length", 16, "--threads", 1]


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--mix", "abc"], "--mix takes"),
        (["--mix", "1,2"], "--mix has 2 weights for 1 data sets"),
        (["--val-fraction", "1.5"], "--val-fraction"),
        (["--sentence-weight", "films=2"], "no data set is called 'films'"),
        (["--streaming", "--max-steps", 5, "--vat", 1], "--vat needs the training texts in memory"),
        (["--streaming"], "--streaming needs --max-steps"),
        (["--teacher", "films=runs/x"], "with one data set"),
        (["--teacher", "no/such/teacher"], "no/such/teacher"),
        (["--tokenizer-from", "no/such/tokenizer.json"], "no/such/tokenizer.json"),
    ],
)
def test_options_are_checked_before_any_data_is_read(tmp_path, monkeypatch, extra, message):
    folder = write_splits(tmp_path / "d", "csv", *reviews(40, seed=2))

    def no_reading(*args, **kwargs):
        raise AssertionError("the data was read")

    monkeypatch.setattr(data, "load", no_reading)
    monkeypatch.setattr(jobs, "open_stream", no_reading)
    result = invoke("train", "-d", folder, "-o", tmp_path / "m", *SMALL, *extra)
    assert result.exit_code != 0 and message in result.output, result.output
    assert result.output.startswith("error: ") and result.output.count("\n") == 1  # nothing before it, no progress


def test_a_data_error_is_not_preceded_by_a_progress_bar(tmp_path):
    folder = write_splits(tmp_path / "d", "csv", ["good film", "great film"] * 5, [1, 1] * 5)
    result = invoke("train", "-d", folder, "-o", tmp_path / "m", *SMALL)
    assert result.exit_code == 1 and "at least two classes" in result.output
    assert "epoch" not in result.output and "0/?" not in result.output
