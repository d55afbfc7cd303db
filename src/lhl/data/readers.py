"""The two file readers every on-disk benchmark uses, and how their problems are reported.

Loaders and ``lhl data check`` share these: a missing, unreadable or malformed file becomes
a :class:`~lhl.errors.DataError` whose message starts with the file's path and says what was
expected and what was found, instead of a stack trace from deep inside numpy or PIL.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from lhl.errors import DataError


@dataclass(frozen=True)
class Problem:
    """One defect found in a dataset: the file and what is wrong with it."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"

    def error(self) -> DataError:
        return DataError(str(self))


def problem(path: str | Path, message: str) -> DataError:
    """The error for ``path``: ``"<path>: <message>"``."""
    return DataError(f"{path}: {message}")


def shape_text(shape: tuple[int, ...]) -> str:
    return "x".join(str(s) for s in shape) if shape else "scalar"


def read_npy(path: Path) -> np.ndarray:
    """Memory-map a ``.npy`` file (no pickles); the caller copies what it needs."""
    if not path.is_file():
        raise problem(path, "missing file")
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise problem(path, f"unreadable .npy file ({exc})") from None


_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def read_png(path: Path) -> tuple[np.ndarray, int]:
    """Decode a PNG to ``(pixels, bit depth)``: ``[H,W]`` or ``[H,W,C]`` integers, 8 or 16 bits."""
    if not path.is_file():
        raise problem(path, "missing file")
    try:
        with Image.open(path) as image:
            image.load()
            mode = image.mode
            pixels = np.asarray(image.convert("L") if mode == "1" else image)  # "P": palette indices
    except (OSError, SyntaxError, ValueError) as exc:
        raise problem(path, f"unreadable image file ({exc})") from None
    if mode in _SIXTEEN_BIT:
        if pixels.size and (pixels.min() < 0 or pixels.max() > 65535):
            raise problem(path, f"expected 16-bit values, found range [{pixels.min()}, {pixels.max()}]")
        return pixels.astype(np.uint16, copy=False), 16
    if pixels.dtype != np.uint8:
        raise problem(path, f"unsupported image mode {mode!r}; expected an 8-bit or 16-bit PNG")
    return pixels, 8
