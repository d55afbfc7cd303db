"""Atomic files and ``weights_only`` checkpoints.

A checkpoint is a plain dict of tensors, numbers, strings and lists — never a pickled object —
so loading a run directory cannot execute code. Every file is written to a temporary name in the
same directory (``.<name>.<random>.tmp``) and moved into place with :func:`os.replace`, so a crash
leaves either the old file or the new one, never half of one; a temporary file left by a killed
process is removed when the run directory is next opened (:func:`remove_stale_temporaries`). Files
get the permissions the user's umask gives (like ``open()``), not :func:`tempfile.mkstemp`'s 0600.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable

import torch

from lhl.errors import CheckpointError

FORMAT_VERSION = 1
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.[A-Za-z0-9_]+(\.tmp)?$")


def _file_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


class _HashingWriter:
    """A write-only file wrapper that hashes what passes through it (torch.save streams into it)."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle, self.digest = handle, hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return self.handle.write(data)

    def flush(self) -> None:
        self.handle.flush()


def _atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, _file_mode())
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete the temporary files an interrupted :func:`_atomic_write` left in ``folder``."""
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        if entry.is_file() and _TEMPORARY.match(entry.name) and not entry.name.startswith(".lock"):
            entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def write_json(path: str | Path, data: Any) -> None:
    _atomic_write(Path(path), lambda h: h.write((json.dumps(data, indent=2) + "\n").encode()))


def write_text(path: str | Path, text: str) -> None:
    _atomic_write(Path(path), lambda h: h.write(text.encode()))


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> str:
    """Write ``state`` atomically; return the SHA-256 of the bytes written."""
    digest: list[str] = []

    def write(handle: BinaryIO) -> None:
        writer = _HashingWriter(handle)
        torch.save({"format": FORMAT_VERSION, **state}, writer)
        digest.append(writer.digest.hexdigest())

    _atomic_write(Path(path), write)
    return digest[0]


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_checkpoint(path: str | Path, sha256: str | None = None) -> dict[str, Any]:
    """Load with ``weights_only=True``; when ``sha256`` is given the file must still have it.

    Raises :class:`~lhl.errors.CheckpointError` naming the file for a missing, altered, truncated
    or foreign file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    if sha256 is not None and file_sha256(path) != sha256:
        raise CheckpointError(f"checkpoint {str(path)!r} has changed since it was written (SHA-256 differs "
                              "from the one recorded in checkpoints/manifest.json); refusing to resume from it")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt / unsafe files
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"checkpoint {str(path)!r} cannot be loaded safely: {reason}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {str(path)!r} is not an lhl checkpoint (format {FORMAT_VERSION})")
    return state


def checkpoint_path(run_dir: str | Path, phase: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"phase-{phase}.pt"
