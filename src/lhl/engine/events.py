"""The run's event log: one JSON object per line in ``events.jsonl``.

Every event carries the ``attempt`` that wrote it (1 for the first start, +1 per ``--resume``).
A resumed attempt re-runs the phases after the last completed one, so events of an earlier
attempt for those phases are superseded; :func:`read_events` drops them with ``current=True``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any


class EventLog:
    """Appends events with ``time``, ``attempt``, ``phase``, ``epoch``, ``event`` and free fields."""

    def __init__(self, path: str | Path, attempt: int = 1) -> None:
        self.path = Path(path)
        self.attempt = attempt
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(self.path, "a", encoding="utf-8")

    def __call__(self, event: str, phase: int | None = None, epoch: int | None = None, **fields: Any) -> None:
        record = {"time": round(time.time(), 3), "attempt": self.attempt, "phase": phase, "epoch": epoch,
                  "event": event, **fields}
        self._handle.write(json.dumps(record, default=_jsonable) + "\n")
        self._handle.flush()

    def sync(self) -> None:
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        self._handle.close()


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def read_events(path: str | Path, current: bool = False) -> list[dict[str, Any]]:
    """The events of ``events.jsonl``; with ``current`` only those of the phases each attempt's
    result kept (an attempt's events for phases that a later ``--resume`` re-ran are dropped).
    A line a killed process left half-written is skipped."""
    events = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                try:
                    events.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
    if not current:
        return events
    # attempt → the last completed phase it started from
    starts = {e.get("attempt", 1): e.get("completed_phases", 0) for e in events if e["event"] in ("run_start",
                                                                                                  "resume")}

    def superseded(event: dict[str, Any]) -> bool:
        attempt, phase = event.get("attempt", 1), event.get("phase")
        return phase is not None and any(later > attempt and phase > start for later, start in starts.items())

    return [e for e in events if not superseded(e)]
