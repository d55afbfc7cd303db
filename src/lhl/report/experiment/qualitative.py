"""The qualitative grid: a few test images, their ground truth and every row's final prediction
per task, colour-mapped. Each row's model comes from :func:`lhl.engine.loading.load_run` (its last
checkpoint, SHA-256 verified) on one run per row — the seed of the section's first run.

Colours follow each task's declared display (:attr:`lhl.tasks.Task.display`): class maps with a
fixed palette (class ``c`` always has the same colour), vector maps (normals) as RGB ``(v + 1) / 2``,
scalar maps through the task's colormap (``viridis`` for depth, ``magma`` by default) over the 2–98th
percentile of the ground truth's valid pixels; invalid ground-truth pixels are black.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from lhl.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from lhl.errors import LhlError
from lhl.report.experiment.collect import Section
from lhl.report.experiment.figures import image_grid

__all__ = ["Qualitative", "qualitative_grid", "colorize", "segmentation_palette"]


@dataclass
class Qualitative:
    png: bytes | None
    indices: list[int] = field(default_factory=list)
    seed: int | None = None
    notes: list[str] = field(default_factory=list)


def segmentation_palette() -> np.ndarray:
    """60 fixed RGB colours in [0, 1] (tab20, tab20b, tab20c), indexed by class."""
    import matplotlib

    colors = [c for name in ("tab20", "tab20b", "tab20c") for c in matplotlib.colormaps[name].colors]
    return np.asarray(colors, dtype=float)[:, :3]


def _cmap(name: str, values: np.ndarray, low: float, high: float) -> np.ndarray:
    import matplotlib

    scaled = (values - low) / (high - low) if high > low else np.zeros_like(values)
    return matplotlib.colormaps[name](np.clip(np.nan_to_num(scaled), 0, 1))[..., :3]


def colorize(task, value: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``value`` (a label or a post-processed prediction: ``[H, W]`` classes or ``[C, H, W]``) as RGB
    ``[H, W, 3]``, the way ``task`` says it is shown (:attr:`lhl.tasks.Task.display`); the colour
    range and the invalid pixels come from the ground truth ``reference`` (``task.valid_mask``)."""
    import torch

    valid = task.valid_mask(torch.as_tensor(np.asarray(reference))).numpy()
    if task.display == "classes":
        palette = segmentation_palette()
        labels = np.asarray(value).astype(np.int64).reshape(value.shape[-2:])
        rgb = palette[np.mod(labels, len(palette))]
        rgb[~valid.reshape(labels.shape)] = 0.0
        return rgb
    value = np.asarray(value, dtype=float)
    reference = np.asarray(reference, dtype=float)
    if value.ndim == 2:
        value = value[None]
    if reference.ndim == 2:
        reference = reference[None]
    valid = valid.reshape(reference.shape[-2:])
    if task.display == "vectors" and value.shape[0] >= 3:
        rgb = np.clip((np.nan_to_num(value[:3]).transpose(1, 2, 0) + 1) / 2, 0, 1)
    else:
        values = reference[0][valid]
        low, high = (float(np.percentile(values, 2)), float(np.percentile(values, 98))) if values.size else (0.0, 1.0)
        rgb = _cmap(task.colormap, value[0], low, high)
    rgb = rgb.copy()
    rgb[~valid] = 0.0
    return rgb


def _image(tensor, normalize: str) -> np.ndarray:
    image = np.asarray(tensor, dtype=float).transpose(1, 2, 0)
    if normalize == "imagenet":
        image = image * IMAGENET_STD + IMAGENET_MEAN
    elif image.min() < 0 or image.max() > 1:
        image = (image - image.min()) / max(float(image.max() - image.min()), 1e-12)
    return np.clip(image, 0, 1)


def qualitative_grid(section: Section, count: int = 3) -> Qualitative:
    """Predictions of one run per row of ``section`` on ``count`` test images spread evenly over
    the test set. A row whose model cannot be loaded (no checkpoint, data not on this machine) is
    left out with a note; without any model the result has no PNG."""
    import torch

    from lhl.engine.loading import load_run

    runs = section.first_seed_runs()
    seeds = sorted({r.run.seed for r in runs.values()})
    out = Qualitative(png=None, seed=seeds[0] if len(seeds) == 1 else None)
    if count < 1 or not runs:
        return out
    loaded = {}
    for label, record in runs.items():
        try:
            loaded[label] = load_run(record.path, device="cpu")
        except (LhlError, OSError) as exc:
            out.notes.append(f"{label}: no prediction, its model cannot be loaded ({' '.join(str(exc).split())})")
    if not loaded:
        return out
    reference = next(iter(loaded.values()))
    order = [t for t in section.order if t in reference.tasks]
    try:
        benchmark = reference.run.benchmark
        total = benchmark.num_images("test")
        indices = sorted({int(round(x)) for x in np.linspace(0, total - 1, min(count, total))})
        dataset = benchmark.dataset("test", indices, order)
        samples = [dataset[i] for i in range(len(indices))]
    except (LhlError, OSError) as exc:
        out.notes.append(f"no qualitative grid: the test images cannot be read on this machine "
                         f"({' '.join(str(exc).split())})")
        return out
    out.indices = indices
    images = torch.stack([s["image"] for s in samples])
    predictions: dict[str, dict[str, np.ndarray]] = {}
    with torch.no_grad():
        for label, run in loaded.items():
            raw = run.model(images)
            predictions[label] = {t: run.tasks[t].postprocess(raw[t]).cpu().numpy()
                                  for t in order if t in run.tasks and t in raw}
    normalize = getattr(reference.config.data, "normalize", "none")
    labels = list(loaded)
    # cell (sample i, task, "ground truth" or a row label) -> RGB
    cells: dict[tuple[int, str, str], np.ndarray | None] = {}
    for i in range(len(indices)):
        for task in order:
            spec = reference.tasks[task]
            truth = samples[i][task].numpy()
            cells[(i, task, "ground truth")] = colorize(spec, truth, truth)
            for label in labels:
                pred = predictions[label].get(task)
                cells[(i, task, label)] = None if pred is None else colorize(spec, pred[i], truth)
    images = {i: _image(samples[i]["image"], normalize) for i in range(len(indices))}
    sources = ["ground truth", *labels]
    rows: list[tuple[str, Sequence[np.ndarray | None]]] = []
    if len(order) <= len(sources):  # a row per (image, task), a column per source
        columns = ["image", *sources]
        for i, index in enumerate(indices):
            for j, task in enumerate(order):
                rows.append((f"#{index} {task}", [images[i] if j == 0 else None,
                                                  *(cells[(i, task, who)] for who in sources)]))
    else:  # many tasks (Taskonomy): a row per (image, source), a column per task
        columns = ["image", *order]
        for i, index in enumerate(indices):
            for k, who in enumerate(sources):
                rows.append((f"#{index} {who}", [images[i] if k == 0 else None,
                                                 *(cells[(i, task, who)] for task in order)]))
    cell = 1.5 if len(rows) <= 12 else 1.1
    out.png = image_grid(rows, columns,
                         f"{section.title} — test images {', '.join(map(str, indices))}, final predictions"
                         + (f" (seed {out.seed})" if out.seed is not None else ""), cell=cell)
    return out
