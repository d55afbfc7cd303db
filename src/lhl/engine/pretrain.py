"""``lhl pretrain``: a synthetic stand-in for ImageNet pretraining (docs/pretrained-weights.md,
"Synthetic pretraining").

The HAD paper starts every encoder from ImageNet weights. This module trains an encoder once, the
way ImageNet classification does — image-level labels, a global-average-pooled feature and a
linear classifier that is thrown away afterwards — on rendered scenes that no benchmark reads:

* scenes: :func:`lhl.data.synthetic.sample_scene` with split ``"pretrain"`` (split code 3), so
  scene ``i`` comes from the generator ``numpy.random.default_rng([seed, 3, i])``; every benchmark
  split uses codes 0–2 (train, test, val), so no benchmark scene of any seed is among them;
* objective (per image, no pixel-level target reaches the encoder): the scene's image-level labels
  (:mod:`lhl.data.synthetic.attributes`) — the class histogram (soft-target cross-entropy), which
  shapes are visible and which (shape, material) pairs and object colours the scene holds
  (multi-label, binary cross-entropy), the floor's, walls' and ceiling's materials (cross-entropy),
  and the room's size, the camera's pose and field of view and the light (standardised regression,
  smooth L1) — "what is in this picture, what is it made of, and how is it seen", a broad mix of
  labels none of which is a benchmark task;
* augmentation: horizontal flip (the mirror-odd labels change sign) and a random shift of up to 1/16
  of the image (reflect padding);
* Adam (the optimiser every benchmark run fine-tunes with), weight decay 1e-5, a linear warm-up over
  the first 3 % of the steps and a cosine decay; the images are rendered once, kept in memory as 8-bit.

The weight file holds the encoder's parameters and BatchNorm statistics under torchvision's
ResNet key names (``conv1.*``, ``bn1.*``, ``layer*``), so :func:`lhl.models.load_encoder_weights`
reads it exactly like an ImageNet ``resnet*.pth`` file; a JSON file next to it records how it was
made and its SHA-256. ``model.weights: synthetic-pretrained`` finds it in
:func:`lhl.models.pretrained.weights_home` (the paths live there, below the data layer).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lhl.data.synthetic import TEXTURE_KINDS, render_scenes, sample_scene
from lhl.data.synthetic.attributes import FAMILIES, mirror, scene_attributes
from lhl.data.synthetic.scene import SPLIT_CODES
from lhl.errors import ConfigError
from lhl.models.pretrained import cached_weights_path, pretrain_command

PRETRAIN_SPLIT = "pretrain"
OBJECTIVE = ("image-level scene labels (lhl.data.synthetic.attributes): class pixel fractions (soft-target "
             "cross-entropy) + visible shapes, (shape, material) pairs, object hues (multi-label BCE) + floor/wall/"
             "ceiling materials (cross-entropy) + room size, camera pose and field of view, light, object count "
             "(standardised, smooth L1); GAP features + a linear head, discarded after pretraining")


@dataclass(frozen=True)
class PretrainRecipe:
    """How the encoder is pretrained; the defaults are the recipe the sanity gate was run with
    (docs/pretrained-weights.md)."""

    encoder: str = "resnet18"
    images: int = 16384
    epochs: int = 8
    resolution: tuple[int, int] = (64, 64)
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-5
    seed: int = 0
    heldout: int = 512  # images after the training ones, to report how well the objective was learned
    threads: int = 0  # torch threads; 0: torch's default (one per core)

    def check(self) -> None:
        for name in ("images", "epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')}: expected a positive integer, got {getattr(self, name)}")
        if self.batch_size < 2:
            raise ConfigError(f"--batch-size: expected at least 2 (BatchNorm), got {self.batch_size}")
        if len(self.resolution) != 2 or any(int(r) != r or r < 8 for r in self.resolution):
            raise ConfigError(f"--resolution: expected two integers H W, each at least 8, got {list(self.resolution)}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"--lr: expected a positive number, got {self.lr}")
        if self.weight_decay < 0:
            raise ConfigError(f"--weight-decay: expected a non-negative number, got {self.weight_decay}")
        if self.seed < 0:
            raise ConfigError(f"--seed: expected a non-negative integer, got {self.seed}")
        if self.threads < 0:
            raise ConfigError(f"--threads: expected a non-negative integer, got {self.threads}")
        if self.heldout < 0:
            raise ConfigError(f"--heldout: expected a non-negative integer, got {self.heldout}")


# ------------------------------------------------------------------------------ data

def render_pretraining_set(seed: int, indices: range, resolution: tuple[int, int],
                           chunk: int = 1024) -> tuple[Tensor, Tensor]:
    """Images (uint8 ``[N, 3, H, W]``) and their attributes (float ``[N, attributes.NUM_ATTRIBUTES]``,
    :func:`lhl.data.synthetic.attributes.scene_attributes`) of the ``pretrain`` scenes ``indices``."""
    images, targets = [], []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the renderer's many small kernels slow down badly with 2 threads on a busy machine
    try:
        for start in range(indices.start, indices.stop, chunk):
            scenes = [sample_scene(seed, PRETRAIN_SPLIT, i) for i in range(start, min(start + chunk, indices.stop))]
            out = render_scenes(scenes, resolution, ("segmentation",))
            images.append((out["image"] * 255).round().to(torch.uint8))
            targets.append(scene_attributes(scenes, out["segmentation"]))
    finally:
        torch.set_num_threads(threads)
    return torch.cat(images), torch.cat(targets)


def augment(x: Tensor, targets: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Mirror left-right (with the mirror-odd attributes negated) and shift (reflect padding, up to H/16);
    ``x`` float in [0, 1]. No colour jitter: brightness is a label (the light's intensity)."""
    n, _, h, w = x.shape
    flip = torch.rand(n, generator=generator) < 0.5
    x = torch.where(flip.view(n, 1, 1, 1), x.flip(3), x)
    targets = torch.where(flip.view(n, 1), mirror(targets), targets)
    pad = max(1, h // 16)
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator).tolist()
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator).tolist()
    return torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(n)]), targets


