"""Tests of the reference-code variant of the HAD losses (lhl.losses.had_reference).

Every expected value is a literal worked out by hand from the wording of items 1-8 in
docs/deviations.md; the computation is written in a comment next to it. Sobel with zero padding
on a 1×W map (used a lot below): the rows above and below are zero, so G_v = 0 and
G_h(j) = 2·(x[j−1] − x[j+1]) with x[−1] = x[W] = 0, hence G(j) = 2·|x[j−1] − x[j+1]|.
"""

from __future__ import annotations

import math

import pytest
import torch

from lhl.losses.had_reference import (
    reference_edge_mask,
    reference_normal_terms,
    reference_regression_terms,
    reference_segmentation_terms,
    reference_total,
)

F64 = torch.float64
e = math.exp


def t64(x) -> torch.Tensor:
    return torch.tensor(x, dtype=F64)


def logprob_from(ell, label, num_classes):
    """Log-probabilities whose NLL at `label` is `ell` (other entries: −100)."""
    ell = t64(ell)
    label = torch.tensor(label, dtype=torch.long)
    lp = torch.full((ell.shape[0], num_classes, *ell.shape[1:]), -100.0, dtype=F64)
    lp.scatter_(1, label.unsqueeze(1), -ell.unsqueeze(1))
    return lp, label


def normals(vectors):
    """(B, H, W, 3) nested list -> (B, 3, H, W) tensor."""
    return t64(vectors).permute(0, 3, 1, 2).contiguous()


# ------------------------------------------------------------------------------------------
# item 1: no 1/(t−1)
# ------------------------------------------------------------------------------------------


def test_item1_total_has_no_one_over_t_minus_one():
    # two old tasks (phase t = 3): α Σ_j ½(L_db,j + L_sg,j) = 2·(½(1 + 3) + ½(2 + 6)) = 12
    # (the paper's eq. 4 would divide by t − 1 = 2 and give 6)
    pairs = [(t64(1.0), t64(3.0)), (t64(2.0), t64(6.0))]
    assert reference_total(pairs, alpha=2.0).item() == pytest.approx(12.0)
    assert reference_total([], alpha=2.0).item() == 0.0


# ------------------------------------------------------------------------------------------
# item 2: edge mask (zero padding, per-image normalisation without tolerance)
# ------------------------------------------------------------------------------------------


def test_item2_edge_mask_1xw():
    # x = [1, 1, 5, 1]: G = 2·[|0−1|, |1−5|, |1−1|, |5−0|] = [2, 8, 0, 10]
    # normalised (÷10) = [0.2, 0.8, 0, 1] -> > 0.5: [F, T, F, T]
    m = reference_edge_mask(t64([[[1.0, 1.0, 5.0, 1.0]]]), 0.5)
    assert m.dtype == torch.bool
    assert m.tolist() == [[[False, True, False, True]]]


def test_item2_constant_image_has_no_edges():
    # all-zero map: G = 0 everywhere -> 0/0 = NaN -> no edges
    assert not reference_edge_mask(torch.zeros(2, 3, 4, dtype=F64), 0.5).any()
    # 2×2 constant 5: every pixel is a corner, G = 3·sqrt(2)·5 everywhere -> 0/0 -> no edges
    assert not reference_edge_mask(torch.full((1, 2, 2), 5.0, dtype=F64), 0.0).any()


def test_item2_constant_nonzero_map_lights_up_the_border():
    # 4×4 of ones, zero padding: corners 3·sqrt(2), other border pixels 4, interior 0;
    # normalised: corners 1, border 4 / (3·sqrt 2) = 0.9428, interior 0
    x = torch.ones(1, 4, 4, dtype=F64)
    border = torch.ones(4, 4, dtype=torch.bool)
    border[1:3, 1:3] = False
    corners = torch.zeros(4, 4, dtype=torch.bool)
    corners[0, 0] = corners[0, 3] = corners[3, 0] = corners[3, 3] = True
    assert torch.equal(reference_edge_mask(x, 0.9)[0], border)  # 0.9428 > 0.9
    assert torch.equal(reference_edge_mask(x, 0.95)[0], corners)


def test_item2_normalisation_is_per_image():
    # image 1 = 10 × image 0: same normalised Sobel map, same mask [F, T, F, T]
    x = t64([[[1.0, 1.0, 5.0, 1.0]], [[10.0, 10.0, 50.0, 10.0]]])
    assert reference_edge_mask(x, 0.5).tolist() == [[[False, True, False, True]]] * 2


