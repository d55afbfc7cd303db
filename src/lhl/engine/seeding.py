"""Seeds for python, numpy, torch and data-loader workers."""

from __future__ import annotations

import random

import numpy as np
import torch


def derive_seed(seed: int, *salt: int) -> int:
    """A 31-bit seed derived deterministically from ``seed`` and ``salt`` (e.g. the phase)."""
    return int(np.random.SeedSequence([seed, *salt]).generate_state(1)[0] & 0x7FFFFFFF)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def worker_init_fn(worker_id: int) -> None:
    """Seed python/numpy in a data-loader worker from torch's per-worker seed."""
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)
