"""Errors a user can cause and fix: the CLI prints their message as one line and exits non-zero."""


class UserError(Exception):
    """Bad input from the user (a path, a data set, an option). Exit code 1 unless `exit_code` says otherwise."""

    exit_code = 1


class DataError(UserError):
    """A data set that cannot be loaded or does not have the expected shape."""


class ModelError(UserError):
    """A model directory that is missing, incomplete, corrupted or of an unknown format."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (a library's may run to pages), or its type's name."""
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


class UsageError(UserError):
    """Options that contradict each other or make no sense together."""

    exit_code = 2
