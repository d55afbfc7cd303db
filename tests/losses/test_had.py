"""Tests of the paper variant of the HAD losses (lhl.losses.had; HAD paper Sec. 4).

Expected values are literals worked out by hand (the computation is in a comment next to each),
or come from a deliberately naive per-image / per-group loop written here, independent of the
vectorised implementation.
"""

from __future__ import annotations

import math

import pytest
import torch

from lhl.losses.had import (
    db_had_loss,
    group_masks,
    group_masks_batched,
    had_terms,
    had_terms_batched,
    sg_had_loss,
    sobel_magnitude,
)

F64 = torch.float64


def t64(x) -> torch.Tensor:
    return torch.tensor(x, dtype=F64)


# ℓ = [[1, 4], [2, 8]], groups {1, 4} (top row) and {2, 8} (bottom row), plus an empty group.
ELL = t64([[[1.0, 4.0], [2.0, 8.0]]])
TWO_GROUPS = torch.tensor([[[[1, 1], [0, 0]], [[0, 0], [1, 1]]]], dtype=torch.bool)
THREE_GROUPS = torch.cat([TWO_GROUPS, torch.zeros(1, 1, 2, 2, dtype=torch.bool)], dim=1)


# ------------------------------------------------------------------------------------------
# DB-HAD worked examples
# ------------------------------------------------------------------------------------------


def test_db_worked_example_geometric():
    # GM{1,4} = sqrt(4) = 2, GM{2,8} = sqrt(16) = 4 -> (2 + 4) / 2 = 3
    assert db_had_loss(ELL, TWO_GROUPS, eps=0.0).item() == pytest.approx(3.0, abs=1e-12)
    # default eps = 1e-8 changes it by ~1e-8 only
    assert db_had_loss(ELL, TWO_GROUPS).item() == pytest.approx(3.0, abs=1e-7)


def test_db_worked_example_arithmetic():
    # mean{1,4} = 2.5, mean{2,8} = 5 -> (2.5 + 5) / 2 = 3.75
    out = db_had_loss(ELL, TWO_GROUPS, mean="arithmetic", eps=0.0)
    assert out.item() == pytest.approx(3.75, abs=1e-12)


def test_db_empty_group_is_skipped():
    # the third group is empty: mean over the 2 non-empty groups, unchanged (3 and 3.75)
    assert db_had_loss(ELL, THREE_GROUPS, eps=0.0).item() == pytest.approx(3.0, abs=1e-12)
    out = db_had_loss(ELL, THREE_GROUPS, mean="arithmetic", eps=0.0)
    assert out.item() == pytest.approx(3.75, abs=1e-12)


def test_db_batch_of_two_with_different_occupancy():
    # image 0: ℓ = [[1, 4], [2, 8]]; groups g0 = {1, 4}, g1 = {2, 8}, g2 = {} (empty)
    #   geometric: (2 + 4) / 2 = 3;           arithmetic: (2.5 + 5) / 2 = 3.75
    # image 1: ℓ = [[4, 16], [5, 7]]; groups g0 = {4, 16}, g1 = {5}, g2 = {7}
    #   geometric: (8 + 5 + 7) / 3 = 20/3;    arithmetic: (10 + 5 + 7) / 3 = 22/3
    # batch mean: geometric (3 + 20/3) / 2 = 29/6; arithmetic (3.75 + 22/3) / 2 = 133/24
    ell = t64([[[1.0, 4.0], [2.0, 8.0]], [[4.0, 16.0], [5.0, 7.0]]])
    groups = torch.tensor(
        [
            [[[1, 1], [0, 0]], [[0, 0], [1, 1]], [[0, 0], [0, 0]]],
            [[[1, 1], [0, 0]], [[0, 0], [1, 0]], [[0, 0], [0, 1]]],
        ],
        dtype=torch.bool,
    )
    assert db_had_loss(ell, groups, eps=0.0).item() == pytest.approx(29 / 6, abs=1e-12)
    out = db_had_loss(ell, groups, mean="arithmetic", eps=0.0)
    assert out.item() == pytest.approx(133 / 24, abs=1e-12)


