"""The exit codes of the ``busway`` command, which scripts may rely on."""

from __future__ import annotations

from typing import Final

OK: Final = 0
"""The command did what it was asked."""
REFUSED: Final = 1
"""busway refused: a store error, a projection that failed, events that stayed parked."""
USAGE: Final = 2
"""The command line is wrong: an unknown option, an import path that does not load."""
NO_STORE: Final = 3
"""The target is missing, or holds no busway store."""
NO_EXTRA: Final = 4
"""The ``cli`` extra is not installed."""
INTERRUPTED: Final = 130
"""Ctrl-C stopped a command that had not finished (``tail`` ends with 0 instead)."""


class Failure(Exception):
    """Ends the command with *code*, printing *message* to stderr."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
