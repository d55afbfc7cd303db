"""Tiny datasets written in the exact on-disk formats of NYUv2, CityScapes and Taskonomy.

For tests, benchmarks and trying the command line without a download. The images are
piecewise constant (square blocks of random colours) and every label is a pixel-wise
function of the image (:func:`mtan_labels`), so a spatial transform that keeps image and
labels aligned keeps that relation; every image has invalid pixels of every kind (its first
two blocks).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def block_image(rng: np.random.Generator, size: tuple[int, int], block: int) -> np.ndarray:
    """``H×W×3`` float32 in [0, 1], constant on ``block × block`` squares."""
    rows, cols = -(-size[0] // block), -(-size[1] // block)
    colours = rng.random((rows, cols, 3), dtype=np.float32)
    return np.repeat(np.repeat(colours, block, 0), block, 1)[: size[0], : size[1]].copy()


def mtan_labels(image: np.ndarray, num_classes: int) -> dict[str, np.ndarray]:
    """MTAN-format labels computed from an ``H×W×3`` image in [0, 1].

    segmentation ``floor(r·C)`` (−1 where g < 0.1); depth ``0.5 + 4g`` metres (0 where
    b < 0.15); normal = normalised ``(2r−1, 2g−1, 1)`` (all-zero where b > 0.9).
    """
    r, g, b = image[..., 0], image[..., 1], image[..., 2]
    label = np.minimum(np.floor(r * num_classes), num_classes - 1)
    label = np.where(g < 0.1, -1, label).astype(np.float32)
    depth = np.where(b < 0.15, 0.0, 0.5 + 4.0 * g)[..., None].astype(np.float32)
    normal = np.stack([2 * r - 1, 2 * g - 1, np.ones_like(r)], axis=-1)
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
    normal = np.where((b > 0.9)[..., None], 0.0, normal).astype(np.float32)
    return {"label": label, "depth": depth, "normal": normal}


def write_mtan(root: str | Path, benchmark: str = "nyuv2", n_train: int = 8, n_test: int = 4,
               size: tuple[int, int] = (16, 24), block: int = 4, seed: int = 0,
               label_folder: str | None = None) -> Path:
    """Write ``root/{train,val}/{image,<label>,depth[,normal]}/<i>.npy`` like MTAN's archives.

    ``benchmark`` is ``"nyuv2"`` (13 classes, with normals) or ``"cityscapes"`` (7 classes,
    no normals, label folder ``label_7`` unless ``label_folder`` says ``label``).
    """
    root = Path(root)
    cityscapes = benchmark == "cityscapes"
    classes = 7 if cityscapes else 13
    label_folder = label_folder or ("label_7" if cityscapes else "label")
    rng = np.random.default_rng(seed)
    for split, count in (("train", n_train), ("val", n_test)):
        folders = {"image": "image", "label": label_folder, "depth": "depth"}
        if not cityscapes:
            folders["normal"] = "normal"
        for folder in folders.values():
            (root / split / folder).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            image = block_image(rng, size, block)
            image[:block, :block, 1:] = (0.05, 0.1)  # ignore label, invalid depth
            image[:block, block:2 * block, 2] = 0.95  # invalid normal
            np.save(root / split / "image" / f"{i}.npy", image)
            for key, value in mtan_labels(image, classes).items():
                if key in folders:
                    np.save(root / split / folders[key] / f"{i}.npy", value)
    return root


def _png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def write_taskonomy(root: str | Path, buildings: tuple[str, ...] = ("allensville", "ihlen", "collierville"),
                    points: int = 2, views: int = 4, size: tuple[int, int] = (16, 16), seed: int = 0,
                    segmentation_folder: str = "segment_semantic", eight_bit: tuple[str, ...] = ()) -> Path:
    """Write ``root/<domain>/<building>/point_<p>_view_<v>_domain_<domain>.png`` for all 10 tasks.

    Segmentation files of the first building are spelled ``segmentsemantic``, the others
    ``segment_semantic`` (both occur in the wild). Invalid pixels: depth 65535, normal grey
    128, segmentation 0. Domains named in ``eight_bit`` that are normally 16-bit are written
    as 8-bit files.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    h, w = size
    for b_index, building in enumerate(buildings):
        for point in range(points):
            for view in range(views):
                stem = f"point_{point}_view_{view}_domain_"
                rgb = (block_image(rng, size, 4) * 255).round().astype(np.uint8)
                _png(root / "rgb" / building / f"{stem}rgb.png", rgb)
                invalid = rng.random(size) < 0.1
                seg = rng.integers(1, 18, size, dtype=np.uint8)
                seg[invalid] = 0
                spelling = "segmentsemantic" if b_index == 0 else "segment_semantic"
                _png(root / segmentation_folder / building / f"{stem}{spelling}.png", seg)
                for domain in ("depth_zbuffer", "depth_euclidean"):
                    depth = rng.integers(256, 8192, size, dtype=np.uint16)
                    depth[invalid] = 65535
                    _png(root / domain / building / f"{stem}{domain}.png", depth)
                normal = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
                normal[invalid] = 128
                _png(root / "normal" / building / f"{stem}normal.png", normal)
                curvature = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
                _png(root / "principal_curvature" / building / f"{stem}principal_curvature.png", curvature)
                _png(root / "reshading" / building / f"{stem}reshading.png",
                     rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
                for domain in ("edge_occlusion", "edge_texture", "keypoints2d", "keypoints3d"):
                    if domain in eight_bit:
                        value = rng.integers(0, 256, size, dtype=np.uint8)
                    else:
                        value = rng.integers(0, 65536, size, dtype=np.uint16)
                    _png(root / domain / building / f"{stem}{domain}.png", value)
    return root
