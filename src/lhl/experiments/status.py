"""The state of each run of an experiment directory: done, failed, running or pending.

A run is **done** when its run directory is complete — ``performance.json``'s last phase has
metrics for every task of its order, and ``summary.md`` exists (the trainer writes it last) —
whatever else is recorded. Otherwise ``bench-status.json`` in the run directory (written
atomically by ``lhl bench``: ``state``, ``error``, ``host``, ``pid``, times) tells a **failed** run
(with its one-line error) from one that is **running** (its ``.lock`` is held, or the process that
started it is alive on this host) or **pending** (never started, or interrupted: it is resumed
from its last completed phase by the next ``lhl bench``).
"""

from __future__ import annotations

import datetime
import fcntl
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lhl.engine.checkpoint import write_json

__all__ = ["STATUS_FILE", "ARM_FIELD", "RunState", "is_complete", "read_status", "write_status", "lock_held",
           "run_state", "completed_phases"]

STATUS_FILE = "bench-status.json"
#: The key of ``bench-status.json`` naming the run's arm (experiments with ``arms``; read by
#: lhl.report.compare, which keeps arms apart).
ARM_FIELD = "arm"
LOG_FILE = "bench.log"


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _performance(run_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((run_dir / "performance.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def completed_phases(run_dir: Path) -> int:
    performance = _performance(run_dir)
    phases = performance.get("phases") if performance else None
    return len(phases) if isinstance(phases, list) else 0


def is_complete(run_dir: Path) -> bool:
    """``performance.json`` covers every task of the run's order after its last phase, and
    ``summary.md`` exists."""
    performance = _performance(run_dir)
    if performance is None or not (run_dir / "summary.md").is_file():
        return False
    tasks, phases = performance.get("tasks"), performance.get("phases")
    if not isinstance(tasks, list) or not tasks or not isinstance(phases, list) or not phases:
        return False
    last = phases[-1].get("metrics") if isinstance(phases[-1], dict) else None
    return isinstance(last, dict) and all(isinstance(last.get(t), dict) and last[t] for t in tasks)


def read_status(run_dir: Path) -> dict[str, Any]:
    """The run's ``bench-status.json`` (``{}`` when there is none or it cannot be read)."""
    try:
        data = json.loads((run_dir / STATUS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_status(run_dir: Path, state: str, **fields: Any) -> dict[str, Any]:
    """Record ``state`` (atomically; keeps ``attempts`` counting across bench invocations)."""
    old = read_status(run_dir)
    record = {"state": state, "host": socket.gethostname(), "pid": os.getpid(), "time": now(), **fields}
    record["attempts"] = int(old.get("attempts", 0)) + (1 if state == "running" else 0)
    if state != "running" and "started" not in record and "started" in old:
        record["started"] = old["started"]
    write_json(run_dir / STATUS_FILE, record)
    return record


def lock_held(run_dir: Path) -> bool:
    """Whether a process holds the run directory's lock (``.lock``) right now. The probe takes a
    shared lock for an instant, so it never blocks a writer for longer than that."""
    path = run_dir / ".lock"
    if not path.is_file():
        return False
    try:
        handle = open(path, "r", encoding="utf-8")
    except OSError:
        return False
    try:
        fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        handle.close()  # closing releases a lock we took
    return False


def _alive_here(record: dict[str, Any]) -> bool:
    if record.get("host") != socket.gethostname() or not isinstance(record.get("pid"), int):
        return False
    try:
        os.kill(record["pid"], 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class RunState:
    state: str  # "done", "failed", "running", "pending"
    detail: str = ""  # the error of a failed run; "interrupted after phase k" etc.


def run_state(run_dir: Path, phases: int | None = None) -> RunState:
    """The state of one run (see the module docstring); ``phases`` is the run's number of phases."""
    if is_complete(run_dir):
        return RunState("done")
    if lock_held(run_dir):
        return RunState("running", _where(read_status(run_dir)))
    record = read_status(run_dir)
    if record.get("state") == "running" and _alive_here(record):
        return RunState("running", _where(record))
    if record.get("state") == "failed":
        return RunState("failed", str(record.get("error", "")))
    done = completed_phases(run_dir)
    if done:
        total = f"/{phases}" if phases else ""
        return RunState("pending", f"interrupted after phase {done}{total}; the next lhl bench resumes it")
    if record:
        return RunState("pending", "interrupted in phase 1; the next lhl bench starts it again")
    return RunState("pending")


def _where(record: dict[str, Any]) -> str:
    if record.get("host") and record.get("pid"):
        return f"pid {record['pid']} on {record['host']}"
    return ""
