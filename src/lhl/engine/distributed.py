"""Data-parallel training with PyTorch's own engine (``torch.distributed``, DDP): the process
group, the sampler that splits a phase's chunk across processes, and the few collectives the
engine and methods need to keep results equal to one process with the same global batch.

Launched by ``torchrun --nproc_per_node=N -m lhl run ...`` (or ``lhl run --nproc N``), which sets
``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``; ``gloo`` on the CPU,
``nccl`` on CUDA. Without a process group every helper here is the identity, so code written for
one process needs no branch.

Methods may import this module (it is part of the extension interface, like
:mod:`lhl.engine.hooks`): a statistic a method estimates over the phase's data (a Fisher, a Gram
matrix, summed gradients) must be combined across processes with :func:`all_reduce_sum` /
:func:`all_reduce_mean`, and anything gathered per step with :func:`all_gather_interleaved`.
"""

from __future__ import annotations

import os
from typing import Any, Iterator, Sequence

import torch
import torch.distributed as dist
from torch import Tensor
from torch.utils.data import RandomSampler, Sampler


def is_distributed() -> bool:
    """True inside an initialised process group with more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def is_main() -> bool:
    """True on the process that writes the run directory (rank 0, or the only one)."""
    return rank() == 0


def launched_by_torchrun() -> bool:
    """True when the environment names a process group of more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_environment(device_type: str) -> torch.device | None:
    """Join the process group torchrun describes (``gloo`` on the CPU, ``nccl`` on CUDA) and
    return this process's device (``cuda:LOCAL_RANK`` on CUDA), or None when not launched by
    torchrun. Idempotent."""
    if not launched_by_torchrun():
        return None
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device_type == "cuda":
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    return torch.device("cuda", local_rank) if device_type == "cuda" else torch.device(device_type)


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def _backend_tensor(tensor: Tensor) -> Tensor:
    """``tensor`` where the backend can reduce it: NCCL only handles CUDA tensors, so a CPU tensor
    (metric statistics, replay items, cached teacher outputs) goes to this process's GPU."""
    if tensor.device.type == "cpu" and dist.get_backend() == "nccl":
        return tensor.to(torch.device("cuda", torch.cuda.current_device()))
    return tensor


def _all_reduce(tensor: Tensor, op) -> Tensor:
    """In-place all-reduce of ``tensor`` (any device, any backend)."""
    work = _backend_tensor(tensor)
    dist.all_reduce(work, op=op)
    if work is not tensor:
        tensor.copy_(work)
    return tensor


def all_reduce_sum(tensor: Tensor) -> Tensor:
    """Element-wise sum over processes, in place (and returned)."""
    return _all_reduce(tensor, dist.ReduceOp.SUM) if is_distributed() else tensor


def all_reduce_mean(tensor: Tensor) -> Tensor:
    """Element-wise mean over processes, in place (and returned)."""
    if is_distributed():
        _all_reduce(tensor, dist.ReduceOp.SUM)
        tensor /= dist.get_world_size()
    return tensor


def all_reduce_max(tensor: Tensor) -> Tensor:
    return _all_reduce(tensor, dist.ReduceOp.MAX) if is_distributed() else tensor


def all_gather_cat(tensor: Tensor) -> Tensor:
    """Concatenation along dim 0 of every process's ``tensor`` in rank order, on ``tensor``'s
    device; the first dimension may differ between processes (the other dimensions may not)."""
    if not is_distributed():
        return tensor
    sizes = [None] * dist.get_world_size()
    dist.all_gather_object(sizes, int(tensor.shape[0]))
    work = _backend_tensor(tensor)
    padded = torch.zeros((max(sizes), *tensor.shape[1:]), dtype=tensor.dtype, device=work.device)
    padded[: tensor.shape[0]] = work
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded)
    return torch.cat([part[:size] for part, size in zip(parts, sizes)]).to(tensor.device)


def all_gather_interleaved(tensor: Tensor) -> Tensor:
    """Every process's ``tensor`` (same shape everywhere, ``[n, ...]``) interleaved item by item:
    ``[r0[0], r1[0], …, r0[1], r1[1], …]``. With :class:`ShardedSampler` this restores the order
    one process would have seen the global batch in."""
    if not is_distributed():
        return tensor
    work = _backend_tensor(tensor).contiguous()
    parts = [torch.empty_like(work) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, work)
    return torch.stack(parts, dim=1).flatten(0, 1).to(tensor.device)


def broadcast_object(value: Any, source: int = 0) -> Any:
    """``value`` of process ``source`` on every process (any picklable object)."""
    if not is_distributed():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=source)
    return box[0]


def shard_bounds(count: int, parts: int | None = None, index: int | None = None) -> tuple[int, int]:
    """[start, stop) of contiguous part ``index`` of ``count`` items split into ``parts`` parts as
    evenly as possible (the first ``count % parts`` parts one longer): how evaluation splits a
    test set. Defaults: this process's part."""
    parts = world_size() if parts is None else parts
    index = rank() if index is None else index
    base, extra = divmod(count, parts)
    start = index * base + min(index, extra)
    return start, start + base + (index < extra)


