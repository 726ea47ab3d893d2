"""Reading texts for prediction (arguments, files, stdin) and writing output files atomically."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from gru_sentiment.errors import DataError, UserError, first_line


def is_table(file: Path | None) -> bool:
    """Whether `predict --file` reads `file` as a table (.csv, .jsonl, .json, .parquet) rather than as lines."""
    from gru_sentiment.data import FORMATS

    return file is not None and str(file) != "-" and file.suffix.lower() in FORMATS


def read_texts(
    file: Path | None, texts: list[str], errors: str = "fail", text_column: str | None = None
) -> Iterator[str]:
    """Texts from arguments, or from a file: a table's text column (`text_column`, else guessed as `evaluate`
    guesses it), or the lines of any other file or of stdin ('-'), decoded as UTF-8 line by line.

    `errors` says what to do with a line that is not UTF-8: 'fail' (one clear error naming the line),
    'replace' (bad bytes become U+FFFD) or 'skip'. NUL characters become spaces; a byte-order mark is dropped.
    """
    if file is None:
        return iter(texts)
    if str(file) == "-":
        return _decoded_lines(sys.stdin.buffer, "<stdin>", errors)
    if file.is_dir():
        raise UserError(f"{file} is a directory: give a file of texts")
    if not file.is_file():
        raise UserError(f"no such file: {file}")
    if is_table(file):
        return table_texts(file, text_column)
    return _file_lines(file, errors)


TABLE_BATCH = 8192  # rows read from a table at a time


def table_texts(file: Path, text_column: str | None = None) -> Iterator[str]:
    """The text column of a table file (`text_column`, else guessed as `evaluate` guesses it), read a batch of
    rows at a time (CSV: blocks of a few MiB), so that memory stays flat for any size: parquet and CSV through
    pyarrow's streaming readers (the text column alone), JSON lines line by line; a .json file, which may be one
    JSON document, whole (through `datasets`). The column is checked before any text is read; a row without
    text (null, an empty CSV cell) is a `DataError` when it is reached, after the texts before it."""
    from gru_sentiment import data

    if file.suffix.lower() == ".json":
        return iter(data.load_texts(str(file), "data", text_column).texts)
    try:
        columns, batches = _column_batches(file)
    except (OSError, ValueError) as exc:  # pyarrow's errors are both
        raise DataError(f"could not read {file}: {first_line(exc)}") from exc
    column = data.text_column(columns, text_column)
    return _non_null(file, column, _reading(file, batches(column)))


def _reading(file: Path, batches: Iterator[list]) -> Iterator[list]:
    """`batches`, with a reader's error further down the file (a malformed row) named by the file."""
    try:
        yield from batches
    except (OSError, ValueError) as exc:
        raise DataError(f"could not read {file}: {first_line(exc)}") from exc


def _column_batches(file: Path) -> tuple[list[str], Callable[[str], Iterator[list]]]:
    """A table's columns, and a function giving one column's values a batch of rows at a time."""
    suffix = file.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        names = pq.read_schema(file).names

        def parquet_batches(c: str) -> Iterator[list]:
            with pq.ParquetFile(file) as table:
                for b in table.iter_batches(TABLE_BATCH, columns=[c]):
                    yield b.column(0).to_pylist()

        return names, parquet_batches
    if suffix == ".csv":
        import pyarrow as pa
        import pyarrow.csv as pacsv

        parse = pacsv.ParseOptions(newlines_in_values=True)  # a quoted review may hold line breaks

        def csv_batches(c: str) -> Iterator[list]:
            # an empty cell is a missing text (as pandas reads it); "NA" or "null" are texts
            convert = pacsv.ConvertOptions(
                include_columns=[c], column_types={c: pa.string()}, strings_can_be_null=True, null_values=[""]
            )
            with pacsv.open_csv(file, parse_options=parse, convert_options=convert) as reader:
                for b in reader:
                    yield b.column(0).to_pylist()

        with pacsv.open_csv(file, parse_options=parse) as reader:
            return reader.schema.names, csv_batches
    return _json_lines(file)


def _json_lines(file: Path) -> tuple[list[str], Callable[[str], Iterator[list]]]:
    """A JSON-lines table: its columns are its first record's keys."""
    import json

    def records() -> Iterator[dict]:
        with open(file, encoding="utf-8-sig") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError as exc:
                    raise DataError(f"{file}:{number}: not a JSON object: {first_line(exc)}") from None
                if not isinstance(record, dict):
                    raise DataError(f"{file}:{number}: not a JSON object")
                yield record

    first = next(records(), None)
    if first is None:
        raise DataError(f"{file}: no rows")

    def batches(c: str) -> Iterator[list]:
        batch: list = []
        for record in records():
            batch.append(record.get(c))
            if len(batch) == TABLE_BATCH:
                yield batch
                batch = []
        if batch:
            yield batch

    return list(first), batches


def _non_null(file: Path, column: str, batches: Iterator[list]) -> Iterator[str]:
    row = 0
    for batch in batches:
        for text in batch:
            row += 1
            if text is None:
                raise DataError(f"{file}: row {row} has no text in column '{column}'")
            if isinstance(text, bytes):
                text = text.decode("utf-8", errors="replace")
            yield text if isinstance(text, str) else str(text)
    if row == 0:
        raise DataError(f"{file}: no rows")


def _file_lines(file: Path, errors: str) -> Iterator[str]:
    with open(file, "rb") as handle:
        yield from _decoded_lines(handle, str(file), errors)


def _decoded_lines(handle, name: str, errors: str) -> Iterator[str]:
    for number, raw in enumerate(handle, start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            if errors == "skip":
                continue
            if errors == "fail":
                raise UserError(
                    f"{name}:{number}: not valid UTF-8 at byte {exc.start} (use --errors replace or --errors skip)"
                ) from exc
            line = raw.decode("utf-8", errors="replace")
        if number == 1:
            line = line.removeprefix("\ufeff")  # a byte-order mark (Windows editors write one) is not text
        yield line.rstrip("\r\n").replace("\x00", " ")


def umask() -> int:
    """The process's umask, read without changing it where Linux tells it (/proc), else by setting it back."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def give_default_modes(root: Path) -> None:
    """Give `root` and everything under it the modes any program would create them with (0777 / 0666 less the
    umask): temporary files and directories are made private (0700 / 0600), which must not outlive the rename."""
    mask = umask()
    os.chmod(root, (0o777 if root.is_dir() else 0o666) & ~mask)
    if root.is_dir():
        for folder, dirs, files in os.walk(root):
            for name in dirs:
                os.chmod(os.path.join(folder, name), 0o777 & ~mask)
            for name in files:
                os.chmod(os.path.join(folder, name), 0o666 & ~mask)


def write_text_atomically(path: Path, content: str | bytes) -> None:
    """Write a file (text as UTF-8, or bytes) through a temporary file in the same folder and a rename; the file
    gets the mode the umask gives, as any other program's would."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content.encode("utf-8") if isinstance(content, str) else content)
        give_default_modes(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
