"""Evaluation of every seen task on the full test set (HAD paper, Sec. 5.1 "Benchmarks"; the
metrics of App. C.1)."""

from __future__ import annotations

from typing import Callable, Iterable

import torch
from tqdm import tqdm

from lhl.models import MultiTaskNet
from lhl.tasks import Task


@torch.no_grad()
def evaluate(model: MultiTaskNet, tasks: list[Task], loader: Iterable, device: torch.device,
             quiet: bool = False, desc: str = "eval",
             should_stop: Callable[[], bool] | None = None) -> dict[str, dict[str, float]]:
    """Run the model once per batch for all ``tasks``, accumulate, compute once.

    ``should_stop`` is asked before every batch (an interrupted run stops evaluating; the caller
    then discards the partial result). Returns ``{task: {metric: value}}``.
    """
    was_training = model.training
    model.eval()
    accumulators = {task.name: task.metrics() for task in tasks}
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
    return {name: accumulators[name].compute() for name in names}