def _naive_db(ell, groups, mean, eps):
    """Per-image, per-group loops: eq. 6 averaged over the non-empty groups (docs/deviations.md),
    written independently."""
    per_image = []
    for b in range(ell.shape[0]):
        vals = []
        for g in range(groups.shape[1]):
            px = ell[b][groups[b, g]].tolist()
            if not px:
                continue
            if mean == "geometric":
                vals.append(math.exp(sum(math.log(p + eps) for p in px) / len(px)))
            else:
                vals.append(sum(px) / len(px))
        per_image.append(sum(vals) / len(vals) if vals else 0.0)
    return sum(per_image) / len(per_image)


@pytest.mark.parametrize("mean", ["geometric", "arithmetic"])
def test_db_matches_naive_loops(mean):
    gen = torch.Generator().manual_seed(0)
    ell = torch.rand(3, 5, 6, generator=gen, dtype=F64) * 3
    teacher = torch.randn(3, 4, 5, 6, generator=gen, dtype=F64)
    teacher[1, 2] = -10.0  # class 2 absent from image 1
    groups = group_masks(teacher, "classification")
    expected = _naive_db(ell, groups, mean, 1e-3)
    out = db_had_loss(ell, groups, mean=mean, eps=1e-3)
    assert out.item() == pytest.approx(expected, rel=1e-12)


def test_db_fp16_is_upcast_to_float32():
    ell = (torch.rand(2, 8, 8) * 50 + 1e-3).half()
    groups = group_masks(torch.randn(2, 3, 8, 8), "classification")
    out = db_had_loss(ell, groups)
    assert out.dtype == torch.float32 and torch.isfinite(out)
    # same value as computing from the float32 copy
    assert out.item() == pytest.approx(db_had_loss(ell.float(), groups).item(), rel=1e-6)
    out_bf = db_had_loss(ell.bfloat16(), groups)
    assert out_bf.dtype == torch.float32 and torch.isfinite(out_bf)


def test_db_runs_outside_autocast_and_keeps_float64():
    ell = torch.rand(1, 4, 4) + 0.1
    groups = group_masks(torch.randn(1, 2, 4, 4), "classification")
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        out = db_had_loss(ell, groups)
    assert out.dtype == torch.float32
    assert db_had_loss(ell.double(), groups).dtype == F64


def test_db_geometric_gm_does_not_underflow():
    # a product of 10_000 pixels of 1e-3 underflows; exp(mean log) is exactly 1e-3
    ell = torch.full((1, 100, 100), 1e-3)
    groups = torch.ones(1, 1, 100, 100, dtype=torch.bool)
    # Tolerance from the numerics: float32(1e-3) = 1e-3·(1 + 4.7e-8); the float64 mean of
    # 10^4 logs adds ≤ 1e4 · 1.1e-16 · |ln 1e-3| ≈ 8e-12; the result is rounded to float32
    # (≤ 6e-8). rel = 1e-6 (~8 float32 ulps) holds on any CPU and thread count, and still
    # catches a float32 accumulation (order-dependent, up to 1e4 · 1.2e-7; 1.75e-5 seen).
    assert db_had_loss(ell, groups, eps=0.0).item() == pytest.approx(1e-3, rel=1e-6)


def test_db_gradient_has_no_nan_with_empty_groups():
    ell = ELL.clone().requires_grad_(True)
    db_had_loss(ell, THREE_GROUPS).backward()
    assert torch.isfinite(ell.grad).all()
    # d/dℓ of ½(sqrt(ℓ00 ℓ01) + sqrt(ℓ10 ℓ11)) at ℓ00 = 1: ½ · ½ · sqrt(4/1) = 0.5
    assert ell.grad[0, 0, 0].item() == pytest.approx(0.5, rel=1e-6)


