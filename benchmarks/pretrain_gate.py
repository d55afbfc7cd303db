"""The sanity gate of ``lhl pretrain`` (docs/pretrained-weights.md, "Synthetic pretraining").

Reads ``lhl bench`` directories (e.g. of ``experiments/pretrain-gate.yaml``) and prints, for the runs
from random weights (``model.weights`` unset) and from the synthetic-pretrained encoder
(``model.weights: synthetic-pretrained``; each run's config.yaml says which),
each task's main metric right after its own phase — segmentation mIoU after phase 1, depth abs
error after phase 2, normal mean angle after phase 3 on the default order — per seed and as
mean ± std over the seeds (sample standard deviation, ddof = 1), then PASS/FAIL for

1. every task: the pretrained mean is at least as good as the from-scratch mean;
2. depth: std / mean of the pretrained arm's abs error after the depth phase ≤ 0.10.

    python benchmarks/pretrain_gate.py runs/pretrain-gate [MORE_BENCH_DIRS ...] [--markdown]

Exit status 0 when both criteria pass, 1 otherwise, 2 when runs are missing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import yaml

MAIN = {"segmentation": ("miou", True), "depth": ("abs_err", False), "normal": ("mean", False)}
ARMS = (("scratch", None), ("pretrained", "synthetic-pretrained"))  # arm, model.weights
MAX_DEPTH_CV = 0.10


def own_phase_metrics(performance: dict) -> dict[str, float]:
    """task → its main metric evaluated right after the phase that trained it."""
    out = {}
    for entry in performance["phases"]:
        task = entry["task"]
        if task in MAIN:
            out[task] = entry["metrics"][task][MAIN[task][0]]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bench_dirs", type=Path, nargs="+")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    args = parser.parse_args(argv)
    runs = sorted(p for d in args.bench_dirs for p in (d / "runs").rglob("performance.json"))
    values: dict[str, dict[str, list[float]]] = {arm: {} for arm, _ in ARMS}
    seeds: dict[str, list[str]] = {arm: [] for arm, _ in ARMS}
    for path in runs:
        config = yaml.safe_load((path.parent / "config.yaml").read_text())
        seed = str(config["seed"])
        arm = next((a for a, weights in ARMS if weights == config["model"].get("weights")), None)
        performance = json.loads(path.read_text())
        if (arm is None or config["method"]["name"] != "vanilla" or list(config["tasks"]) != list(MAIN)
                or len(performance["phases"]) < len(performance["tasks"])):
            continue
        seeds[arm].append(seed)
        for task, value in own_phase_metrics(performance).items():
            values[arm].setdefault(task, []).append(value)
    if not all(seeds.values()):
        print("pretrain_gate: needs complete vanilla runs (segmentation, depth, normal) from scratch and with "
              f"model.weights: synthetic-pretrained under {', '.join(str(d) for d in args.bench_dirs)}", file=sys.stderr)
        return 2
    tasks = [t for t in MAIN if t in values["scratch"] and t in values["pretrained"]]

    def stats(xs: list[float]) -> tuple[float, float]:
        return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)

    header = ["arm", "seeds"] + [f"{t}/{MAIN[t][0]} {'↑' if MAIN[t][1] else '↓'}" for t in tasks] + ["depth std/mean"]
    rows = []
    for arm, _ in ARMS:
        row = [arm, ",".join(sorted(seeds[arm]))]
        for task in tasks:
            mean, std = stats(values[arm][task])
            per_seed = "/".join(f"{v:.4g}" for v in values[arm][task])
            row.append(f"{mean:.4g} ± {std:.2g} ({per_seed})")
        if "depth" in values[arm]:
            mean, std = stats(values[arm]["depth"])
            row.append(f"{std / mean:.3f}")
        else:
            row.append("")
        rows.append(row)
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for row in rows:
            print("| " + " | ".join(row) + " |")
    else:
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
        print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
        for row in rows:
            print("  ".join(c.ljust(w) for c, w in zip(row, widths)))
    print()
    passed = True
    for task in tasks:
        scratch, pretrained = stats(values["scratch"][task])[0], stats(values["pretrained"][task])[0]
        ok = pretrained >= scratch if MAIN[task][1] else pretrained <= scratch
        passed &= ok
        print(f"{'PASS' if ok else 'FAIL'}  {task}/{MAIN[task][0]} after its phase: pretrained {pretrained:.4g} vs "
              f"scratch {scratch:.4g} ({'higher' if MAIN[task][1] else 'lower'} is better)")
    if "depth" in values["pretrained"]:
        mean, std = stats(values["pretrained"]["depth"])
        ok = std / mean <= MAX_DEPTH_CV
        passed &= ok
        print(f"{'PASS' if ok else 'FAIL'}  depth/abs_err after the depth phase, pretrained: std/mean = {std:.4g}/"
              f"{mean:.4g} = {std / mean:.3f} (≤ {MAX_DEPTH_CV})")
    print("gate:", "PASS" if passed else "FAIL")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
