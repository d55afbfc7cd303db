"""The errors a user can cause, and how the command line reports them.

Every error that comes from a user's input or the environment (a configuration key, a data file,
a run directory, a checkpoint, the file system, an interruption) derives from :class:`LhlError`.
The CLI prints such an error as one line, ``lhl: error: <message>``, and exits with the error's
``exit_code``; anything else is a bug in lhl and keeps its traceback. A message names the key,
value or file and says what was expected.
"""

from __future__ import annotations


class LhlError(Exception):
    """Base class: a user or environment error, reported on one line by the CLI."""

    exit_code: int = 1


class ConfigError(LhlError, ValueError):
    """Invalid configuration key or value, or invalid command-line usage."""

    exit_code = 2


class UnknownNameError(LhlError, KeyError):
    """A name that is not registered; the message lists the valid names."""

    exit_code = 2

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class DataError(LhlError, ValueError):
    """A dataset file is missing, unreadable or holds unexpected content.

    The message starts with the offending path. (One string argument, so that a data-loader
    worker can re-raise it in the main process.) Exit status 2: the run cannot start with this data.
    """

    exit_code = 2


class RunDirectoryError(LhlError):
    """The run directory cannot be used: it holds another run, is locked, differs on resume,
    or one of its files is damaged."""


class CheckpointError(RunDirectoryError):
    """A checkpoint is missing, damaged, altered since it was written, or from another method."""


class NonFiniteError(LhlError):
    """A loss, a gradient or a parameter became NaN or infinite; the run stopped, the checkpoints
    of completed phases are intact."""


class ReportError(LhlError):
    """Runs cannot be compared or summarised as asked (``lhl compare``, reports)."""

    exit_code = 2


class Interrupted(LhlError):
    """SIGINT or SIGTERM stopped a run at a safe point; it can be resumed."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code
