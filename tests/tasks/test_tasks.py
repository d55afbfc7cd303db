import math

import torch

from lhl.tasks import DepthTask, NormalTask, RegressionTask, SegmentationTask


def test_segmentation_loss_ignores_pixels_and_distills_argmax():
    task = SegmentationTask("segmentation", 2)
    logits = torch.zeros(1, 2, 1, 2)  # uniform → CE = log 2 everywhere
    target = torch.tensor([[[0, -1]]])
    assert math.isclose(task.loss(logits, target).item(), math.log(2), rel_tol=1e-6)
    total, count = task.loss_sum(logits, target)
    assert count.item() == 1
    teacher = torch.tensor([[[[3.0, -1.0]], [[0.0, 2.0]]]])  # argmax 0, 1
    student = torch.tensor([[[[0.0, 0.0]], [[0.0, 0.0]]]])
    pseudo = task.pseudo_label(teacher)
    assert pseudo.tolist() == [[[0, 1]]]
    assert torch.allclose(task.distill_map(student, pseudo), torch.full((1, 1, 2), math.log(2)))


def test_depth_loss_valid_pixels_only():
    task = DepthTask("depth")
    pred = torch.tensor([[[[1.0, 5.0, 2.0]]]])
    target = torch.tensor([[[[2.0, 0.0, 2.5]]]])  # middle pixel invalid
    assert math.isclose(task.loss(pred, target).item(), (1.0 + 0.5) / 2)
    assert torch.allclose(task.distill_map(pred, target), torch.tensor([[[1.0, 5.0, 0.5]]]))


def test_normal_loss_normalises_prediction_and_skips_zero_targets():
    task = NormalTask("normal")
    pred = torch.tensor([[[[2.0, 0.0]], [[0.0, 0.0]], [[0.0, 3.0]]]])  # (1,0,0) and (0,0,1) after norm
    target = torch.tensor([[[[0.0, 0.0]], [[1.0, 0.0]], [[0.0, 0.0]]]])  # (0,1,0) and invalid
    assert math.isclose(task.loss(pred, target).item(), 1.0, abs_tol=1e-6)  # 1 − cos 90° on one pixel


def test_generic_regression_nan_marks_invalid():
    task = RegressionTask("edge_texture", 1)
    pred = torch.tensor([[[[1.0, 2.0]]]])
    target = torch.tensor([[[[0.0, float("nan")]]]])
    assert task.loss(pred, target).item() == 1.0
    acc = task.metrics()
    task.update_metrics(acc, pred, target)
    assert acc.compute() == {"loss": 1.0}
