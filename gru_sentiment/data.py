"""Load labelled texts from the Hugging Face Hub or local files, into memory (`streaming.py` reads them as a
stream, `tokenizer.encode_data` tokenizes them).

`--dataset` accepts:
- a known name (`imdb`, `sst2`, `rotten_tomatoes`, `yelp_polarity`, `amazon_polarity`), mapped to its hub id,
  columns and label names;
- any other hub id (`owner/name`);
- a local path: a folder of `{split}.parquet|csv|jsonl|json` files, a single such file, or an aclImdb-style
  folder (`{split}/pos/*.txt`, `{split}/neg/*.txt`).
"""

from __future__ import annotations

import glob
import os
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from gru_sentiment.errors import DataError, UsageError, first_line


@dataclass(frozen=True)
class Known:
    hub_id: str
    text_column: str
    label_names: tuple[str, ...]


KNOWN = {
    "imdb": Known("stanfordnlp/imdb", "text", ("neg", "pos")),
    "sst2": Known("stanfordnlp/sst2", "sentence", ("neg", "pos")),
    "rotten_tomatoes": Known("cornell-movie-review-data/rotten_tomatoes", "text", ("neg", "pos")),
    "yelp_polarity": Known("fancyzhx/yelp_polarity", "text", ("neg", "pos")),
    "amazon_polarity": Known("fancyzhx/amazon_polarity", "content", ("neg", "pos")),
}
TEXT_COLUMNS = ("text", "sentence", "review", "content", "document")
LABEL_COLUMNS = ("label", "labels", "sentiment", "polarity")
TEACHER_COLUMN = "teacher_logits"  # a teacher's logits per row, in the order of the label names
FORMATS = {".parquet": "parquet", ".csv": "csv", ".jsonl": "json", ".json": "json"}


@dataclass
class TextData:
    """Texts with integer labels in [0, len(label_names)).

    When the texts come from a `datasets` table, `table`, `text_column` and `rows` (which of its rows, in
    order; None for all) let `encode` tokenize with `datasets.map`, in parallel and cached.
    Several data sets together (`concat`) record which one each text came from: `groups[i]` indexes
    `group_names`. Rows whose label is -1 (the Hub's "no label", e.g. IMDB's unlabelled reviews or 3-star
    hotel reviews) are not labelled examples: their texts are kept apart in `unlabelled`.
    `teacher[i]`, where the data carries a teacher's logits (a `teacher_logits` column, or a pool matched by
    text: `distill`), is text i's logits, or None; a text of a teacher pool may then have label -1 (no gold
    label: it trains on the teacher alone).
    """

    texts: list[str]
    labels: list[int]
    label_names: list[str]
    source: str
    table: object = None
    text_column: str | None = None
    rows: list[int] | None = None
    groups: list[int] | None = None
    group_names: list[str] | None = None
    unlabelled: list[str] = field(default_factory=list)
    teacher: list[list[float] | None] | None = None

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, indices: list[int], source: str | None = None) -> TextData:
        rows = [self.rows[i] for i in indices] if self.rows is not None else list(indices)
        groups = [self.groups[i] for i in indices] if self.groups is not None else None
        return TextData(
            [self.texts[i] for i in indices],
            [self.labels[i] for i in indices],
            self.label_names,
            source or self.source,
            self.table,
            self.text_column,
            rows if self.table is not None else None,
            groups,
            self.group_names,
            teacher=[self.teacher[i] for i in indices] if self.teacher is not None else None,
        )


def load(
    spec: str,
    split: str,
    text_column: str | None = None,
    label_column: str | None = None,
    label_names: list[str] | None = None,
    label_map: dict[str, str] | None = None,
) -> TextData:
    """Load one split of a data set, named or local, as texts and label indices; `label_map` (see
    `parse_label_map`) renames labels as they are read."""
    table, known = _open(spec, split)
    if known:
        text_column = text_column or (known.text_column if known.text_column in table.column_names else None)
        label_names = label_names or list(known.label_names)
    return _to_text_data(table, f"{spec}:{split}", text_column, label_column, label_names, label_map)


def parse_label_map(spec: str | None) -> dict[str, str]:
    """`--label-map OLD=NEW,...` (e.g. `negative=neg,positive=pos`) as {OLD: NEW}. Labels are renamed as they are
    read, before anything else looks at them; OLD is a label as written (a class name, or digits: `0=neg`)."""
    mapping: dict[str, str] = {}
    for part in spec.split(",") if spec is not None else ():
        old, eq, new = (piece.strip() for piece in part.partition("="))
        if not (eq and old and new):
            raise UsageError(
                f"--label-map takes OLD=NEW pairs separated by commas, e.g. negative=neg,positive=pos; not {spec!r}"
            )
        if old in mapping:
            raise UsageError(f"--label-map renames {old!r} twice")
        mapping[old] = new
    return mapping


