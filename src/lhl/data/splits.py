"""Disjoint equal chunks of the training set, one per phase (HAD paper, Sec. 3.2: the LHL4DP protocol)."""

from __future__ import annotations

import numpy as np


def phase_chunks(num_images: int, num_phases: int, seed: int, mode: str = "shuffle") -> list[list[int]]:
    """Split ``range(num_images)`` into ``num_phases`` disjoint chunks of ⌊N/T⌋ indices.

    ``mode="shuffle"`` permutes with ``seed`` first; ``"contiguous"`` keeps the order. The
    ``N mod T`` leftover images are unused, as in the authors' code.
    """
    if num_phases < 1:
        raise ValueError(f"num_phases must be >= 1, got {num_phases}")
    size = num_images // num_phases
    if size < 1:
        raise ValueError(f"{num_images} training images cannot be split into {num_phases} non-empty chunks")
    if mode == "shuffle":
        order = np.random.default_rng(seed).permutation(num_images)
    elif mode == "contiguous":
        order = np.arange(num_images)
    else:
        raise ValueError(f"data.chunking: invalid value {mode!r}; allowed: 'shuffle', 'contiguous'")
    return [sorted(int(i) for i in order[t * size:(t + 1) * size]) for t in range(num_phases)]