# ------------------------------------------------------------------------------------------
# items 3, 4: segmentation
# ------------------------------------------------------------------------------------------


def test_item3_softmax_weighting_with_absent_class():
    # ℓ = [[1, 4], [2, 8]], labels [[0, 0], [1, 1]], C = 3 (class 2 absent)
    # G_0 = sqrt(1·4) = 2, G_1 = sqrt(2·8) = 4, G_2 = 0 (no entries)
    # w = softmax(−[2, 4, 0]) = [e^−2, e^−4, 1] / (e^−2 + e^−4 + 1)
    # L_db = (1/3)(2e^−2 + 4e^−4 + 0) / (1 + e^−2 + e^−4) = 0.0993752718527546
    lp, label = logprob_from([[[1.0, 4.0], [2.0, 8.0]]], [[[0, 0], [1, 1]]], 3)
    lp.requires_grad_(True)
    l_db, _ = reference_segmentation_terms(lp, label, 0.5)
    assert l_db.item() == pytest.approx(0.0993752718527546, rel=1e-12)
    # weights detached: dL/dlp[class 0 at (0,0)] = −(w_0/3)·dG_0/dℓ_00
    #   = −(w_0/3)·G_0/(2·ℓ_00)
    #   = −(w_0/3)·1 with w_0 = e^−2 / (1 + e^−2 + e^−4): −0.039103475942066125
    l_db.backward()
    assert lp.grad[0, 0, 0, 0].item() == pytest.approx(-0.039103475942066125, rel=1e-9)


def test_item3_zero_and_nan_entries_are_excluded():
    # ℓ = [0, 4, NaN, 9], labels [0, 0, 1, 1], C = 2
    # G_0 = GM over non-zero entries {4} = 4; G_1 = GM over non-NaN entries {9} = 9
    # L_db = ½(4e^−4 + 9e^−9) / (e^−4 + e^−9) = 2.0167321273107124
    lp, label = logprob_from([[[0.0, 4.0, float("nan"), 9.0]]], [[[0, 0, 1, 1]]], 2)
    l_db, l_sg = reference_segmentation_terms(lp, label, 0.5)
    assert l_db.item() == pytest.approx(2.0167321273107124, rel=1e-12)
    # the NaN reaches the Sobel map, its min/max are NaN, no pixel is an edge: L_sg = 0
    # (item 4: a sum over the edge pixels, so the NaN pixel is not summed)
    assert l_sg.item() == 0.0


def test_item4_sg_divides_by_b_h_w():
    # ℓ = [1, 1, 5, 1] (1×4), edges {1, 3} (see test_item2_edge_mask_1xw)
    # L_sg = (1 + 1) / (B·H·W = 4) = 0.5   (the paper's mean over the edges would give 1)
    # L_db: labels [0, 0, 1, 1]: G_0 = GM(1, 1) = 1, G_1 = GM(5, 1) = sqrt 5
    #   = ½(e^−1 + sqrt5·e^−sqrt5) / (e^−1 + e^−sqrt5) = 0.639132523937435
    lp, label = logprob_from([[[1.0, 1.0, 5.0, 1.0]]], [[[0, 0, 1, 1]]], 2)
    l_db, l_sg = reference_segmentation_terms(lp, label, 0.5)
    assert l_sg.item() == pytest.approx(0.5, rel=1e-12)
    assert l_db.item() == pytest.approx(0.639132523937435, rel=1e-12)


def test_item2_3_4_segmentation_batch_pooling():
    # image 0: ℓ = [[1, 4], [2, 8]], labels [[0, 0], [1, 1]]
    # image 1: ℓ = 16 everywhere, class 0
    # pooled: G_0 = GM(1, 4, 16, 16, 16, 16) = exp((0 + 2 + 4·4)·ln2 / 6) = 2^3 = 8
    #         G_1 = GM(2, 8) = 4
    # L_db = ½(8e^−8 + 4e^−4) / (e^−8 + e^−4) = 2.0359724199241827
    # (per image then batch mean would be ½(½(2e^−2 + 4e^−4)/(e^−2 + e^−4)
    #                                        + ½·16e^−16/(e^−16 + 1)) = 0.5596)
    lp, label = logprob_from(
        [[[1.0, 4.0], [2.0, 8.0]], [[16.0, 16.0], [16.0, 16.0]]],
        [[[0, 0], [1, 1]], [[0, 0], [0, 0]]],
        2,
    )
    l_db, l_sg = reference_segmentation_terms(lp, label, 0.5)
    assert l_db.item() == pytest.approx(2.0359724199241827, rel=1e-12)
    # SG. image 1 is a 2×2 constant -> constant Sobel -> no edges.
    # image 0, zero padding, (G_h, G_v) per pixel:
    #   (0,0): (−(2·4 + 8), −(2·2 + 8)) = (−16, −12) -> 20
    #   (0,1): (2·1 + 2, −(2 + 2·8)) = (4, −18)      -> sqrt 340 = 18.44
    #   (1,0): (−(4 + 2·8), 2·1 + 4) = (−20, 6)      -> sqrt 436 = 20.88 (max)
    #   (1,1): (1 + 2·2, 1 + 2·4) = (5, 9)           -> sqrt 106 = 10.30 (min)
    #   normalised [[0.917, 0.769], [1, 0]] -> edges (0,0), (0,1), (1,0)
    # L_sg = (1 + 4 + 2) / (B·H·W = 8) = 0.875
    assert l_sg.item() == pytest.approx(0.875, rel=1e-12)


