"""Tests of lhl.metrics.dense. Every expected value is worked out by hand in the comments."""

from __future__ import annotations

import math

import pytest
import torch

from lhl.metrics import (
    DepthMetrics,
    LossMetric,
    NormalMetrics,
    SegmentationMetrics,
)
from lhl.tasks import DepthTask, NormalTask, RegressionTask, SegmentationTask


def test_higher_is_better_table():
    # the directions the built-in tasks declare for the metric keys of these accumulators
    tasks = [SegmentationTask("s", 4), SegmentationTask("s", 4, metric="loss"), DepthTask("d"),
             DepthTask("d", metric="loss"), NormalTask("n"), NormalTask("n", metric="loss"),
             RegressionTask("r", 1)]
    HIGHER_IS_BETTER = {}
    for task in tasks:
        for metric, higher in task.higher_is_better.items():
            assert HIGHER_IS_BETTER.setdefault(metric, higher) == higher  # one direction per key
    assert HIGHER_IS_BETTER == {
        "miou": True,
        "pixel_acc": True,
        "within_11.25": True,
        "within_22.5": True,
        "within_30": True,
        "abs_err": False,
        "rel_err": False,
        "mean": False,
        "median": False,
        "loss": False,
    }


# --------------------------------------------------------------------------- segmentation

# 4 classes; class 3 appears in neither gt nor a *kept* prediction (the only predicted 3 sits on an
# ignored pixel).
SEG_TARGET = torch.tensor([[[0, 0, 1, -1], [2, 2, 1, 0]]])
SEG_PRED = torch.tensor([[[0, 1, 1, 3], [2, 0, 1, 0]]])
# Kept (gt, pred) pairs: (0,0) (0,1) (1,1) (2,2) (2,0) (1,1) (0,0)  -> 7 pixels
# CM (rows gt, cols pred):  row0 = [2,1,0,0]  row1 = [0,2,0,0]  row2 = [1,0,1,0]  row3 = 0
# row sums 3,2,2,0 ; col sums 3,3,1,0
# IoU0 = 2/(3+3-2) = 1/2 ; IoU1 = 2/(2+3-2) = 2/3 ; IoU2 = 1/(2+1-1) = 1/2 ; class 3 skipped
# mIoU = (1/2 + 2/3 + 1/2)/3 = 5/9 ; pixel acc = (2+2+1)/7 = 5/7
SEG_MIOU = 5 / 9 * 100
SEG_PACC = 5 / 7 * 100


def test_segmentation_hand_example():
    acc = SegmentationMetrics(num_classes=4, ignore_index=-1)
    acc.update(SEG_PRED, SEG_TARGET)
    out = acc.compute()
    assert set(out) == {"miou", "pixel_acc"}
    assert out["miou"] == pytest.approx(SEG_MIOU, abs=1e-12)
    assert out["pixel_acc"] == pytest.approx(SEG_PACC, abs=1e-12)
    # counting the absent class as IoU 0 would give (5/3)/4 = 5/12
    assert out["miou"] != pytest.approx(5 / 12 * 100)
    assert acc.state_dict()["confusion"].tolist() == [
        [2, 1, 0, 0],
        [0, 2, 0, 0],
        [1, 0, 1, 0],
        [0, 0, 0, 0],
    ]


def test_segmentation_class_only_in_prediction_counts_as_zero():
    # 3 classes; gt = [0, 0], pred = [0, 2]: row0 = [1,0,1]; col0 = 1, col2 = 1
    # IoU0 = 1/(2+1-1) = 1/2 ; IoU2 = 0/(0+1-0) = 0 ; class 1 absent -> skipped
    # mIoU = 1/4 ; pixel acc = 1/2
    acc = SegmentationMetrics(3)
    acc.update(torch.tensor([[[0, 2]]]), torch.tensor([[[0, 0]]]))
    out = acc.compute()
    assert out["miou"] == pytest.approx(25.0)
    assert out["pixel_acc"] == pytest.approx(50.0)


