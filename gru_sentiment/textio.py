"""Reading texts for prediction (arguments, files, stdin) and writing output files atomically."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from gru_sentiment.errors import UserError


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
        from gru_sentiment.data import load_texts

        return iter(load_texts(str(file), "data", text_column).texts)
    return _file_lines(file, errors)


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