def load_texts(spec: str, split: str, text_column: str | None = None) -> TextData:
    """The texts of one split, labels ignored (IMDB's `unsupervised` split has none): for pre-training.
    Every label is 0 of the single name "unlabelled"."""
    table, known = _open(spec, split)
    if known and text_column is None and known.text_column in table.column_names:
        text_column = known.text_column
    source = f"{spec}:{split}"
    column = _pick(list(table.column_names), text_column, TEXT_COLUMNS, "text", "--text-column")
    texts = table[column]
    if not texts:
        raise DataError(f"{source}: no rows")
    if any(t is None for t in texts):
        raise DataError(f"{source}: {sum(t is None for t in texts)} rows have no text in column '{column}'")
    return TextData(list(texts), [0] * len(texts), ["unlabelled"], source, table, column)


def _open(spec: str, split: str):
    """The `datasets` table of one split of a local or hub data set, and what is known about it by name."""
    path = Path(spec).expanduser()
    known = KNOWN.get(path.name.lower()) if path.exists() else KNOWN.get(spec.lower())
    if path.exists():
        return _load_local(path, split), known
    if _looks_like_path(spec):
        raise DataError(f"data set path not found: {spec}")
    return _load_hub(known.hub_id if known else spec, split), known


def concat(parts: list[TextData]) -> TextData:
    """Several data sets as one; they must use the same label names."""
    first = parts[0]
    for part in parts[1:]:
        if part.label_names != first.label_names:
            raise DataError(
                f"cannot train on {first.source} and {part.source} together: labels "
                f"{first.label_names} and {part.label_names} differ (use --label-names)"
            )
    if len(parts) == 1:
        return first
    return TextData(
        [t for p in parts for t in p.texts],
        [y for p in parts for y in p.labels],
        list(first.label_names),
        " + ".join(p.source for p in parts),
        groups=[g for g, p in enumerate(parts) for _ in p.texts],
        group_names=[p.source for p in parts],
        unlabelled=[t for p in parts for t in p.unlabelled],
        teacher=[x for p in parts for x in (p.teacher or [None] * len(p))]
        if any(p.teacher is not None for p in parts)
        else None,
    )


def split_names(spec: str) -> list[str]:
    """Splits a local folder offers (file stems or aclImdb subfolders); empty for hub data sets."""
    path = Path(spec).expanduser()
    if not path.is_dir():
        return []
    names = {p.stem for p in path.iterdir() if p.suffix in FORMATS}
    names |= {p.name for p in path.iterdir() if (p / "pos").is_dir() and (p / "neg").is_dir()}
    return sorted(names)


def _datasets():
    """Import `datasets` quietly: progress is the CLI's job, not the loader's."""
    import datasets

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    return datasets


def _looks_like_path(spec: str) -> bool:
    return spec.startswith((".", "/", "~")) or spec.count("/") > 1 or Path(spec).suffix in FORMATS