@pytest.mark.parametrize("mean", ["geometric", "arithmetic"])
def test_db_gradcheck(mean):
    gen = torch.Generator().manual_seed(1)
    ell = (torch.rand(2, 3, 4, generator=gen, dtype=F64) + 0.1).requires_grad_(True)
    groups = torch.zeros(2, 3, 3, 4, dtype=torch.bool)
    groups[:, 0, :, :2] = True
    groups[:, 1, :, 2:] = True  # group 2 stays empty in both images
    groups[1, 1, 0, 3] = False
    groups[1, 0, 0, 3] = True
    assert torch.autograd.gradcheck(lambda x: db_had_loss(x, groups, mean=mean, eps=1e-3), (ell,))


def test_db_shape_errors():
    with pytest.raises(ValueError, match="loss_map"):
        db_had_loss(torch.rand(2, 2), TWO_GROUPS)
    with pytest.raises(ValueError, match="does not match"):
        db_had_loss(torch.rand(1, 3, 2), TWO_GROUPS)
    with pytest.raises(ValueError, match="groups"):
        db_had_loss(torch.rand(1, 2, 2), TWO_GROUPS[0])
    with pytest.raises(ValueError, match="'median'.*'geometric'.*'arithmetic'"):
        db_had_loss(ELL, TWO_GROUPS, mean="median")
    with pytest.raises(ValueError, match="eps"):
        db_had_loss(ELL, TWO_GROUPS, eps=-1.0)


# ------------------------------------------------------------------------------------------
# group masks
# ------------------------------------------------------------------------------------------


def test_groups_regression_worked_example():
    # v = [[0, 1], [2, 3]] -> normalised [[0, 1/3], [2/3, 1]]
    teacher = t64([[[[0.0, 1.0], [2.0, 3.0]]]])
    g = group_masks(teacher, "regression", threshold=0.5)
    assert g.dtype == torch.bool and g.shape == (1, 2, 2, 2)
    # group 1 = {v < 0.5} = {0, 1/3}; group 2 = {v >= 0.5} = {2/3, 1}
    assert g[0, 0].tolist() == [[True, True], [False, False]]
    assert g[0, 1].tolist() == [[False, False], [True, True]]
    # 3 bins: floor(3·[0, 1/3, 2/3, 1]) = [0, 1, 2, 3] -> min(., 2) = [0, 1, 2, 2]
    g3 = group_masks(teacher, "regression", num_groups=3)
    assert g3.shape == (1, 3, 2, 2)
    assert g3[0].long().argmax(0).tolist() == [[0, 1], [2, 2]]
    assert g3.sum(1).eq(1).all()


def test_groups_regression_threshold_is_inclusive_upper():
    # v = [0, 0.5, 1] (already normalised); v = τ = 0.5 goes to group 2 ({v >= τ})
    teacher = t64([[[[0.0, 0.5, 1.0]]]])
    g = group_masks(teacher, "regression", threshold=0.5)
    assert g[0, 0, 0].tolist() == [True, False, False]
    assert g[0, 1, 0].tolist() == [False, True, True]


def test_groups_regression_five_bins_with_channel_mean_and_normalisation():
    # hand-made v in [0, 1]: [[0, 0.1, 0.25], [0.5, 0.79, 1.0]]; 5·v = [0, 0.5, 1.25, 2.5, 3.95, 5]
    # -> bins floor = [0, 0, 1, 2, 3, 5 -> min(5, 4) = 4]
    v = t64([[0.0, 0.1, 0.25], [0.5, 0.79, 1.0]])
    raw = 2.0 + 10.0 * v  # min-max normalisation undoes the affine map
    # two channels whose mean is `raw`
    teacher = torch.stack([raw + 3.0, raw - 3.0]).unsqueeze(0)
    g = group_masks(teacher, "regression", threshold=0.123, num_groups=5)
    assert g.shape == (1, 5, 2, 3)
    assert g.sum(1).eq(1).all()
    assert g[0].long().argmax(0).tolist() == [[0, 0, 1], [2, 3, 4]]


