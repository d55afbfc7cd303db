"""The run's event log: one JSON object per line in ``events.jsonl``."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any


class EventLog:
    """Appends events with ``time``, ``phase``, ``epoch``, ``event`` and free fields."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(self.path, "a", encoding="utf-8")

    def __call__(self, event: str, phase: int | None = None, epoch: int | None = None, **fields: Any) -> None:
        record = {"time": round(time.time(), 3), "phase": phase, "epoch": epoch, "event": event, **fields}
        self._handle.write(json.dumps(record, default=_jsonable) + "\n")
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def read_events(path: str | Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
