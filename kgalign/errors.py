"""Error types whose messages are shown to users as they are.

Exit codes (documented in docs/cli.md):
  0 success, 1 unexpected internal error, 2 bad input (file, line, problem),
  3 missing resource (weights, dataset, run), 130 interrupted.
"""

from __future__ import annotations


class KgalignError(Exception):
    """Base class: an error with a user-facing message and an exit code."""

    exit_code = 1


class InputError(KgalignError):
    """Bad user input. The message names the file, the line and what is wrong."""

    exit_code = 2

    def __init__(self, message: str, path: str | None = None, line: int | None = None):
        self.path = path
        self.line = line
        self.problem = message
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(where + message)


class MissingResourceError(KgalignError):
    """A required file, weight or run is absent (e.g. offline without weights)."""

    exit_code = 3
