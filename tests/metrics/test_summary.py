"""Tests of lhl.metrics.summary. Every expected value is worked out by hand in the comments."""

from __future__ import annotations

import pytest

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
    assert directions_for(result) == {
        "segmentation": {"miou": True, "pixel_acc": True},
        "normal": {"mean": False, "median": False, "within_11.25": True, "within_22.5": True,
                   "within_30": True},
        "depth": {"abs_err": False, "rel_err": False},
        "edge_occlusion": {"loss": False},
    }
    with pytest.raises(KeyError, match="bogus"):
        directions_for({"depth": {"bogus": 1.0}})


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
    assert forgetting(matrix, directions_for(final_result(PERFORMANCE))) == pytest.approx(
        {"depth": 20.0, "segmentation": -2.5}
    )
    with pytest.raises(KeyError, match="phases"):
        final_result({"benchmark": "x"})
    with pytest.raises(ValueError):
        matrix_from_performance({"phases": []})
