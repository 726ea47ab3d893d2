"""Train, load and apply a subword tokenizer (Hugging Face `tokenizers`), keeping character offsets.

Normalisation removes HTML line breaks (`<br />`, as in IMDB), applies NFKC and lowercases; all of it goes
through `tokenizers`' aligned normalizers, so every token's offsets point into the *original* text.

People type "didnt" for "didn't": normalisation puts the apostrophe back in the common apostrophe-less
negations (`APOSTROPHE_LESS`), so they read like the apostrophe forms.

With `split_negations`, "n't" is split off the word before it, as the Penn Treebank (and so SST-2) writes it:
"doesn't" reads as "does n't", "can't" as "ca n't", the way SST-2's 2,200 labelled negation phrases are
written, instead of as "doesn ' t" against SST-2's "does n ' t".
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

PAD, UNK = "[PAD]", "[UNK]"
LINE_BREAK = r"<\s*br\s*/?\s*>"  # HTML line breaks (IMDB's), which normalisation turns into spaces
KINDS = ("wordpiece", "bpe")
NEGATION = r"n't\b"  # split off the word before it, as the Penn Treebank writes "does n't", "ca n't"
# "didnt" -> "didn't": the "t" after one of these stems + "n" becomes "'t" (its offsets stay on the "t")
APOSTROPHE_LESS = r"(?<=\b(?:did|do|does|ca|wo|is|was|are|were|could|would|should|have|has|had)n)t\b"


@dataclass(frozen=True)
class Encoded:
    """Token ids of one text, cut to a maximum length (see `Cut`), with the pieces and their character spans
    (empty when encoded without `with_tokens`)."""

    ids: list[int]
    tokens: list[str]
    offsets: list[tuple[int, int]]
    truncated: bool


def _normalizer() -> normalizers.Normalizer:
    return normalizers.Sequence(
        [
            normalizers.Replace(Regex(LINE_BREAK), " "),
            normalizers.NFKC(),
            normalizers.Lowercase(),
            _apostrophe_less(),
        ]
    )


def _apostrophe_less() -> normalizers.Normalizer:
    return normalizers.Replace(Regex(APOSTROPHE_LESS), "'t")


def _has_step(part: dict | None, kind: str, pattern: dict) -> bool:
    """Whether a tokenizer's normalizer or pre-tokenizer (as JSON) has a step of this type and pattern."""
    part = part or {}
    steps = part.get("normalizers") or part.get("pretokenizers") or [part]
    return any(step.get("type") == kind and step.get("pattern") == pattern for step in steps)


def splits_negations(tok: Tokenizer) -> bool:
    """Whether `tok` splits "n't" off the word before it and reads "didnt" as "didn't" (`with_split_negations`)."""
    saved = json.loads(tok.to_str())
    return _has_step(saved.get("pre_tokenizer"), "Split", {"Regex": NEGATION}) and _has_step(
        saved.get("normalizer"), "Replace", {"Regex": APOSTROPHE_LESS}
    )


def with_split_negations(tok: Tokenizer) -> Tokenizer:
    """A copy of a tokenizer that also splits "n't" off the word before it, reads the typographic apostrophe as
    "'" and "didnt" as "didn't", after whatever it did already (each step added once). The vocabulary stays:
    for a tokenizer that has read SST-2, the pieces it makes ("does", "n", "'", "t") are those it has for
    "does n't" already, so a model trained with `tok` can go on training with the copy."""
    copy = Tokenizer.from_str(tok.to_str())
    saved = json.loads(copy.to_str())
    added = []
    if not _has_step(saved.get("normalizer"), "Replace", {"String": "’"}):
        added.append(normalizers.Replace("’", "'"))  # one character for one: offsets stay exact
    if not _has_step(saved.get("normalizer"), "Replace", {"Regex": APOSTROPHE_LESS}):
        added.append(_apostrophe_less())
    if added:
        copy.normalizer = normalizers.Sequence([copy.normalizer, *added] if copy.normalizer else added)
    if not _has_step(saved.get("pre_tokenizer"), "Split", {"Regex": NEGATION}):
        split = pre_tokenizers.Split(Regex(NEGATION), behavior="isolated")
        copy.pre_tokenizer = pre_tokenizers.Sequence([split, copy.pre_tokenizer] if copy.pre_tokenizer else [split])
    return copy


