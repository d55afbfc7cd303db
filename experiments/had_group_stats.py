"""Group statistics of HAD's DB term on finished runs: why the geometric mean behaves as it does here.

    python experiments/had_group_stats.py RUN_DIR [RUN_DIR ...] [--images 64] [--markdown]

For every phase t ≥ 2 of each run, the teacher is the run's model after phase t−1 and the student is
(a) that same model in train mode — the student at the first step of phase t, when only dropout and
BatchNorm's batch statistics separate it from the teacher — and (b) the run's model after phase t.
On the first ``--images`` images of phase t's chunk (batches of ``train.batch_size``), for every old
task j and every DB group (HAD paper eq. 6: segmentation by the teacher's class, regression and
normals by value groups of the pseudo-label), with ℓ the per-pixel distillation loss of eq. 5:

* ``share``: the group's fraction of the pixels;
* ``AM``, ``GM``: the arithmetic mean of ℓ and the geometric mean exp(mean log(ℓ + ε)), ε = 1e-8;
* ``ℓ<1e-3``: the fraction of the group's pixels with ℓ below 1e-3;
* ``gain``: Σ_i |∂GM/∂ℓ_i| = GM · mean(1/(ℓ+ε)) — how much more gradient the geometric mean sends
  through the group's pixels than the arithmetic mean (whose weights 1/n sum to 1);
* ``top1%``: the share of the geometric mean's gradient weights 1/(n(ℓ+ε)) that the 1 % of pixels
  with the smallest ℓ carry (the arithmetic mean gives them 1 %).

Group ``all`` is every pixel of the image as one group (``--summary`` prints only those rows): its
``AM`` is the plain distillation error of the old task, what DIS minimises.

The statistics are per image (as eq. 5 averages per image), then averaged over images, groups with
no pixel in an image left out. Any method's run works (the teacher and student are read from its
checkpoints), so HAD's and DIS's runs can be compared on the same footing.
"""

from __future__ import annotations

import argparse
import copy
import functools
import math
from collections import defaultdict
from pathlib import Path

import torch

import lhl
from lhl.losses.had import group_masks_batched

EPS = 1e-8


@torch.no_grad()
def _outputs(model, images: torch.Tensor, tasks: list[str], batch: int, train: bool) -> dict[str, torch.Tensor]:
    model.train(train)
    parts: dict[str, list[torch.Tensor]] = defaultdict(list)
    for i in range(0, len(images), batch):
        for name, value in model(images[i:i + batch], tasks).items():
            parts[name].append(value)
    model.eval()
    return {name: torch.cat(values) for name, values in parts.items()}


def _image_stats(loss: torch.Tensor, mask: torch.Tensor) -> dict[str, float] | None:
    values = loss[mask].double()
    n = values.numel()
    if n == 0:
        return None
    inv = 1.0 / (values + EPS)
    gm = math.exp(torch.log(values + EPS).mean().item())
    k = max(1, n // 100)
    smallest = torch.topk(values, k, largest=False).indices
    return {"AM": values.mean().item(), "GM": gm, "ℓ<1e-3": (values < 1e-3).double().mean().item(),
            "gain": gm * inv.mean().item(), "top1%": (inv[smallest].sum() / inv.sum()).item()}


@functools.lru_cache(maxsize=4)
def _load(run_dir: Path, phase: int | None = None):
    """A run's model after ``phase`` (each checkpoint read once: phase t is phase t+1's teacher)."""
    return lhl.load_run(run_dir, phase=phase, device="cpu")


def phase_stats(run_dir: Path, phase: int, images: int) -> list[dict]:
    """One row per (old task, group, student) of ``phase``."""
    teacher_run, student_run = _load(run_dir, phase - 1), _load(run_dir, phase)
    run, config = student_run.run, student_run.config
    old = list(teacher_run.model.tasks)
    chunk = run.plan()[phase - 1][1][:images]
    dataset = run.benchmark.dataset("train", chunk, [])
    x = torch.stack([dataset[i]["image"] for i in range(len(dataset))])
    torch.manual_seed(0)
    teacher = _outputs(teacher_run.model, x, old, config.train.batch_size, train=False)
    # a copy: train mode updates BatchNorm's running statistics, and the loaded runs are cached
    students = {"start": _outputs(copy.deepcopy(teacher_run.model), x, old, config.train.batch_size, train=True),
                "end": _outputs(student_run.model, x, old, config.train.batch_size, train=False)}
    threshold = float(getattr(run.method_options, "group_threshold", 0.5))
    groups_n = int(getattr(run.method_options, "regression_groups", 2))
    rows = []
    for name in old:
        task = run.tasks[name]
        grouping, kind = task.had_grouping(teacher[name])
        masks = group_masks_batched([grouping], [kind], threshold, groups_n)[0]  # [B, G, H, W]
        pseudo = task.pseudo_label(teacher[name])
        for label, student in students.items():
            loss = task.distill_map(student[name], pseudo)  # [B, H, W]
            everything = torch.ones_like(masks[:, :1])
            for g, mask in [*enumerate(masks.unbind(1)), ("all", everything[:, 0])]:
                per_image = [s for b in range(len(x)) if (s := _image_stats(loss[b], mask[b])) is not None]
                if not per_image:
                    continue
                row = {"run": run_dir.name, "phase": phase, "task": name, "group": g, "student": label,
                       "share": mask.double().mean().item()}
                for key in per_image[0]:
                    row[key] = sum(s[key] for s in per_image) / len(per_image)
                rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--images", type=int, default=64, help="images of each phase's chunk (default 64)")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--summary", action="store_true", help="only the rows of all pixels (group 'all')")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    keys = ["share", "AM", "GM", "ℓ<1e-3", "gain", "top1%"]
    header = ["run", "phase", "task", "group", "student", *keys]
    lines = []
    for run_dir in args.runs:
        phases = len(_load(run_dir).run.plan())
        for phase in range(2, phases + 1):
            for row in phase_stats(run_dir, phase, args.images):
                if args.summary and row["group"] != "all":
                    continue
                lines.append([str(row[h]) if h not in keys else f"{row[h]:.3g}" for h in header])
    if args.markdown:
        print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
        print("\n".join("| " + " | ".join(line) + " |" for line in lines))
    else:
        widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
        print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
        print("\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)) for line in lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