def test_groups_regression_constant_image_is_all_low():
    # constant v -> normalised v = 0 -> everything in group 1 ({v < τ}), group 2 empty
    teacher = torch.full((1, 3, 2, 2), 7.0)
    g = group_masks(teacher, "regression", threshold=0.5)
    assert g[0, 0].all() and not g[0, 1].any()
    # nearly constant within the 1e-6·max(1, |max|) tolerance: also v = 0
    teacher2 = t64([[[[1000.0, 1000.0 + 1e-4]]]])
    assert group_masks(teacher2, "regression")[0, 0].all()


def test_groups_regression_per_image_normalisation():
    # each image is normalised on its own: a 100x larger second image gives the same groups
    a = t64([[[0.0, 1.0, 2.0, 3.0]]])
    teacher = torch.stack([a, 100 * a + 5])
    g = group_masks(teacher, "regression", threshold=0.5)
    assert torch.equal(g[0], g[1])
    assert g[0, 1, 0].tolist() == [False, False, True, True]


def test_groups_classification_from_argmax():
    # logits at 4 pixels over 3 classes; argmax = [[2, 0], [0, 1]]
    teacher = t64(
        [[[[0.1, 5.0], [3.0, 0.0]], [[0.2, 1.0], [1.0, 2.0]], [[0.9, 2.0], [0.5, 1.0]]]]
    )
    g = group_masks(teacher, "classification")
    assert g.dtype == torch.bool and g.shape == (1, 3, 2, 2)
    assert g[0, 0].tolist() == [[False, True], [True, False]]
    assert g[0, 1].tolist() == [[False, False], [False, True]]
    assert g[0, 2].tolist() == [[True, False], [False, False]]


def test_groups_errors():
    teacher = torch.rand(1, 2, 3, 3)
    with pytest.raises(ValueError, match="'segmentation'.*'classification'.*'regression'"):
        group_masks(teacher, "segmentation")
    with pytest.raises(ValueError, match="num_groups"):
        group_masks(teacher, "regression", num_groups=1)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        group_masks(teacher[0], "regression")


# ------------------------------------------------------------------------------------------
# Sobel and SG-HAD
# ------------------------------------------------------------------------------------------


def test_sobel_constant_map_replicate_is_zero_and_sg_is_zero():
    x = torch.full((2, 4, 5), 3.7, dtype=F64)
    assert torch.equal(sobel_magnitude(x), torch.zeros_like(x))
    assert torch.equal(sobel_magnitude(x, normalize=False), torch.zeros_like(x))
    assert sg_had_loss(x, 0.5).item() == 0.0
    # even with threshold below 0, normalised G = 0 for a constant map... but 0 > -1: all pixels
    # are "edges" then, and the mean of a constant map is the constant
    assert sg_had_loss(x, -1.0).item() == pytest.approx(3.7)


def test_sobel_zero_padding_lights_up_the_border():
    # constant 1 on 4x4 with zero padding (cross-correlation with G_h, G_v):
    #   interior: 0;  non-corner border: |G_h| or |G_v| = 1+2+1 = 4, the other 0 -> 4;
    #   corner: G_h = -(2+1) = -3, G_v = -(2+1) = -3 -> 3·sqrt(2)
    x = torch.ones(1, 4, 4, dtype=F64)
    g = sobel_magnitude(x, normalize=False, padding="zeros")[0]
    c, e = 3 * math.sqrt(2), 4.0
    expected = t64([[c, e, e, c], [e, 0, 0, e], [e, 0, 0, e], [c, e, e, c]])
    assert torch.allclose(g, expected, atol=1e-12)
    # normalised: corners 1, border 4 / (3·sqrt 2) = 0.9428, interior 0
    gn = sobel_magnitude(x, padding="zeros")[0]
    assert torch.allclose(gn, expected / c, atol=1e-12)
    border = torch.ones(4, 4, dtype=torch.bool)
    border[1:3, 1:3] = False
    assert torch.equal(gn > 0.5, border)  # the whole border is "edge"
    # SG-HAD on that constant map is no longer 0: mean of ℓ = 1 over the border
    assert sg_had_loss(x, 0.5, padding="zeros").item() == pytest.approx(1.0)


