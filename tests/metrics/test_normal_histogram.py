"""NormalHistogramMetrics: constant memory, exact mean and thresholds, median within half a bin,
and a merge over parts equal to one accumulator over the whole (what DDP's all-reduce does)."""

import torch

from lhl.metrics import NormalHistogramMetrics, NormalMetrics


def _batches(seed: int, count: int = 4):
    g = torch.Generator().manual_seed(seed)
    for _ in range(count):
        pred = torch.randn(2, 3, 9, 7, generator=g)
        target = torch.nn.functional.normalize(torch.randn(2, 3, 9, 7, generator=g), dim=1)
        target[:, :, :2] = 0  # invalid pixels
        yield pred, target


def test_histogram_agrees_with_the_exact_accumulator():
    for seed in range(5):
        exact, hist = NormalMetrics(), NormalHistogramMetrics()
        for pred, target in _batches(seed):
            exact.update(pred, target)
            hist.update(pred, target)
        a, b = exact.compute(), hist.compute()
        assert abs(a["mean"] - b["mean"]) <= 1e-9 * a["mean"]
        for key in ("within_11.25", "within_22.5", "within_30"):
            assert a[key] == b[key]
        # the median is a bin centre (or the mean of two): within half a bin of the exact one
        assert abs(a["median"] - b["median"]) <= 0.5 / hist.bins_per_degree + 1e-12


def test_odd_and_even_counts_and_a_coarse_histogram():
    hist = NormalHistogramMetrics(bins_per_degree=1)
    hist.load_state_dict({"histogram": torch.zeros(180, dtype=torch.int64).index_put_(
        (torch.tensor([10, 20, 30]),), torch.tensor([1, 1, 1])), "angle_sum": torch.tensor(63.0, dtype=torch.float64),
        "count": torch.tensor(3), "below": torch.zeros(3, dtype=torch.int64)})
    assert hist.compute()["median"] == 20.5 and hist.compute()["mean"] == 21.0
    hist.histogram[40] += 1
    hist.count += 1
    assert hist.compute()["median"] == (20.5 + 30.5) / 2


def test_merging_parts_equals_the_whole():
    whole, parts = NormalHistogramMetrics(), [NormalHistogramMetrics(), NormalHistogramMetrics()]
    for i, (pred, target) in enumerate(_batches(7, 6)):
        whole.update(pred, target)
        parts[i % 2].update(pred, target)
    merged = parts[0].merge(parts[1])
    assert merged.compute() == whole.compute()
    assert set(merged.state_dict()) == set(NormalHistogramMetrics.STATE_REDUCTION)
    assert all(how == "sum" for how in NormalHistogramMetrics.STATE_REDUCTION.values())
