"""Atomic files and ``weights_only`` checkpoints (SPEC §9).

A checkpoint is a plain dict of tensors, numbers, strings and lists — never a pickled object
— so loading a run directory cannot execute code. Every file is written to a temporary name
in the same directory and moved into place with :func:`os.replace`, so a crash leaves either
the old file or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

FORMAT_VERSION = 1


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json(path: str | Path, data: Any) -> None:
    _atomic_write(Path(path), lambda h: h.write((json.dumps(data, indent=2) + "\n").encode()))


def write_text(path: str | Path, text: str) -> None:
    _atomic_write(Path(path), lambda h: h.write(text.encode()))


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    _atomic_write(Path(path), lambda h: torch.save({"format": FORMAT_VERSION, **state}, h))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load with ``weights_only=True``; a clear error for a missing or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt / unsafe files
        raise ValueError(f"checkpoint {str(path)!r} cannot be loaded safely: {exc}") from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT_VERSION:
        raise ValueError(f"checkpoint {str(path)!r} is not an lhl checkpoint (format {FORMAT_VERSION})")
    return state


def checkpoint_path(run_dir: str | Path, phase: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"phase-{phase}.pt"
