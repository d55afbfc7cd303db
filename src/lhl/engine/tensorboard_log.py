"""Optional TensorBoard event files of a run (``logging.tensorboard: true`` or ``lhl run --tensorboard``).

``events.jsonl`` stays the record of a run; this writes a copy of its numbers in TensorBoard's
format to ``RUN/tensorboard/`` (``tensorboard --logdir RUN/tensorboard``), with
``torch.utils.tensorboard.SummaryWriter``, which needs the optional ``tensorboard`` package
(``pip install 'lhl[tensorboard]'``). Tags:

- ``train/<term>`` (each loss term) and ``train/lr``: every training step;
- ``epoch/<term>``: each term's mean over an epoch (what ``epoch_end`` records);
- ``eval/<task>/<metric>``: every seen task's test metrics after each phase.

The step axis is global over the run: phase t's step s is ``(t − 1)·S + s``, with S the steps a
phase has (every phase trains on an equal chunk for the same epochs); a phase's metrics sit at the
step where it ended. A ``--resume`` appends a new event file that starts where the re-run phase
starts; its first event tells TensorBoard to hide what the interrupted attempt logged from there
on (``purge_step``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Mapping

from lhl.config.schema import TENSORBOARD_MISSING, LoggingConfig
from lhl.errors import ConfigError

__all__ = ["ScalarLog", "TensorBoardLog", "scalar_log"]


class ScalarLog:
    """What the trainer calls; this base class writes nothing (TensorBoard off)."""

    def scalar(self, tag: str, value: float, step: int) -> None:
        """Record ``value`` under ``tag`` at global step ``step``."""

    def scalars(self, prefix: str, values: Mapping[str, float], step: int) -> None:
        """``scalar(f"{prefix}/{name}", value, step)`` for every entry of ``values``."""
        for name, value in values.items():
            self.scalar(f"{prefix}/{name}", value, step)

    def close(self) -> None:
        """Flush and close the files (safe to call more than once)."""


class TensorBoardLog(ScalarLog):
    """Event files in ``log_dir``, created at the first scalar (a refused run leaves none)."""

    def __init__(self, log_dir: str | Path) -> None:
        self.log_dir = Path(log_dir)
        self._writer_class = _summary_writer()
        self._writer = None

    def scalar(self, tag: str, value: float, step: int) -> None:
        if self._writer is None:
            # purge_step: TensorBoard hides what earlier files logged at this step or later (a
            # resumed run re-logs the phase an interruption cut short)
            self._writer = self._writer_class(log_dir=str(self.log_dir), purge_step=step)
        self._writer.add_scalar(tag, float(value), step)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _summary_writer():
    if importlib.util.find_spec("tensorboard") is None:
        raise ConfigError(TENSORBOARD_MISSING)
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:  # installed, but not a version torch can use
        reason = " ".join(str(exc).split())
        raise ConfigError(f"logging.tensorboard: the installed tensorboard package cannot be used ({reason}); "
                          "pip install 'lhl[tensorboard]'") from None
    return SummaryWriter


def scalar_log(config: LoggingConfig, run_dir: str | Path) -> ScalarLog:
    """The scalar log a run asked for: TensorBoard files in ``run_dir/tensorboard`` or nothing.

    Raises :class:`~lhl.errors.ConfigError` when TensorBoard is asked for and cannot be imported.
    Creates no file.
    """
    if config.tensorboard:
        return TensorBoardLog(Path(run_dir) / "tensorboard")
    return ScalarLog()
