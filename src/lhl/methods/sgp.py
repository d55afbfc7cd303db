"""SGP: scaled gradient projection (Saha & Roy, AAAI 2023), on the shared encoder's convolutions.

After phase t < T (nothing later would use an update after the last phase), the encoder (eval
mode, no gradients) runs over the first ``samples`` images (default 125, as the SGP code) of task
t's training data; for every encoder conv the Gram matrix K = Σ p pᵀ of its unfolded input
patches — the conv's own stride, padding and dilation, 1×1 shortcuts and the 7×7 stem alike — is
accumulated in float64 from float32 per-image products (:func:`lhl.methods.sgp_math.conv_input_gram`).
Its eigen-decomposition gives the layer's bases and importances
(:func:`lhl.methods.sgp_math.update_bases`): energy uses σ², importance uses σ,
λ = (α+1)σ/(ασ + max σ) (eq. 2, α = ``scale``); the threshold is ε_t = ``threshold_base`` +
``threshold_step``·(t−1) (the SGP code's 0.97 + 0.003·task_id with a 0-based task id). Later
phases measure the new task's energy against the old bases, add bases until ε_t of it is captured,
and update the importances as in the SGP code.

During later phases each encoder conv's **update** U (``[C_out, d]``) is replaced by
U − U B diag(λ) Bᵀ (eq. 6; the step Adam took, weight decay included — see
:mod:`lhl.methods.gradient_space`; ``apply_to: gradient`` projects ``.grad`` instead, as the paper).
Every other encoder parameter (BatchNorm affine, biases) is frozen from phase 2 on, as the SGP
code zeroes their gradients; encoder BatchNorm statistics are frozen too; old heads are frozen.

State: per conv (module name) the bases ``[d, r]`` (float32) and λ ``[r]`` — never the d × d
products — and the energy fraction of each finished task captured by the bases. The memory of the
stored bases is logged (``sgp_bases``) and returned by :meth:`SGP.memory_bytes`.

Under DDP the Grams are those of the first ``samples`` images of the phase's order, summed over
processes (:func:`encoder_grams`), so bases and λ are computed identically on every process.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from lhl.config.checks import check_fraction, check_nonnegative, check_positive_int
from lhl.engine.distributed import all_reduce_sum, is_distributed, rank, world_size
from lhl.methods.gradient_space import ApplyTo, GradientSpaceMethod
from lhl.methods.encoder_params import to_device
from lhl.methods.options import check_choices
from lhl.methods.sgp_math import conv_input_gram, project_out, update_bases
from lhl.registry import METHODS


def encoder_convs(model: nn.Module) -> dict[str, nn.Conv2d]:
    """The encoder's convolutions by module name (e.g. ``layer1.0.conv1``)."""
    return {name: m for name, m in model.encoder.named_modules() if isinstance(m, nn.Conv2d)}


@torch.no_grad()
def encoder_grams(model: nn.Module, loader, device: torch.device, samples: int) -> dict[str, Tensor]:
    """Gram matrices of every encoder conv's input patches over the first ``samples`` images of
    ``loader`` (``{conv name: [d, d] float64}``); the encoder runs in eval mode.

    Under DDP ``loader`` is this process's share of the phase's order P
    (:class:`~lhl.engine.distributed.ShardedSampler`: its j-th image is P[j·world + rank]), so each
    process takes its images at global positions below ``samples`` and the local Grams are summed
    over processes: the first ``samples`` images of P, as one process would take, on every process."""
    convs = encoder_convs(model)
    for name, conv in convs.items():
        if conv.groups != 1 or conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            raise NotImplementedError(f"SGP: conv {name!r}: grouped convs and non-zero padding modes are not supported")
    grams: dict[str, Tensor] = {}
    if is_distributed():  # never the padding ShardedSampler repeats past the end of P
        samples = len(range(rank(), min(samples, len(loader.dataset)), world_size()))

    def hook(name, conv):
        def accumulate(module, inputs):
            gram = conv_input_gram(inputs[0], conv.kernel_size, conv.stride, conv.padding, conv.dilation)
            grams[name] = gram if name not in grams else grams[name] + gram
        return accumulate

    handles = [conv.register_forward_pre_hook(hook(name, conv)) for name, conv in convs.items()]
    training, seen = model.training, 0
    model.eval()
    try:
        for batch in loader:
            if seen >= samples:
                break
            images = batch["image"][:samples - seen].to(device)
            model.encoder(images)
            seen += len(images)
    finally:
        for handle in handles:
            handle.remove()
        model.train(training)
    if is_distributed():  # a process may have taken no image (samples < world): zeros
        for name, conv in convs.items():
            d = conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]
            grams[name] = all_reduce_sum(grams[name] if name in grams else
                                         torch.zeros(d, d, dtype=torch.float64, device=_gram_device(device)))
    return grams


