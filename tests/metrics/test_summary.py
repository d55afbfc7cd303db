"""Tests of lhl.metrics.summary. Every expected value is worked out by hand in the comments."""

from __future__ import annotations

import math

import pytest

from lhl.metrics.summary import (
    mean_defined,
    metric_backward_transfer,
    metric_forgetting,
    metric_relative_improvement,
    ranked_tasks,
)
from lhl.metrics import (
    backward_transfer,
    directions_for,
    final_result,
    forgetting,
    matrix_from_performance,
    mean_rank,
    relative_improvement,
    task_relative_improvement,
)
from lhl.tasks import DepthTask, NormalTask, RegressionTask, SegmentationTask

DIRS = {
    "segmentation": {"miou": True, "pixel_acc": True},
    "depth": {"abs_err": False, "rel_err": False},
}

# Hand-made table, 4 methods x 2 tasks x 2 metrics of mixed direction.
TABLE = {
    "vanilla": {
        "segmentation": {"miou": 40.0, "pixel_acc": 50.0},
        "depth": {"abs_err": 0.5, "rel_err": 0.2},
    },
    # seg: miou +4/40 = +10%, pacc +5/50 = +10%                  -> +10
    # depth: abs_err 0.55 is worse: -(0.05/0.5) = -10%, rel 0     -> -5
    "a": {
        "segmentation": {"miou": 44.0, "pixel_acc": 55.0},
        "depth": {"abs_err": 0.55, "rel_err": 0.2},
    },
    # seg: miou 0, pacc -5/50 = -10%                              -> -5
    # depth: abs_err -(0.45-0.5)/0.5 = +10%, rel -(0.18-0.2)/0.2 = +10% -> +10
    "b": {
        "segmentation": {"miou": 40.0, "pixel_acc": 45.0},
        "depth": {"abs_err": 0.45, "rel_err": 0.18},
    },
    # seg: miou +8/40 = +20%, pacc 0                             -> +10 (ties with a)
    # depth: identical to vanilla                                 -> 0  (ties with vanilla)
    "c": {
        "segmentation": {"miou": 48.0, "pixel_acc": 50.0},
        "depth": {"abs_err": 0.5, "rel_err": 0.2},
    },
}


def test_task_relative_improvement_hand_table():
    assert task_relative_improvement(TABLE["a"], TABLE["vanilla"], DIRS) == pytest.approx(
        {"segmentation": 10.0, "depth": -5.0}
    )
    assert task_relative_improvement(TABLE["b"], TABLE["vanilla"], DIRS) == pytest.approx(
        {"segmentation": -5.0, "depth": 10.0}
    )
    assert task_relative_improvement(TABLE["c"], TABLE["vanilla"], DIRS) == pytest.approx(
        {"segmentation": 10.0, "depth": 0.0}
    )


def test_relative_improvement_hand_table():
    # a: (10 - 5)/2 = 2.5 ; b: (-5 + 10)/2 = 2.5 ; c: (10 + 0)/2 = 5 ; vanilla: 0
    assert relative_improvement(TABLE["a"], TABLE["vanilla"], DIRS) == pytest.approx(2.5)
    assert relative_improvement(TABLE["b"], TABLE["vanilla"], DIRS) == pytest.approx(2.5)
    assert relative_improvement(TABLE["c"], TABLE["vanilla"], DIRS) == pytest.approx(5.0)
    assert relative_improvement(TABLE["vanilla"], TABLE["vanilla"], DIRS) == 0.0


def test_relative_improvement_sign_lower_is_better_improvement_is_positive():
    # abs_err halves: -(0.25 - 0.5)/0.5 = +50%
    base = {"depth": {"abs_err": 0.5}}
    better = {"depth": {"abs_err": 0.25}}
    assert relative_improvement(better, base, {"depth": {"abs_err": False}}) == pytest.approx(50.0)