def _offline_unless_hub_reachable(timeout: float = 2.0) -> None:
    """Look once whether the Hub answers (one TCP connection, `timeout` seconds); if it does not, put `datasets`
    in offline mode, so that it reads its cache or fails at once instead of retrying for half a minute.
    HF_HUB_OFFLINE=1 skips the look; so does a configured proxy (a direct connection says nothing then)."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return
    if any(os.environ.get(name) for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        with socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)), timeout):
            return
    except (OSError, ValueError):
        pass
    os.environ["HF_HUB_OFFLINE"] = os.environ["HF_DATASETS_OFFLINE"] = "1"
    if "datasets" in sys.modules:  # imported already: its constants were read from the environment then
        import datasets
        import huggingface_hub.constants

        datasets.config.HF_HUB_OFFLINE = huggingface_hub.constants.HF_HUB_OFFLINE = True


def _load_hub(hub_id: str, split: str):
    _offline_unless_hub_reachable()
    datasets = _datasets()

    try:
        return datasets.load_dataset(hub_id, split=split)
    except (ConnectionError, OSError) as exc:
        raise DataError(
            f"could not load '{hub_id}' from the Hugging Face Hub ({type(exc).__name__}); offline, point --dataset "
            "at local files: a folder of train/test .parquet|.csv|.jsonl files, one such file, or an aclImdb folder"
        ) from exc
    except ValueError as exc:  # unknown split
        raise DataError(f"data set '{hub_id}' has no split '{split}': {exc}") from exc
    except Exception as exc:  # datasets raises many types for unknown ids (DatasetNotFoundError, FileNotFoundError)
        raise DataError(f"could not load data set '{hub_id}': {exc}".splitlines()[0]) from exc


def _load_local(path: Path, split: str):
    datasets = _datasets()

    if path.is_file():
        files, fmt = [path], FORMATS.get(path.suffix.lower())
        if fmt is None:
            raise DataError(f"unsupported file type '{path.suffix}': use .parquet, .csv, .jsonl or .json")
    elif (path / split / "pos").is_dir() and (path / split / "neg").is_dir():
        return _load_acl_folder(path / split)
    else:
        files = sorted(p for p in path.iterdir() if p.stem == split and p.suffix.lower() in FORMATS)
        if not files:
            available = ", ".join(split_names(str(path))) or "none"
            raise DataError(f"no split '{split}' in {path} (splits found: {available})")
        fmt = FORMATS[files[0].suffix.lower()]
    try:
        return datasets.load_dataset(fmt, data_files={"data": [glob.escape(str(f)) for f in files]}, split="data")
    except Exception as exc:
        raise DataError(f"could not read {files[0]}: {first_line(exc)}") from exc


def _load_acl_folder(folder: Path):
    datasets = _datasets()

    texts, labels = [], []
    for label, name in enumerate(("neg", "pos")):
        for file in sorted((folder / name).glob("*.txt")):
            texts.append(file.read_text(encoding="utf-8", errors="replace"))
            labels.append(label)
    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])})
    return datasets.Dataset.from_dict({"text": texts, "label": labels}, features=features)


def text_column(columns: list[str], wanted: str | None) -> str:
    """The text column among `columns`: `wanted`, else the first of `TEXT_COLUMNS` there (a `DataError` if none)."""
    return _pick(columns, wanted, TEXT_COLUMNS, "text", "--text-column")


def _pick(columns: list[str], wanted: str | None, candidates: tuple[str, ...], what: str, option: str) -> str:
    if wanted is not None:
        if wanted not in columns:
            raise DataError(f"no {what} column '{wanted}' (columns: {', '.join(columns)})")
        return wanted
    for name in candidates:
        if name in columns:
            return name
    raise DataError(f"cannot guess the {what} column among {', '.join(columns)}: pass {option}")


def _to_text_data(
    table,
    source: str,
    text_column: str | None,
    label_column: str | None,
    label_names: list[str] | None,
    label_map: dict[str, str] | None = None,
) -> TextData:
    datasets = _datasets()

    columns = list(table.column_names)
    text_col = _pick(columns, text_column, TEXT_COLUMNS, "text", "--text-column")
    label_col = _pick(columns, label_column, LABEL_COLUMNS, "label", "--label-column")
    texts, raw = table[text_col], table[label_col]
    if any(t is None for t in texts):
        raise DataError(f"{source}: {sum(t is None for t in texts)} rows have no text in column '{text_col}'")
    if any(v is None for v in raw):
        raise DataError(f"{source}: {sum(v is None for v in raw)} rows have no label in column '{label_col}'")
    if not texts:
        raise DataError(f"{source}: no rows")
    feature = table.features[label_col]
    rows, unlabelled, texts, raw = None, [], list(texts), list(raw)
    if any(v == -1 for v in raw) and not all(v == -1 for v in raw):  # the Hub's "no label": not an example
        rows = [i for i, v in enumerate(raw) if v != -1]
        unlabelled = [t for t, v in zip(texts, raw) if v == -1]
        texts, raw = [texts[i] for i in rows], [raw[i] for i in rows]
    if label_map:  # renamed as written: a class label by its name
        written = [feature.names[v] for v in raw] if isinstance(feature, datasets.ClassLabel) else raw
        raw, feature = [label_map.get(str(v), v) for v in written], None
    if isinstance(feature, datasets.ClassLabel):
        names, labels = list(feature.names), list(raw)
    else:
        labels, names = _index_labels(list(raw), label_names, source)
    teacher = None
    if TEACHER_COLUMN in columns:
        logits = table[TEACHER_COLUMN]
        teacher = [logits[i] for i in rows] if rows is not None else list(logits)
    return TextData(list(texts), labels, names, source, table, text_col, rows, unlabelled=unlabelled, teacher=teacher)


def _index_labels(raw: list, label_names: list[str] | None, source: str) -> tuple[list[int], list[str]]:
    """Map raw labels (ints or strings) to indices. Ints 0..K-1 keep their value; others are sorted."""
    if label_names is not None and all(isinstance(v, str) for v in raw):
        lookup = {name: i for i, name in enumerate(label_names)}
        unknown = sorted(set(raw) - set(lookup))
        if unknown:
            raise DataError(
                f"{source}: labels not in {label_names}: {', '.join(map(str, unknown[:5]))} "
                "(--label-map OLD=NEW,... renames them)"
            )
        return [lookup[v] for v in raw], list(label_names)
    values = sorted(set(raw), key=lambda v: (isinstance(v, str), v))
    if all(isinstance(v, int) for v in values) and values == list(range(len(values))):
        names = list(label_names) if label_names else [str(v) for v in values]
        if len(names) < len(values):
            raise DataError(f"{source}: {len(values)} label values but only {len(names)} label names")
        return list(raw), names
    if (
        label_names is not None
        and all(isinstance(v, int) for v in values)
        and max(values) < len(label_names)
        and min(values) >= 0
    ):
        return list(raw), list(label_names)
    lookup = {v: i for i, v in enumerate(values)}
    return [lookup[v] for v in raw], [str(v) for v in values]
