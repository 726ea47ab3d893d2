import os

import pytest

from gru_sentiment import data
from gru_sentiment.errors import DataError
from tests.conftest import shared_split
from tests.corpus import reviews, write_splits


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_local_folder_formats(tmp_path, fmt):
    texts, labels = reviews(20)
    folder = write_splits(tmp_path / "d", fmt, texts, labels)
    loaded = data.load(str(folder), "test")
    assert loaded.texts == texts and loaded.labels == labels and loaded.label_names == ["0", "1"]
    assert data.split_names(str(folder)) == ["test", "train"]


def test_single_file_and_column_overrides(tmp_path):
    texts, labels = reviews(10)
    folder = write_splits(tmp_path / "d", "csv", texts, labels, column="body", label_column="stars")
    with pytest.raises(DataError, match="--text-column"):
        data.load(str(folder / "train.csv"), "train")
    loaded = data.load(
        str(folder / "train.csv"), "whatever", text_column="body", label_column="stars", label_names=["neg", "pos"]
    )
    assert loaded.texts == texts and loaded.label_names == ["neg", "pos"]
    with pytest.raises(DataError, match="no text column 'missing'"):
        data.load(str(folder / "train.csv"), "train", text_column="missing")


def test_string_labels_and_three_classes(tmp_path):
    texts, labels = reviews(30, classes=3)
    names = ["negative", "positive", "neutral"]
    folder = write_splits(tmp_path / "d", "jsonl", texts, [names[i] for i in labels])
    loaded = data.load(str(folder), "train")
    assert loaded.label_names == ["negative", "neutral", "positive"]  # sorted
    assert [loaded.label_names[i] for i in loaded.labels] == [names[i] for i in labels]
    # a model's label order is kept when given
    again = data.load(str(folder), "train", label_names=names)
    assert again.labels == labels and again.label_names == names


def test_acl_imdb_folder(tmp_path):
    for split in ("train", "test"):
        for name in ("pos", "neg"):
            (tmp_path / "aclImdb" / split / name).mkdir(parents=True)
            for i in range(3):
                (tmp_path / "aclImdb" / split / name / f"{i}_7.txt").write_text(f"{name} review {i}<br />end")
    loaded = data.load(str(tmp_path / "aclImdb"), "train")
    assert loaded.label_names == ["neg", "pos"] and len(loaded) == 6
    assert loaded.texts[0].startswith("neg review") and loaded.labels == [0, 0, 0, 1, 1, 1]


def test_known_folder_name_gives_label_names(tmp_path):
    texts, labels = reviews(6)
    folder = write_splits(tmp_path / "imdb", "parquet", texts, labels)
    assert data.load(str(folder), "train").label_names == ["neg", "pos"]


def test_clear_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        data.load("./no/such/folder", "train")
    folder = write_splits(tmp_path / "d", "csv", *reviews(4))
    with pytest.raises(DataError, match="no split 'validation'.*test, train"):
        data.load(str(folder), "validation")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match="unsupported file type"):
        data.load(str(tmp_path / "notes.txt"), "train")


def test_null_labels_are_an_error(tmp_path):
    (tmp_path / "train.jsonl").write_text('{"text": "good", "label": 1}\n{"text": "bad", "label": null}\n')
    with pytest.raises(DataError, match="1 rows have no label"):
        data.load(str(tmp_path), "train")


def test_hub_name_offline_fails_with_one_clear_line():
    with pytest.raises(DataError) as info:
        data.load("imdb", "test")
    message = str(info.value)
    assert "\n" not in message and "local" in message


def test_shared_imdb_loads_with_label_names():
    shared_split("imdb", "test")
    loaded = data.load(str(shared_split("imdb", "test").parent), "test")
    assert len(loaded) == 25000 and loaded.label_names == ["neg", "pos"]
    assert set(loaded.labels) == {0, 1}


def test_shared_sst2_sentence_column():
    loaded = data.load(str(shared_split("sst2", "validation").parent), "validation")
    assert len(loaded) == 872 and loaded.label_names == ["neg", "pos"]


def test_hub_path_maps_known_names_and_reads_what_datasets_returns(monkeypatch):
    """The hub code path, offline: load_dataset is asked for the right id and split, and its Dataset is used."""
    import datasets

    calls = []
    texts, labels = reviews(8)
    features = datasets.Features(
        {"sentence": datasets.Value("string"), "label": datasets.ClassLabel(names=["negative", "positive"])}
    )
    fake = datasets.Dataset.from_dict({"sentence": texts, "label": labels}, features=features)

    def load_dataset(path, split=None, **kwargs):
        calls.append((path, split))
        return fake

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    loaded = data.load("sst2", "validation")
    assert calls == [("stanfordnlp/sst2", "validation")]
    assert loaded.texts == texts and loaded.labels == labels
    assert loaded.label_names == ["negative", "positive"]  # a ClassLabel's own names win
    data.load("someone/reviews", "train")
    assert calls[-1] == ("someone/reviews", "train")


def test_encode_through_datasets_map_matches_the_tokenizer_and_is_cached(tmp_path):
    from gru_sentiment import tokenizer

    texts, labels = reviews(300, seed=2)
    folder = write_splits(tmp_path / "d", "parquet", texts, labels)
    loaded = data.load(str(folder), "train")
    tok = tokenizer.train(texts, vocab_size=120)
    first, head_tail = tokenizer.Cut(12), tokenizer.Cut(12, tail=5)
    direct = tokenizer.encode_ids(tok, texts, first)
    assert tokenizer.encode_data(loaded, tok, first, num_proc=2, min_rows=1) == direct
    part = loaded.subset([5, 0, 299])
    assert tokenizer.encode_data(part, tok, first, num_proc=2, min_rows=1) == [direct[5], direct[0], direct[299]]
    both_ends = tokenizer.encode_ids(tok, texts, head_tail)  # a tail is part of the cache key, not lost in it
    assert both_ends != direct and tokenizer.encode_data(loaded, tok, head_tail, num_proc=2, min_rows=1) == both_ends
    # datasets swaps os.environ for a copy while it maps in processes: encode_data puts the original back
    environ, parallelism = os.environ, os.environ.get("TOKENIZERS_PARALLELISM")
    tokenizer.encode_data(loaded, tok, tokenizer.Cut(11), num_proc=2, min_rows=1)
    assert os.environ is environ and os.environ.get("TOKENIZERS_PARALLELISM") == parallelism
    from pathlib import Path

    arrow_dir = Path(loaded.table.cache_files[0]["filename"]).parent
    assert list(arrow_dir.glob("cache-*.arrow"))  # map wrote its cache beside the data set's arrow files


def test_an_unreachable_hub_fails_at_once_with_one_line(tmp_path, tiny_model):
    """No network: one connection attempt, then offline mode, so no retries and no stray log lines."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")}
    env.update(HF_ENDPOINT="http://127.0.0.1:9", HF_DATASETS_CACHE=str(tmp_path / "cache"))  # port 9: nobody there
    result = subprocess.run(
        [sys.executable, "-m", "gru_sentiment", "evaluate", "-d", "imdb", "--model", str(tiny_model)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]  # one line, nothing before it
    assert result.stderr.startswith("error: could not load 'stanfordnlp/imdb' from the Hugging Face Hub")
