"""Parameter bookkeeping over the shared encoder: what EWC, SPG and SGP have in common.

All three protect the **shared encoder** only (heads are per task): they name its trainable
parameters, keep per-parameter tensors (anchors θ*, Fisher diagonals, importances) keyed by those
names, estimate squared (EWC) or summed (SPG) gradients of scalar objectives over a task's
training data, and move such dictionaries between devices and checkpoints (plain
``{name: tensor}``, ``weights_only``-safe).

Under DDP (:mod:`lhl.engine.distributed`) each process sees its share of every global mini-batch;
the estimators here combine the processes' gradients so that every process ends with the same
tensors a single process with the global batch would compute (up to float rounding): see
:func:`squared_gradients` and :func:`summed_gradients`. Forward passes go through ``model`` (the
unwrapped network), so no DDP gradient hook fires; the synchronisation is explicit.
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import Tensor, nn

from lhl.engine.distributed import all_reduce_mean, all_reduce_sum, is_distributed
from lhl.tasks import Task

ParamDict = dict[str, Tensor]


def encoder_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """The trainable parameters of ``model.encoder``, by name (heads are never included)."""
    return {name: p for name, p in model.encoder.named_parameters() if p.requires_grad}


def snapshot(model: nn.Module) -> ParamDict:
    """Detached copies of the encoder's parameters (an anchor θ*)."""
    return {name: p.detach().clone() for name, p in encoder_parameters(model).items()}


def to_device(values: ParamDict, device: torch.device | str) -> ParamDict:
    return {name: v.to(device) for name, v in values.items()}


def squared_gradients(model: nn.Module, losses: Iterable[Tensor], shares: bool = False) -> ParamDict:
    """Mean over ``losses`` (scalars of one graph each) of the squared gradient of each w.r.t.
    every encoder parameter: ``F_k = 1/N Σ_n (∂L_n/∂θ_k)²``. Parameters a loss does not reach
    get zero.

    Under DDP, ``shares``: each loss is this process's part of a global mini-batch loss that is
    the mean of the processes' parts (equal local batches, as :class:`~lhl.engine.distributed.
    ShardedSampler` gives), so each gradient is averaged over processes *before* it is squared and
    N counts global mini-batches. Otherwise (one loss per image) the squared gradients and their
    count are summed over processes. Either way every process returns the same Fisher."""
    params = encoder_parameters(model)
    total = {name: torch.zeros_like(p, dtype=torch.float32) for name, p in params.items()}
    count = 0
    for loss in losses:
        grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
        grads = [torch.zeros_like(total[n]) if g is None else g.float() for n, g in zip(params, grads)]
        if shares and is_distributed():
            grads = _unflatten(all_reduce_mean(_flatten(grads)), grads)
        for name, grad in zip(params, grads):
            total[name] += grad.pow(2)
        count += 1
    if not shares and is_distributed():
        values = list(total.values())
        total = dict(zip(total, _unflatten(all_reduce_sum(_flatten(values)), values)))
        count = int(all_reduce_sum(torch.tensor([count], device=values[0].device)).item()) if values else count
    return {name: t / max(count, 1) for name, t in total.items()}


def _flatten(tensors: list[Tensor]) -> Tensor:
    """One flat tensor (one collective instead of one per parameter)."""
    return torch.cat([t.reshape(-1) for t in tensors])


def _unflatten(flat: Tensor, like: list[Tensor]) -> list[Tensor]:
    return [part.view_as(t) for part, t in zip(flat.split([t.numel() for t in like]), like)]


def summed_gradients(model: nn.Module, objectives: Iterable[dict[str, Tensor]]) -> dict[str, ParamDict]:
    """Σ over batches of ∂L_k/∂θ for each named objective k (SPG's gradient accumulation).

    ``objectives`` yields, per batch, ``{key: scalar}`` built on one graph (the graph is kept
    until the batch's last key). Returns ``{key: {param name: summed gradient}}`` over the
    encoder parameters; a parameter an objective does not reach gets zeros. Under DDP each
    objective must be this process's additive share of the global batch's objective (a sum over
    its images as is; a batch mean divided by the number of processes): the sums are summed over
    processes, so every process returns the global ones.
    """
    params = encoder_parameters(model)
    totals: dict[str, ParamDict] = {}
    for batch_objectives in objectives:
        keys = list(batch_objectives)
        for index, key in enumerate(keys):
            grads = torch.autograd.grad(batch_objectives[key], list(params.values()), allow_unused=True,
                                        retain_graph=index < len(keys) - 1)
            total = totals.setdefault(key, {n: torch.zeros_like(p, dtype=torch.float32) for n, p in params.items()})
            for name, grad in zip(params, grads):
                if grad is not None:
                    total[name] += grad.float()
    if is_distributed():
        for key, total in totals.items():  # the same keys, in the same order, on every process
            values = list(total.values())
            totals[key] = dict(zip(total, _unflatten(all_reduce_sum(_flatten(values)), values)))
    return totals


def soft_importance(gradient: Tensor) -> Tensor:
    """SPG's importance of one tensor: ``|tanh(z)|`` with z the per-tensor standardised gradient
    ``(g − mean g) / std g`` (unbiased std, as ``Tensor.std``). Same shape, values in [0, 1).
    A constant tensor (std 0, or a single element) has importance 0."""
    g = gradient.float()
    if g.numel() < 2:
        return torch.zeros_like(g)
    std = g.std()
    if not torch.isfinite(std) or std == 0:
        return torch.zeros_like(g)
    return torch.tanh((g - g.mean()) / std).abs()


def quadratic_penalty(model: nn.Module, weights: ParamDict, anchors: ParamDict) -> Tensor:
    """Σ_k w_k (θ_k − θ*_k)² over the encoder parameters named in ``weights`` (a scalar)."""
    params = encoder_parameters(model)
    terms = [(weights[name] * (params[name] - anchors[name]).pow(2)).sum() for name in weights]
    return torch.stack(terms).sum() if terms else torch.zeros((), device=next(model.parameters()).device)


def task_losses(model: nn.Module, task: Task, loader, device: torch.device, per_sample: bool) -> Iterable[Tensor]:
    """Task ``task``'s own loss on each mini-batch of ``loader`` (or on each image alone when
    ``per_sample``), one graph at a time; for :func:`squared_gradients`."""
    for batch in loader:
        images, labels = batch["image"].to(device), batch[task.name].to(device)
        groups = [(images[i:i + 1], labels[i:i + 1]) for i in range(len(images))] if per_sample else [(images, labels)]
        for x, y in groups:
            yield task.loss(model(x, [task.name])[task.name].float(), y)