def test_relative_improvement_reproduces_paper_table9():
    # Paper Table 9 (CityScapes, ResNet-50), vanilla: 64.93, 88.93, 0.0168, 40.0604
    vanilla = {
        "segmentation": {"miou": 64.93, "pixel_acc": 88.93},
        "depth": {"abs_err": 0.0168, "rel_err": 40.0604},
    }
    # EWC: miou 4.51/64.93 = 6.94601% ; pacc 1.67/88.93 = 1.87788% -> seg 4.41195
    #      abs 0.0014/0.0168 = 8.33333% ; rel -1.4121/40.0604 = -3.52493% -> depth 2.40420
    #      Δ = (4.41195 + 2.40420)/2 = 3.40807 -> table "+3.41%"
    ewc = {
        "segmentation": {"miou": 69.44, "pixel_acc": 90.60},
        "depth": {"abs_err": 0.0154, "rel_err": 41.4725},
    }
    # Joint: 11.56/64.93 = 17.80379% ; 4.98/88.93 = 5.59991% -> seg 11.70185
    #        0.0013/0.0168 = 7.73810% ; -5.6558/40.0604 = -14.11818% -> depth -3.19004
    #        Δ = (11.70185 - 3.19004)/2 = 4.25590 -> table "+4.26%"
    joint = {
        "segmentation": {"miou": 76.49, "pixel_acc": 93.91},
        "depth": {"abs_err": 0.0155, "rel_err": 45.7162},
    }
    assert relative_improvement(ewc, vanilla, DIRS) == pytest.approx(3.40807, abs=1e-4)
    assert relative_improvement(joint, vanilla, DIRS) == pytest.approx(4.25590, abs=1e-4)
    assert round(relative_improvement(ewc, vanilla, DIRS), 2) == 3.41
    assert round(relative_improvement(joint, vanilla, DIRS), 2) == 4.26


def test_relative_improvement_uses_baseline_metrics_and_names_missing():
    extra = {
        "segmentation": {"miou": 44.0, "pixel_acc": 55.0, "unused": 1.0},
        "depth": {"abs_err": 0.55, "rel_err": 0.2},
        "normal": {"mean": 30.0},
    }
    assert relative_improvement(extra, TABLE["vanilla"], DIRS) == pytest.approx(2.5)
    with pytest.raises(KeyError, match="depth"):
        relative_improvement({"segmentation": TABLE["a"]["segmentation"]}, TABLE["vanilla"], DIRS)
    with pytest.raises(KeyError, match="rel_err"):
        relative_improvement(
            {"segmentation": TABLE["a"]["segmentation"], "depth": {"abs_err": 0.5}},
            TABLE["vanilla"],
            DIRS,
        )
    with pytest.raises(KeyError, match="pixel_acc"):
        relative_improvement(TABLE["a"], TABLE["vanilla"], {"segmentation": {"miou": True}})


def test_mean_rank_hand_table_with_ties():
    # segmentation improvements: a +10, c +10, vanilla 0, b -5
    #   ranks: a 1, c 1 (tie -> minimum rank), vanilla 3, b 4
    # depth improvements: b +10, vanilla 0, c 0, a -5
    #   ranks: b 1, vanilla 2, c 2 (tie), a 4
    # MR: vanilla (3+2)/2 = 2.5 ; a (1+4)/2 = 2.5 ; b (4+1)/2 = 2.5 ; c (1+2)/2 = 1.5
    assert mean_rank(TABLE, DIRS) == pytest.approx(
        {"vanilla": 2.5, "a": 2.5, "b": 2.5, "c": 1.5}
    )


def test_mean_rank_needs_vanilla():
    with pytest.raises(KeyError, match="vanilla"):
        mean_rank({"a": TABLE["a"], "b": TABLE["b"]}, DIRS)


def test_directions_for():
    result = {
        "segmentation": {"miou": 1.0, "pixel_acc": 1.0},
        "normal": {"mean": 1.0, "median": 1.0, "within_11.25": 1.0, "within_22.5": 1.0,
                   "within_30": 1.0},
        "depth": {"abs_err": 1.0, "rel_err": 1.0},
        "edge_occlusion": {"loss": 1.0},
    }
    tasks = {"segmentation": SegmentationTask("segmentation", 13), "normal": NormalTask("normal"),
             "depth": DepthTask("depth"), "edge_occlusion": RegressionTask("edge_occlusion", 1)}
    assert directions_for(result, tasks) == {
        "segmentation": {"miou": True, "pixel_acc": True},
        "normal": {"mean": False, "median": False, "within_11.25": True, "within_22.5": True,
                   "within_30": True},
        "depth": {"abs_err": False, "rel_err": False},
        "edge_occlusion": {"loss": False},
    }
    with pytest.raises(KeyError, match="bogus"):
        directions_for({"depth": {"bogus": 1.0}}, tasks)


