"""Where encoder weights come from: a local file, torch's hub cache, or lhl's own cache
(docs/pretrained-weights.md).

``model.weights`` is a path to a weight file, the word ``synthetic-pretrained`` — the file
``lhl pretrain --encoder <encoder>`` wrote to ``$LHL_HOME/weights`` (by default
``~/.cache/lhl/weights``; :mod:`lhl.models.synthetic_pretrain`) — or the word ``imagenet``, which means
torchvision's ImageNet file for the configured encoder in ``torch.hub.get_dir()/checkpoints``
(``$TORCH_HOME/hub/checkpoints``, by default ``~/.cache/torch/hub/checkpoints``) — the file
torchvision itself would download there. Nothing is downloaded at run time: a missing file
is an error that says where to put it. See ``docs/pretrained-weights.md``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision.models import ResNet18_Weights, ResNet34_Weights, ResNet50_Weights

from lhl.models.synthetic_pretrain import SPEC, resolve_synthetic

#: encoder → torchvision weight entries accepted for ``imagenet``, preferred first (V1 is what
#: torchvision's older ``pretrained=True`` loaded; ResNet-50's V2 is accepted as a fallback)
IMAGENET_WEIGHTS = {
    "resnet18": (ResNet18_Weights.IMAGENET1K_V1,),
    "resnet34": (ResNet34_Weights.IMAGENET1K_V1,),
    "resnet50": (ResNet50_Weights.IMAGENET1K_V1, ResNet50_Weights.IMAGENET1K_V2),
}


def hub_checkpoint_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def resolve_weights(spec: str, encoder: str) -> Path:
    """The weight file ``model.weights`` names for ``encoder``; never downloads."""
    if spec.strip().lower() == SPEC:
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
