"""What `predict` reads: tables by their text column, lines of other files, stdin, and odd inputs (a directory, a
byte-order mark, a directory that is not a model)."""

import csv
import io
import json

import pytest
from typer.testing import CliRunner

from gru_sentiment import checkpoint, textio
from gru_sentiment.cli import app
from gru_sentiment.errors import DataError, ModelError

runner = CliRunner()
TEXTS = ["a wonderful film , really charming .", "the plot was dull and tedious ."]


def invoke(*args, **kwargs):
    return runner.invoke(app, [str(a) for a in args], **kwargs)


def predicted_texts(result) -> list[str]:
    assert result.exit_code == 0, result.output
    return [row["text"] for row in csv.DictReader(io.StringIO(result.stdout))]


@pytest.mark.parametrize("suffix", ["csv", "jsonl", "json", "parquet"])
def test_table_files_are_read_by_their_text_column(tiny_model, tmp_path, suffix):
    import pandas as pd

    frame = pd.DataFrame({"id": [7, 8], "review": TEXTS, "stars": [5, 1]})
    path = tmp_path / f"mine.{suffix}"
    if suffix == "csv":
        frame.to_csv(path, index=False)
    elif suffix == "parquet":
        frame.to_parquet(path)
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in frame.to_dict("records")))
    assert predicted_texts(invoke("predict", "-m", tiny_model, "--file", path, "-f", "csv")) == TEXTS  # guessed

    frame["body"] = ["superb acting .", "awful ending ."]
    frame.to_csv(tmp_path / "two.csv", index=False)
    result = invoke("predict", "-m", tiny_model, "--file", tmp_path / "two.csv", "--text-column", "body", "-f", "csv")
    assert predicted_texts(result) == ["superb acting .", "awful ending ."]
    result = invoke("predict", "-m", tiny_model, "--file", tmp_path / "two.csv", "--text-column", "title")
    assert result.exit_code == 1 and "no text column 'title'" in result.output


def test_other_files_are_one_text_a_line_and_options_for_tables_are_refused_there(tiny_model, tmp_path):
    path = tmp_path / "notes.log"
    path.write_text("text,label\n" + "\n".join(TEXTS) + "\n")
    assert predicted_texts(invoke("predict", "-m", tiny_model, "--file", path, "-f", "csv")) == ["text,label", *TEXTS]
    result = invoke("predict", "-m", tiny_model, "--file", path, "--text-column", "text")
    assert result.exit_code == 2 and "--text-column needs a --file table" in result.output
    (tmp_path / "t.csv").write_text("text\nfine\n")
    result = invoke("predict", "-m", tiny_model, "--file", tmp_path / "t.csv", "--errors", "skip")
    assert result.exit_code == 2 and "--errors is for files of lines" in result.output


def test_a_lone_dash_reads_stdin(tiny_model):
    result = invoke("predict", "-m", tiny_model, "-", "-f", "csv", input="Loved it\n\nsuperb acting .\n")
    assert predicted_texts(result) == ["Loved it", "superb acting ."]
    result = invoke("predict", "-m", tiny_model, "fine", "-")
    assert result.exit_code == 2 and "give it alone" in result.output


def test_a_directory_is_named_as_one(tiny_model, tmp_path):
    result = invoke("predict", "-m", tiny_model, "--file", tmp_path)
    assert result.exit_code == 1 and f"error: {tmp_path} is a directory" in result.output


def test_a_byte_order_mark_is_not_part_of_the_first_text(tiny_model, tmp_path):
    bom = "\ufeff".encode()
    (tmp_path / "w.txt").write_bytes(bom + b"Great hotel\r\nAwful stay\r\n")
    (tmp_path / "w.csv").write_bytes(bom + b"text,label\nGreat hotel,pos\n")
    for path in (tmp_path / "w.txt", tmp_path / "w.csv"):
        assert predicted_texts(invoke("predict", "-m", tiny_model, "--file", path, "-f", "csv"))[0] == "Great hotel"
    result = runner.invoke(app, ["predict", "-m", str(tiny_model), "-", "-f", "csv"], input=bom + b"Great hotel\n")
    assert predicted_texts(result) == ["Great hotel"]


