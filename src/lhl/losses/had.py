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
* :func:`group_masks_batched`, :func:`had_terms_batched` — the same for all old tasks at once:
  maps of equal shape are stacked along the batch dimension and go through one call (the HAD
  method uses these: J times fewer operations, which saves kernel launches on a GPU; on the CPU,
  at 64×64, it measured neutral, benchmarks/step_ratios.py).

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
classes), the batched variants also over the old tasks whose maps have the same shape, and
differentiable with respect to ``loss_map``.
"""

from __future__ import annotations

from collections.abc import Sequence

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
    "group_masks_batched",
    "had_terms_batched",
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
    threshold = _check_group_args(kind, threshold, num_groups)
    t = _check_teacher(teacher)
    return _group_masks_core(t.detach(), kind, threshold, num_groups)


def _check_group_args(kind: str, threshold: float, num_groups: int) -> float:
    _check_choice(kind, "kind", GROUP_KINDS)
    if isinstance(num_groups, bool) or not isinstance(num_groups, int):
        raise TypeError(f"num_groups must be an int >= 2, got {num_groups!r}")
    if num_groups < 2:
        raise ValueError(f"num_groups must be an int >= 2, got {num_groups!r}")
    return check_number(threshold, "threshold")


def _check_teacher(teacher: Tensor, name: str = "teacher") -> Tensor:
    t = as_float(teacher, name)
    if t.dim() != 4:
        raise ValueError(f"{name} must have shape (B, C, H, W), got shape {tuple(t.shape)}")
    if t.numel() == 0:
        raise ValueError(f"{name} must be non-empty, got shape {tuple(t.shape)}")
    return t


def _channel_argmax(t: Tensor) -> Tensor:
    """``t.argmax(dim=1)`` of a (B, C, H, W) tensor, the same indices (ties: lowest index; a NaN
    counts as the maximum, its first index wins), computed as ``t.max(dim=1).indices``, which on
    the CPU is several times faster than ``argmax`` over a non-last dimension (PyTorch 2.x)."""
    return t.max(dim=1).indices


def _bins(v: Tensor, threshold: float, num_groups: int) -> Tensor:
    """Group masks (N, G, H, W) of a normalised (N, H, W) map v ∈ [0, 1] (regression rule)."""
    if num_groups == 2:
        low = v < threshold
        return torch.stack((low, ~low), dim=1)
    bins = torch.clamp(torch.floor(v * num_groups), max=num_groups - 1).long()
    ids = torch.arange(num_groups, device=v.device).view(1, num_groups, 1, 1)
    return bins.unsqueeze(1) == ids


def _group_masks_core(t: Tensor, kind: str, threshold: float, num_groups: int) -> Tensor:
    """:func:`group_masks` on a validated, detached float teacher."""
    with no_autocast(t.device):
        if kind == "classification":
            c = t.shape[1]
            label = _channel_argmax(t)  # (B, H, W)
            ids = torch.arange(c, device=t.device).view(1, c, 1, 1)
            return label.unsqueeze(1) == ids
        return _bins(_per_image_minmax(t.mean(dim=1)), threshold, num_groups)  # v in [0, 1]


def group_masks_batched(
    teachers: Sequence[Tensor], kinds: Sequence[str], threshold: float = 0.5, num_groups: int = 2
) -> list[Tensor]:
    """:func:`group_masks` of several old tasks at once, one result per task.

    Args:
        teachers: J tensors (B, C_j, H, W), as for :func:`group_masks` (C_j may differ).
        kinds: J kinds, ``"classification"`` or ``"regression"``.
        threshold, num_groups: as for :func:`group_masks`, shared by all tasks.

    Returns:
        J bool tensors (B, G_j, H, W), equal to ``group_masks(teachers[j], kinds[j], threshold,
        num_groups)``. The regression tasks whose channel means have the same shape, dtype and
        device are normalised and split in one batched call (the per-image min-max and the split
        are per image, so stacking does not change them); classification tasks are done one by one.
    """
    threshold = check_number(threshold, "threshold")
    if len(teachers) != len(kinds):
        raise ValueError(f"got {len(teachers)} teachers but {len(kinds)} kinds")
    out: list[Tensor | None] = [None] * len(teachers)
    buckets: dict[tuple, list[tuple[int, Tensor]]] = {}
    for j, (teacher, kind) in enumerate(zip(teachers, kinds)):
        threshold = _check_group_args(kind, threshold, num_groups)
        t = _check_teacher(teacher, f"teachers[{j}]").detach()
        if kind == "classification":
            out[j] = _group_masks_core(t, kind, threshold, num_groups)
        else:
            with no_autocast(t.device):
                v = t.mean(dim=1)  # (B, H, W)
            buckets.setdefault((tuple(v.shape), v.dtype, v.device), []).append((j, v))
    for items in buckets.values():
        with no_autocast(items[0][1].device):
            v = _per_image_minmax(torch.cat([v for _, v in items]))
            masks = _bins(v, threshold, num_groups).split(items[0][1].shape[0])
        for (j, _), m in zip(items, masks):
            out[j] = m
    return out  # type: ignore[return-value]


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
    eps = _check_db_args(mean, eps)
    x = check_map(loss_map, "loss_map")
    m = _check_groups(groups, x)
    with no_autocast(x.device):
        return _db_per_image(x, m, mean, eps).mean().to(x.dtype)


def _check_groups(groups: Tensor, x: Tensor, name: str = "groups", map_name: str = "loss_map") -> Tensor:
    """Validate (B, G, H, W) masks against the (B, H, W) map ``x``; return them as bool."""
    if not isinstance(groups, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(groups).__name__}")
    if groups.dim() != 4:
        raise ValueError(f"{name} must have shape (B, G, H, W), got shape {tuple(groups.shape)}")
    b, h, w = x.shape
    if groups.shape[0] != b or groups.shape[2:] != (h, w):
        raise ValueError(
            f"{name} shape {tuple(groups.shape)} does not match {map_name} shape {tuple(x.shape)}; "
            f"expected ({b}, G, {h}, {w})"
        )
    if groups.device != x.device:
        raise ValueError(f"{name} is on {groups.device} but {map_name} is on {x.device}")
    return groups if groups.dtype == torch.bool else groups != 0


def _check_db_args(mean: str, eps: float) -> float:
    _check_choice(mean, "mean", MEANS)
    eps = check_number(eps, "eps")
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps!r}")
    return eps


def _db_per_image(x: Tensor, m: Tensor, mean: str, eps: float) -> Tensor:
    """L_db(x) of each image, (N,) in the accumulation dtype: ``x`` (N, H, W) float, ``m``
    (N, G, H, W) bool, validated. Every image is independent of the others, so stacking the
    images of several old tasks along N gives each task's values unchanged."""
    # Every reduction below runs in float64 (float32 on MPS); only the final scalar is cast to
    # x.dtype: a float32 sum over thousands of pixels depends on the summation order
    # (SIMD width, thread count); see _acc_dtype.
    acc = _acc_dtype(x.device)
    b, h, w = x.shape
    g = m.shape[1]
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
    return per_group.sum(dim=1) / n_present.clamp_min(1.0)


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
        return _sg_per_image(x, threshold, normalize, padding).mean().to(x.dtype)