def test_sobel_step_map_replicate():
    # columns [0, 0, 1, 1] (replicate padding): G_h at col 1 = 0·4 - 1·4 -> |4|, col 2 -> |4|,
    # cols 0 and 3 -> 0; G_v = 0 everywhere. Normalised: cols 1, 2 -> 1, others 0.
    x = t64([[[0.0, 0.0, 1.0, 1.0]] * 3])
    g = sobel_magnitude(x, normalize=False)[0]
    assert torch.allclose(g, t64([[0.0, 4.0, 4.0, 0.0]] * 3))
    assert torch.allclose(sobel_magnitude(x)[0], t64([[0.0, 1.0, 1.0, 0.0]] * 3))


def test_sobel_per_image_normalisation():
    x = t64([[[0.0, 0.0, 1.0, 1.0]] * 3])
    both = torch.cat([x, 50 * x])
    gn = sobel_magnitude(both)
    assert torch.allclose(gn[0], gn[1])
    assert gn.max().item() == pytest.approx(1.0)


def test_sg_step_map_value_and_gradient():
    # image 0: step [2, 2, 6, 6] (3 rows): edges = cols 1, 2 -> mean(2, 6) = 4
    # image 1: constant -> no edge -> 0. Batch mean (4 + 0) / 2 = 2.
    x = t64([[[2.0, 2.0, 6.0, 6.0]] * 3, [[5.0] * 4] * 3]).requires_grad_(True)
    out = sg_had_loss(x, 0.5)
    assert out.item() == pytest.approx(2.0, abs=1e-12)
    out.backward()
    # d/dℓ = (1/2 batch) · (1/6 edge pixels) on the 6 edge pixels of image 0, 0 elsewhere
    expected = torch.zeros_like(x)
    expected[0, :, 1:3] = 1 / 12
    assert torch.allclose(x.grad, expected, atol=1e-12)


def test_sg_matches_naive_loop():
    gen = torch.Generator().manual_seed(3)
    x = torch.rand(3, 6, 7, generator=gen, dtype=F64)
    g = sobel_magnitude(x)
    expected = []
    for b in range(3):
        sel = x[b][g[b] > 0.6].tolist()
        expected.append(sum(sel) / len(sel) if sel else 0.0)
    assert sg_had_loss(x, 0.6).item() == pytest.approx(sum(expected) / 3, rel=1e-12)


def test_sg_normalize_switch():
    # without normalisation the threshold applies to the raw magnitude (4 at cols 1, 2)
    x = t64([[[2.0, 2.0, 3.0, 3.0]] * 3])  # raw G = 4 at cols 1, 2
    assert sg_had_loss(x, 3.0, normalize=False).item() == pytest.approx(2.5)
    assert sg_had_loss(x, 5.0, normalize=False).item() == 0.0


def test_sg_gradcheck_with_stable_mask():
    gen = torch.Generator().manual_seed(2)
    step = t64([[[0.0, 0.0, 0.0, 3.0, 3.0, 3.0]] * 5] * 2)
    x = step + 0.05 * torch.rand(2, 5, 6, generator=gen, dtype=F64) + 0.5
    g = sobel_magnitude(x)
    # precondition: no normalised magnitude close to the threshold, so the mask is stable
    assert ((g - 0.5).abs() > 1e-2).all()
    x.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda y: sg_had_loss(y, 0.5), (x,))


def test_sobel_gradcheck_unnormalised():
    gen = torch.Generator().manual_seed(4)
    x = torch.rand(2, 4, 5, generator=gen, dtype=F64).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda y: sobel_magnitude(y, normalize=False), (x,))


def test_sg_fp16_is_upcast():
    x = (torch.rand(2, 8, 8) * 100).half()
    out = sg_had_loss(x, 0.5)
    assert out.dtype == torch.float32 and torch.isfinite(out)
    assert sobel_magnitude(x).dtype == torch.float32