def test_segmentation_constant_image_no_edges():
    # ℓ = 3 on a 2×2 image, all class 0 of C = 2: constant Sobel -> no edges -> L_sg = 0
    # L_db: G = [3, 0], w = [e^−3, 1] / (e^−3 + 1):
    #   ½·3e^−3 / (1 + e^−3) = 0.07113880976635018
    lp, label = logprob_from([[[3.0, 3.0], [3.0, 3.0]]], [[[0, 0], [0, 0]]], 2)
    l_db, l_sg = reference_segmentation_terms(lp, label, 0.5)
    assert l_sg.item() == 0.0
    assert l_db.item() == pytest.approx(0.07113880976635018, rel=1e-12)


def test_segmentation_errors():
    lp, label = logprob_from([[[1.0, 2.0]]], [[[0, 1]]], 2)
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        reference_segmentation_terms(lp, label + 1, 0.5)
    with pytest.raises(TypeError, match="integer"):
        reference_segmentation_terms(lp, label.double(), 0.5)
    with pytest.raises(ValueError, match="does not match"):
        reference_segmentation_terms(lp, label[:, :, :1], 0.5)


# ------------------------------------------------------------------------------------------
# items 5, 6: depth / regression
# ------------------------------------------------------------------------------------------


def depth(rows):
    """(B, H, W) nested list -> (B, 1, H, W)."""
    return t64(rows).unsqueeze(1)


def test_item5_strict_groups_from_raw_student_output():
    # S = [0.2, 0.5, 0.9, 0.7], T = [0, 0, 0.5, 0.2], τ = 0.5: |S−T| = [0.2, 0.5, 0.4, 0.5]
    # {S > τ} = {2, 3}: (0.4 + 0.5)/2 = 0.45; {S < τ} = {0}: 0.2; pixel 1 (S = τ) in neither
    # L_db = 0.45 + 0.2 = 0.65
    s, t = depth([[[0.2, 0.5, 0.9, 0.7]]]), depth([[[0.0, 0.0, 0.5, 0.2]]])
    l_db, _ = reference_regression_terms(s, t, 0.5, 0.5)
    assert l_db.item() == pytest.approx(0.65, rel=1e-12)
    # τ = 0.1: {S > τ} = all: (0.2 + 0.5 + 0.4 + 0.5)/4 = 0.4; {S < τ} empty adds 0 -> 0.4
    l_db, _ = reference_regression_terms(s, t, 0.1, 0.5)
    assert l_db.item() == pytest.approx(0.4, rel=1e-12)


def test_item2_5_regression_groups_pooled_over_the_batch():
    # τ = 0.5. image 0: S = [0.9, 0.1], |S−T| = [1, 0]; image 1: S = [0.8, 0.7], |S−T| = [0, 0]
    # pooled {S > τ} = {img0 p0: 1, img1 p0: 0, img1 p1: 0}: 1/3; {S < τ} = {img0 p1: 0}: 0
    # L_db = 1/3   (per image then mean: ½((1 + 0) + (0 + 0)) = 0.5)
    s = depth([[[0.9, 0.1]], [[0.8, 0.7]]])
    t = depth([[[-0.1, 0.1]], [[0.8, 0.7]]])
    s.requires_grad_(True)
    l_db, _ = reference_regression_terms(s, t, 0.5, 0.5)
    assert l_db.item() == pytest.approx(1 / 3, rel=1e-12)
    # d/dS at img0 p0 = sign(S − T) / 3 = 1/3
    l_db.backward()
    assert s.grad[0, 0, 0, 0].item() == pytest.approx(1 / 3, rel=1e-12)


