import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never wait on the network in tests
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_CACHE", tempfile.mkdtemp(prefix="gru-sentiment-tests-hf-"))  # not the user's

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """A small bidirectional model trained for a few seconds on the test corpus; returns its directory."""
    import torch

    from gru_sentiment.data import TextData
    from gru_sentiment.jobs import TokenizerSettings, train_model
    from gru_sentiment.train import TrainConfig
    from tests.corpus import reviews

    torch.set_num_threads(1)
    texts, labels = reviews(400, seed=1)
    val_texts, val_labels = reviews(80, seed=2)
    out = tmp_path_factory.mktemp("models") / "tiny"
    train_model(
        TextData(texts, labels, ["neg", "pos"], "corpus:train"),
        TextData(val_texts, val_labels, ["neg", "pos"], "corpus:val"),
        TokenizerSettings("wordpiece", 200, 64),
        dict(embed_dim=16, hidden_size=12, num_layers=1, bidirectional=True, dropout=0.1),
        TrainConfig(epochs=4, batch_size=16, lr=1e-2, patience=4),
        str(out),
        torch.device("cpu"),
    )
    return out


def shared_split(name: str, split: str) -> Path:
    path = SHARED_DATA / name / f"{split}.parquet"
    if not path.exists():
        pytest.skip(f"shared data not present: {path}")
    return path