@dataclass(frozen=True)
class Standardiser:
    """Mean and standard deviation of the ``scene`` attributes over the training images (mean 0 for the
    mirror-odd ones, which mirroring makes symmetric); the regression targets are standardised with them."""

    mean: Tensor
    std: Tensor

    @classmethod
    def fit(cls, targets: Tensor) -> "Standardiser":
        a, b = FAMILIES["scene"]
        values = torch.cat([targets, mirror(targets)])[:, a:b].double()
        return cls(values.mean(0).float(), values.std(0).clamp_min(1e-6).float())

    def __call__(self, targets: Tensor) -> Tensor:
        a, b = FAMILIES["scene"]
        return (targets[:, a:b] - self.mean) / self.std


#: the linear head's outputs: one per attribute, one per texture kind for each material column (which
#: take the material columns' place: fractions | present | materials × kinds | scene)
SURFACES = FAMILIES["materials"][1] - FAMILIES["materials"][0]
SCENE_OUTPUTS = FAMILIES["materials"][0] + len(TEXTURE_KINDS) * SURFACES  # where the scene outputs start
OUTPUTS = SCENE_OUTPUTS + FAMILIES["scene"][1] - FAMILIES["scene"][0]


def _material_logits(logits: Tensor) -> Tensor:
    """The material outputs as ``[N, kinds, surfaces]`` (cross-entropy's class dimension second)."""
    m0 = FAMILIES["materials"][0]
    return logits[:, m0:SCENE_OUTPUTS].reshape(len(logits), len(TEXTURE_KINDS), SURFACES)


def objective(logits: Tensor, targets: Tensor, standardise: Standardiser) -> dict[str, Tensor]:
    """The loss of each label family and their sum (``"total"``); ``logits`` ``[N, OUTPUTS]``."""
    f0, f1 = FAMILIES["fractions"]
    p0, p1 = FAMILIES["present"]
    m0, m1 = FAMILIES["materials"]
    materials = _material_logits(logits)  # [N, kinds, surfaces]
    terms = {
        "fractions": -(targets[:, f0:f1] * F.log_softmax(logits[:, f0:f1], 1)).sum(1).mean(),
        "present": F.binary_cross_entropy_with_logits(logits[:, p0:p1], targets[:, p0:p1]),
        "materials": F.cross_entropy(materials, targets[:, m0:m1].long()),
        "scene": F.smooth_l1_loss(logits[:, SCENE_OUTPUTS:], standardise(targets)),
    }
    terms["total"] = sum(terms.values())
    return terms


# ------------------------------------------------------------------------------ weights

