"""Knowledge distillation from a teacher's logits, given with the data.

A teacher that knows more than our labelled texts (a fine-tuned transformer, say) teaches through its logits:
Hinton et al.'s (2015) soft targets, as Tang et al. (2019, "Distilling Task-Specific Knowledge from BERT into
Simple Neural Networks") distil BERT into a BiLSTM. The loss is `objectives.Distillation`; this module brings
the logits to the texts.

A teacher pool is a table (a parquet, CSV or JSONL file, or a folder with such a `pool` split) with a text
column, a `teacher_logits` column (one logit per label, in the order of the label names) and, optionally, a
gold `label` (-1 or absent: none). `gru-sentiment teacher label` writes one. `attach` gives every training
text found in the pool its logits, and makes the pool's other texts a data set of their own, trained on the
teacher alone where they have no label, so a pool of sentences cut from reviews enlarges the training data.
No text of the validation split may train: the pool's copies of validation texts, and its pieces of them (a
sentence cut from a held-out review), are left out (`Validation`).
"""

from __future__ import annotations

import re

from gru_sentiment import data as data_mod
from gru_sentiment.data import TEACHER_COLUMN, TextData
from gru_sentiment.errors import DataError

GRAM = 4  # a pool text whose first and last GRAM words both occur in a validation text counts as a piece of one
_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)


def _words(text: str) -> list[str]:
    return _BREAK.sub(" ", text).lower().split()


def read_pool(spec: str, label_names: list[str], text_column: str | None = None) -> TextData:
    """A teacher pool's texts, gold labels (-1: none) and logits; `spec` is a file, or a folder holding a `pool`
    split."""
    table, _ = data_mod._open(spec, "pool")
    columns = list(table.column_names)
    if TEACHER_COLUMN not in columns:
        raise DataError(f"teacher pool {spec} has no '{TEACHER_COLUMN}' column (columns: {', '.join(columns)})")
    text_col = data_mod._pick(columns, text_column, data_mod.TEXT_COLUMNS, "text", "--text-column")
    texts, logits = table[text_col], table[TEACHER_COLUMN]
    k = len(label_names)
    bad = next((i for i, x in enumerate(logits) if x is None or len(x) != k), None)
    if bad is not None:
        raise DataError(f"teacher pool {spec}: row {bad} has no {k} logits (one per label: {', '.join(label_names)})")
    labels = list(table["label"]) if "label" in columns else [-1] * len(texts)
    if any(not isinstance(y, int) or not -1 <= y < k for y in labels):
        raise DataError(f"teacher pool {spec}: labels must be -1 (none) or 0 to {k - 1}")
    return TextData(list(texts), labels, list(label_names), spec, teacher=list(logits))


class Validation:
    """The validation texts, to keep a pool's copies of them and pieces of them out of training."""

    def __init__(self, texts: list[str]):
        self.exact = {" ".join(_words(t)) for t in texts}
        self.grams = {
            hash(tuple(w[i : i + GRAM])) for t in texts if len(w := _words(t)) >= GRAM for i in range(len(w) - GRAM + 1)
        }

    def holds(self, text: str) -> bool:
        """Whether `text` is a validation text, or likely a piece of one (its first and last GRAM words are)."""
        words = _words(text)
        if " ".join(words) in self.exact:
            return True
        return (
            len(words) >= GRAM and hash(tuple(words[:GRAM])) in self.grams and hash(tuple(words[-GRAM:])) in self.grams
        )


def attach(parts: list[TextData], val: TextData, pool: TextData) -> tuple[TextData, int]:
    """Give each training data set of `parts` the pool's logits for the texts the pool has (in place). Returns the
    pool's other texts that validation does not hold, as a data set of their own, and how many pool texts were
    left out as validation's."""
    index = {text: i for i, text in enumerate(pool.texts)}
    for part in parts:
        if pool.label_names != part.label_names:
            raise DataError(f"teacher pool {pool.source}: labels {pool.label_names}, training {part.label_names}")
        had = part.teacher or [None] * len(part)
        part.teacher = [
            pool.teacher[index[t]] if had[i] is None and t in index else had[i] for i, t in enumerate(part.texts)
        ]
    trained = {t for part in parts for t in part.texts}
    held_out = Validation(val.texts) if len(val) else None
    rest, left_out = [], 0
    for i, text in enumerate(pool.texts):
        if text in trained:
            continue
        if held_out is not None and held_out.holds(text):
            left_out += 1
        else:
            rest.append(i)
    return pool.subset(rest, f"{pool.source} (teacher pool)"), left_out