def test_sobel_and_sg_errors():
    with pytest.raises(ValueError, match="'reflect'.*'replicate'.*'zeros'"):
        sobel_magnitude(torch.rand(1, 3, 3), padding="reflect")
    with pytest.raises(ValueError, match="'circular'"):
        sg_had_loss(torch.rand(1, 3, 3), 0.5, padding="circular")
    with pytest.raises(ValueError, match=r"\(B, H, W\)"):
        sg_had_loss(torch.rand(1, 1, 3, 3), 0.5)
    with pytest.raises(ValueError, match="threshold"):
        sg_had_loss(torch.rand(1, 3, 3), float("nan"))


# ------------------------------------------------------------------------------------------
# had_terms
# ------------------------------------------------------------------------------------------


def test_had_terms_and_switches():
    x = t64([[[2.0, 2.0, 6.0, 6.0]] * 3])
    groups = torch.zeros(1, 2, 3, 4, dtype=torch.bool)
    groups[:, 0, :, :2] = True
    groups[:, 1, :, 2:] = True
    # DB: GM{2,...} = 2, GM{6,...} = 6 -> 4 (eps = 0); SG: mean(2, 6) over cols 1, 2 = 4
    db, sg = had_terms(x, groups, 0.5, eps=0.0)
    assert db.item() == pytest.approx(4.0, abs=1e-12) and sg.item() == pytest.approx(4.0)
    db, sg = had_terms(x, None, 0.5, use_db=False)
    assert db.item() == 0.0 and db.dtype == F64 and sg.item() == pytest.approx(4.0)
    db, sg = had_terms(x.half(), groups, 0.5, use_sg=False)
    assert sg.item() == 0.0 and sg.dtype == torch.float32 and db.dtype == torch.float32
    with pytest.raises(ValueError, match="groups"):
        had_terms(x, None, 0.5)
    with pytest.raises(ValueError, match="mean"):
        had_terms(x, groups, 0.5, use_db=False, mean="harmonic")


@pytest.mark.parametrize("padding", ["replicate", "zeros"])
def test_sobel_matches_conv2d_with_the_paper_kernels(padding):
    # independent check: eq. 8 with the explicit 3x3 kernels G_h, G_v and F.conv2d
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(2, 5, 6, generator=gen, dtype=F64)
    gh = t64([[1, 0, -1], [2, 0, -2], [1, 0, -1]])  # [1, 2, 1]^T [1, 0, -1]
    gv = t64([[1, 2, 1], [0, 0, 0], [-1, -2, -1]])  # [1, 0, -1]^T [1, 2, 1]
    mode = "replicate" if padding == "replicate" else "constant"
    xp = torch.nn.functional.pad(x.unsqueeze(1), (1, 1, 1, 1), mode=mode)
    resp = torch.nn.functional.conv2d(xp, torch.stack([gh, gv]).unsqueeze(1))
    expected = resp.square().sum(1).sqrt()
    out = sobel_magnitude(x, normalize=False, padding=padding)
    assert torch.allclose(out, expected, atol=1e-12)


# ------------------------------------------------------------------------------------------
# batched variants (all old tasks in one call) = the per-task functions
# ------------------------------------------------------------------------------------------


def _old_tasks(dtype=torch.float32, seed=11):
    """Maps and teachers like a 10-task step: one segmentation (8 classes), a normal-like task
    (3 channels), eight others (1 or 2 channels), plus a map of another size (its own bucket)."""
    gen = torch.Generator().manual_seed(seed)
    b, h, w = 3, 9, 11
    channels = [8, 3, 1, 1, 1, 1, 1, 1, 2, 1]
    kinds = ["classification"] + ["regression"] * 9
    teachers = [torch.randn(b, c, h, w, generator=gen, dtype=dtype) for c in channels]
    teachers.append(torch.randn(2, 2, 5, 7, generator=gen, dtype=dtype))
    kinds.append("regression")
    teachers[3][1] = 4.0  # a constant image: one group, no edges
    maps = [torch.rand(t.shape[0], *t.shape[2:], generator=gen, dtype=dtype) for t in teachers]
    maps[2][0, 2:5, 3:7] += 3.0  # a blob: clear edges
    maps[4][2] = 0.5  # constant map
    return maps, teachers, kinds


