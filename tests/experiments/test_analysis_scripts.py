"""The analysis scripts in experiments/ (grad_norms.py, had_group_stats.py) on a finished smoke run."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "experiments"


def _script(name: str):
    spec = importlib.util.spec_from_file_location(f"_lhl_experiments_{name}", SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def had_run(tmp_path_factory):
    from lhl.config import load_config
    from lhl.engine.trainer import Trainer

    out = tmp_path_factory.mktemp("had") / "run"
    Trainer(load_config(preset="smoke", method="had", overrides=["train.epochs=2"]), out, quiet=True).run()
    return out


def test_group_stats_are_consistent(had_run, capsys):
    stats = _script("had_group_stats")
    rows = stats.phase_stats(had_run, 3, images=8)
    assert {(r["task"], r["student"]) for r in rows} == {(t, s) for t in ("segmentation", "depth")
                                                      for s in ("start", "end")}
    for task in ("segmentation", "depth"):
        for student in ("start", "end"):
            group = [r for r in rows if r["task"] == task and r["student"] == student and r["group"] != "all"]
            assert sum(r["share"] for r in group) == pytest.approx(1.0)  # the groups partition the pixels
            everything = [r for r in rows if r["task"] == task and r["student"] == student and r["group"] == "all"]
            assert len(everything) == 1 and everything[0]["share"] == 1.0
    for r in rows:
        # GM ≤ AM (up to ε) and Σ|∂GM/∂ℓ_i| = GM · mean 1/(ℓ+ε) ≥ GM / HM ≥ 1 (HM ≤ GM)
        assert r["GM"] <= r["AM"] + 1e-6 and r["gain"] >= 1 - 1e-9
        # the smallest 1 % of ℓ carries at least its count's share of the weights 1/(ℓ+ε)
        assert 0 < r["top1%"] <= 1 and 0 <= r["ℓ<1e-3"] <= 1 and math.isfinite(r["AM"])
    assert stats.main([str(had_run), "--images", "4", "--markdown"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("| run | phase | task | group | student | share |") and "| 2 | segmentation |" in printed
    assert stats.main([str(had_run), "--images", "4", "--summary"]) == 0
    lines = capsys.readouterr().out.splitlines()[1:]
    assert len(lines) == 6 and all(line.split()[3] == "all" for line in lines)  # phase 2: 1 task, phase 3: 2; × 2


def test_grad_norms_reads_every_term(had_run, capsys):
    norms = _script("grad_norms").term_norms(had_run)
    assert set(norms) == {"new", "db", "sg"} and all(v > 0 for values in norms.values() for v in values)