def test_segmentation_custom_ignore_index_and_channel_dim_and_logits():
    target = torch.tensor([[[0, 255], [1, 1]]]).unsqueeze(1)  # [B, 1, H, W]
    # logits [1, 2, 2, 2]: argmax = [[0, 1], [1, 0]]
    logits = torch.tensor(
        [[[[5.0, 0.0], [0.0, 3.0]], [[1.0, 2.0], [4.0, 1.0]]]]
    )
    acc = SegmentationMetrics(2, ignore_index=255)
    acc.update(logits, target)
    # kept (gt, pred): (0,0) (1,1) (1,0): row0 = [1,0], row1 = [1,1]; col0 = 2, col1 = 1
    # IoU0 = 1/(1+2-1) = 1/2 ; IoU1 = 1/(2+1-1) = 1/2 ; mIoU = 1/2 ; pixel acc = 2/3
    out = acc.compute()
    assert out["miou"] == pytest.approx(50.0)
    assert out["pixel_acc"] == pytest.approx(200 / 3)


def test_segmentation_rejects_out_of_range_labels():
    acc = SegmentationMetrics(3)
    with pytest.raises(ValueError, match="7"):
        acc.update(torch.tensor([[[0, 1]]]), torch.tensor([[[0, 7]]]))
    with pytest.raises(ValueError, match="-1"):
        SegmentationMetrics(3, ignore_index=255).update(
            torch.tensor([[[0, 1]]]), torch.tensor([[[0, -1]]])
        )
    with pytest.raises(ValueError, match="5"):
        acc.update(torch.tensor([[[0, 5]]]), torch.tensor([[[0, 1]]]))
    with pytest.raises(ValueError, match="shape"):
        acc.update(torch.tensor([[[0, 1, 1]]]), torch.tensor([[[0, 1]]]))


def test_segmentation_empty_raises():
    acc = SegmentationMetrics(3)
    with pytest.raises(ValueError, match="no labelled pixel"):
        acc.compute()
    acc.update(torch.tensor([[[0, 1]]]), torch.tensor([[[-1, -1]]]))
    with pytest.raises(ValueError, match="no labelled pixel"):
        acc.compute()


def test_segmentation_merge_equals_single_accumulator():
    single = SegmentationMetrics(4)
    single.update(SEG_PRED[:, :1], SEG_TARGET[:, :1])
    single.update(SEG_PRED[:, 1:], SEG_TARGET[:, 1:])
    a, b = SegmentationMetrics(4), SegmentationMetrics(4)
    a.update(SEG_PRED[:, :1], SEG_TARGET[:, :1])
    b.update(SEG_PRED[:, 1:], SEG_TARGET[:, 1:])
    assert a.merge(b) is a
    assert torch.equal(a.state_dict()["confusion"], single.state_dict()["confusion"])
    assert a.compute() == single.compute()
    assert a.compute()["miou"] == pytest.approx(SEG_MIOU)
    # b untouched: row 1 of the image only -> kept (2,2) (2,0) (1,1) (0,0)
    assert int(b.state_dict()["confusion"].sum()) == 4
    with pytest.raises(ValueError, match="num_classes"):
        a.merge(SegmentationMetrics(5))
    with pytest.raises(TypeError):
        a.merge(DepthMetrics())


def test_segmentation_state_dict_and_reset():
    acc = SegmentationMetrics(4)
    acc.update(SEG_PRED, SEG_TARGET)
    state = acc.state_dict()
    assert state["confusion"].dtype == torch.int64
    assert state["confusion"].device.type == "cpu"
    assert acc.STATE_REDUCTION == {"confusion": "sum"}
    # the all-reduce path: sum of two processes' states, loaded back
    other = SegmentationMetrics(4)
    other.load_state_dict({"confusion": state["confusion"] * 2})
    assert other.compute()["miou"] == pytest.approx(SEG_MIOU)  # ratios unchanged by scaling
    acc.reset()
    with pytest.raises(ValueError):
        acc.compute()


# --------------------------------------------------------------------------- depth

# batch 1, [1,1,2,2]: pred [[1,2],[3,4]], gt [[2,0],[1,4]] -> valid (1|2) (3|1) (4|4)
#   |p-g| = 1, 2, 0 (sum 3) ; |p-g|/g = 1/2, 2, 0 (sum 2.5) ; 3 pixels
# batch 2, [1,1,1,2]: pred [[4,7]], gt [[1,nan]] -> valid (4|1)
#   |p-g| = 3 ; |p-g|/g = 3 ; 1 pixel
# whole set: abs = (3+3)/4 = 1.5 ; rel = (2.5+3)/4 = 1.375
# mean of batch means would be abs (1+3)/2 = 2, rel (2.5/3+3)/2 = 23/12
D1_PRED = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
D1_GT = torch.tensor([[[[2.0, 0.0], [1.0, 4.0]]]])
D2_PRED = torch.tensor([[[[4.0, 7.0]]]])
D2_GT = torch.tensor([[[[1.0, float("nan")]]]])


