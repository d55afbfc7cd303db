"""Memory of the frozen-teacher cache (issue 14, item (e); docs/design.md "Teacher cache").

Arithmetic from the task declarations, no data needed: for the paper configurations of NYUv2
(288×384, 795 training images, 3 tasks → chunks of ⌊795/3⌋ = 265 images) and Taskonomy (256×256,
``data.train_size: 1390``, 10 tasks → chunks of 139 images), the cache of the LAST phase (every
earlier task is old: 2 on NYUv2, 9 on Taskonomy) is

    images per chunk × H × W × Σ_old tasks bytes per pixel,

where a task's bytes per pixel are those of what the cache stores for it, obtained by running
the task's own declarations on a one-pixel output: ``Task.compress_pseudo_label`` of
``Task.pseudo_label`` for HAD and DIS (uint8 class maps; depth, normals, other regression in the
cache's precision), the raw output (channels × precision) for LwF's soft targets. Printed for
fp16 and fp32 storage, and for every task order in ``src/lhl/config/paper`` (the last phase's old
tasks depend on the order).

For comparison, the last row gives what caching POD's teacher features would take: the four
encoder stage maps of the dilated ResNet (output stride 8; layer1 at stride 4) per image at
NYUv2's 288×384, measured by running the encoder on the meta device, times the chunk.

    python benchmarks/teacher_cache_memory.py
"""

from __future__ import annotations

from pathlib import Path

import torch

from lhl.config import load_config
from lhl.registry import BENCHMARKS, ENCODERS, load_builtins

PAPER = Path(__file__).resolve().parents[1] / "src" / "lhl" / "config" / "paper"
DTYPES = {"fp16": torch.float16, "fp32": torch.float32}


def bytes_per_pixel(task, kind: str, precision: str) -> int:
    """Bytes the cache stores per pixel of ``task`` (from the task's declarations)."""
    raw = torch.zeros(1, task.out_channels, 1, 1)
    if kind == "raw":
        stored = raw.to(DTYPES[precision])
    else:
        stored = task.compress_pseudo_label(task.pseudo_label(raw), DTYPES[precision])
    return stored.element_size() * stored.numel()


def last_phase_cache(config_file: Path, kind: str, precision: str) -> tuple[str, int, int, int]:
    """(order, images per chunk, bytes per image, bytes) of the last phase's cache."""
    config = load_config(config_file)
    benchmark = BENCHMARKS.get(config.benchmark)(config.data, config.seed)
    order = list(config.tasks or benchmark.default_tasks)
    images = {"nyuv2": 795}.get(config.benchmark, config.data.train_size) // len(order)
    height, width = config.data.resolution
    per_pixel = sum(bytes_per_pixel(benchmark.make_task(name), kind, precision) for name in order[:-1])
    per_image = per_pixel * height * width
    return "-".join(order) if len(order) <= 3 else f"{len(order)} tasks", images, per_image, images * per_image


def pod_features_per_image(encoder: str, size: tuple[int, int]) -> int:
    """Values of the four encoder stage maps of one image (measured on the meta device)."""
    with torch.device("meta"):
        net = ENCODERS.get(encoder)()
        stages = net(torch.zeros(1, 3, *size))
    return sum(stage.numel() for stage in stages)


def mib(count: int) -> str:
    return f"{count / 2 ** 20:9.1f}"


def main() -> None:
    load_builtins()
    configs = [PAPER / name for name in ("nyuv2-r18-seg-depth-normal.yaml", "nyuv2-r18-depth-seg-normal.yaml",
                                         "nyuv2-r18-normal-depth-seg.yaml", "taskonomy-r18-paper-order.yaml")]
    print("Teacher cache of the last phase (MiB); HAD/DIS store pseudo-labels, LwF raw outputs")
    print(f"{'configuration':<34} {'order':<24} {'images':>6} {'HAD/DIS fp16':>12} {'HAD/DIS fp32':>12} "
          f"{'LwF fp16':>9} {'LwF fp32':>9}")
    for path in configs:
        cells = {}
        for kind in ("pseudo_label", "raw"):
            for precision in ("fp16", "fp32"):
                order, images, _, total = last_phase_cache(path, kind, precision)
                cells[kind, precision] = total
        print(f"{path.stem:<34} {order:<24} {images:>6} {mib(cells['pseudo_label', 'fp16']):>12} "
              f"{mib(cells['pseudo_label', 'fp32']):>12} {mib(cells['raw', 'fp16']):>9} {mib(cells['raw', 'fp32']):>9}")
    print()
    print("POD's teacher features, for comparison (not cached): four stage maps at 288×384, 265 images")
    for encoder in ("resnet18", "resnet50"):
        values = pod_features_per_image(encoder, (288, 384))
        print(f"  {encoder}: {values:,} values per image; fp16 {mib(2 * values * 265).strip()} MiB, "
              f"fp32 {mib(4 * values * 265).strip()} MiB per chunk")


if __name__ == "__main__":
    main()