# 3-phase matrix: depth (phase 0) -> segmentation (phase 1) -> normal (phase 2)
MATRIX = [
    {"depth": {"abs_err": 0.5, "rel_err": 0.2}},
    {"depth": {"abs_err": 0.4, "rel_err": 0.25},
     "segmentation": {"miou": 40.0, "pixel_acc": 60.0}},
    {"depth": {"abs_err": 0.6, "rel_err": 0.18},
     "segmentation": {"miou": 38.0, "pixel_acc": 66.0},
     "normal": {"mean": 30.0, "median": 25.0}},
]
MATRIX_DIRS = {
    "depth": {"abs_err": False, "rel_err": False},
    "segmentation": {"miou": True, "pixel_acc": True},
    "normal": {"mean": False, "median": False},
}


def test_forgetting_hand_matrix():
    # depth, best over phases 0-1 (min, lower is better):
    #   abs_err best 0.4, final 0.6: -(0.4 - 0.6)/0.4 = +50%
    #   rel_err best 0.2, final 0.18: -(0.2 - 0.18)/0.2 = -10%    -> mean 20
    # segmentation, best over phase 1 (max):
    #   miou 40 -> 38: (40 - 38)/40 = +5% ; pixel_acc 60 -> 66: (60 - 66)/60 = -10%  -> -2.5
    # normal: learned in the last phase -> excluded
    out = forgetting(MATRIX, MATRIX_DIRS)
    assert list(out) == ["depth", "segmentation"]
    assert out == pytest.approx({"depth": 20.0, "segmentation": -2.5})


def test_backward_transfer_hand_matrix():
    # depth, final vs phase 0:
    #   abs_err -(0.6 - 0.5)/0.5 = -20% ; rel_err -(0.18 - 0.2)/0.2 = +10%   -> -5
    # segmentation, final vs phase 1:
    #   miou (38 - 40)/40 = -5% ; pixel_acc (66 - 60)/60 = +10%              -> +2.5
    out = backward_transfer(MATRIX, MATRIX_DIRS)
    assert list(out) == ["depth", "segmentation"]
    assert out == pytest.approx({"depth": -5.0, "segmentation": 2.5})


def test_forgetting_uses_best_earlier_value_higher_is_better():
    # miou 50 (phase 0), 55 (phase 1), 45 (final)
    # forgetting: best 55 -> (55 - 45)/55 = 18.1818...% ; BWT: (45 - 50)/50 = -10%
    m = [
        {"segmentation": {"miou": 50.0}},
        {"segmentation": {"miou": 55.0}, "depth": {"abs_err": 1.0}},
        {"segmentation": {"miou": 45.0}, "depth": {"abs_err": 1.0}, "normal": {"mean": 9.0}},
    ]
    d = {"segmentation": {"miou": True}, "depth": {"abs_err": False}, "normal": {"mean": False}}
    assert forgetting(m, d) == pytest.approx({"segmentation": 1000 / 55, "depth": 0.0})
    assert backward_transfer(m, d) == pytest.approx({"segmentation": -10.0, "depth": 0.0})


def test_forgetting_edge_cases():
    assert forgetting([{"depth": {"abs_err": 0.5}}], {"depth": {"abs_err": False}}) == {}
    assert backward_transfer([{"depth": {"abs_err": 0.5}}], {"depth": {"abs_err": False}}) == {}
    with pytest.raises(ValueError):
        forgetting([], {})
    with pytest.raises(KeyError, match="depth"):
        forgetting(
            [{"depth": {"abs_err": 0.5}}, {"normal": {"mean": 1.0}}],
            {"depth": {"abs_err": False}, "normal": {"mean": False}},
        )


