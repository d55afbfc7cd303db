"""The numerical core of SGP (Saha & Roy, "Continual learning with scaled gradient projection",
AAAI 2023), as plain functions: Gram matrices of a conv's input patches, the energy-threshold
rank, the importance formula, the basis extension of later tasks and the projection.

Notation (per conv layer): ``d = C_in·kh·kw`` is the patch length (the ordering of
:func:`torch.nn.functional.unfold`, which matches ``weight.view(C_out, d)``); the representation
matrix A (``d × n``) holds the layer's input patches as columns; ``K = A Aᵀ`` (``d × d``) is its
Gram matrix, whose eigenvalues are the squared singular values σ² of A and whose eigenvectors are
A's left singular vectors. Working on K instead of A lets the patches be streamed: no function
here ever holds all patches of a sample at once.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def conv_input_gram(x: Tensor, kernel_size, stride=1, padding=0, dilation=1, chunk: int = 1) -> Tensor:
    """Gram matrix ``Σ_patches p pᵀ`` of the unfolded input patches of one conv.

    ``x``: ``[B, C, H, W]`` (the conv's input); the geometry arguments are the conv's own.
    Returns ``[d, d]`` in float64, ``d = C·kh·kw``. Patches are unfolded ``chunk`` images at a
    time (``[d, chunk·L]`` at most in memory), multiplied in float32 (reduced-precision inputs
    are promoted) and summed into the float64 accumulator (on the CPU for MPS, which has no
    float64).
    """
    d = x.shape[1] * _pair(kernel_size)[0] * _pair(kernel_size)[1]
    on = x.device if x.device.type != "mps" else torch.device("cpu")
    gram = torch.zeros(d, d, dtype=torch.float64, device=on)
    for start in range(0, x.shape[0], chunk):
        cols = F.unfold(x[start:start + chunk].float(), kernel_size, dilation=dilation, padding=padding,
                        stride=stride)  # [b, d, L]
        cols = cols.transpose(0, 1).reshape(d, -1)  # [d, b·L]
        gram += (cols @ cols.T).to(on, torch.float64)
    return gram


def energy_rank(sigma_sq: Tensor, threshold: float) -> int:
    """Smallest r with ``Σ_{i<r} σ²_i / Σ σ² ≥ threshold`` (``sigma_sq`` sorted descending).

    SGP paper eq. 5 (criterion of GPM). 0 when the total energy is 0.
    """
    total = sigma_sq.sum()
    if total <= 0:
        return 0
    ratio = torch.cumsum(sigma_sq, 0) / total
    # tolerance for the rounding of the cumulative sum (1.0 must reach a threshold of 1.0)
    return min(int((ratio < threshold - 1e-12).sum()) + 1, sigma_sq.numel())


def scaled_importance(sigma: Tensor, alpha: float) -> Tensor:
    """SGP eq. 2: ``λ_i = (α+1) σ_i / (α σ_i + max σ)``, in [0, 1], 1 for the largest σ.

    ``sigma``: singular values (not squared), shape ``[r]``; ``alpha ≥ 0`` is the
    "non-negative scale coefficient" (α = 0: λ = σ/max σ; α → ∞: λ → 1).
    """
    if sigma.numel() == 0:
        return sigma.clone()
    top = sigma.max()
    if top <= 0:
        return torch.zeros_like(sigma)
    return ((alpha + 1) * sigma / (alpha * sigma + top)).clamp(0, 1)  # ≤ 1 exactly, not by rounding


def _descending_eigh(gram: Tensor) -> tuple[Tensor, Tensor]:
    """Eigenvalues (clamped at 0, descending) and eigenvectors (columns) of a symmetric matrix."""
    values, vectors = torch.linalg.eigh(gram)
    return values.flip(0).clamp_min(0), vectors.flip(1)


def update_bases(gram: Tensor, threshold: float, alpha: float, bases: Tensor | None = None,
                 importance: Tensor | None = None) -> tuple[Tensor, Tensor, dict[str, float]]:
    """One task's basis update of one layer (SGP Algorithm 1 / its reference ``update_GPM``).

    ``gram``: ``[d, d]`` float64 Gram matrix of the finished task's patches. ``bases``: ``[d, r_old]``
    orthonormal columns and ``importance``: ``[r_old]`` from earlier tasks (None for the first).

    First task: eigen-decomposition of K, r = :func:`energy_rank`, B = U[:, :r], λ = eq. 2 on σ[:r].

    Later tasks: total energy E = tr K. The energy already captured by the old bases is
    E − tr K̂ with K̂ = (I − BBᵀ) K (I − BBᵀ) (the Gram of the residual patches). New bases are the
    leading eigenvectors of K̂, added one at a time while the captured fraction is below the
    threshold. Importances: for each old basis b_j the new task's singular value on it,
    ‖Aᵀb_j‖ = sqrt(b_jᵀ K b_j) (the reference code computes it through an SVD of the projected
    activations; this is the same number), followed by the new bases' σ̂; eq. 2 is applied to
    that whole vector, then old importances are added and clipped to [0, 1]. Bases never exceed d.

    Returns (bases ``[d, r]``, importance ``[r]``, info: ``rank``, ``added``, ``captured`` (the
    energy fraction of this task captured by the returned bases)).
    """
    gram = gram.double()
    d = gram.shape[0]
    total = float(torch.trace(gram))
    if bases is None or bases.shape[1] == 0:
        sigma_sq, vectors = _descending_eigh(gram)
        r = energy_rank(sigma_sq, threshold)
        new_bases = vectors[:, :r]
        lam = scaled_importance(sigma_sq[:r].sqrt(), alpha)
        captured = float(sigma_sq[:r].sum() / total) if total > 0 else 0.0
        return new_bases, lam, {"rank": r, "added": r, "captured": captured}
    old = bases.double()
    r_old = old.shape[1]
    on_old = torch.einsum("dj,de,ej->j", old, gram, old).clamp_min(0).sqrt()  # [r_old]
    residual = torch.eye(d, dtype=gram.dtype, device=gram.device) - old @ old.T
    sigma_sq, vectors = _descending_eigh(residual @ gram @ residual)
    r = 0
    if total > 0:
        accumulated = (total - float(sigma_sq.sum())) / total
        # directions without energy are never added (K̂'s null space contains the old bases)
        while (r < min(sigma_sq.numel(), d - r_old) and accumulated < threshold - 1e-12
               and float(sigma_sq[r]) > 1e-12 * total):
            accumulated += float(sigma_sq[r]) / total
            r += 1
    sigma_all = torch.cat([on_old, sigma_sq[:r].sqrt()])
    lam = scaled_importance(sigma_all, alpha)
    lam[:r_old] = (lam[:r_old] + importance.double().to(lam.device)).clamp(0, 1)
    new_bases = torch.cat([old, vectors[:, :r]], dim=1)
    captured_energy = float(on_old.pow(2).sum() + sigma_sq[:r].sum())
    captured = captured_energy / total if total > 0 else 0.0
    return new_bases, lam, {"rank": new_bases.shape[1], "added": r, "captured": min(captured, 1.0)}


def project_out(update: Tensor, bases: Tensor, importance: Tensor) -> Tensor:
    """SGP eq. 6 on a conv's weight update (or gradient): ``U − U B diag(λ) Bᵀ``.

    ``update``: ``[C_out, C_in, kh, kw]`` (any shape whose first dim is C_out and the rest
    flattens to d); ``bases``: ``[d, r]``; ``importance``: ``[r]``. With λ = 1 the result is
    orthogonal to every basis. The d × d product is never formed (cost O(C_out·d·r)).
    """
    flat = update.reshape(update.shape[0], -1)
    coeffs = (flat @ bases.to(flat.dtype)) * importance.to(flat.dtype)  # [C_out, r]
    return (flat - coeffs @ bases.to(flat.dtype).T).reshape(update.shape)


def _pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)