class ShardedSampler(Sampler[int]):
    """This process's share of one random permutation of the phase's chunk per epoch.

    Every process draws the same permutation P from the same seeded generator (exactly what a
    single process's shuffling loader draws, so one process gives the order it always gave) and
    takes ``P[rank::world]``. With a per-process batch of ``global batch / world``, process r's
    k-th batch is items ``kB + r, kB + r + world, …`` of P: the union over processes of each step
    is the global batch one process would have drawn. When ``len(P)`` is not a multiple of the
    world size, P is padded by repeating its head so every process takes the same number of steps
    (as ``torch.utils.data.DistributedSampler``).
    """

    def __init__(self, size: int, generator: torch.Generator, rank_: int | None = None,
                 world: int | None = None) -> None:
        self.size = size
        self.rank = rank() if rank_ is None else rank_
        self.world = world_size() if world is None else world
        self._random = RandomSampler(range(size), generator=generator)

    def __len__(self) -> int:
        return -(-self.size // self.world)

    def __iter__(self) -> Iterator[int]:
        permutation = list(self._random)  # drawn lazily, at the first batch, as a shuffling loader does
        if self.world > 1:
            total = len(self) * self.world
            permutation += (permutation * self.world)[: total - len(permutation)]
        yield from permutation[self.rank::self.world]


def per_process_batch(global_batch: int, key: str = "train.batch_size") -> int:
    """``global_batch / world``; a batch the processes cannot share equally is a ConfigError."""
    world = world_size()
    if global_batch % world:
        from lhl.errors import ConfigError

        raise ConfigError(f"{key}: {global_batch} is the global batch and must be divisible by the number of "
                          f"processes ({world})")
    return global_batch // world


def sequence_shard(items: Sequence[Any]) -> list[Any]:
    """This process's contiguous part of ``items`` (:func:`shard_bounds`)."""
    start, stop = shard_bounds(len(items))
    return list(items[start:stop])


def broadcast_module_state(module: torch.nn.Module, source: int = 0) -> None:
    """Make every parameter and buffer of ``module`` equal to process ``source``'s (in place)."""
    if not is_distributed():
        return
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            dist.broadcast(tensor.data, src=source)


class _SummedOverProcesses(torch.autograd.Function):
    """Sum over processes with its gradient: the backward of a sum that every process uses is the
    sum of every process's incoming gradient."""

    @staticmethod
    def forward(ctx, tensor: Tensor) -> Tensor:
        return all_reduce_sum(tensor.clone())

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        return all_reduce_sum(grad.clone())


class CpuSyncBatchNorm(torch.nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training statistics cover every process's share of the batch, on the CPU
    (``gloo``); on CUDA lhl uses ``torch.nn.SyncBatchNorm`` itself (:func:`convert_sync_batchnorm`).

    torch's synchronised kernels exist only for accelerators (and DDP refuses its SyncBatchNorm on
    CPU modules), so here the statistics come from two differentiable all-reduces
    (:class:`_SummedOverProcesses`: the mean, then the centred sum of squares, in float64): what one process would compute on the whole batch, gradients through the shared
    statistics included. In eval mode, or in one process, it is plain BatchNorm.
    """

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, input: Tensor) -> Tensor:
        if not (self.training and is_distributed()):
            return super().forward(input)
        all_reduce = _SummedOverProcesses.apply
        self._check_input_dim(input)
        dims = [0, *range(2, input.dim())]
        total = all_reduce(torch.tensor([float(input.numel() // input.shape[1])], dtype=torch.float64))
        x = input.double()
        mean = all_reduce(x.sum(dims)) / total
        shape = [1, -1] + [1] * (input.dim() - 2)
        centred = x - mean.view(shape)
        var = all_reduce(centred.pow(2).sum(dims)) / total
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                unbiased = var * total / (total - 1).clamp(min=1)
                self.running_mean.mul_(1 - momentum).add_(momentum * mean.to(self.running_mean.dtype))
                self.running_var.mul_(1 - momentum).add_(momentum * unbiased.to(self.running_var.dtype))
        out = centred / torch.sqrt(var + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.double().view(shape) + self.bias.double().view(shape)
        return out.to(input.dtype)


def convert_sync_batchnorm(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Replace every BatchNorm among ``module``'s descendants by a synchronised one
    (``torch.nn.SyncBatchNorm`` on CUDA, :class:`CpuSyncBatchNorm` on the CPU), in place, keeping
    the same parameter and buffer tensors (an optimiser made afterwards sees the same ones).
    Already-synchronised layers are left alone. Returns ``module``."""
    kind = torch.nn.SyncBatchNorm if device.type == "cuda" else CpuSyncBatchNorm
    for name, child in module.named_children():
        if isinstance(child, (torch.nn.SyncBatchNorm, CpuSyncBatchNorm)):
            continue
        if isinstance(child, torch.nn.modules.batchnorm._BatchNorm):
            sync = kind(child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats)
            if child.affine:
                sync.weight, sync.bias = child.weight, child.bias
            if child.track_running_stats:
                sync.running_mean, sync.running_var = child.running_mean, child.running_var
                sync.num_batches_tracked = child.num_batches_tracked
            sync.train(child.training)
            setattr(module, name, sync)
        else:
            convert_sync_batchnorm(child, device)
    return module


def check_processes(nproc: int, device: torch.device, global_batch: int) -> None:
    """Refuse, before any process starts, what ``nproc`` processes cannot do: more CUDA processes
    than GPUs, MPS, or a global batch that does not split evenly."""
    from lhl.errors import ConfigError

    if device.type == "cuda" and nproc > torch.cuda.device_count():
        raise ConfigError(f"--nproc: {nproc} processes need {nproc} GPUs (one each); this machine has "
                          f"{torch.cuda.device_count()}")
    if device.type == "mps" and nproc > 1:
        raise ConfigError("--nproc: data-parallel training runs on the CPU (gloo) or CUDA (nccl), not on MPS")
    if global_batch % nproc:
        raise ConfigError(f"train.batch_size: {global_batch} is the global batch and must be divisible by --nproc "
                          f"{nproc}")
