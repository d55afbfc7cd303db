"""A PNG contact sheet of synthetic samples with all their labels (for eyeballing the renderer)."""

from __future__ import annotations

from pathlib import Path

from lhl.data.synthetic.labels import SYNTHETIC_TASKS
from lhl.data.synthetic.renderer import render
from lhl.data.synthetic.scene import CLASS_NAMES, NUM_CLASSES


def save_preview_grid(path: str | Path, seed: int = 0, split: str = "train", count: int = 4,
                      resolution: tuple[int, int] = (64, 64)) -> Path:
    """Render samples ``0..count-1`` of ``split`` with every label and save one PNG grid.

    One row per sample; columns: image, segmentation (categorical colormap), normal as
    ``(n + 1) / 2`` RGB, curvature channel 0 and the scalar labels with a colormap.
    Returns the path written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = render(seed, split, list(range(count)), resolution, SYNTHETIC_TASKS)
    columns = ["image", *SYNTHETIC_TASKS]
    height, width = resolution
    cell = 1.5  # inches per column
    fig, axes = plt.subplots(count, len(columns), squeeze=False,
                             figsize=(len(columns) * cell, count * cell * height / width + 0.6))
    for row in range(count):
        for col, name in enumerate(columns):
            ax = axes[row][col]
            value = out[name][row]
            if name == "image":
                ax.imshow(value.permute(1, 2, 0).numpy())
            elif name == "segmentation":
                ax.imshow(value.numpy(), cmap="tab10", vmin=-0.5, vmax=9.5, interpolation="nearest")
            elif name == "normal":
                ax.imshow(((value + 1) / 2).clamp(0, 1).permute(1, 2, 0).numpy())
            else:
                ax.imshow(value[0].numpy(), cmap="magma" if "depth" not in name else "viridis")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                title = "principal_curv. k1" if name == "principal_curvature" else name
                ax.set_title(title, fontsize=7)
    legend = ", ".join(f"{i}={n}" for i, n in enumerate(CLASS_NAMES[:NUM_CLASSES]))
    fig.suptitle(f"synthetic {split} seed={seed} {height}x{width}   classes (tab10): {legend}",
                 fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