@pytest.mark.parametrize("num_groups", [2, 5])
def test_group_masks_batched_equals_group_masks(num_groups):
    _, teachers, kinds = _old_tasks()
    batched = group_masks_batched(teachers, kinds, 0.3, num_groups)
    for t, k, g in zip(teachers, kinds, batched):
        assert torch.equal(g, group_masks(t, k, 0.3, num_groups))


def test_group_masks_classification_ties_and_nan_as_argmax():
    t = torch.tensor([[[[1.0, 2.0, float("nan")]], [[1.0, 2.0, 0.0]], [[0.0, 2.0, float("nan")]]]])
    g = group_masks(t, "classification")
    # ties -> lowest index (0, then 0); NaN counts as the maximum, its first index (0)
    assert g[0].long().argmax(0).tolist() == [[0, 0, 0]] == t.argmax(1)[0].tolist()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("options", [
    {},
    {"mean": "arithmetic", "padding": "zeros"},
    {"normalize": False, "eps": 1e-3},
    {"use_db": False},
    {"use_sg": False},
])
def test_had_terms_batched_equals_had_terms_values_and_gradients(dtype, options):
    maps, teachers, kinds = _old_tasks(dtype)
    edge = 0.6 if options.get("normalize", True) else 1.5
    groups = [group_masks(t, k, 0.5) for t, k in zip(teachers, kinds)]
    leaves = [m.clone().requires_grad_(True) for m in maps]
    db, sg = had_terms_batched(leaves, groups, edge, **options)
    assert db.shape == sg.shape == (len(maps),) and db.dtype == sg.dtype == dtype
    weights = torch.linspace(0.5, 2.0, len(maps), dtype=dtype)
    ((db + 2 * sg) * weights).sum().backward()
    tol = {"rtol": 1e-6, "atol": 1e-7} if dtype == torch.float32 else {"rtol": 1e-12, "atol": 1e-14}
    for j, (m, g) in enumerate(zip(maps, groups)):
        leaf = m.clone().requires_grad_(True)
        db_j, sg_j = had_terms(leaf, g, edge, **options)
        torch.testing.assert_close(db[j], db_j, **tol)
        torch.testing.assert_close(sg[j], sg_j, **tol)
        if leaf.requires_grad and (db_j.requires_grad or sg_j.requires_grad):
            ((db_j + 2 * sg_j) * weights[j]).backward()
            torch.testing.assert_close(leaves[j].grad, leaf.grad, **tol)


def test_had_terms_batched_mixed_dtypes_and_errors():
    maps, teachers, kinds = _old_tasks()
    groups = group_masks_batched(teachers, kinds)
    maps64 = [maps[0].double()] + maps[1:]
    db, sg = had_terms_batched(maps64, groups, 0.5)
    assert db.dtype == torch.float32  # float64 only when every map is
    torch.testing.assert_close(db[0], had_terms(maps64[0], groups[0], 0.5)[0].float())
    with pytest.raises(ValueError, match="groups\\[1\\] is required"):
        had_terms_batched(maps[:2], [groups[0], None], 0.5)
    with pytest.raises(ValueError, match="groups\\[0\\] shape"):
        had_terms_batched(maps[:1], groups[-1:], 0.5)
    with pytest.raises(ValueError, match="2 loss maps but 1"):
        had_terms_batched(maps[:2], groups[:1], 0.5)
    with pytest.raises(ValueError, match="at least one"):
        had_terms_batched([], [], 0.5)
    with pytest.raises(ValueError, match="kinds"):
        group_masks_batched(teachers[:2], kinds[:1])
    with pytest.raises(ValueError, match="'median'"):
        had_terms_batched(maps[:1], None, 0.5, use_db=False, mean="median")