def test_a_config_without_format_version_is_not_a_model_directory(tiny_model, tmp_path):
    import shutil

    target = tmp_path / "copy"
    shutil.copytree(tiny_model, target)
    config = json.loads((target / "config.json").read_text())
    del config["format_version"]
    (target / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match="is not a gru-sentiment model directory"):
        checkpoint.load(target)
    result = invoke("predict", "-m", target, "fine")
    assert result.exit_code == 1 and "upgrade" not in result.output


def test_flags_are_shown_as_flags_and_take_no_value(tiny_model):
    for command in ([], ["predict"], ["train"], ["evaluate"]):
        result = invoke(*command, "--help")
        assert result.exit_code == 0 and "<bool>" not in result.output
    result = invoke("predict", "-m", tiny_model, "--words", "true", "Not bad")
    assert result.exit_code == 2 and "a flag takes no value: drop 'true'" in result.output
    result = invoke("predict", "-m", tiny_model, "--attributions", "--words", "-f", "csv", "--", "true")
    assert result.exit_code == 0 and {r["text_index"] for r in csv.DictReader(io.StringIO(result.stdout))} == {"0"}


def test_a_gates_value_that_is_not_a_choice_is_an_error_never_a_text(tiny_model):
    result = invoke("predict", "-m", tiny_model, "--gates", "half", "hi")
    assert result.exit_code == 2 and "'half' is not one of 'mean', 'full'" in result.output
    for args, texts in (
        (["--gates", "superb acting ."], ["superb acting ."]),  # a text of several words
        (["--gates", "full", "fine"], ["fine"]),
        (["--gates", "--", "half"], ["half"]),
        (["half", "--gates"], ["half"]),
    ):
        result = invoke("predict", "-m", tiny_model, "-f", "jsonl", *args)
        assert result.exit_code == 0, result.output
        records = [json.loads(line) for line in result.stdout.splitlines()]
        assert [r["text"] for r in records] == texts and all("gates" in r for r in records)


def test_version():
    from gru_sentiment import __version__

    result = invoke("--version")
    assert result.exit_code == 0 and result.stdout == f"gru-sentiment {__version__}\n"


def test_tables_are_read_a_batch_at_a_time(tmp_path, monkeypatch):
    """Parquet, CSV and JSON lines stream: the first texts come out before a bad row further down is read, so a
    table of any size is never held whole (the text column alone is read from parquet and CSV)."""
    pd = pytest.importorskip("pandas")
    monkeypatch.setattr(textio, "TABLE_BATCH", 4)
    rows = [f"review {i}, with a comma\nand a line break" for i in range(30)]
    frame = pd.DataFrame({"id": range(30), "body": rows, "stars": [5] * 30})
    frame.loc[25, "body"] = None
    paths = {"parquet": tmp_path / "t.parquet", "csv": tmp_path / "t.csv", "jsonl": tmp_path / "t.jsonl"}
    frame.to_parquet(paths["parquet"], row_group_size=4)
    frame.to_csv(paths["csv"], index=False)
    frame.to_json(paths["jsonl"], orient="records", lines=True)
    for path in paths.values():
        texts = textio.table_texts(path, "body")
        assert [next(texts) for _ in range(20)] == rows[:20], path  # quoted line breaks and commas intact
        with pytest.raises(DataError, match="row 26 has no text in column 'body'"):
            list(texts)
        with pytest.raises(DataError, match=r"no text column 'title' \(columns: id, body, stars\)"):
            textio.table_texts(path, "title")


def test_a_json_lines_table_names_its_bad_line(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"text": "fine"}\n\n{"text": "also fine"}\n{"text": oops}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"t\.jsonl:4: not a JSON object"):
        list(textio.table_texts(path))


def test_a_csv_reads_na_as_a_text_and_names_itself_in_a_bad_row_further_down(tmp_path, monkeypatch):
    path = tmp_path / "t.csv"
    rows = "".join(f"{i},review {i} {'and so on ' * 5}\n" for i in range(40_000))  # past the reader's first block
    path.write_text("id,text\n0,NA\n1,null\n" + rows + "9,a,row,too,long\n", encoding="utf-8")
    texts = textio.table_texts(path)
    assert [next(texts), next(texts)] == ["NA", "null"]
    with pytest.raises(DataError, match=r"could not read .*t\.csv: "):
        list(texts)
