"""Reading notes (`gru_sentiment.reading`): texts mostly unknown to the shipped tokenizer, or that may not be
English, are noted (in the API, JSON, JSONL, CSV and on stderr); English texts are not."""

from pathlib import Path

import pandas as pd
import pytest

import gru_sentiment
from gru_sentiment import reading, tokenizer
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
