"""Test helpers: small labelled review texts written for the tests (clear polarity words in varied sentences),
data folders made of them, and the `train` command run in a child process."""

import json
import os
import random
import subprocess
import sys

POSITIVE = ["wonderful", "great", "moving", "brilliant", "delightful", "superb", "charming", "excellent"]
NEGATIVE = ["awful", "boring", "terrible", "dull", "tedious", "horrible", "clumsy", "dreadful"]
NEUTRAL = ["film", "book", "story", "plot", "acting", "ending", "cast", "script"]
FRAMES = [
    "the {n} was {a} .",
    "a {a} {n} , really {a} .",
    "i found the {n} {a} and the {m} {a} .",
    "honestly the {n} felt {a} from start to end .",
    "{a} ! what a {a} {n} .",
]


def reviews(n: int, seed: int = 0, classes: int = 2) -> tuple[list[str], list[int]]:
    """n texts with labels 0 (negative), 1 (positive) and, for classes=3, 2 (neutral: no polarity word)."""
    rng = random.Random(seed)
    texts, labels = [], []
    for i in range(n):
        label = i % classes
        words = {0: NEGATIVE, 1: POSITIVE, 2: ["okay", "average", "plain", "ordinary"]}[label]
        frame = rng.choice(FRAMES)
        texts.append(frame.format(n=rng.choice(NEUTRAL), m=rng.choice(NEUTRAL), a=rng.choice(words)))
        labels.append(label)
    return texts, labels


def write_splits(folder, fmt, texts, labels, column="text", label_column="label"):
    import pandas as pd

    folder.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame({column: texts, label_column: labels})
    for split in ("train", "test"):
        path = folder / f"{split}.{fmt}"
        if fmt == "parquet":
            frame.to_parquet(path)
        elif fmt == "csv":
            frame.to_csv(path, index=False)
        else:
            path.write_text("".join(json.dumps(r) + "\n" for r in frame.to_dict("records")))
    return folder


def train(*args, nproc=1):
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc)]
    command = (launcher if nproc > 1 else [sys.executable]) + ["-m", "gru_sentiment", "train", *args]
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"},
    )


def small_model(vocab=150, max_length=32, embed=8, hidden=6) -> list[str]:
    """`train` settings for a model that trains in seconds: a small vocabulary, short texts, a tiny GRU."""
    keys = {"tokenizer.vocab_size": vocab, "tokenizer.max_length": max_length, "model.embed_dim": embed}
    keys["model.hidden_size"] = hidden
    return [arg for key, value in keys.items() for arg in ("--set", f"{key}={value}")]


def write_pool(path, texts, logits, labels=None):
    """A teacher pool: texts, gold labels (-1: none) and a teacher's logits, as parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    labels = [-1] * len(texts) if labels is None else labels
    table = pa.table(
        {"text": list(texts), "label": list(labels), "teacher_logits": pa.array(logits, type=pa.list_(pa.float32()))}
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path