def test_item6_bxb_broadcast():
    # T = 0, so ℓ_b = |S_b| (1×3 images), threshold 0.5:
    # image 0: ℓ = [1, 2, 0]: G = 2·[|0−2|, |1−0|, |2−0|] = [4, 2, 4] -> norm [1, 0, 1]
    #          mask_0 = [T, F, T]
    # image 1: ℓ = [0, 0, 3]: G = 2·[|0−0|, |0−3|, |0−0|] = [0, 6, 0] -> norm [0, 1, 0]
    #          mask_1 = [F, T, F]
    # e[i, j] = ℓ_i·mask_j: e[0,0] = [1,0,0], e[0,1] = [0,2,0], e[1,0] = [0,0,3], e[1,1] = 0
    # L_sg = (1 + 2 + 3) / 3 non-zero entries = 2   (image-wise pairing would give 1/1 = 1)
    s = depth([[[1.0, 2.0, 0.0]], [[0.0, 0.0, 3.0]]])
    t = torch.zeros_like(s)
    _, l_sg = reference_regression_terms(s, t, 10.0, 0.5)
    assert l_sg.item() == pytest.approx(2.0, rel=1e-12)


def test_item6_no_edge_gives_zero_and_multichannel():
    # S = T: |S−T| = 0 -> constant Sobel -> no edges, e = 0 -> L_sg = 0; both groups have
    # a = 0 -> L_db = 0
    s = torch.rand(2, 1, 3, 3, dtype=F64)
    l_db, l_sg = reference_regression_terms(s, s.clone(), 0.5, 0.5)
    assert l_db.item() == 0.0 and l_sg.item() == 0.0
    # 3-channel regression: the channel mean of |S−T| is broadcast, so two channels
    # [1, 2, 0] and [1, 2, 0] plus a zero channel give ℓ = [2/3, 4/3, 0] for image 0 and
    # [0, 0, 2] for image 1 -> the masks of test_item6_bxb_broadcast, and
    # L_sg = (2/3 + 4/3 + 2) / 3 = 4/3
    s = torch.zeros(2, 3, 1, 3, dtype=F64)
    s[0, :2, 0] = t64([1.0, 2.0, 0.0])
    s[1, :2, 0] = t64([0.0, 0.0, 3.0])
    _, l_sg = reference_regression_terms(s, torch.zeros_like(s), 10.0, 0.5)
    assert l_sg.item() == pytest.approx(4 / 3, rel=1e-12)


# ------------------------------------------------------------------------------------------
# items 7, 8: normals
# ------------------------------------------------------------------------------------------

