"""The run directory: its lock, its files, and the checks that make a resume safe.

Layout: ``config.yaml`` (the resolved configuration), ``events.jsonl``, ``performance.json``,
``provenance.json``, ``summary.md``, ``checkpoints/phase-<t>.pt`` and ``checkpoints/manifest.json``
(each checkpoint's SHA-256 and method, recorded when it is written), and ``.lock``.

While a process writes a run it holds an exclusive lock on ``.lock`` (which holds its pid), so a
second ``lhl run`` or ``--resume`` on the same directory is refused instead of interleaving two
runs' files. Every reader here turns a missing, truncated or malformed file into a
:class:`~lhl.errors.RunDirectoryError` naming it.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import Any

import yaml

from lhl.engine.checkpoint import (checkpoint_path, load_checkpoint, remove_stale_temporaries, save_checkpoint,
                                   write_json)
from lhl.errors import CheckpointError, RunDirectoryError

RUN_FILES = ("config.yaml", "events.jsonl", "performance.json", "provenance.json", "summary.md", "checkpoints")


class RunDirectory:
    """One run directory. ``acquire()`` creates it if needed and takes the lock; ``release()`` frees it."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock_handle = None
        self.created = False

    # ------------------------------------------------------------------ lock
    def check_usable(self) -> None:
        """Refuse a path that cannot hold a run, before anything is created."""
        existing = self.path
        while not existing.exists():
            if existing.parent == existing:
                break
            existing = existing.parent
        if existing == self.path and not self.path.is_dir():
            raise RunDirectoryError(f"--out {str(self.path)!r} exists and is not a directory")
        if existing != self.path and not existing.is_dir():
            raise RunDirectoryError(f"--out {str(self.path)!r}: {str(existing)!r} is not a directory")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise RunDirectoryError(f"--out {str(self.path)!r}: {str(existing)!r} is not writable")

    def acquire(self) -> None:
        self.check_usable()
        if not self.path.exists():
            self.path.mkdir(parents=True)
            self.created = True
        handle = open(self.path / ".lock", "a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise RunDirectoryError(f"{str(self.path)!r} is in use by another lhl process (pid {holder}); "
                                    "wait for it to finish or choose another --out") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._lock_handle = handle
        remove_stale_temporaries(self.path)
        remove_stale_temporaries(self.path / "checkpoints")

    def release(self) -> None:
        if self._lock_handle is not None:
            self._lock_handle.seek(0)
            self._lock_handle.truncate()
            self._lock_handle.close()  # closing releases the flock
            self._lock_handle = None

    def discard_if_new(self) -> None:
        """Remove the directory this process created when the run never started (nothing in it but the lock)."""
        if self.created and {p.name for p in self.path.iterdir()} <= {".lock"}:
            (self.path / ".lock").unlink(missing_ok=True)
            self.path.rmdir()

    def holds_run(self) -> bool:
        return any((self.path / name).exists() for name in RUN_FILES)

    # ------------------------------------------------------------------ readers
    def read_config(self) -> dict[str, Any]:
        path = self.path / "config.yaml"
        if not path.is_file():
            raise RunDirectoryError(f"--resume: {str(self.path)!r} holds no run (no config.yaml)")
        try:
            tree = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise RunDirectoryError(f"{str(path)!r} is not valid YAML ({str(exc).splitlines()[0]}); "
                                    "the run directory is damaged") from None
        if not isinstance(tree, dict):
            raise RunDirectoryError(f"{str(path)!r} does not hold a configuration mapping; the run directory is "
                                    "damaged")
        return tree

    def read_json(self, name: str, default: Any = None) -> Any:
        path = self.path / name
        if not path.is_file():
            if default is not None:
                return default
            raise RunDirectoryError(f"{str(path)!r} is missing; the run directory is damaged")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RunDirectoryError(f"{str(path)!r} is not valid JSON ({exc}); the run directory is damaged") from None
        if not isinstance(data, dict):
            raise RunDirectoryError(f"{str(path)!r} does not hold a JSON object; the run directory is damaged")
        return data

    def read_performance(self) -> dict[str, Any]:
        performance = self.read_json("performance.json", {"phases": []})
        phases = performance.get("phases")
        if not isinstance(phases, list) or not all(isinstance(p, dict) and "metrics" in p for p in phases):
            raise RunDirectoryError(f"{str(self.path / 'performance.json')!r} has no valid 'phases' list; "
                                    "the run directory is damaged")
        return performance

    # ------------------------------------------------------------------ checkpoints
    def manifest(self) -> dict[str, Any]:
        """``{file name: {"phase", "sha256", "method"}}``. A run written before manifests existed has
        none: its checkpoint files are then taken as they are (unverified)."""
        path = self.path / "checkpoints" / "manifest.json"
        if not path.is_file():
            legacy = sorted((self.path / "checkpoints").glob("phase-*.pt")) if (self.path / "checkpoints").is_dir() else []
            return {p.name: {"sha256": None, "method": None} for p in legacy}
        return self.read_json("checkpoints/manifest.json")

    def save_checkpoint(self, phase: int, state: dict[str, Any], method: str, keep: int | None) -> None:
        """Write phase ``phase``'s checkpoint, then record its SHA-256 in the manifest (so a checkpoint
        without a manifest entry is one whose write did not finish), then apply ``keep``."""
        path = checkpoint_path(self.path, phase)
        digest = save_checkpoint(path, state)
        manifest = self.manifest()
        manifest[path.name] = {"phase": phase, "sha256": digest, "method": method}
        if keep is not None:
            for old in range(1, phase - keep + 1):
                checkpoint_path(self.path, old).unlink(missing_ok=True)
                manifest.pop(checkpoint_path(self.path, old).name, None)
        write_json(self.path / "checkpoints" / "manifest.json", manifest)

    def last_completed_phase(self, performance: dict[str, Any]) -> int:
        """The last phase with both a performance entry and a recorded checkpoint (0 if none)."""
        manifest = self.manifest()
        done = len(performance["phases"])
        while done > 0 and checkpoint_path(self.path, done).name not in manifest:
            done -= 1
        return done

    def load_checkpoint(self, phase: int, method: str) -> dict[str, Any]:
        """Phase ``phase``'s checkpoint, verified against its recorded SHA-256 and the method."""
        path = checkpoint_path(self.path, phase)
        entry = self.manifest().get(path.name)
        if entry is None:
            raise CheckpointError(f"checkpoint {str(path)!r} is not recorded in checkpoints/manifest.json")
        if entry.get("method") not in (None, method):
            raise CheckpointError(f"checkpoint {str(path)!r} was written by method {entry.get('method')!r}, "
                                  f"the run's method is {method!r}")
        state = load_checkpoint(path, sha256=entry.get("sha256"))
        if state.get("method_name", method) != method:
            raise CheckpointError(f"checkpoint {str(path)!r} holds the state of method {state.get('method_name')!r}, "
                                  f"the run's method is {method!r}")
        return state
