"""``lhl pretrain``: a synthetic stand-in for ImageNet pretraining (docs/pretrained-weights.md,
"Synthetic pretraining").

The HAD paper starts every encoder from ImageNet weights. This module trains an encoder once, the
way ImageNet classification does — image-level labels, a global-average-pooled feature and a
linear classifier that is thrown away afterwards — on rendered scenes that no benchmark reads:

* scenes: :func:`lhl.data.synthetic.sample_scene` with split ``"pretrain"`` (split code 3), so
  scene ``i`` comes from the generator ``numpy.random.default_rng([seed, 3, i])``; every benchmark
  split uses codes 0–2 (train, test, val), so no benchmark scene of any seed is among them;
* objective (per image, no pixel-level target reaches the encoder): the fraction of the image's
  pixels of each of the eight object classes (a soft class histogram, soft-target cross-entropy)
  and which of the four surface materials (texture kinds) the scene's objects wear (multi-label,
  binary cross-entropy) — "what is in this picture and what is it made of", as ImageNet's labels
  are;
* augmentation: horizontal flip, a random shift of up to 1/16 of the image (reflect padding),
  brightness and contrast jitter;
* SGD with Nesterov momentum 0.9, weight decay 5e-4, a linear warm-up over the first 3 % of the
  steps and a cosine decay; the images are rendered once, kept in memory as 8-bit.

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

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lhl.data.synthetic import NUM_CLASSES, TEXTURE_KINDS, render_scenes, sample_scene
from lhl.data.synthetic.scene import SPLIT_CODES
from lhl.errors import ConfigError
from lhl.models.pretrained import cached_weights_path, pretrain_command

PRETRAIN_SPLIT = "pretrain"
OBJECTIVE = ("image-level classification: soft histogram of the 8 object classes' pixel fractions "
             "(soft-target cross-entropy) + which of the 4 texture kinds the scene's objects wear "
             "(multi-label BCE); GAP features + a linear classifier, discarded after pretraining")


@dataclass(frozen=True)
class PretrainRecipe:
    """How the encoder is pretrained; the defaults are the recipe the sanity gate was run with
    (docs/pretrained-weights.md)."""

    encoder: str = "resnet18"
    images: int = 8192
    epochs: int = 3
    resolution: tuple[int, int] = (64, 64)
    batch_size: int = 64
    lr: float = 0.05
    weight_decay: float = 5e-4
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
    """Images (uint8 ``[N, 3, H, W]``) and targets (float ``[N, 8 + 4]``: class pixel fractions,
    texture kinds present on objects) of the ``pretrain`` scenes ``indices``."""
    images, targets = [], []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the renderer's many small kernels slow down badly with 2 threads on a busy machine
    try:
        for start in range(indices.start, indices.stop, chunk):
            scenes = [sample_scene(seed, PRETRAIN_SPLIT, i) for i in range(start, min(start + chunk, indices.stop))]
            out = render_scenes(scenes, resolution, ("segmentation",))
            seg = out["segmentation"].flatten(1)
            hist = F.one_hot(seg, NUM_CLASSES).float().mean(1)
            tex = torch.tensor([[float(any(o.texture.kind == kind for o in s.objects)) for kind in TEXTURE_KINDS]
                                for s in scenes])
            images.append((out["image"] * 255).round().to(torch.uint8))
            targets.append(torch.cat([hist, tex], 1))
    finally:
        torch.set_num_threads(threads)
    return torch.cat(images), torch.cat(targets)


def augment(x: Tensor, generator: torch.Generator) -> Tensor:
    """Flip, shift (reflect padding, up to H/16), brightness and contrast jitter; ``x`` float in [0, 1]."""
    n, _, h, w = x.shape
    flip = torch.rand(n, generator=generator) < 0.5
    x = torch.where(flip.view(n, 1, 1, 1), x.flip(3), x)
    pad = max(1, h // 16)
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator).tolist()
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator).tolist()
    x = torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(n)])
    brightness = 0.75 + 0.5 * torch.rand(n, 1, 1, 1, generator=generator)
    contrast = 0.75 + 0.5 * torch.rand(n, 1, 1, 1, generator=generator)
    mean = x.mean((1, 2, 3), keepdim=True)
    return ((x - mean) * contrast + mean * brightness).clamp(0, 1)


def objective(logits: Tensor, target: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(total, class-histogram cross-entropy, texture BCE)."""
    hist_ce = -(target[:, :NUM_CLASSES] * F.log_softmax(logits[:, :NUM_CLASSES], 1)).sum(1).mean()
    tex_bce = F.binary_cross_entropy_with_logits(logits[:, NUM_CLASSES:], target[:, NUM_CLASSES:])
    return hist_ce + tex_bce, hist_ce, tex_bce


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
    from lhl.models.encoders import file_sha256
    from lhl.registry import ENCODERS, load_builtins
    from lhl.version import __version__

    recipe.check()
    load_builtins()
    encoder = ENCODERS.get(recipe.encoder)()  # UnknownNameError lists the encoders
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

    head = nn.Linear(encoder.out_channels, NUM_CLASSES + len(TEXTURE_KINDS))
    params = list(encoder.parameters()) + list(head.parameters())
    optimizer = torch.optim.SGD(params, lr=recipe.lr, momentum=0.9, nesterov=True, weight_decay=recipe.weight_decay)
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
        sums = np.zeros(3)
        for b in range(steps_per_epoch):
            idx = order[b * recipe.batch_size:(b + 1) * recipe.batch_size]
            x = augment(images[idx].float() / 255, generator)
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step)
            loss, hist_ce, tex_bce = objective(forward(x), targets[idx])
            if not torch.isfinite(loss):
                raise FloatingPointError(f"lhl pretrain: the loss became {loss.item()} at step {step}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            sums += (loss.item(), hist_ce.item(), tex_bce.item())
            step += 1
        means = sums / steps_per_epoch
        history.append({"epoch": epoch, "loss": round(float(means[0]), 5), "class_hist_ce": round(float(means[1]), 5),
                        "texture_bce": round(float(means[2]), 5)})
        echo(f"epoch {epoch}/{recipe.epochs}: loss {means[0]:.4f} (class histogram {means[1]:.4f}, textures "
             f"{means[2]:.4f}), {time.perf_counter() - started:.0f} s")

    heldout = _evaluate(forward, encoder, held_images, held_targets) if recipe.heldout else {}
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
        "recipe": {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(recipe).items()},
        "augmentation": "horizontal flip, reflect-padded shift up to H/16, brightness and contrast x U(0.75, 1.25)",
        "optimizer": "SGD nesterov momentum 0.9, linear warm-up 3% of steps, cosine decay to 0",
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
def _evaluate(forward: Callable[[Tensor], Tensor], encoder: nn.Module, images: Tensor,
              targets: Tensor) -> dict[str, float]:
    """Held-out objective: histogram cross-entropy, mean absolute error of the predicted class fractions,
    texture accuracy; and the same numbers for a constant prediction (the held-out mean fractions, the
    majority answer per texture kind)."""
    encoder.eval()
    logits = torch.cat([forward(images[i:i + 256].float() / 255) for i in range(0, len(images), 256)])
    encoder.train()
    _, hist_ce, tex_bce = objective(logits, targets)
    fractions = logits[:, :NUM_CLASSES].softmax(1)
    truth = targets[:, :NUM_CLASSES]
    tex_truth = targets[:, NUM_CLASSES:]
    tex_acc = ((logits[:, NUM_CLASSES:] > 0).float() == tex_truth).float().mean()
    tex_majority = torch.maximum(tex_truth.mean(0), 1 - tex_truth.mean(0)).mean()
    return {"images": len(images), "class_hist_ce": round(hist_ce.item(), 5), "texture_bce": round(tex_bce.item(), 5),
            "class_fraction_mae": round((fractions - truth).abs().mean().item(), 5),
            "class_fraction_mae_of_mean": round((truth.mean(0, keepdim=True) - truth).abs().mean().item(), 5),
            "texture_accuracy": round(tex_acc.item(), 4), "texture_accuracy_of_majority": round(tex_majority.item(), 4)}