def test_depth_pixel_weighted_over_batches():
    acc = DepthMetrics()
    acc.update(D1_PRED, D1_GT)
    acc.update(D2_PRED, D2_GT)
    out = acc.compute()
    assert set(out) == {"abs_err", "rel_err"}
    assert out["abs_err"] == pytest.approx(1.5, abs=1e-12)
    assert out["rel_err"] == pytest.approx(1.375, abs=1e-12)
    assert out["abs_err"] != pytest.approx(2.0)
    assert out["rel_err"] != pytest.approx(23 / 12)


def test_depth_accepts_three_dim_and_infinite_target_is_invalid():
    acc = DepthMetrics()
    # [B, H, W]; gt inf is invalid; valid: (2|4): |d| = 2, rel = 1/2
    acc.update(torch.tensor([[[2.0, 9.0]]]), torch.tensor([[[4.0, float("inf")]]]))
    assert acc.compute() == pytest.approx({"abs_err": 2.0, "rel_err": 0.5})
    with pytest.raises(ValueError, match="shape"):
        acc.update(torch.zeros(1, 2, 2, 2), torch.zeros(1, 2, 2, 2))


def test_depth_empty_raises():
    acc = DepthMetrics()
    with pytest.raises(ValueError, match="no valid depth pixel"):
        acc.compute()
    acc.update(torch.ones(1, 1, 2, 2), torch.zeros(1, 1, 2, 2))
    with pytest.raises(ValueError, match="no valid depth pixel"):
        acc.compute()


def test_depth_merge_and_state_dict():
    a, b = DepthMetrics(), DepthMetrics()
    a.update(D1_PRED, D1_GT)
    b.update(D2_PRED, D2_GT)
    sa, sb = a.state_dict(), b.state_dict()
    assert sa["abs_sum"].dtype == torch.float64 and sa["count"].dtype == torch.int64
    assert float(sa["abs_sum"]) == 3.0 and float(sa["rel_sum"]) == 2.5 and int(sa["count"]) == 3
    # all-reduce path: element-wise sums loaded into a fresh accumulator
    c = DepthMetrics()
    c.load_state_dict({k: sa[k] + sb[k] for k in DepthMetrics.STATE_REDUCTION})
    a.merge(b)
    single = DepthMetrics()
    single.update(D1_PRED, D1_GT)
    single.update(D2_PRED, D2_GT)
    assert a.compute() == single.compute() == c.compute()
    assert a.compute()["abs_err"] == pytest.approx(1.5)


# --------------------------------------------------------------------------- normals


def _tilted(deg: float, scale: float) -> tuple[float, float, float]:
    """A vector at `deg` degrees from +z, of length `scale` (independent of the implementation)."""
    r = math.radians(deg)
    return (scale * math.sin(r), 0.0, scale * math.cos(r))


def _normals(pairs: list[tuple[tuple[float, ...], tuple[float, ...]]]):
    """[1, 3, 1, N] pred and target tensors (float64) from (pred, gt) vector pairs."""
    pred = torch.tensor([p for p, _ in pairs], dtype=torch.float64).T.reshape(1, 3, 1, -1)
    gt = torch.tensor([g for _, g in pairs], dtype=torch.float64).T.reshape(1, 3, 1, -1)
    return pred, gt


Z = (0.0, 0.0, 1.0)
# angles 0, 10, 20, 25, 90 with unnormalised predictions, plus one invalid (all-zero gt) pixel
ODD = [
    ((0.0, 0.0, 5.0), Z),  # 0 deg
    (_tilted(10, 3.0), Z),  # 10 deg
    (_tilted(20, 0.5), Z),  # 20 deg
    (_tilted(25, 2.0), Z),  # 25 deg
    ((0.0, 2.0, 0.0), (1.0, 0.0, 0.0)),  # 90 deg
    ((1.0, 1.0, 1.0), (0.0, 0.0, 0.0)),  # invalid
]
# mean = (0+10+20+25+90)/5 = 29 ; median = 20 ;
# < 11.25: {0,10} 40% ; < 22.5: {0,10,20} 60% ; < 30: {0,10,20,25} 80%


def test_normals_odd_count():
    acc = NormalMetrics()
    acc.update(*_normals(ODD))
    out = acc.compute()
    assert set(out) == {"mean", "median", "within_11.25", "within_22.5", "within_30"}
    assert out["mean"] == pytest.approx(29.0, abs=1e-9)
    assert out["median"] == pytest.approx(20.0, abs=1e-9)
    assert out["within_11.25"] == pytest.approx(40.0)
    assert out["within_22.5"] == pytest.approx(60.0)
    assert out["within_30"] == pytest.approx(80.0)