# one 1×3 image: p0 S = T = (1, 0, 0)            -> S·T = (1, 0, 0),   d = 1/3,  mean S = 1/3
#                p1 S = (0.6, 0.8, 0), T = (1,0,0) -> S·T = (0.6, 0, 0), d = 0.2,  mean S = 1.4/3
#                p2 S = (0, 0, −1), T = (0, 0, 1) -> S·T = (0, 0, −1), d = −1/3, mean S = −1/3
S_N = normals([[[[1.0, 0.0, 0.0], [0.6, 0.8, 0.0], [0.0, 0.0, -1.0]]]])
T_N = normals([[[[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]]])


def test_item7_normal_groups():
    # τ = 0.4: group 1 {mean S > τ} = {p1}: 1 − 0.2 = 0.8
    #          group 2 {mean S < τ} = {p0, p2}: 1 − (1/3 − 1/3)/2 = 1  -> L_db = 1.8
    l_db, _ = reference_normal_terms(S_N, T_N, 0.4, 0.5)
    assert l_db.item() == pytest.approx(1.8, rel=1e-12)


def test_item7_empty_group_contributes_one():
    # τ = 0.5: group 1 empty -> 1; group 2 = all: 1 − (1/3 + 0.2 − 1/3)/3 = 1 − 1/15 = 14/15
    # L_db = 1 + 14/15 = 29/15
    l_db, _ = reference_normal_terms(S_N, T_N, 0.5, 0.5)
    assert l_db.item() == pytest.approx(29 / 15, rel=1e-12)


def test_item8_unmasked_numerator():
    # edge map ℓ = 1 − d = [2/3, 0.8, 4/3]; G = 2·[|0 − 0.8|, |2/3 − 4/3|, |0.8 − 0|]
    #   = [1.6, 4/3, 1.6] -> normalised [1, 0, 1] -> mask {p0, p2}
    # e = S⊙T⊙mask (3 channels): p0 (1, 0, 0), p1 masked out, p2 (0, 0, −1) -> 2 non-zero entries
    # numerator (unmasked, all pixels and channels) = 1 + 0.6 − 1 = 0.6
    # L_sg = 1 − 0.6/2 = 0.7   (a masked numerator would give 1 − 0/2 = 1)
    s = S_N.clone().requires_grad_(True)
    _, l_sg = reference_normal_terms(s, T_N, 0.4, 0.5)
    assert l_sg.item() == pytest.approx(0.7, rel=1e-12)
    # the unmasked numerator also sends gradient to the non-edge pixel p1:
    # d/dS_x(p1) = −T_x(p1)/2 = −0.5
    l_sg.backward()
    assert s.grad[0, 0, 0, 1].item() == pytest.approx(-0.5, rel=1e-12)


def test_item8_counts_nonzero_entries_over_the_three_channels():
    # one 1×3 image (unit vectors):
    #   p0 S = T = (0.6, 0.8, 0)         -> S·T = (0.36, 0.64, 0)   d = 1/3, ℓ = 1 − d = 2/3
    #   p1 S = (1, 0, 0), T = (0, 1, 0)  -> S·T = (0, 0, 0)         d = 0,   ℓ = 1
    #   p2 S = T = (2/3, 2/3, 1/3)       -> S·T = (4/9, 4/9, 1/9)   d = 1/3, ℓ = 2/3
    # edge mask (zero padding, 1×W): G = 2·[|0 − 1|, |2/3 − 2/3|, |1 − 0|] = [2, 0, 2]
    #   -> normalised [1, 0, 1] -> > 0.5: {p0, p2}
    # e = S⊙T⊙mask, (1, 3, 1, 3): p0 (0.36, 0.64, 0) has 2 non-zero entries (its z product is
    #   exactly 0), p2 (4/9, 4/9, 1/9) has 3 -> count = 5 (not 2 edge pixels, nor 3·2 = 6)
    # numerator (unmasked) = (0.36 + 0.64 + 0) + 0 + (4/9 + 4/9 + 1/9) = 2
    # L_sg = 1 − 2/5 = 0.6   (counting the non-zero channel sums, 2 pixels, would give 1 − 2/2 = 0)
    # L_db, τ = 0.5: mean_c S = [1.4/3, 1/3, 5/9]: group 1 {> τ} = {p2}: 1 − 1/3 = 2/3;
    #   group 2 {< τ} = {p0, p1}: 1 − (1/3 + 0)/2 = 5/6 -> L_db = 2/3 + 5/6 = 1.5
    s = normals([[[[0.6, 0.8, 0.0], [1.0, 0.0, 0.0], [2 / 3, 2 / 3, 1 / 3]]]])
    t = normals([[[[0.6, 0.8, 0.0], [0.0, 1.0, 0.0], [2 / 3, 2 / 3, 1 / 3]]]])
    l_db, l_sg = reference_normal_terms(s, t, 0.5, 0.5)
    assert l_sg.item() == pytest.approx(0.6, rel=1e-12)
    assert l_db.item() == pytest.approx(1.5, rel=1e-12)


def test_item8_no_edge_gives_one():
    # 2×2 image, S = T = (0, 0, 1) everywhere: 1 − d = 2/3 constant, every pixel a corner,
    # constant Sobel -> no edges -> L_sg = 1.
    # L_db with τ = 0.5 (mean S = 1/3 < τ): group 1 empty -> 1; group 2: 1 − 1/3 = 2/3 -> 5/3
    s = normals([[[[0.0, 0.0, 1.0]] * 2] * 2])
    l_db, l_sg = reference_normal_terms(s, s.clone(), 0.5, 0.5)
    assert l_sg.item() == 1.0
    assert l_db.item() == pytest.approx(5 / 3, rel=1e-12)


def test_normal_errors_and_dtypes():
    with pytest.raises(ValueError, match="3 channels"):
        reference_normal_terms(torch.rand(1, 2, 3, 3), torch.rand(1, 2, 3, 3), 0.5, 0.5)
    with pytest.raises(ValueError, match="does not match"):
        reference_regression_terms(torch.rand(1, 1, 3, 3), torch.rand(1, 1, 3, 4), 0.5, 0.5)
    s = torch.nn.functional.normalize(torch.randn(2, 3, 5, 5), dim=1)
    t = torch.nn.functional.normalize(torch.randn(2, 3, 5, 5), dim=1)
    l_db, l_sg = reference_normal_terms(s.half(), t.half(), 0.0, 0.5)
    assert l_db.dtype == torch.float32 and torch.isfinite(l_db) and torch.isfinite(l_sg)
