"""Where encoder weights come from: a local file, torch's hub cache, or lhl's own cache
(docs/pretrained-weights.md).

``model.weights`` is a path to a weight file, the word ``synthetic-pretrained`` — the file
``lhl pretrain --encoder <encoder>`` wrote to ``$LHL_HOME/weights`` (by default
``~/.cache/lhl/weights``; :mod:`lhl.engine.pretrain`) — or the word ``imagenet``, which means
torchvision's ImageNet file for the configured encoder in ``torch.hub.get_dir()/checkpoints``
(``$TORCH_HOME/hub/checkpoints``, by default ``~/.cache/torch/hub/checkpoints``) — the file
torchvision itself would download there. Nothing is downloaded at run time: a missing file
is an error that says where to put it. See ``docs/pretrained-weights.md``.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torchvision.models import ResNet18_Weights, ResNet34_Weights, ResNet50_Weights


#: encoder → torchvision weight entries accepted for ``imagenet``, preferred first (V1 is what
#: torchvision's older ``pretrained=True`` loaded; ResNet-50's V2 is accepted as a fallback)
IMAGENET_WEIGHTS = {
    "resnet18": (ResNet18_Weights.IMAGENET1K_V1,),
    "resnet34": (ResNet34_Weights.IMAGENET1K_V1,),
    "resnet50": (ResNet50_Weights.IMAGENET1K_V1, ResNet50_Weights.IMAGENET1K_V2),
}


#: the ``model.weights`` word for the file ``lhl pretrain`` writes (:mod:`lhl.engine.pretrain`)
SYNTHETIC_WEIGHTS = "synthetic-pretrained"


def weights_home() -> Path:
    """``$LHL_HOME/weights``, by default ``~/.cache/lhl/weights``."""
    return Path(os.environ.get("LHL_HOME") or "~/.cache/lhl").expanduser() / "weights"


def cached_weights_path(encoder: str) -> Path:
    """Where ``lhl pretrain --encoder ENCODER`` writes and ``model.weights: synthetic-pretrained`` looks."""
    return weights_home() / f"{encoder.lower()}-{SYNTHETIC_WEIGHTS}.pt"


def pretrain_command(encoder: str) -> str:
    return f"lhl pretrain --encoder {encoder.lower()}"


def resolve_synthetic(encoder: str) -> Path:
    """The cached weight file for ``encoder``, or :class:`FileNotFoundError` with the command that makes it."""
    path = cached_weights_path(encoder)
    if path.is_file():
        return path
    raise FileNotFoundError(
        f"model.weights: {SYNTHETIC_WEIGHTS}: {str(path)!r} not found. Make it with: {pretrain_command(encoder)} "
        f"(writes it there; resnet18 takes about 19 minutes on 2 idle CPU cores; LHL_HOME={str(weights_home().parent)!r} "
        f"chooses the folder), or set model.weights to a weight file's path.")


def hub_checkpoint_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def resolve_weights(spec: str, encoder: str) -> Path:
    """The weight file ``model.weights`` names for ``encoder``; never downloads."""
    if spec.strip().lower() == SYNTHETIC_WEIGHTS:
        return resolve_synthetic(encoder)
    if spec.strip().lower() != "imagenet":
        return Path(spec).expanduser()
    options = IMAGENET_WEIGHTS.get(encoder.lower())
    if options is None:
        raise FileNotFoundError(f"model.weights: no ImageNet weights are known for encoder {encoder!r}; "
                                f"known: {', '.join(IMAGENET_WEIGHTS)} (or give a file path)")
    folder = hub_checkpoint_dir()
    for weights in options:
        path = folder / weights.url.rsplit("/", 1)[-1]
        if path.is_file():
            return path
    first = options[0]
    name = first.url.rsplit("/", 1)[-1]
    raise FileNotFoundError(
        f"model.weights: imagenet: {str(folder / name)!r} not found. Put torchvision's {encoder} ImageNet file "
        f"there ({first.url}; e.g. python -c \"import torchvision; torchvision.models.{encoder}"
        f"(weights='IMAGENET1K_V1')\" downloads it), set TORCH_HOME to the folder holding hub/checkpoints, or "
        f"set model.weights to the file's path. lhl never downloads weights itself.")
