"""HAD loss functions, paper variant (Sec. 4, eqs. 4-10 of the HAD paper).

Pure, stateless functions on per-pixel distillation loss maps. Notation (paper Sec. 4, eq. 7):
for an old task j, ``loss_map`` is ℓ_j ∈ R^{B×H×W}, the per-pixel distillation loss between
student and teacher outputs (App. C.4: the task's own loss, per pixel), and the teacher output
decides the groups of DB-HAD.

* :func:`group_masks` — group partition of DB-HAD (paper Sec. 4.2 "Group partition").
* :func:`db_had_loss` — distribution-balanced loss L_db (eq. 6), batch-averaged (eq. 5).
* :func:`sobel_magnitude` — Sobel gradient magnitude G (eq. 8).
* :func:`sg_had_loss` — saliency-guided loss L_sg (eqs. 7, 9, 10), batch-averaged (eq. 5).
* :func:`had_terms` — both terms at once with the ablation switches (Table 4).

The total loss of eq. 4, L = L_new + α / (2(t−1)) Σ_{j<t} (L_db,j + L_sg,j), is assembled by the
HAD method, not here.

Decisions (recorded in ``docs/deviations.md``, section "HAD"):

* **Mean over non-empty groups.** Eq. 6 divides by C_j, but a group (e.g. a class absent from
  an image) with no pixel has an undefined geometric mean; L_db averages over the groups that
  are present in the image. Empty groups contribute nothing, neither to the value nor to the
  gradient (no NaN).
* **Geometric mean, never a product.** GM_g = exp(mean_{p∈g} log(ℓ(p) + ε)); a product of
  thousands of pixels underflows. Computed outside autocast on maps in float32 or wider
  (float16/bfloat16 are upcast to float32, float64 stays float64); the per-group sums of
  log(ℓ + ε) and the later means are accumulated in float64 (float32 on MPS) so that the
  result does not depend on the summation order (SIMD width, thread count), and the returned
  scalar is cast back to the map's dtype. The SG masked mean is accumulated the same way.
* **Per-image min-max normalisation** of the Sobel map (and of the regression pseudo-label
  before grouping). An image whose map is constant, max − min ≤ 1e-6·max(1, |max|), gets an
  all-zero normalised map (so no edges / a single group), instead of 0/0.
* **Replicate padding** for the Sobel convolution by default: zero padding lights up every
  image border and makes a constant map look like all edge. ``padding="zeros"`` is available
  (it is what the authors' code does, see :mod:`lhl.losses.had_reference`).
* **Names of the thresholds.** The paper swaps its letters between Sec. 4 (τ = group threshold,
  k = edge threshold) and Appendix C.4/F. Configs and the method use ``group_threshold``
  (the ``threshold`` argument of :func:`group_masks`, the paper's τ of Sec. 4) and
  ``edge_threshold`` (the ``threshold`` argument of :func:`sg_had_loss`, the paper's k of
  eq. 9).
* **Batch reduction** (eq. 5): each term is computed per image and averaged over the B images.

Every function is vectorised over the batch and the groups (no Python loop over images or
classes) and differentiable with respect to ``loss_map``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lhl.losses.had_common import as_float, check_map, check_number, no_autocast, sobel_raw

__all__ = [
    "PADDINGS",
    "GROUP_KINDS",
    "MEANS",
    "CONSTANT_TOLERANCE",
    "sobel_magnitude",
    "group_masks",
    "db_had_loss",
    "sg_had_loss",
    "had_terms",
]

#: Allowed values of ``padding`` for the Sobel convolution.
PADDINGS: tuple[str, ...] = ("replicate", "zeros")
#: Allowed values of ``kind`` for :func:`group_masks`.
GROUP_KINDS: tuple[str, ...] = ("classification", "regression")
#: Allowed values of ``mean`` for :func:`db_had_loss` ("arithmetic" is the Table 4 ablation).
MEANS: tuple[str, ...] = ("geometric", "arithmetic")
#: Relative tolerance under which a per-image map counts as constant:
#: max − min ≤ CONSTANT_TOLERANCE · max(1, |max|).
CONSTANT_TOLERANCE: float = 1e-6

# --------------------------------------------------------------------------------------------
# helpers of this variant (those shared with lhl.losses.had_reference: lhl.losses.had_common)
# --------------------------------------------------------------------------------------------


def _acc_dtype(device: torch.device) -> torch.dtype:
    """Accumulation dtype of the pixel reductions of :func:`db_had_loss` and :func:`sg_had_loss`.

    A float32 sum of N terms is exact only to about N·1.2e-7 (relative), and its rounding
    depends on the summation order, which changes with the CPU's SIMD width (AVX2 vs AVX-512),
    the thread count and the device: a geometric mean over 10^4 pixels came out 1.75e-5 off on
    one CPU. Summing in float64 (one reduction per group or image; the maps themselves stay in
    their dtype) makes the result reproducible to float32 precision; the returned scalar is cast
    back to the map's dtype. MPS has no float64 and keeps float32.
    """
    return torch.float32 if device.type == "mps" else torch.float64


def _check_choice(value: object, name: str, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(
            f"{name}={value!r} is not allowed; expected one of {', '.join(map(repr, allowed))}"
        )
    return value


def _per_image_minmax(x: Tensor) -> Tensor:
    """Min-max normalise each image of a (B, H, W) map to [0, 1].

    An image counts as constant when max − min ≤ 1e-6·max(1, |max|); it is mapped to all zeros
    (docs/deviations.md, "Empty and constant cases") rather than dividing by (almost) zero.
    Differentiable (sub-gradient through the arg-min/arg-max pixels); constant images get a zero
    gradient.
    """
    lo = x.amin(dim=(-2, -1), keepdim=True)
    hi = x.amax(dim=(-2, -1), keepdim=True)
    rng = hi - lo
    const = rng <= CONSTANT_TOLERANCE * hi.abs().clamp_min(1.0)
    safe = torch.where(const, torch.ones_like(rng), rng)
    return torch.where(const, torch.zeros_like(x), (x - lo) / safe)


# --------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------


def sobel_magnitude(x: Tensor, normalize: bool = True, padding: str = "replicate") -> Tensor:
    """Sobel gradient magnitude G = sqrt((G_h * x)^2 + (G_v * x)^2) of each image (eq. 8).

    Args:
        x: (B, H, W) map, typically the per-pixel distillation loss ℓ_j (eq. 7).
        normalize: min-max normalise G per image to [0, 1] (on by default, docs/deviations.md);
            an image whose G is constant (max − min ≤ 1e-6·max(1, |max|)) gets G = 0 everywhere.
        padding: ``"replicate"`` (default; a constant map has G = 0 everywhere) or ``"zeros"``
            (the authors' code; lights up the borders of any non-zero map).

    Returns:
        (B, H, W) tensor in float32 (float16/bfloat16/integer input is upcast) or float64.
        Differentiable in ``x`` (SG-HAD itself uses it on a detached map).

    Kernels: G_h = [1, 2, 1]^T [1, 0, −1], G_v = [1, 0, −1]^T [1, 2, 1].
    """
    _check_choice(padding, "padding", PADDINGS)
    x = check_map(x, "x")
    with no_autocast(x.device):
        g = sobel_raw(x, padding)
        return _per_image_minmax(g) if normalize else g


def group_masks(
    teacher: Tensor, kind: str, threshold: float = 0.5, num_groups: int = 2
) -> Tensor:
    """Group partition of DB-HAD (Sec. 4.2), one boolean mask per group.

    Args:
        teacher: (B, C, H, W) post-processed teacher output of task j (logits or probabilities
            for classification; e.g. L2-normalised vectors for normals).
        kind: ``"classification"``: G = C groups, group c = pixels whose argmax over the C
            channels is c (ties: lowest index, as :func:`torch.argmax`).
            ``"regression"``: v = mean over channels; v is min-max normalised per image to
            [0, 1] (a constant image, max − min ≤ 1e-6·max(1, |max|), gets v = 0); with
            ``num_groups == 2``: group 0 = {v < threshold}, group 1 = {v ≥ threshold} (the
            paper's M_1, M_2); with ``num_groups = Ĉ > 2`` (Table 4 ablation): equal-width
            bins, bin = min(⌊v·Ĉ⌋, Ĉ − 1), and ``threshold`` is not used.
        threshold: the group threshold (config key ``group_threshold``; τ in Sec. 4, "k" in
            Appendix C.4/F), used only for regression with two groups.
        num_groups: number of regression groups Ĉ, an integer ≥ 2 (ignored for
            classification, but still validated).

    Returns:
        Bool tensor (B, G, H, W); the groups are disjoint and cover every pixel. Groups may be
        empty in some images; :func:`db_had_loss` skips them.
    """
    _check_choice(kind, "kind", GROUP_KINDS)
    if isinstance(num_groups, bool) or not isinstance(num_groups, int):
        raise TypeError(f"num_groups must be an int >= 2, got {num_groups!r}")
    if num_groups < 2:
        raise ValueError(f"num_groups must be an int >= 2, got {num_groups!r}")
    threshold = check_number(threshold, "threshold")
    t = as_float(teacher, "teacher")
    if t.dim() != 4:
        raise ValueError(f"teacher must have shape (B, C, H, W), got shape {tuple(t.shape)}")
    if t.numel() == 0:
        raise ValueError(f"teacher must be non-empty, got shape {tuple(t.shape)}")
    t = t.detach()
    with no_autocast(t.device):
        if kind == "classification":
            c = t.shape[1]
            label = t.argmax(dim=1)  # (B, H, W)
            ids = torch.arange(c, device=t.device).view(1, c, 1, 1)
            return label.unsqueeze(1) == ids
        v = _per_image_minmax(t.mean(dim=1))  # (B, H, W) in [0, 1]
        if num_groups == 2:
            low = v < threshold
            return torch.stack((low, ~low), dim=1)
        bins = torch.clamp(torch.floor(v * num_groups), max=num_groups - 1).long()
        ids = torch.arange(num_groups, device=t.device).view(1, num_groups, 1, 1)
        return bins.unsqueeze(1) == ids


def db_had_loss(
    loss_map: Tensor, groups: Tensor, mean: str = "geometric", eps: float = 1e-8
) -> Tensor:
    """Distribution-balanced HAD loss L_db (eq. 6), averaged over the batch (eq. 5).

    Per image x: L_db(x) = mean over the **non-empty** groups g of GM_g, where
    GM_g = exp(mean_{p∈g} log(ℓ(p) + ε)) (geometric mean; ``mean="arithmetic"`` — the Table 4
    ablation — uses mean_{p∈g} ℓ(p) instead). Eq. 6 divides by C_j; we divide by the number of
    groups present in the image, because an empty group's geometric mean is undefined
    (docs/deviations.md). An image with no non-empty group contributes 0. The result is the mean
    of L_db(x) over the B images.

    Args:
        loss_map: (B, H, W) per-pixel distillation loss ℓ_j ≥ 0 (gradients flow into it).
        groups: (B, G, H, W) group masks (bool; other dtypes: non-zero = member), e.g. from
            :func:`group_masks`. Pixels outside every group are ignored.
        mean: ``"geometric"`` (paper) or ``"arithmetic"`` (ablation).
        eps: ε ≥ 0 inside the log. With ε = 0 a zero loss pixel gives GM_g = 0 and a NaN
            gradient; keep the default ε > 0 for training.

    Returns:
        0-dim tensor, float32 (half precision / bfloat16 input is upcast) or float64; computed
        outside autocast, the pixel sums accumulated in float64 (float32 on MPS). Never NaN
        because of empty groups, in value or gradient.
    """
    _check_choice(mean, "mean", MEANS)
    eps = check_number(eps, "eps")
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps!r}")
    x = check_map(loss_map, "loss_map")
    if not isinstance(groups, Tensor):
        raise TypeError(f"groups must be a torch.Tensor, got {type(groups).__name__}")
    if groups.dim() != 4:
        raise ValueError(f"groups must have shape (B, G, H, W), got shape {tuple(groups.shape)}")
    b, h, w = x.shape
    if groups.shape[0] != b or groups.shape[2:] != (h, w):
        raise ValueError(
            f"groups shape {tuple(groups.shape)} does not match loss_map shape {tuple(x.shape)}; "
            f"expected ({b}, G, {h}, {w})"
        )
    if groups.device != x.device:
        raise ValueError(f"groups is on {groups.device} but loss_map is on {x.device}")
    m = groups if groups.dtype == torch.bool else groups != 0
    with no_autocast(x.device):
        # Every reduction below runs in float64 (float32 on MPS); only the final scalar is cast to
        # x.dtype: a float32 sum over thousands of pixels depends on the summation order
        # (SIMD width, thread count); see _acc_dtype.
        acc = _acc_dtype(x.device)
        b, g = m.shape[:2]
        mf = m.to(acc).reshape(b, g, h * w)  # (B, G, H·W), 0/1
        counts = mf.sum(dim=-1)  # (B, G); sums of 0/1, exact
        present = counts > 0
        xa = x.to(acc)
        if mean == "geometric":
            # Pixels in no group are replaced by 1 so that whatever they hold (even NaN or a
            # negative value) cannot reach the value or the gradient.
            covered = mf.sum(dim=1).reshape(b, h, w) > 0  # (B, H, W): m.any(dim=1), but faster
            xs = torch.where(covered, xa, torch.ones_like(xa))
            vals = torch.log(xs + eps)
        else:
            vals = xa
        # (B, G) masked sums, one batched mat-vec; empty groups -> 0
        sums = torch.bmm(mf, vals.reshape(b, h * w, 1)).squeeze(-1)
        per_group = sums / counts.clamp_min(1.0)
        if mean == "geometric":
            per_group = torch.exp(per_group)
        per_group = torch.where(present, per_group, torch.zeros_like(per_group))
        n_present = present.sum(dim=1).to(acc)  # (B,)
        per_image = per_group.sum(dim=1) / n_present.clamp_min(1.0)
        return per_image.mean().to(x.dtype)


def sg_had_loss(
    loss_map: Tensor, threshold: float, normalize: bool = True, padding: str = "replicate"
) -> Tensor:
    """Saliency-guided HAD loss L_sg (eqs. 7-10), averaged over the batch (eq. 5).

    Per image x: G = :func:`sobel_magnitude` of ``loss_map.detach()`` (eq. 8; per-image min-max
    normalised when ``normalize``, replicate padding by default), the edge set
    P = {p : G(p) > threshold} (eq. 9), and L_sg(x) = mean of ℓ over P (eq. 10); an empty P
    contributes 0. The result is the mean over the B images.

    Args:
        loss_map: (B, H, W) per-pixel distillation loss ℓ_j. The edge mask is computed from its
            detached copy, so gradients flow only through the averaged values.
        threshold: the edge threshold (config key ``edge_threshold``; k in eq. 9, "τ" in
            Appendix C.4/F), compared against the normalised G (paper settings 0.5-0.9).
        normalize: per-image min-max normalisation of G before thresholding (docs/deviations.md).
        padding: ``"replicate"`` (default) or ``"zeros"``.

    Returns:
        0-dim tensor, float32 (half precision / bfloat16 input is upcast) or float64.
    """
    _check_choice(padding, "padding", PADDINGS)
    threshold = check_number(threshold, "threshold")
    x = check_map(loss_map, "loss_map")
    with no_autocast(x.device):
        g = sobel_raw(x.detach(), padding)
        if normalize:
            g = _per_image_minmax(g)
        edge = g > threshold  # (B, H, W)
        # masked mean accumulated in float64 (see _acc_dtype), the scalar cast back to x.dtype
        acc = _acc_dtype(x.device)
        n = edge.sum(dim=(-2, -1)).to(acc)  # (B,); integer sums, exact
        xa = x.to(acc)
        s = torch.where(edge, xa, xa.new_zeros(())).sum(dim=(-2, -1))
        per_image = torch.where(n > 0, s / n.clamp_min(1.0), torch.zeros_like(s))
        return per_image.mean().to(x.dtype)


def had_terms(
    loss_map: Tensor,
    groups: Tensor | None,
    edge_threshold: float,
    *,
    use_db: bool = True,
    use_sg: bool = True,
    mean: str = "geometric",
    eps: float = 1e-8,
    normalize: bool = True,
    padding: str = "replicate",
) -> tuple[Tensor, Tensor]:
    """Both HAD terms of one old task, with the Table 4 ablation switches.

    Args:
        loss_map: (B, H, W) per-pixel distillation loss ℓ_j.
        groups: (B, G, H, W) masks from :func:`group_masks` (may be ``None`` when
            ``use_db=False``).
        edge_threshold: SG-HAD edge threshold (k of eq. 9).
        use_db, use_sg: switch a term off ("w/o DB", "w/o SG"); a disabled term is a zero
            tensor with the dtype/device the enabled term would have.
        mean, eps: passed to :func:`db_had_loss`.
        normalize, padding: passed to :func:`sg_had_loss`.

    Returns:
        ``(L_db, L_sg)``, each a 0-dim tensor (batch means, eq. 5). The method combines them as
        α / (2(t−1)) Σ_j (L_db,j + L_sg,j) (eq. 4).
    """
    # Validate every option even for a disabled term, so a bad config fails early.
    _check_choice(mean, "mean", MEANS)
    _check_choice(padding, "padding", PADDINGS)
    edge_threshold = check_number(edge_threshold, "edge_threshold")
    x = check_map(loss_map, "loss_map")
    zero = torch.zeros((), dtype=x.dtype, device=x.device)
    if use_db:
        if groups is None:
            raise ValueError("groups is required when use_db=True")
        l_db = db_had_loss(loss_map, groups, mean=mean, eps=eps)
    else:
        l_db = zero
    if use_sg:
        l_sg = sg_had_loss(loss_map, edge_threshold, normalize=normalize, padding=padding)
    else:
        l_sg = zero.clone()
    return l_db, l_sg