def test_normals_even_count_median_is_mean_of_middle_values():
    # angles 0, 10, 20, 25 (+ invalid): median = (10+20)/2 = 15 ; mean = 55/4 = 13.75
    # (torch.median would return the lower middle value, 10)
    acc = NormalMetrics()
    acc.update(*_normals(ODD[:4] + ODD[5:]))
    out = acc.compute()
    assert out["median"] == pytest.approx(15.0, abs=1e-9)
    assert out["mean"] == pytest.approx(13.75, abs=1e-9)
    assert out["within_11.25"] == pytest.approx(50.0)
    assert out["within_30"] == pytest.approx(100.0)


def test_normals_float32_input_zero_prediction_and_nonfinite_target():
    # pred 0 vector -> normalised to 0 -> cos 0 -> 90 deg ; gt (0,0,2) is normalised -> 0 deg
    # a NaN gt pixel is invalid. angles {90, 0}: mean 45, median (0+90)/2 = 45
    pred = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0]]).T.reshape(1, 3, 1, 3)
    gt = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 2.0], [float("nan"), 0.0, 1.0]])
    gt = gt.T.reshape(1, 3, 1, 3)
    acc = NormalMetrics()
    acc.update(pred, gt)
    out = acc.compute()
    assert out["mean"] == pytest.approx(45.0, abs=1e-5)
    assert out["median"] == pytest.approx(45.0, abs=1e-5)
    assert out["within_11.25"] == pytest.approx(50.0)
    assert acc.state_dict()["angles"].dtype == torch.float64


def test_normals_empty_raises():
    acc = NormalMetrics()
    with pytest.raises(ValueError, match="no valid normal pixel"):
        acc.compute()
    acc.update(torch.ones(1, 3, 2, 2), torch.zeros(1, 3, 2, 2))
    with pytest.raises(ValueError, match="no valid normal pixel"):
        acc.compute()
    with pytest.raises(ValueError, match="shape"):
        acc.update(torch.ones(1, 1, 2, 2), torch.ones(1, 1, 2, 2))


def test_normals_merge_equals_single_and_state_is_concatenable():
    p1, g1 = _normals(ODD[:2])  # 0, 10
    p2, g2 = _normals(ODD[2:4] + ODD[5:])  # 20, 25, invalid
    a, b, single = NormalMetrics(), NormalMetrics(), NormalMetrics()
    a.update(p1, g1)
    b.update(p2, g2)
    single.update(p1, g1)
    single.update(p2, g2)
    assert NormalMetrics.STATE_REDUCTION == {"angles": "cat"}
    gathered = torch.cat([a.state_dict()["angles"], b.state_dict()["angles"]])
    c = NormalMetrics()
    c.load_state_dict({"angles": gathered})
    assert a.merge(b) is a
    assert a.compute() == pytest.approx(single.compute())
    assert c.compute() == pytest.approx(single.compute())
    assert a.compute()["median"] == pytest.approx(15.0, abs=1e-9)  # (10+20)/2
    assert b.state_dict()["angles"].numel() == 2  # other left untouched
    a.reset()
    with pytest.raises(ValueError):
        a.compute()


# --------------------------------------------------------------------------- loss


def test_loss_metric_weighted_by_count():
    # (6 + 1) / (3 + 1) = 1.75 ; mean of batch means would be (2 + 1)/2 = 1.5
    acc = LossMetric()
    acc.update(6.0, 3)
    acc.update(torch.tensor(1.0), torch.tensor(1))
    assert acc.compute() == {"loss": pytest.approx(1.75)}
    other = LossMetric()
    other.update(3.0, 4)  # merged: (7 + 3) / (4 + 4) = 1.25
    acc.merge(other)
    assert acc.compute()["loss"] == pytest.approx(1.25)
    assert acc.state_dict()["count"].dtype == torch.int64
    assert int(acc.state_dict()["count"]) == 8


def test_loss_metric_guards():
    acc = LossMetric()
    with pytest.raises(ValueError, match="count is 0"):
        acc.compute()
    acc.update(0.0, 0)
    with pytest.raises(ValueError, match="count is 0"):
        acc.compute()
    with pytest.raises(ValueError, match="count"):
        acc.update(1.0, -2)