PERFORMANCE = {
    "benchmark": "synthetic-nyu",
    "method": "vanilla",
    "tasks": ["depth", "segmentation", "normal"],
    # deliberately out of order: the helpers order phases by their number
    "phases": [
        {"phase": 1, "task": "segmentation", "metrics": MATRIX[1]},
        {"phase": 0, "task": "depth", "metrics": MATRIX[0]},
        {"phase": 2, "task": "normal", "metrics": MATRIX[2]},
    ],
}


def test_performance_helpers():
    matrix = matrix_from_performance(PERFORMANCE)
    assert matrix == MATRIX
    final = final_result(PERFORMANCE)
    assert final == MATRIX[2]
    final["depth"]["abs_err"] = 123.0  # a copy: the input is not modified
    assert PERFORMANCE["phases"][2]["metrics"]["depth"]["abs_err"] == 0.6
    tasks = {"depth": DepthTask("depth"), "segmentation": SegmentationTask("segmentation", 13),
             "normal": NormalTask("normal")}
    assert forgetting(matrix, directions_for(final_result(PERFORMANCE), tasks)) == pytest.approx(
        {"depth": 20.0, "segmentation": -2.5}
    )
    with pytest.raises(KeyError, match="phases"):
        final_result({"benchmark": "x"})
    with pytest.raises(ValueError):
        matrix_from_performance({"phases": []})


# ---------------------------------------------------------------- undefined relative changes
NAN = float("nan")
ZERO_DIRS = {
    "segmentation": {"miou": True, "pixel_acc": True},
    "normal": {"mean": False, "within_11.25": True},
    "depth": {"abs_err": False},
}
# baseline: normal/within_11.25 = 0 (metric undefined), depth/abs_err = 0 (task undefined)
ZERO_BASE = {
    "segmentation": {"miou": 40.0, "pixel_acc": 50.0},
    "normal": {"mean": 30.0, "within_11.25": 0.0},
    "depth": {"abs_err": 0.0},
}
# seg: miou +4/40 = +10%, pacc +10/50 = +20%                 -> +15
# normal: mean -(27 - 30)/30 = +10%, within_11.25 undefined    -> +10 (mean over the 1 defined)
# depth: undefined                                            -> nan
# Δ = (15 + 10)/2 = 12.5 (depth left out)
ZERO_A = {
    "segmentation": {"miou": 44.0, "pixel_acc": 60.0},
    "normal": {"mean": 27.0, "within_11.25": 5.0},
    "depth": {"abs_err": 0.3},
}
# seg: miou -4/40 = -10%, pacc 0                              -> -5
# normal: mean -(33 - 30)/30 = -10%                           -> -10
# Δ = (-5 - 10)/2 = -7.5
ZERO_B = {
    "segmentation": {"miou": 36.0, "pixel_acc": 50.0},
    "normal": {"mean": 33.0, "within_11.25": 0.0},
    "depth": {"abs_err": 0.0},
}


def _same(actual, expected):
    """``==`` that treats nan as equal to nan (and approx for floats)."""
    if isinstance(expected, dict):
        assert list(actual) == list(expected)
        for k in expected:
            _same(actual[k], expected[k])
    elif math.isnan(expected):
        assert math.isnan(actual)
    else:
        assert actual == pytest.approx(expected)


def test_mean_defined():
    assert mean_defined([1.0, NAN, 3.0]) == 2.0
    assert math.isnan(mean_defined([NAN, NAN]))
    assert math.isnan(mean_defined([]))