def torchvision_state_dict(encoder: nn.Module) -> dict[str, Tensor]:
    """The encoder's state under torchvision ResNet names (``stem.0`` → ``conv1``, ``stem.1`` → ``bn1``)."""
    out = {}
    for key, value in encoder.state_dict().items():
        if key.startswith("stem.0."):
            key = "conv1." + key[len("stem.0."):]
        elif key.startswith("stem.1."):
            key = "bn1." + key[len("stem.1."):]
        out[key] = value.detach().clone().cpu()
    return out


# ------------------------------------------------------------------------------ training

def pretrain(recipe: PretrainRecipe, out: str | Path | None = None,
             echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Pretrain ``recipe.encoder``, write the weight file (default: :func:`cached_weights_path`) and its
    JSON record; return the record."""
    from lhl.models.encoders import ResNetEncoder, file_sha256, undilate
    from lhl.registry import ENCODERS, load_builtins
    from lhl.version import __version__

    recipe.check()
    load_builtins()
    encoder = ENCODERS.get(recipe.encoder)()  # UnknownNameError lists the encoders
    if not isinstance(encoder, ResNetEncoder):
        raise ConfigError(f"--encoder {recipe.encoder}: lhl pretrain trains torchvision-style ResNet encoders "
                          f"(ResNetEncoder), not {type(encoder).__name__}")
    undilate(encoder)  # trained at classification strides, like an ImageNet trunk; runs dilate it again
    path = Path(out).expanduser() if out else cached_weights_path(recipe.encoder)
    if path.is_dir():
        raise ConfigError(f"--out: {str(path)!r} is a directory; expected a weight file path")
    resolution = (int(recipe.resolution[0]), int(recipe.resolution[1]))
    if recipe.threads:
        torch.set_num_threads(recipe.threads)
    started = time.perf_counter()
    torch.manual_seed(recipe.seed)
    generator = torch.Generator().manual_seed(recipe.seed)

    images, targets = render_pretraining_set(recipe.seed, range(recipe.images), resolution)
    if recipe.heldout:
        held_images, held_targets = render_pretraining_set(
            recipe.seed, range(recipe.images, recipe.images + recipe.heldout), resolution)
    render_s = time.perf_counter() - started
    echo(f"rendered {recipe.images} + {recipe.heldout} held-out pretraining images ({resolution[0]}x{resolution[1]}, "
         f"split {PRETRAIN_SPLIT!r}, seed {recipe.seed}) in {render_s:.0f} s")

    standardise = Standardiser.fit(targets)
    head = nn.Linear(encoder.out_channels, OUTPUTS)
    params = list(encoder.parameters()) + list(head.parameters())
    optimizer = torch.optim.Adam(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    steps_per_epoch = max(1, recipe.images // recipe.batch_size)  # drop the last partial batch
    total = steps_per_epoch * recipe.epochs
    warmup = max(1, int(0.03 * total))

    def lr_at(step: int) -> float:
        if step < warmup:
            return recipe.lr * (step + 1) / warmup
        return recipe.lr * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

    def forward(x: Tensor) -> Tensor:
        return head(encoder(x)[-1].mean((2, 3)))

    step, history = 0, []
    encoder.train()
    for epoch in range(1, recipe.epochs + 1):
        order = torch.randperm(recipe.images, generator=generator)
        sums: dict[str, float] = {}
        for b in range(steps_per_epoch):
            idx = order[b * recipe.batch_size:(b + 1) * recipe.batch_size]
            x, y = augment(images[idx].float() / 255, targets[idx], generator)
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step)
            terms = objective(forward(x), y, standardise)
            if not torch.isfinite(terms["total"]):
                raise FloatingPointError(f"lhl pretrain: the loss became {terms['total'].item()} at step {step}")
            optimizer.zero_grad(set_to_none=True)
            terms["total"].backward()
            optimizer.step()
            for name, value in terms.items():
                sums[name] = sums.get(name, 0.0) + value.item()
            step += 1
        means = {name: round(value / steps_per_epoch, 5) for name, value in sums.items()}
        history.append({"epoch": epoch, **means})
        parts = ", ".join(f"{name} {value:.4f}" for name, value in means.items() if name != "total")
        echo(f"epoch {epoch}/{recipe.epochs}: loss {means['total']:.4f} ({parts}), {time.perf_counter() - started:.0f} s")

    heldout = _evaluate(forward, encoder, held_images, held_targets, standardise) if recipe.heldout else {}
    train_s = time.perf_counter() - started
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(torchvision_state_dict(encoder), tmp)
    os.replace(tmp, path)
    sha = file_sha256(path)
    record = {
        "weights": path.name,
        "sha256": sha,
        "encoder": recipe.encoder,
        "objective": OBJECTIVE,
        "scenes": {"split": PRETRAIN_SPLIT, "split_code": SPLIT_CODES[PRETRAIN_SPLIT], "seed": recipe.seed,
                   "train_indices": [0, recipe.images], "heldout_indices": [recipe.images, recipe.images + recipe.heldout],
                   "generator": "numpy.random.default_rng([seed, 3, index]); benchmark splits use codes 0-2"},
        "input": "rendered images in [0, 1], no mean/std normalisation (data.normalize: none)",
        "strides": "classification strides (layer3/4 stride 2, no dilation; output stride 32), as ImageNet "
                   "trunks are trained; runs dilate layer3/4 (output stride 8)",
        "recipe": {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(recipe).items()},
        "augmentation": "horizontal flip (mirror-odd scene labels negated), reflect-padded shift up to H/16",
        "optimizer": "Adam, linear warm-up 3% of steps, cosine decay to 0",
        "scene_standardisation": {"mean": [round(v, 6) for v in standardise.mean.tolist()],
                                  "std": [round(v, 6) for v in standardise.std.tolist()]},
        "steps": total,
        "history": history,
        "heldout": heldout,
        "seconds": {"render": round(render_s, 1), "total": round(train_s, 1)},
        "torch_threads": torch.get_num_threads(),
        "lhl_version": __version__,
        "torch": torch.__version__,
        "command": pretrain_command(recipe.encoder) + _flags(recipe, out),
    }
    json_path = path.with_suffix(".json")
    tmp_json = json_path.with_name(json_path.name + ".tmp")
    tmp_json.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(tmp_json, json_path)
    return record


def _flags(recipe: PretrainRecipe, out: str | Path | None) -> str:
    default = PretrainRecipe(encoder=recipe.encoder)
    flags = []
    for field in dataclasses.fields(recipe):
        value = getattr(recipe, field.name)
        if field.name not in ("encoder", "threads") and value != getattr(default, field.name):
            text = " ".join(str(v) for v in value) if isinstance(value, tuple) else str(value)
            flags.append(f" --{field.name.replace('_', '-')} {text}")
    if out:
        flags.append(f" --out {out}")
    return "".join(flags)


@torch.no_grad()
def _evaluate(forward: Callable[[Tensor], Tensor], encoder: nn.Module, images: Tensor, targets: Tensor,
              standardise: Standardiser) -> dict[str, float]:
    """How well the held-out images' labels are predicted, each next to what a constant answer scores
    (the held-out mean fractions, the majority answer of each binary label and material, the mean
    scene values): the fractions' cross-entropy, the binary labels' and materials' accuracy, and the
    scene values' R² (1 − mean squared error / variance, in standardised units)."""
    encoder.eval()
    logits = torch.cat([forward(images[i:i + 256].float() / 255) for i in range(0, len(images), 256)])
    encoder.train()
    f0, f1 = FAMILIES["fractions"]
    p0, p1 = FAMILIES["present"]
    m0, m1 = FAMILIES["materials"]
    fractions, present, materials = targets[:, f0:f1], targets[:, p0:p1], targets[:, m0:m1].long()
    predicted_materials = _material_logits(logits).argmax(1)
    majority_materials = torch.stack([materials[:, j].bincount(minlength=len(TEXTURE_KINDS)).argmax()
                                      for j in range(m1 - m0)])
    scene, predicted_scene = standardise(targets), logits[:, SCENE_OUTPUTS:]
    variance = scene.var(0, unbiased=False)
    out = {
        "images": len(images),
        "fractions_ce": -(fractions * F.log_softmax(logits[:, f0:f1], 1)).sum(1).mean().item(),
        "fractions_ce_of_mean": -(fractions * fractions.mean(0, keepdim=True).clamp_min(1e-12).log()).sum(1).mean().item(),
        "present_accuracy": ((logits[:, p0:p1] > 0).float() == present).float().mean().item(),
        "present_accuracy_of_majority": torch.maximum(present.mean(0), 1 - present.mean(0)).mean().item(),
        "materials_accuracy": (predicted_materials == materials).float().mean().item(),
        "materials_accuracy_of_majority": (majority_materials == materials).float().mean().item(),
        "scene_r2": (1 - ((predicted_scene - scene) ** 2).mean(0) / variance.clamp_min(1e-12)).mean().item(),
    }
    return {k: (round(v, 5) if isinstance(v, float) else v) for k, v in out.items()}
