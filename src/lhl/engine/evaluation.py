"""Evaluation of every seen task on the full test set (HAD paper, Sec. 5.1 "Benchmarks"; the
metrics of App. C.1), during a run (:func:`evaluate`) and afterwards from a run directory
(:func:`evaluate_run`, ``lhl eval``)."""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Callable, Iterable

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from lhl.engine import distributed
from lhl.engine.seeding import worker_init_fn
from lhl.errors import ConfigError
from lhl.models import MultiTaskNet
from lhl.tasks import Task

if TYPE_CHECKING:
    from lhl.engine.loading import LoadedRun

#: the splits a finished run can be evaluated on ("val" when its data.val_size > 0)
EVAL_SPLITS = ("test", "val")


@torch.no_grad()
def evaluate(model: MultiTaskNet, tasks: list[Task], loader: Iterable, device: torch.device,
             quiet: bool = False, desc: str = "eval",
             should_stop: Callable[[], bool] | None = None,
             exact_quantiles: bool = True) -> dict[str, dict[str, float]]:
    """Run the model once per batch for all ``tasks``, accumulate, merge across processes (under
    DDP ``loader`` holds this process's part of the set), compute once.

    ``should_stop`` is asked before every batch (an interrupted run stops evaluating; the caller
    then discards the partial result). ``quiet`` hides the progress bar. ``exact_quantiles=False``
    asks tasks for constant-memory accumulators (``train.eval_normal_median: histogram``). Returns
    ``{task: {metric: value}}``.
    """
    was_training = model.training
    model.eval()
    accumulators = {task.name: _accumulator(task, exact_quantiles) for task in tasks}
    names = [task.name for task in tasks]
    for batch in tqdm(loader, desc=desc, disable=quiet, leave=False):
        if should_stop is not None and should_stop():
            model.train(was_training)
            return {}
        images = batch["image"].to(device, non_blocking=True)
        outputs = model(images, names)
        for task in tasks:
            target = batch[task.name].to(device, non_blocking=True)
            task.update_metrics(accumulators[task.name], outputs[task.name].float(), target)
    model.train(was_training)
    for accumulator in accumulators.values():
        merge_across_processes(accumulator)
    return {name: accumulators[name].compute() for name in names}


def _accumulator(task: Task, exact_quantiles: bool):
    """``task.metrics()``; with ``exact_quantiles=False``, the constant-memory variant from tasks
    that offer one (their ``metrics`` takes ``exact_quantiles``), the exact one from the others."""
    if exact_quantiles or "exact_quantiles" not in inspect.signature(task.metrics).parameters:
        return task.metrics()
    return task.metrics(exact_quantiles=False)


def merge_across_processes(accumulator) -> None:
    """Combine a metric accumulator's statistics over every process, in place, exactly as its
    :attr:`~lhl.metrics.MetricAccumulator.STATE_REDUCTION` says: sums (confusion matrices, pixel
    sums and counts) all-reduced, lists (the normal angles, for an exact median) gathered. Every
    process then computes the same metrics. A no-op in one process."""
    if not distributed.is_distributed():
        return
    state = accumulator.state_dict()
    merged = {}
    for key, how in accumulator.STATE_REDUCTION.items():
        merged[key] = (distributed.all_reduce_sum(state[key].clone()) if how == "sum"
                       else distributed.all_gather_cat(state[key]))
    accumulator.load_state_dict(merged)


def evaluate_run(loaded: LoadedRun, split: str = "test", batch_size: int | None = None,
                 quiet: bool = True) -> dict[str, dict[str, float]]:
    """Evaluate a loaded run's model (:func:`lhl.load_run`) on every task it has seen, on the
    whole ``split``, exactly as the run did after that phase: same images, tasks, order and batch
    size (``train.eval_batch_size``, default 2 × ``train.batch_size``), so the result equals the
    phase's entry in ``performance.json`` on the same machine and device. Another ``batch_size``
    can change the last digits (convolutions sum in another order)."""
    if split not in EVAL_SPLITS:
        raise ConfigError(f"--split: invalid value {split!r}; a finished run can be evaluated on: "
                          f"{', '.join(EVAL_SPLITS)}")
    if split == "val" and not loaded.config.data.val_size:
        raise ConfigError("--split: 'val' needs a run with a validation split (data.val_size > 0); this run has "
                          "data.val_size = 0")
    train = loaded.config.train
    if batch_size is None:
        batch_size = train.eval_batch_size or 2 * train.batch_size
    if batch_size < 1:
        raise ConfigError(f"--batch-size: invalid value {batch_size}; expected an integer >= 1")
    benchmark, device = loaded.run.benchmark, loaded.run.device
    names = list(loaded.tasks)
    dataset = benchmark.dataset(split, list(range(benchmark.num_images(split))), names)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=loaded.config.data.num_workers,
                        generator=torch.Generator().manual_seed(0), worker_init_fn=worker_init_fn,
                        pin_memory=device.type == "cuda", drop_last=False)
    return evaluate(loaded.model, list(loaded.tasks.values()), loader, device, quiet,
                    desc=f"eval phase {loaded.phase}", exact_quantiles=train.eval_normal_median == "exact")