def test_zero_baseline_value_is_nan_and_left_out():
    _same(metric_relative_improvement(ZERO_A, ZERO_BASE, ZERO_DIRS), {
        "segmentation": {"miou": 10.0, "pixel_acc": 20.0},
        "normal": {"mean": 10.0, "within_11.25": NAN},
        "depth": {"abs_err": NAN},
    })
    _same(task_relative_improvement(ZERO_A, ZERO_BASE, ZERO_DIRS),
          {"segmentation": 15.0, "normal": 10.0, "depth": NAN})
    assert relative_improvement(ZERO_A, ZERO_BASE, ZERO_DIRS) == pytest.approx(12.5)
    assert relative_improvement(ZERO_B, ZERO_BASE, ZERO_DIRS) == pytest.approx(-7.5)
    # the baseline against itself: 0 where defined
    _same(task_relative_improvement(ZERO_BASE, ZERO_BASE, ZERO_DIRS),
          {"segmentation": 0.0, "normal": 0.0, "depth": NAN})
    assert relative_improvement(ZERO_BASE, ZERO_BASE, ZERO_DIRS) == 0.0


def test_relative_improvement_nothing_defined_is_nan():
    base = {"depth": {"abs_err": 0.0}}
    assert math.isnan(relative_improvement({"depth": {"abs_err": 0.5}}, base, {"depth": {"abs_err": False}}))


def test_non_finite_values_are_undefined():
    # abs_err nan in the result: left out; rel_err -(0.1 - 0.2)/0.2 = +50%
    base = {"depth": {"abs_err": 0.5, "rel_err": 0.2}}
    result = {"depth": {"abs_err": NAN, "rel_err": 0.1}}
    dirs = {"depth": {"abs_err": False, "rel_err": False}}
    _same(metric_relative_improvement(result, base, dirs), {"depth": {"abs_err": NAN, "rel_err": 50.0}})
    assert relative_improvement(result, base, dirs) == pytest.approx(50.0)
    inf_base = {"depth": {"abs_err": float("inf"), "rel_err": 0.2}}
    assert relative_improvement({"depth": {"abs_err": 1.0, "rel_err": 0.2}}, inf_base, dirs) == 0.0


def test_mean_rank_ranks_over_tasks_defined_for_every_method():
    # depth is undefined for every method (baseline 0) -> ranked over segmentation and normal:
    # segmentation: a +15 (1), vanilla 0 (2), b -5 (3)
    # normal:       a +10 (1), vanilla 0 (2), b -10 (3)
    # MR: a 1, vanilla 2, b 3
    results = {"vanilla": ZERO_BASE, "a": ZERO_A, "b": ZERO_B}
    assert ranked_tasks(results, ZERO_DIRS) == ["segmentation", "normal"]
    assert mean_rank(results, ZERO_DIRS) == pytest.approx({"vanilla": 2.0, "a": 1.0, "b": 3.0})


def test_mean_rank_leaves_out_a_task_undefined_for_one_method():
    # c has a nan depth value: depth defined for vanilla/a (abs_err baseline 0.5) but not for c
    base = {"segmentation": {"miou": 40.0}, "depth": {"abs_err": 0.5}}
    a = {"segmentation": {"miou": 44.0}, "depth": {"abs_err": 0.25}}   # seg +10, depth +50
    c = {"segmentation": {"miou": 48.0}, "depth": {"abs_err": NAN}}    # seg +20, depth nan
    dirs = {"segmentation": {"miou": True}, "depth": {"abs_err": False}}
    results = {"vanilla": base, "a": a, "c": c}
    # only segmentation is ranked: c 1, a 2, vanilla 3
    assert ranked_tasks(results, dirs) == ["segmentation"]
    assert mean_rank(results, dirs) == pytest.approx({"vanilla": 3.0, "a": 2.0, "c": 1.0})


def test_mean_rank_nothing_defined_and_other_baseline():
    base = {"depth": {"abs_err": 0.0}}
    dirs = {"depth": {"abs_err": False}}
    out = mean_rank({"vanilla": base, "a": {"depth": {"abs_err": 1.0}}}, dirs)
    assert list(out) == ["vanilla", "a"] and all(math.isnan(v) for v in out.values())
    # a baseline other than "vanilla": TABLE's a as reference
    # segmentation: a 0, c miou (48-44)/44 = 9.0909, pacc (50-55)/55 = -9.0909 -> 0 (tie with a)
    # -> ranks a 1, c 1 ; depth: a 0, c -(0.5-0.55)/0.55 = +9.09 -> c 1, a 2
    # MR: a 1.5, c 1.0
    out = mean_rank({"a": TABLE["a"], "c": TABLE["c"]}, DIRS, baseline="a")
    assert out == pytest.approx({"a": 1.5, "c": 1.0})
    with pytest.raises(KeyError, match="'b'"):
        mean_rank({"a": TABLE["a"]}, DIRS, baseline="b")