def build(kind: str = "wordpiece", split_negations: bool = False) -> Tokenizer:
    """An untrained tokenizer of the given kind ('wordpiece' or 'bpe'), splitting "n't" off the word before it
    with `split_negations`."""
    if kind == "wordpiece":
        tok = Tokenizer(models.WordPiece(unk_token=UNK, max_input_chars_per_word=100))
        tok.decoder = decoders.WordPiece()
    elif kind == "bpe":
        tok = Tokenizer(models.BPE(unk_token=UNK, continuing_subword_prefix="##"))
        tok.decoder = decoders.WordPiece()
    else:
        raise ValueError(f"tokenizer kind must be one of {', '.join(KINDS)}, not {kind!r}")
    tok.normalizer = _normalizer()
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    return with_split_negations(tok) if split_negations else tok


def train(
    texts: Iterable[str],
    kind: str = "wordpiece",
    vocab_size: int = 20000,
    min_frequency: int = 2,
    split_negations: bool = False,
) -> Tokenizer:
    """Learn a subword vocabulary from `texts`. `[PAD]` is id 0 and `[UNK]` id 1."""
    tok = build(kind, split_negations)
    options = dict(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=[PAD, UNK], show_progress=False)
    if kind == "wordpiece":
        trainer = trainers.WordPieceTrainer(**options, continuing_subword_prefix="##")
    else:
        trainer = trainers.BpeTrainer(**options, continuing_subword_prefix="##")
    tok.train_from_iterator(_batches(texts), trainer=trainer)
    return tok


def _batches(texts: Iterable[str], size: int = 1000) -> Iterator[list[str]]:
    batch: list[str] = []
    for text in texts:
        batch.append(text)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


@dataclass(frozen=True)
class Cut:
    """What the model reads of a text: at most `max_length` tokens (None: all of them), the last `tail` of them
    from the text's end and the rest from its start.

    Head+tail truncation (Sun et al. 2019, "How to Fine-Tune BERT for Text Classification?"): a long review
    often states its verdict at the end, which keeping only the beginning throws away."""

    max_length: int | None = None
    tail: int = 0

    def __post_init__(self):
        max_length, tail = self.max_length, self.tail
        positive = isinstance(max_length, int) and not isinstance(max_length, bool) and max_length >= 1
        if max_length is not None and not positive:
            raise ValueError(f"max_length must be a positive integer or null, not {max_length!r}")
        if isinstance(tail, bool) or not isinstance(tail, int) or tail < 0:
            raise ValueError(f"tail must be a non-negative integer, not {tail!r}")
        if tail and (max_length is None or tail > max_length):  # without a maximum length nothing is cut
            raise ValueError(f"tail {tail} does not fit in max_length {max_length}")

    def cuts(self, length: int) -> bool:
        """Whether a text of `length` tokens is longer than what the model reads of it."""
        return self.max_length is not None and length > self.max_length

    def apply(self, seq: list) -> list:
        """The first `max_length - tail` and the last `tail` items of a sequence longer than `max_length`."""
        if not self.cuts(len(seq)):
            return seq
        head = self.max_length - self.tail
        return seq[:head] + (seq[len(seq) - self.tail :] if self.tail else [])

    def describe(self) -> str:
        """What the model reads of a long text, in words: 'first 512 tokens', 'first 130 and last 382 tokens'."""
        if self.max_length is None:
            return "all its tokens"
        if not self.tail:
            return f"first {self.max_length} tokens"
        head = self.max_length - self.tail
        return f"last {self.tail} tokens" if head == 0 else f"first {head} and last {self.tail} tokens"


def skipped(text: str, end: int, start: int) -> bool:
    """Whether the text between two tokens read one after the other holds words the model never read (the middle
    of a text cut head+tail), rather than only what tokenization drops (spaces, HTML line breaks)."""
    return bool(re.sub(LINE_BREAK, " ", text[end:start]).strip())


def encode_batch(tok: Tokenizer, texts: list[str], cut: Cut, with_tokens: bool = True) -> list[Encoded]:
    """Encode texts in parallel, each cut as `cut` says.
    A text with no tokens gets one `[UNK]` so every sequence has length >= 1.
    Without `with_tokens`, `tokens` and `offsets` are empty (but for the `[UNK]` of an empty text): building
    them as Python objects costs a third of the encoding time, and only a view of the text needs them."""
    return cut_encodings(tok, tok.encode_batch(texts, add_special_tokens=False), cut, with_tokens)


