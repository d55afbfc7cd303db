"""summary.md (lhl.report.tables.summary_markdown): captions, the average row and n/a footnotes."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from lhl.errors import ReportError
from lhl.report.compare import comparison_table, load_runs
from lhl.report.tables import summary_markdown

CONFIG = SimpleNamespace(seed=3, model=SimpleNamespace(encoder="tiny", weights=None))


def _performance(phases, tasks, **extra):
    return {"benchmark": "synthetic-nyu", "method": "vanilla", "tasks": tasks, **extra,
            "phases": [{"phase": i, "task": tasks[i - 1], "metrics": m} for i, m in enumerate(phases, 1)]}


PHASES = [
    {"depth": {"abs_err": 0.5, "rel_err": 0.2}},
    {"depth": {"abs_err": 0.4, "rel_err": 0.25}, "normal": {"mean": 30.0, "within_11.25": 0.0}},
    {"depth": {"abs_err": 0.6, "rel_err": 0.18}, "normal": {"mean": 33.0, "within_11.25": 0.0},
     "edge_occlusion": {"loss": 0.0}},
    {"depth": {"abs_err": 0.6, "rel_err": 0.18}, "normal": {"mean": 33.0, "within_11.25": 2.0},
     "edge_occlusion": {"loss": 0.1}, "segmentation": {"miou": 40.0}},
]
TASKS = ["depth", "normal", "edge_occlusion", "segmentation"]


def _table(text: str, heading: str) -> list[str]:
    section = text.split(heading, 1)[1]
    return [line for line in section.splitlines() if line.startswith("|")]


def test_forgetting_table_with_zero_references():
    text = summary_markdown(_performance(PHASES, TASKS), CONFIG)
    # forgetting (best earlier value -> final, σ: ↓ -1, ↑ +1):
    #   depth: abs_err best 0.4 -> 0.6: +50 ; rel_err best 0.18 -> 0.18: 0        -> 25.00
    #   normal: mean best 30 -> 33: +10 ; within_11.25 best 0: n/a                 -> 10.00 †
    #   edge_occlusion: loss best 0: n/a (its only metric)                         -> n/a †
    #   average over the defined: (25 + 10)/2                                      -> 17.50 †
    # BWT (value right after learning -> final):
    #   depth: abs_err -(0.6 - 0.5)/0.5 = -20 ; rel_err -(0.18 - 0.2)/0.2 = +10    -> -5.00
    #   normal: mean -(33 - 30)/30 = -10 ; within_11.25 from 0: n/a                -> -10.00 †
    #   edge_occlusion: from 0: n/a                                                -> n/a †
    #   average (-5 - 10)/2                                                        -> -7.50 †
    assert _table(text, "## Forgetting and backward transfer") == [
        "| task | forgetting % | BWT % |",
        "|---|---|---|",
        "| depth | 25.00 | -5.00 |",
        "| normal | 10.00 † | -10.00 † |",
        "| edge_occlusion | n/a † | n/a † |",
        "| average | 17.50 † | -7.50 † |",
    ]
    assert "- normal: within_11.25 — forgetting: best earlier value is 0; BWT: value after learning normal is 0" in text
    assert "- edge_occlusion: loss — forgetting: best earlier value is 0; BWT: value after learning edge_occlusion is 0" in text
    assert "The average leaves out edge_occlusion (forgetting and BWT)." in text
    # the caption says what each column is
    assert "**forgetting %**: mean over the task's metrics of σ · (best − final) / |best| · 100" in text
    assert "Positive = forgot." in text
    assert "**BWT %** (backward transfer)" in text and "right after the phase that learned the task" in text
    assert "**average**: mean over the tasks of the table (defined values only)." in text
    # the performance matrix is unchanged by the undefined values
    assert "| 3 (edge_occlusion) | 0.6000 | 0.1800 | 33.00 | 0.0000 | 0.0000 |  |" in text


def test_forgetting_table_all_defined_has_no_footnote():
    # depth: abs_err best 0.4 -> 0.5: +25 ; BWT: -(0.5 - 0.5)/0.5 = 0 ; average = the one task
    phases = [{"depth": {"abs_err": 0.5}}, {"depth": {"abs_err": 0.4}, "normal": {"mean": 30.0}},
              {"depth": {"abs_err": 0.5}, "normal": {"mean": 31.0}, "segmentation": {"miou": 1.0}}]
    text = summary_markdown(_performance(phases, ["depth", "normal", "segmentation"]), CONFIG)
    # normal: best 30 -> 31: -(30 - 31)/30 = +3.33 ; BWT -3.33
    assert _table(text, "## Forgetting and backward transfer")[2:] == [
        "| depth | 25.00 | 0.00 |",
        "| normal | 3.33 | -3.33 |",
        "| average | 14.17 | -1.67 |",
    ]
    assert "n/a" not in text and "†" not in text


def test_single_phase_has_no_forgetting_section():
    text = summary_markdown(_performance([{"depth": {"abs_err": 0.5}}], ["depth"]), CONFIG)
    assert "## Performance matrix" in text and "Forgetting" not in text


def test_directions_from_performance_json():
    # a metric unknown to the global table, with its direction in performance.json
    phases = [{"t": {"score": 2.0}}, {"t": {"score": 1.0}, "u": {"score": 1.0}}]
    directions = {"t": {"score": True}, "u": {"score": True}}
    text = summary_markdown(_performance(phases, ["t", "u"], directions=directions), CONFIG)
    assert "| after phase | t/score ↑ | u/score ↑ |" in text
    assert "| t | 50.00 | -50.00 |" in text  # (2 - 1)/2 higher-is-better
    with pytest.raises(ReportError, match="unknown direction of metric 'score' of task 't'"):
        summary_markdown(_performance(phases, ["t", "u"]), CONFIG)


@pytest.mark.parametrize("overrides, partial, undefined_metrics", [
    # 10 tasks; normal's within_* are 0 after every phase at this size (the smoke preset's size
    # before it shrank to 16×16 for tests/engine/test_smoke_matrix.py)
    (["benchmark=synthetic-taskonomy", "data.resolution=[32,32]", "model.head_rates=[1,2,3]",
      "model.head_channels=16"], "normal", "within_11.25, within_22.5, within_30"),
    (["tasks=[normal,depth,segmentation]"], "normal", "within_11.25, within_22.5, within_30"),
])
def test_smoke_runs_with_zero_metrics_write_summary(run_smoke, overrides, partial, undefined_metrics):
    performance, out = run_smoke(*overrides, method="vanilla")
    text = (out / "summary.md").read_text()
    final = performance["phases"][-1]["metrics"]
    # the premise of the check: the run's zero metrics (if the smoke run ever stops producing
    # zeros, this test no longer exercises the n/a path and must be revisited)
    assert all(final["normal"][m] == 0.0 for m in undefined_metrics.split(", "))
    rows = {line.split(" | ")[0].strip("| "): line for line in _table(text, "## Forgetting and backward transfer")}
    assert "†" in rows[partial] and "average" in rows
    assert "n/a = undefined" in text
    assert f"- {partial}: {undefined_metrics} — " in text
    # lhl compare on the same run: the zero baseline metrics are n/a, with the note
    table = comparison_table(load_runs([out]))
    assert "| vanilla | 0 |" in table and "| 0.00 | 1.00 |" in table
    assert "- † n/a: the relative change over a zero baseline value is undefined — vanilla has 0 in " in table