def _gram_device(device: torch.device) -> torch.device:
    """Where :func:`~lhl.methods.sgp_math.conv_input_gram` accumulates (the CPU for MPS)."""
    return torch.device("cpu") if torch.device(device).type == "mps" else torch.device(device)


@METHODS.register("sgp")
class SGP(GradientSpaceMethod):
    name = "sgp"

    @dataclass
    class Options:
        scale: float = 0.1  # α, the non-negative scale coefficient (Table 6, NYUv2-R18)
        threshold_base: float = 0.97  # ε of the first task
        threshold_step: float = 0.003  # added per later task
        samples: int = 125  # images of the finished task in the representation
        apply_to: ApplyTo = "update"  # project the optimiser's update (default) or the raw gradient

        def __post_init__(self) -> None:
            """α finite ≥ 0 (eq. 2's "non-negative scale coefficient"). ε_1 = ``threshold_base`` is an
            energy fraction (eq. 5) in (0, 1]: 0 would ask for none of the energy. ``threshold_step`` ∈ [0, 1]
            (ε_t is capped at 1, so a larger step means the same). ``samples`` ≥ 1 image."""
            check_choices(self)
            check_nonnegative(self.scale, "method.scale")
            check_fraction(self.threshold_base, "method.threshold_base", low_open=True)
            check_fraction(self.threshold_step, "method.threshold_step")
            check_positive_int(self.samples, "method.samples")

    def setup(self, ctx) -> None:
        super().setup(ctx)
        self.bases: dict[str, Tensor] = {}
        self.importance: dict[str, Tensor] = {}
        self.energy: dict[str, Tensor] = {}  # captured energy fraction of each finished task

    def threshold(self, phase: int) -> float:
        return min(1.0, self.options.threshold_base + self.options.threshold_step * (phase - 1))

    def frozen_encoder_parameter(self, module, name, param) -> bool:
        return not (isinstance(module, nn.Conv2d) and name == "weight")

    def protected(self, ctx):
        return {name: conv.weight for name, conv in encoder_convs(ctx.model).items()
                if name in self.bases and conv.weight.requires_grad}

    def edit(self, name, update):
        bases, lam = self.bases[name], self.importance[name]
        if bases.shape[1] == 0:
            return update
        if bases.shape[1] == bases.shape[0] and bool((lam == 1).all()):
            return None  # the whole input space, fully protected: the layer does not move
        return project_out(update.float(), bases, lam)

    def update_protection(self, ctx, loader) -> None:
        if ctx.phase >= len(ctx.task_order):
            return
        grams = encoder_grams(ctx.model, loader, ctx.device, self.options.samples)
        threshold, layers = self.threshold(ctx.phase), {}
        for name, gram in grams.items():  # eigen-decompositions where the Gram lives (CPU for MPS)
            old = self.bases.get(name)
            bases, lam, info = update_bases(gram, threshold, self.options.scale,
                                            None if old is None else old.to(gram.device),
                                            self.importance.get(name))
            self.bases[name] = bases.float().to(ctx.device)
            self.importance[name] = lam.float().to(ctx.device)
            captured = torch.tensor([info["captured"]])
            self.energy[name] = captured if name not in self.energy else torch.cat([self.energy[name].cpu(), captured])
            layers[name] = {"rank": info["rank"], "dim": int(gram.shape[0]), "added": info["added"],
                            "captured": round(info["captured"], 6)}
        ctx.log("sgp_bases", phase=ctx.phase, threshold=threshold, memory_bytes=self.memory_bytes(), layers=layers)

    def memory_bytes(self) -> int:
        """Bytes of the stored bases and importances (what the projection needs)."""
        return sum(t.numel() * t.element_size() for d in (self.bases, self.importance) for t in d.values())

    def state_dict(self):
        return {"bases": to_device(self.bases, "cpu"), "importance": to_device(self.importance, "cpu"),
                "energy": to_device(self.energy, "cpu")}

    def load_state_dict(self, state, ctx) -> None:
        self.bases = to_device(state["bases"], ctx.device)
        self.importance = to_device(state["importance"], ctx.device)
        self.energy = to_device(state.get("energy", {}), "cpu")
