"""Reading notes (`gru_sentiment.reading`): texts mostly unknown to the shipped tokenizer, or that may not be
English, are noted (in the API, JSON, JSONL, CSV and on stderr); English texts are not."""

import csv
import io
import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import gru_sentiment
from gru_sentiment import reading, tokenizer
from gru_sentiment.cli import app
from tests.conftest import shared_split

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "models" / "gru-reviews"
FOREIGN = [
    "Das Essen war schrecklich.",
    "Der Kellner war sehr unfreundlich und das Zimmer schmutzig.",
    "La comida estaba deliciosa y el servicio excelente.",
    "Le service était horrible, je ne reviendrai jamais.",
    "Ótimo produto, chegou rápido!",
    "Muy malo, no lo recomiendo.",
]
UNKNOWN = ["😡", "😍", "😍 !!!", "Terrible 😡", "非常好吃"]
runner = CliRunner()


@pytest.fixture(scope="module")
def tok():
    return tokenizer.load(str(SHIPPED / "tokenizer.json"))


def flagged(tok, texts):
    return [(text, found) for text, found in zip(texts, reading.notes_for_texts(tok, texts)) if found]


def test_emoji_and_unknown_scripts_are_mostly_unknown(tok):
    assert reading.notes_for_texts(tok, UNKNOWN) == [[reading.UNKNOWN]] * len(UNKNOWN)


def test_foreign_sentences_may_not_be_english(tok):
    assert reading.notes_for_texts(tok, FOREIGN) == [[reading.NOT_ENGLISH]] * len(FOREIGN)


def test_english_with_an_emoji_short_texts_and_blanks_are_not_noted(tok):
    texts = ["I love it 😍", "Great hotel.", "Schrecklich!", "Superb", "!!!", "", "Never again.", "didnt like it"]
    assert flagged(tok, texts) == []


def test_no_everyday_english_sentence_is_noted(tok):
    texts = pd.read_csv(ROOT / "bench" / "everyday.csv")["text"].tolist()
    assert len(texts) == 122 and flagged(tok, texts) == []


def test_no_sst2_validation_sentence_of_the_first_200_is_noted(tok):
    texts = pd.read_parquet(shared_split("sst2", "validation"))["sentence"].tolist()[:200]
    assert len(texts) == 200 and flagged(tok, texts) == []


def test_api_prediction_carries_the_notes():
    clf = gru_sentiment.load(SHIPPED, device="cpu")
    german, emoji, english = clf.predict([FOREIGN[0], "😡", "A wonderful, moving film."])
    assert german.notes == [reading.NOT_ENGLISH] and emoji.notes == [reading.UNKNOWN] and english.notes == []
    assert list(german.to_dict()) == ["text", "label", "probabilities", "truncated", "notes"]
    assert german.to_dict()["notes"] == [reading.NOT_ENGLISH] and english.to_dict()["notes"] == []
    assert clf.explain("😍").notes == [reading.UNKNOWN]


def predict(*args):
    result = runner.invoke(app, ["predict", "-m", str(SHIPPED), *args])
    assert result.exit_code == 0, result.output
    return result


def test_json_and_jsonl_records_end_with_their_notes():
    records = json.loads(predict("-f", "json", FOREIGN[0], "Great hotel.").stdout)
    assert [list(r) for r in records] == [["text", "label", "probabilities", "notes"]] * 2
    assert [r["notes"] for r in records] == [[reading.NOT_ENGLISH], []]
    lines = predict("-f", "jsonl", "😡", "Great hotel.").stdout.splitlines()
    assert [json.loads(line)["notes"] for line in lines] == [[reading.UNKNOWN], []]


def test_csv_has_a_notes_column():
    rows = list(csv.DictReader(io.StringIO(predict("-f", "csv", FOREIGN[1], "😡", "Great hotel.").stdout)))
    assert list(rows[0]) == ["text_index", "text", "label", "p_neg", "p_pos", "notes"]
    assert [r["notes"] for r in rows] == [reading.NOT_ENGLISH, reading.UNKNOWN, ""]


def test_table_view_notes_each_noted_text_on_stderr_as_written():
    result = predict("Great hotel.", "[b]😡[/b] 😍", "A fine film.", FOREIGN[0])
    notes = [line for line in result.stderr.splitlines() if line.startswith("note: text")]
    assert notes == [
        'note: text 1 ("[b]😡[/b] 😍"): mostly unknown to the model\'s tokenizer',
        'note: text 3 ("Das Essen war…"): may not be English (the model reads English)',
    ]
    assert "note:" not in result.stdout


def test_machine_formats_leave_stderr_quiet():
    assert "note:" not in predict("-f", "json", FOREIGN[0]).stderr
