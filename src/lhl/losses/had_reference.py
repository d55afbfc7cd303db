"""HAD loss functions, reference-code variant (``variant: reference``; ``docs/deviations.md``,
"Reference variant").

The authors' released code differs from the paper in ways that matter to anyone reproducing
their numbers. ``docs/deviations.md`` lists these differences point by point; this module
implements items 2-8 as pure functions, literally, quirks included, and :func:`reference_total`
implements item 1.
Inputs follow the authors' conventions: the student's segmentation output enters as
log-probabilities, normals as L2-normalised vectors; the teacher target is the argmax label
(segmentation) or the post-processed output (regression, normals).

Behaviours (numbered as in ``docs/deviations.md``):

1. No 1/(t−1) factor: L = L_new + α Σ_j ½(L_db,j + L_sg,j) (:func:`reference_total`; the HAD
   method adds L_new).
2. Masks and groups are **pooled over the whole batch**: every mean/sum below runs over all
   pixels of the batch, not per image followed by a batch mean. The Sobel magnitude is computed
   with **zero padding** on the detached per-pixel map, min-max normalised **per image** without
   any tolerance, and edge = normalised value > edge_threshold; an image whose Sobel magnitude
   is constant divides 0 by 0 (NaN) and therefore has no edges
   (:func:`reference_edge_mask`). Note that with zero padding a constant *non-zero* loss map is
   not a constant-Sobel image in general: its border lights up (only maps of size ≤ 2 in both
   directions, where every pixel is a corner, or all-zero maps give a constant Sobel image).
3. Segmentation DB: per class c, G_c = exp(mean log x) over the entries x of ℓ·[argmax T = c]
   (over the whole batch) that are non-zero and not NaN, G_c = 0 if there are none (absent
   class, or only zero/NaN losses); weights w = softmax(−G) over **all** C classes, detached;
   L_db = (1/C) Σ_c w_c G_c.
4. Segmentation SG: Σ of ℓ over the edge pixels divided by B·H·W (not by the edge count).
5. Depth / regression DB: groups from the **student's raw output** S (no normalisation):
   {S > τ} and {S < τ} (elements equal to τ are in neither); L_db = mean |S − T| over the
   first + mean |S − T| over the second, an empty group adding 0.
6. Depth / regression SG: the (B, 1, H, W) map |S − T| times the (B, H, W) edge mask
   broadcasts to (B, B, H, W) (image i's loss times image j's mask); L_sg = its sum divided by
   its number of non-zero entries (0 if none).
7. Normal DB: per-pixel d = mean over channels of S·T (cos/3 for unit vectors); groups from the
   student's channel mean vs τ as in 5; L_db = (1 − mean d over group 1) + (1 − mean d over
   group 2), an empty group contributing 1.
8. Normal SG: e = S⊙T⊙mask, of shape (B, 3, H, W) (the (B, H, W) edge mask broadcast over the
   three channels, as in the authors' released code); L_sg = 1 − (Σ over all pixels and
   channels of S·T) / (number of non-zero entries of e, counted over all three channels), or 1
   if that number is 0 — the numerator is **not** masked. The count is over channel entries,
   not edge pixels: a masked pixel adds between 0 and 3 to it (see ``docs/deviations.md``).

**Which per-pixel map feeds the Sobel edge mask** (an open point, decided in
``docs/deviations.md``; we use the map the authors' code thresholds, which is each task's
per-pixel distillation map):

* segmentation: ℓ = −log p_student(argmax T) (the per-pixel NLL / CE at the teacher label);
* depth and other regression tasks: ℓ = |S − T| averaged over channels (for the one-channel
  tasks of the paper this is |S − T| itself);
* normals: ℓ = 1 − mean_c(S·T) = 1 − cos/3 (not 1 − cos: with zero padding the two give
  different border responses, so the choice is not cosmetic).

**Multi-channel regression** (other regression tasks follow the depth rules): item 5's
groups are taken element-wise on the (B, C, H, W) student output (literally "S > τ"), and item
6's broadcast uses the channel mean of |S − T| with shape (B, 1, H, W), so the B×B broadcast
happens for any channel count (the authors' code has only one-channel regression tasks).

Not reproduced: the authors multiply regression/normal losses by a validity mask derived from
the teacher output (teacher channel sum ≠ 0); a real-valued teacher output is almost never
exactly zero, so the mask would almost never change anything.

All functions are vectorised (no Python loop over images or classes), upcast half precision to
float32, run outside autocast and are differentiable in the student output.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from lhl.losses.had_common import as_float, check_map, check_number, no_autocast, sobel_raw

__all__ = [
    "reference_edge_mask",
    "reference_segmentation_terms",
    "reference_regression_terms",
    "reference_normal_terms",
    "reference_total",
]


def _edge_mask(loss_map: Tensor, edge_threshold: float) -> Tensor:
    """Item 2 on an already validated float (B, H, W) map."""
    g = sobel_raw(loss_map.detach(), "zeros", differentiable=False)
    lo = g.amin(dim=(-2, -1), keepdim=True)
    hi = g.amax(dim=(-2, -1), keepdim=True)
    norm = (g - lo) / (hi - lo)  # literally no tolerance: a constant G gives 0/0 = NaN
    return norm > edge_threshold  # NaN > k is False: no edges


def _check_pair(
    student: Tensor, teacher: Tensor, channels: int | None = None
) -> tuple[Tensor, Tensor]:
    s = as_float(student, "student")
    t = as_float(teacher, "teacher")
    if s.dim() != 4:
        raise ValueError(f"student must have shape (B, C, H, W), got shape {tuple(s.shape)}")
    if s.numel() == 0:
        raise ValueError(f"student must be non-empty, got shape {tuple(s.shape)}")
    if t.shape != s.shape:
        raise ValueError(
            f"teacher shape {tuple(t.shape)} does not match student shape {tuple(s.shape)}"
        )
    if channels is not None and s.shape[1] != channels:
        raise ValueError(f"expected {channels} channels, got shape {tuple(s.shape)}")
    if t.device != s.device:
        raise ValueError(f"teacher is on {t.device} but student is on {s.device}")
    dtype = torch.promote_types(s.dtype, t.dtype)
    return s.to(dtype), t.detach().to(dtype)


def reference_edge_mask(loss_map: Tensor, edge_threshold: float) -> Tensor:
    """Item 2: the reference code's Sobel edge mask.

    Sobel magnitude (eq. 8 kernels) of ``loss_map.detach()`` with **zero** padding, min-max
    normalised per image with a plain division (no tolerance), edge = normalised value >
    ``edge_threshold``. An image whose Sobel magnitude is constant gives 0/0 = NaN and no edges.

    Args:
        loss_map: (B, H, W) per-pixel map (see the module docstring for which map each task
            uses).
        edge_threshold: the edge threshold (config key ``edge_threshold``).

    Returns:
        Bool tensor (B, H, W).
    """
    edge_threshold = check_number(edge_threshold, "edge_threshold")
    x = check_map(loss_map, "loss_map")
    with no_autocast(x.device):
        return _edge_mask(x, edge_threshold)


def reference_segmentation_terms(
    student_logprob: Tensor, teacher_label: Tensor, edge_threshold: float
) -> tuple[Tensor, Tensor]:
    """Items 3 and 4: (L_db, L_sg) of a segmentation task, pooled over the batch.

    The per-pixel map is ℓ = −student_logprob[argmax T] (NLL at the teacher label), and the edge
    mask is :func:`reference_edge_mask` of ℓ.

    * L_db (item 3): for every class c of the C classes, G_c = exp(mean log x) over the entries
      x of ℓ·[label = c] of the whole batch that are non-zero and not NaN (G_c = 0 if none);
      w = softmax(−G) over the C classes, detached; L_db = (1/C) Σ_c w_c G_c.
    * L_sg (item 4): Σ_{edge pixels} ℓ / (B·H·W).

    Args:
        student_logprob: (B, C, H, W) student log-probabilities (log_softmax of the logits).
        teacher_label: (B, H, W) integer teacher argmax in [0, C).
        edge_threshold: Sobel edge threshold.

    Returns:
        ``(L_db, L_sg)`` 0-dim tensors (float32, or float64 for float64 input).
    """
    edge_threshold = check_number(edge_threshold, "edge_threshold")
    lp = as_float(student_logprob, "student_logprob")
    if lp.dim() != 4 or lp.numel() == 0:
        raise ValueError(
            f"student_logprob must have non-empty shape (B, C, H, W), got {tuple(lp.shape)}"
        )
    if not isinstance(teacher_label, Tensor):
        raise TypeError(f"teacher_label must be a torch.Tensor, got {type(teacher_label).__name__}")
    ldt = teacher_label.dtype
    if ldt.is_floating_point or ldt.is_complex or ldt == torch.bool:
        raise TypeError(f"teacher_label must be an integer tensor, got dtype {teacher_label.dtype}")
    b, c, h, w = lp.shape
    if teacher_label.shape != (b, h, w):
        raise ValueError(
            f"teacher_label shape {tuple(teacher_label.shape)} does not match student_logprob "
            f"shape {tuple(lp.shape)}; expected ({b}, {h}, {w})"
        )
    if teacher_label.device != lp.device:
        raise ValueError(
            f"teacher_label is on {teacher_label.device} but student is on {lp.device}"
        )
    label = teacher_label.long()
    lo, hi = int(label.min()), int(label.max())
    if lo < 0 or hi >= c:
        raise ValueError(f"teacher_label values must be in [0, {c}), got range [{lo}, {hi}]")
    with no_autocast(lp.device):
        loss = -lp.gather(1, label.unsqueeze(1)).squeeze(1)  # (B, H, W), per-pixel NLL
        # Item 3: pooled per-class geometric means over non-zero, non-NaN entries.
        flat = loss.reshape(-1)
        idx = label.reshape(-1)
        valid = (flat != 0) & ~torch.isnan(flat)
        safe = torch.where(valid, flat, torch.ones_like(flat))
        logs = torch.where(valid, torch.log(safe), torch.zeros_like(flat))
        sums = torch.zeros(c, dtype=flat.dtype, device=flat.device).index_add(0, idx, logs)
        counts = torch.zeros_like(sums).index_add(0, idx, valid.to(flat.dtype))
        has = counts > 0
        gm = torch.where(has, torch.exp(sums / counts.clamp_min(1.0)), torch.zeros_like(sums))
        weights = torch.softmax(-gm.detach(), dim=0)
        l_db = (weights * gm).sum() / c
        # Item 4: edge-pixel sum over B*H*W.
        edge = _edge_mask(loss, edge_threshold)
        l_sg = torch.where(edge, loss, torch.zeros_like(loss)).sum() / loss.numel()
        return l_db, l_sg


def reference_regression_terms(
    student: Tensor, teacher: Tensor, group_threshold: float, edge_threshold: float
) -> tuple[Tensor, Tensor]:
    """Items 5 and 6: (L_db, L_sg) of depth and the other regression tasks, pooled over the batch.

    With a = |S − T| (element-wise, (B, C, H, W)):

    * L_db (item 5): groups from the student's **raw** output, element-wise: {S > τ} and
      {S < τ} (elements equal to τ belong to neither); L_db = mean of a over the first + mean of
      a over the second, over the whole batch; an empty group adds 0.
    * L_sg (item 6): ℓ = channel mean of a, shape (B, 1, H, W) (= a for one-channel tasks);
      mask = :func:`reference_edge_mask` of ℓ, shape (B, H, W); e = ℓ·mask broadcasts to
      (B, B, H, W) with e[i, j] = ℓ_i·mask_j; L_sg = Σ e / (number of non-zero entries of e),
      0 if there is none.

    Args:
        student: (B, C, H, W) student output (raw, as the head produces it).
        teacher: (B, C, H, W) teacher output (post-processed); treated as a constant.
        group_threshold: τ, compared with the raw student values.
        edge_threshold: Sobel edge threshold.

    Returns:
        ``(L_db, L_sg)`` 0-dim tensors.
    """
    group_threshold = check_number(group_threshold, "group_threshold")
    edge_threshold = check_number(edge_threshold, "edge_threshold")
    s, t = _check_pair(student, teacher)
    with no_autocast(s.device):
        a = (s - t).abs()  # (B, C, H, W)
        zero = torch.zeros_like(a)
        l_db = a.new_zeros(())
        for grp in (s > group_threshold, s < group_threshold):  # two groups, not a data loop
            n = grp.sum()
            term = torch.where(grp, a, zero).sum() / n.clamp_min(1).to(a.dtype)
            l_db = l_db + torch.where(n > 0, term, torch.zeros_like(term))
        ell = a.mean(dim=1, keepdim=True)  # (B, 1, H, W)
        mask = _edge_mask(ell.squeeze(1), edge_threshold)  # (B, H, W)
        e = ell * mask  # (B, 1, H, W) * (B, H, W) -> (B, B, H, W): the reference quirk
        nnz = (e != 0).sum()
        l_sg = torch.where(nnz > 0, e.sum() / nnz.clamp_min(1).to(e.dtype), e.new_zeros(()))
        return l_db, l_sg


def reference_normal_terms(
    student_unit: Tensor, teacher_unit: Tensor, group_threshold: float, edge_threshold: float
) -> tuple[Tensor, Tensor]:
    """Items 7 and 8: (L_db, L_sg) of surface normals, pooled over the batch.

    With p = S·T element-wise ((B, 3, H, W)) and d = mean_c p (= cos/3 for unit vectors):

    * L_db (item 7): groups from the student's channel mean m = mean_c S: {m > τ} and {m < τ}
      (equal to τ: neither); L_db = (1 − mean d over group 1) + (1 − mean d over group 2), over
      the whole batch, an empty group contributing 1.
    * L_sg (item 8): the edge mask is :func:`reference_edge_mask` of ℓ = 1 − d; with
      e = p⊙mask, shape (B, 3, H, W) (the mask broadcast over the channels, as in the authors'
      released code), L_sg = 1 − (Σ of p over all pixels and channels, **unmasked**) /
      (number of non-zero entries of e over all three channels), or 1 if that number is 0.
      A masked pixel counts once per non-zero channel product, so the divisor is up to 3× the
      number of edge pixels (the paper's eq. 10 divides by the edge pixels and masks the
      numerator; see ``docs/deviations.md``).

    Args:
        student_unit: (B, 3, H, W) L2-normalised student normals.
        teacher_unit: (B, 3, H, W) L2-normalised teacher normals; treated as a constant.
        group_threshold: τ, compared with the student's channel mean.
        edge_threshold: Sobel edge threshold.

    Returns:
        ``(L_db, L_sg)`` 0-dim tensors.
    """
    group_threshold = check_number(group_threshold, "group_threshold")
    edge_threshold = check_number(edge_threshold, "edge_threshold")
    s, t = _check_pair(student_unit, teacher_unit, channels=3)
    with no_autocast(s.device):
        p = s * t  # (B, 3, H, W)
        d = p.mean(dim=1)  # (B, H, W)
        m = s.mean(dim=1)
        one = d.new_ones(())
        l_db = d.new_zeros(())
        for grp in (m > group_threshold, m < group_threshold):
            n = grp.sum()
            mean_d = torch.where(grp, d, torch.zeros_like(d)).sum() / n.clamp_min(1).to(d.dtype)
            l_db = l_db + torch.where(n > 0, 1 - mean_d, one)
        mask = _edge_mask(1 - d, edge_threshold)
        e = p * mask.unsqueeze(1)  # (B, 3, H, W): S⊙T⊙mask, the mask broadcast over channels
        nnz = (e != 0).sum()  # non-zero channel entries, not pixels
        l_sg = torch.where(nnz > 0, 1 - p.sum() / nnz.clamp_min(1).to(p.dtype), one)
        return l_db, l_sg


def reference_total(pairs: Sequence[tuple[Tensor, Tensor]], alpha: float) -> Tensor:
    """Item 1: α Σ_j ½(L_db,j + L_sg,j) over the old tasks j, with **no** 1/(t−1) factor.

    Args:
        pairs: one ``(L_db, L_sg)`` pair per old task.
        alpha: distillation weight α.

    Returns:
        0-dim tensor (a float32 zero when ``pairs`` is empty). The method adds L_new.
    """
    alpha = check_number(alpha, "alpha")
    total: Tensor | None = None
    for j, pair in enumerate(pairs):
        if len(pair) != 2:
            raise ValueError(f"pairs[{j}] must be an (L_db, L_sg) pair, got {len(pair)} items")
        db, sg = pair
        term = 0.5 * (db + sg)
        total = term if total is None else total + term
    if total is None:
        return torch.zeros(())
    return alpha * total