# depth (phase 0) -> normal (phase 1) -> segmentation (phase 2), with zeros
ZERO_MATRIX = [
    {"depth": {"abs_err": 0.0, "rel_err": 0.2}},
    {"depth": {"abs_err": 0.1, "rel_err": 0.25},
     "normal": {"mean": 30.0, "within_11.25": 0.0}},
    {"depth": {"abs_err": 0.2, "rel_err": 0.3},
     "normal": {"mean": 33.0, "within_11.25": 2.0},
     "segmentation": {"miou": 1.0}},
]
ZERO_MATRIX_DIRS = {
    "depth": {"abs_err": False, "rel_err": False},
    "normal": {"mean": False, "within_11.25": True},
    "segmentation": {"miou": True},
}


def test_forgetting_and_bwt_with_zero_reference():
    # forgetting, depth: abs_err best (min of 0.0, 0.1) = 0 -> undefined;
    #   rel_err best 0.2, final 0.3: -(0.2 - 0.3)/0.2 = +50%            -> depth 50
    # normal: mean best 30, final 33: -(30 - 33)/30 = +10%;
    #   within_11.25 best 0 -> undefined                                -> normal 10
    _same(metric_forgetting(ZERO_MATRIX, ZERO_MATRIX_DIRS), {
        "depth": {"abs_err": NAN, "rel_err": 50.0},
        "normal": {"mean": 10.0, "within_11.25": NAN},
    })
    _same(forgetting(ZERO_MATRIX, ZERO_MATRIX_DIRS), {"depth": 50.0, "normal": 10.0})
    # BWT, depth vs phase 0: abs_err reference 0 -> undefined; rel_err -(0.3 - 0.2)/0.2 = -50%
    # normal vs phase 1: mean -(33 - 30)/30 = -10%; within_11.25 reference 0 -> undefined
    _same(metric_backward_transfer(ZERO_MATRIX, ZERO_MATRIX_DIRS), {
        "depth": {"abs_err": NAN, "rel_err": -50.0},
        "normal": {"mean": -10.0, "within_11.25": NAN},
    })
    _same(backward_transfer(ZERO_MATRIX, ZERO_MATRIX_DIRS), {"depth": -50.0, "normal": -10.0})


def test_forgetting_best_nonzero_but_first_zero_and_task_all_undefined():
    # within_11.25: 0 (phase 0), 4 (phase 1), 3 (final)
    #   forgetting: best 4 -> (4 - 3)/4 = 25% ; BWT: reference 0 -> nan (the task's only metric)
    m = [
        {"normal": {"within_11.25": 0.0}},
        {"normal": {"within_11.25": 4.0}, "depth": {"abs_err": 1.0}},
        {"normal": {"within_11.25": 3.0}, "depth": {"abs_err": 1.0}, "edge": {"loss": 1.0}},
    ]
    d = {"normal": {"within_11.25": True}, "depth": {"abs_err": False}, "edge": {"loss": False}}
    _same(forgetting(m, d), {"normal": 25.0, "depth": 0.0})
    _same(backward_transfer(m, d), {"normal": NAN, "depth": 0.0})


def test_forgetting_skips_non_finite_earlier_values():
    # miou nan (phase 0), 50 (phase 1), 45 (final): best over finite = 50 -> 10% ; BWT nan
    m = [
        {"segmentation": {"miou": NAN}},
        {"segmentation": {"miou": 50.0}, "depth": {"abs_err": 1.0}},
        {"segmentation": {"miou": 45.0}, "depth": {"abs_err": 1.0}},
    ]
    d = {"segmentation": {"miou": True}, "depth": {"abs_err": False}}
    _same(forgetting(m, d), {"segmentation": 10.0, "depth": 0.0})
    _same(backward_transfer(m, d), {"segmentation": NAN, "depth": 0.0})