def cut_encodings(tok: Tokenizer, encodings: list, cut: Cut, with_tokens: bool = True) -> list[Encoded]:
    """`encode_batch` of encodings made already (by `tok.encode_batch(texts, add_special_tokens=False)`)."""
    unk = tok.token_to_id(UNK)
    out = []
    for enc in encodings:
        ids = enc.ids
        tokens, offsets = (enc.tokens, enc.offsets) if with_tokens else ([], [])
        truncated = cut.cuts(len(ids))
        if truncated:
            ids, tokens, offsets = (cut.apply(x) for x in (ids, tokens, offsets))
        if not ids:
            ids, tokens, offsets = [unk], [UNK], [(0, 0)]
        out.append(Encoded(ids, tokens, offsets, truncated))
    return out


def encode_ids(tok: Tokenizer, texts: list[str], cut: Cut) -> list[list[int]]:
    """Only the ids of `encode_batch`, for training."""
    return [e.ids for e in encode_batch(tok, texts, cut, with_tokens=False)]


def load(path: str) -> Tokenizer:
    return Tokenizer.from_file(path)


APOSTROPHES = ("'", "’")


def word_ids(tokens: list[str], offsets: list[tuple[int, int]] | None = None) -> list[int]:
    """For each token, the index of the word it belongs to, as people write words: a `##` continuation piece
    joins the word before it and, given the offsets, so does a contraction: an apostrophe touching the letters
    on both sides and the letters after it ("didn't", "can't", "hotel's" are one word each). Punctuation after
    a word ("book.", "good,") stays a token of its own."""
    result, word = [], -1
    for i, token in enumerate(tokens):
        # a continuation piece joins the piece it touches (not, across a head+tail cut, the head's last word)
        joins = token.startswith("##") and word >= 0 and (offsets is None or offsets[i][0] == offsets[i - 1][1])
        if offsets is not None and i > 0 and not joins:
            touches_before = offsets[i][0] == offsets[i - 1][1]
            if token in APOSTROPHES:
                after = i + 1 < len(tokens) and offsets[i + 1][0] == offsets[i][1] and tokens[i + 1][:1].isalpha()
                joins = touches_before and after and tokens[i - 1][-1:].isalnum()
            elif tokens[i - 1] in APOSTROPHES and touches_before and token[:1].isalpha():
                joins = i >= 2 and result[i - 1] == result[i - 2]  # the apostrophe joined: so do its letters
            elif token == "n" and touches_before and tokens[i - 1][-1:].isalpha():  # "does|n't", split negations
                after = tokens[i + 1 : i + 2]
                joins = bool(after) and after[0] in APOSTROPHES and offsets[i + 1][0] == offsets[i][1]
        if not joins:
            word += 1
        result.append(word)
    return result


class _Encoder:
    """Batched tokenization for `datasets.map`; picklable, and its hash (tokenizer included) keys the cache."""

    def __init__(self, tok, cut: Cut, column: str):
        self.tok, self.cut, self.column = tok, cut, column

    def __call__(self, batch: dict) -> dict:
        return {"ids": encode_ids(self.tok, batch[self.column], self.cut)}


def encode_data(data, tok, cut: Cut, num_proc: int | None = None, min_rows: int = 10000) -> list[list[int]]:
    """Token ids of every text of a `data.TextData`, each cut as `cut` says. Large tables go through
    `datasets.map(batched=True, num_proc=...)`, whose cache
    makes a second run on the same data and tokenizer instant; anything else through the tokenizer directly."""
    if data.table is None or len(data.table) < min_rows:
        return encode_ids(tok, data.texts, cut)
    from gru_sentiment.data import _datasets

    _datasets()
    # datasets (5.x) sets TOKENIZERS_PARALLELISM=false for its worker processes, then puts back a *copy* of the
    # environment as os.environ: the variable stays set underneath (the Rust tokenizer then runs on one thread in
    # this process too), and code holding the old os.environ no longer sees changes. Undo both.
    environ, parallelism = os.environ, os.environ.get("TOKENIZERS_PARALLELISM")
    try:
        mapped = data.table.map(
            _Encoder(tok, cut, data.text_column),
            batched=True,
            batch_size=1000,
            num_proc=num_proc or min(os.cpu_count() or 1, 8),
            remove_columns=data.table.column_names,
        )
    finally:
        os.environ = environ  # noqa: B003 -- put back the very object datasets replaced, not a copy
        if parallelism is None:
            environ.pop("TOKENIZERS_PARALLELISM", None)
        else:
            environ["TOKENIZERS_PARALLELISM"] = parallelism
    ids = mapped.data.column("ids").to_pylist()
    return ids if data.rows is None else [ids[i] for i in data.rows]
