"""The model in models/ works straight after install, and still scores what its model card says."""

import json

from typer.testing import CliRunner

from gru_sentiment import checkpoint
from gru_sentiment.cli import app, default_model_dir
from tests.conftest import shared_split

runner = CliRunner()


def test_predict_without_model_option_uses_the_shipped_model(monkeypatch, tmp_path):
    monkeypatch.delenv("GRU_SENTIMENT_MODEL", raising=False)
    monkeypatch.chdir(tmp_path)  # works wherever the command is run from
    assert default_model_dir().name == "gru-reviews" and default_model_dir().is_dir()
    result = runner.invoke(app, ["predict", "-f", "json", "A wonderful, moving film.", "A dull, tedious mess."])
    assert result.exit_code == 0, result.output
    assert [p["label"] for p in json.loads(result.stdout)] == ["pos", "neg"]


def test_environment_variable_points_at_another_model(monkeypatch, tiny_model):
    monkeypatch.setenv("GRU_SENTIMENT_MODEL", str(tiny_model))
    result = runner.invoke(app, ["predict", "-f", "json", "superb film ."])
    assert result.exit_code == 0 and json.loads(result.stdout)[0]["label"] == "pos"


def test_shipped_model_config_and_size():
    config = checkpoint.read_config(default_model_dir())
    assert config["labels"] == ["neg", "pos"] and config["model"]["bidirectional"] is True
    assert checkpoint.load(default_model_dir()).cut.tail == 382  # the model card: long reviews read head+tail
    assert (default_model_dir() / "model.safetensors").stat().st_size < 25 * 2**20


def test_shipped_model_accuracy_on_sst2_validation():
    shared_split("sst2", "validation")
    result = runner.invoke(
        app, ["evaluate", "-d", str(shared_split("sst2", "validation").parent), "--split", "validation", "-f", "json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["n"] == 872 and report["accuracy"] >= 0.85  # model card: 0.8555 (746 of 872)


def test_shipped_model_reads_the_book_review_as_readme_says(monkeypatch):
    monkeypatch.delenv("GRU_SENTIMENT_MODEL", raising=False)
    texts = [
        "This is a fantasy book which illustrates the adventures of a young wizard.",
        "I didn't quite enjoy the book because I think it captures too many details.",
    ]
    result = runner.invoke(app, ["predict", "-f", "json", *texts])
    assert result.exit_code == 0, result.output
    preds = json.loads(result.stdout)
    assert [p["label"] for p in preds] == ["pos", "neg"]  # README: p(neg) of the second 0.6882
    assert abs(preds[1]["probabilities"]["neg"] - 0.6882) < 0.01


EVERYDAY_REVIEWS = [  # written for this test: products, apps, hotels, restaurants and books; some negations
    ("Works exactly as described, fast shipping.", "pos"),
    ("The hotel room was clean and the staff were friendly.", "pos"),
    ("Five stars. Would buy again.", "pos"),
    ("Great app, easy to use and it never crashes.", "pos"),
    ("The pasta was delicious and the waiter was lovely.", "pos"),
    ("I couldn't put this book down, a wonderful read.", "pos"),
    ("Not bad at all, I would happily stay here again.", "pos"),
    ("The battery lasts all day and the screen is gorgeous.", "pos"),
    ("Best pizza in town, we will definitely be back.", "pos"),
    ("The characters are warm and the ending made me smile.", "pos"),
    ("The app keeps crashing and logging me out.", "neg"),
    ("Customer service hung up on me twice.", "neg"),
    ("It never worked, I want my money back.", "neg"),
    ("The room smelled of smoke and the sheets were dirty.", "neg"),
    ("The food was cold and we waited an hour for it.", "neg"),
    ("Broke after two days. Complete waste of money.", "neg"),
    ("Too many ads, I uninstalled it after a day.", "neg"),
    ("The plot is dull and I didn't finish the book.", "neg"),
    ("Not worth the price, the charger stopped working within a week.", "neg"),
    ("Rude staff and a noisy room, I would not recommend this hotel.", "neg"),
]


def test_shipped_model_is_right_about_everyday_reviews(monkeypatch):
    monkeypatch.delenv("GRU_SENTIMENT_MODEL", raising=False)
    result = runner.invoke(app, ["predict", "-f", "json", *[text for text, _ in EVERYDAY_REVIEWS]])
    assert result.exit_code == 0, result.output
    predicted = [p["label"] for p in json.loads(result.stdout)]
    wrong = [text for (text, label), got in zip(EVERYDAY_REVIEWS, predicted) if got != label]
    assert len(wrong) <= 2, f"{len(wrong)} of 20 wrong: {wrong}"
