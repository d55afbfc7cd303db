"""What a run was made with (``provenance.json``; its fields are listed in the README, "Run
directory")."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch
import torchvision

from lhl.config.schema import RunConfig
from lhl.version import __version__


def git_commit() -> str | None:
    """The commit of the source tree lhl was imported from, when it is a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent,
                             capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def provenance(config: RunConfig, device: torch.device, weights_hash: str | None,
               dataset_fingerprint: str) -> dict[str, Any]:
    return {
        "lhl_version": __version__,
        "git_commit": git_commit(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor(),
        "weights": config.model.weights,
        "weights_sha256": weights_hash,
        "initialisation": "pretrained file" if weights_hash else "random",
        "dataset_fingerprint": dataset_fingerprint,
        "command": sys.argv,
    }