def _sg_per_image(x: Tensor, threshold: float, normalize: bool, padding: str) -> Tensor:
    """L_sg(x) of each image, (N,) in the accumulation dtype, of a validated (N, H, W) float map;
    per image (the Sobel filter, the min-max and the masked mean never mix images), so old tasks
    stacked along N keep their values."""
    g = sobel_raw(x.detach(), padding, differentiable=False)
    if normalize:
        g = _per_image_minmax(g)
    edge = g > threshold  # (B, H, W)
    # masked mean accumulated in float64 (see _acc_dtype), the scalar cast back to x.dtype: the
    # masked values stay in x's dtype (exact: each is a pixel of x or 0) and only the sum widens
    acc = _acc_dtype(x.device)
    n = edge.sum(dim=(-2, -1)).to(acc)  # (B,); integer sums, exact
    s = torch.where(edge, x, x.new_zeros(())).sum(dim=(-2, -1), dtype=acc)
    return torch.where(n > 0, s / n.clamp_min(1.0), torch.zeros_like(s))


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


def had_terms_batched(
    loss_maps: Sequence[Tensor],
    groups: Sequence[Tensor | None] | None,
    edge_threshold: float,
    *,
    use_db: bool = True,
    use_sg: bool = True,
    mean: str = "geometric",
    eps: float = 1e-8,
    normalize: bool = True,
    padding: str = "replicate",
) -> tuple[Tensor, Tensor]:
    """:func:`had_terms` of J old tasks at once: ``had_terms(loss_maps[j], groups[j], ...)`` for
    every j, with the same options.

    The maps of tasks with the same shape, dtype and device are stacked along the batch dimension
    and go through one Sobel filter, one min-max normalisation and one masked mean (SG-HAD), and,
    among those whose masks also have the same number of groups, one set of geometric means
    (DB-HAD). Every quantity of eqs. 5-10 is per image, so stacking changes no value beyond float
    rounding (the pixel sums still accumulate in float64, see :func:`db_had_loss`), and the
    gradient with respect to each map is the one :func:`had_terms` gives. What it saves is the
    number of operations (kernel launches on a GPU).

    Args:
        loss_maps: J maps (B_j, H_j, W_j), the ℓ_j of eq. 7.
        groups: J masks (B_j, G_j, H_j, W_j) from :func:`group_masks` or
            :func:`group_masks_batched` (entries, or the whole argument, may be ``None`` when
            ``use_db=False``).
        edge_threshold, use_db, use_sg, mean, eps, normalize, padding: as for :func:`had_terms`.

    Returns:
        ``(L_db, L_sg)``, each a (J,) tensor (entry j: task j's batch mean, eq. 5) in float32 or,
        when every map is float64, float64; a disabled term is all zeros.
    """
    _check_choice(mean, "mean", MEANS)
    _check_choice(padding, "padding", PADDINGS)
    edge_threshold = check_number(edge_threshold, "edge_threshold")
    eps = _check_db_args(mean, eps)
    maps = [check_map(x, f"loss_maps[{j}]") for j, x in enumerate(loss_maps)]
    if not maps:
        raise ValueError("loss_maps must hold at least one map")
    if groups is None:
        groups = [None] * len(maps)
    if len(groups) != len(maps):
        raise ValueError(f"got {len(maps)} loss maps but {len(groups)} group masks")
    masks: list[Tensor | None] = [None] * len(maps)
    if use_db:
        for j, (x, g) in enumerate(zip(maps, groups)):
            if g is None:
                raise ValueError(f"groups[{j}] is required when use_db=True")
            masks[j] = _check_groups(g, x, f"groups[{j}]", f"loss_maps[{j}]")
    dtype = torch.float64 if all(x.dtype == torch.float64 for x in maps) else torch.float32
    device = maps[0].device
    db: list[Tensor] = [torch.zeros((), dtype=dtype, device=device)] * len(maps)
    sg = list(db)
    if use_sg:
        for idx, xs in _buckets(maps, lambda j: (tuple(maps[j].shape), maps[j].dtype, maps[j].device)):
            with no_autocast(xs[0].device):
                per_image = _sg_per_image(torch.cat(xs), edge_threshold, normalize, padding)
            for j, v in zip(idx, per_image.view(len(idx), -1).mean(dim=1)):
                sg[j] = v
    if use_db:
        key = lambda j: (tuple(maps[j].shape), maps[j].dtype, maps[j].device, masks[j].shape[1])  # noqa: E731
        for idx, xs in _buckets(maps, key):
            with no_autocast(xs[0].device):
                m = torch.cat([masks[j] for j in idx])
                per_image = _db_per_image(torch.cat(xs), m, mean, eps)
            for j, v in zip(idx, per_image.view(len(idx), -1).mean(dim=1)):
                db[j] = v
    return (torch.stack([v.to(dtype) for v in db]), torch.stack([v.to(dtype) for v in sg]))


def _buckets(maps: list[Tensor], key) -> list[tuple[list[int], list[Tensor]]]:
    """Indices and maps of ``maps`` grouped by ``key(j)``, in order of first appearance."""
    out: dict[object, tuple[list[int], list[Tensor]]] = {}
    for j, x in enumerate(maps):
        idx, xs = out.setdefault(key(j), ([], []))
        idx.append(j)
        xs.append(x)
    return list(out.values())
