"""Helpers shared by both variants of the HAD losses (:mod:`lhl.losses.had`, the paper's, and
:mod:`lhl.losses.had_reference`, the authors' released code's).

* :func:`compute_dtype` / :func:`as_float` — the dtype the losses compute in (float32, or float64
  for float64 input);
* :func:`check_number` / :func:`check_map` — argument validation with messages that name the
  argument;
* :func:`no_autocast` — the losses run outside autocast;
* :func:`sobel_raw` — the un-normalised Sobel gradient magnitude of eq. 8 (HAD paper, Sec. 4.3),
  with replicate or zero padding.

Each variant normalises and thresholds the Sobel map its own way; those parts stay in its module.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "compute_dtype",
    "as_float",
    "check_number",
    "check_map",
    "no_autocast",
    "sobel_raw",
]

# Sobel kernels of eq. 8: G_h = [1, 2, 1]^T [1, 0, -1], G_v = [1, 0, -1]^T [1, 2, 1], applied as a
# cross-correlation (see sobel_raw). Convolution would flip the kernels, which only flips the
# sign of each response; the magnitude sqrt(G_h^2 + G_v^2) is the same.


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 stays float64; every other dtype (half, bfloat16, float32, ints) -> float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def as_float(x: Tensor, name: str) -> Tensor:
    """``x`` in its computation dtype (float32 or float64, see :func:`compute_dtype`).

    Raises ``TypeError`` naming ``name`` for a non-tensor or a complex tensor.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.is_complex():
        raise TypeError(f"{name} must be real-valued, got dtype {x.dtype}")
    return x.to(compute_dtype(x.dtype))


@contextlib.contextmanager
def no_autocast(device: torch.device) -> Iterator[None]:
    """Disable autocast on ``device`` (a no-op on device types autocast does not know)."""
    try:
        ctx = torch.autocast(device_type=device.type, enabled=False)
    except (RuntimeError, ValueError):  # pragma: no cover - exotic device types
        ctx = contextlib.nullcontext()
    with ctx:
        yield


def check_number(value: object, name: str) -> float:
    """``value`` as a finite float.

    Raises ``TypeError`` for a bool or a value ``float()`` cannot convert and ``ValueError`` for
    NaN or ±inf, each naming ``name``.
    """
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a real number, got {value!r}") from None
    if not math.isfinite(out):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return out


def check_map(x: Tensor, name: str) -> Tensor:
    """Validate a B×H×W map (B, H, W ≥ 1) and return it as float32/float64 (see
    :func:`as_float`)."""
    x = as_float(x, name)
    if x.dim() != 3:
        raise ValueError(f"{name} must have shape (B, H, W), got shape {tuple(x.shape)}")
    if x.numel() == 0:
        raise ValueError(f"{name} must be non-empty (B, H, W >= 1), got shape {tuple(x.shape)}")
    return x


def sobel_raw(x: Tensor, padding: str, differentiable: bool = True) -> Tensor:
    """Un-normalised Sobel magnitude (eq. 8) of a float (B, H, W) map, same dtype.

    ``padding`` is ``"replicate"`` or ``"zeros"`` (not validated here; the public functions
    check it). Written as the separable form of the kernels (differences, then the [1, 2, 1]
    smoothing), so that a constant map gives exactly 0 rather than rounding noise. The square
    root is guarded so that the gradient is 0 (not NaN) where the magnitude is 0; with
    ``differentiable=False`` (a detached map, as SG-HAD's edge mask uses) the guard is skipped:
    the same values (sqrt(0) = 0), three operations fewer.
    """
    x4 = x.unsqueeze(1)  # (B, 1, H, W)
    if padding == "replicate":
        xp = F.pad(x4, (1, 1, 1, 1), mode="replicate")
    else:  # "zeros"
        xp = F.pad(x4, (1, 1, 1, 1), mode="constant", value=0.0)
    xp = xp.squeeze(1)  # (B, H+2, W+2)
    # G_h = [1, 2, 1]^T [1, 0, -1]: column difference (left - right), rows weighted 1, 2, 1.
    dx = xp[:, :, :-2] - xp[:, :, 2:]  # (B, H+2, W)
    gh = dx[:, :-2] + 2 * dx[:, 1:-1] + dx[:, 2:]
    # G_v = [1, 0, -1]^T [1, 2, 1]: row difference (top - bottom), columns weighted 1, 2, 1.
    dy = xp[:, :-2, :] - xp[:, 2:, :]  # (B, H, W+2)
    gv = dy[:, :, :-2] + 2 * dy[:, :, 1:-1] + dy[:, :, 2:]
    sq = gh.square() + gv.square()  # (B, H, W)
    if not differentiable:
        return sq.sqrt_()
    zero = sq == 0  # NaN stays NaN (it is not == 0)
    root = torch.sqrt(torch.where(zero, torch.ones_like(sq), sq))
    return torch.where(zero, torch.zeros_like(sq), root)
