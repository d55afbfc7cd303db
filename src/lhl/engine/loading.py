"""Using a finished run from Python: :func:`load_run` rebuilds its model with every head, its
tasks and its configuration from the run directory.

    import lhl, torch
    loaded = lhl.load_run("runs/demo")             # the last completed phase (or phase=t)
    with torch.no_grad():
        outputs = loaded.model(images)             # {task: raw output [B, C, H, W]}
    depth = loaded.tasks["depth"].postprocess(outputs["depth"])

``images`` are ``[B, 3, H, W]`` floats in [0, 1] on ``loaded.run.device``, at the run's
``data.resolution`` and ImageNet-normalised when its ``data.normalize`` is ``imagenet``
(:func:`lhl.engine.prediction.prepare_image` does both for one image file). ``lhl eval`` and
``lhl predict`` are built on this.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from lhl.config import resolve_method
from lhl.config.schema import RunConfig, build_dataclass
from lhl.engine.build import Run, build_run, resolve_device
from lhl.engine.checkpoint import checkpoint_path
from lhl.engine.rundir import RunDirectory
from lhl.errors import CheckpointError, ConfigError, RunDirectoryError
from lhl.models import MultiTaskNet
from lhl.registry import BENCHMARKS, ENCODERS, load_builtins, load_plugins
from lhl.tasks import Task


@dataclass
class LoadedRun:
    """A run's model after ``phase`` (eval mode, heads of every task seen by then), its tasks in
    the run's order, its resolved configuration (as recorded in ``config.yaml``, with
    ``device``/``data.root`` as overridden), its assembled :class:`~lhl.engine.build.Run`
    (benchmark, datasets, device; assembled without re-reading ``model.weights``, which the
    checkpoint replaces), and ``label``, the phase's name in ``performance.json`` (its task, or
    ``joint``)."""

    path: Path
    phase: int
    config: RunConfig
    model: MultiTaskNet
    tasks: dict[str, Task]
    run: Run
    label: str = ""


def load_run(path: str | Path, phase: int | None = None, device: str | None = None, *,
             data_root: str | None = None, check_data: bool = True) -> LoadedRun:
    """Load the checkpoint of ``phase`` (default: the last completed one) of the run in ``path``.

    The checkpoint's SHA-256 is verified against ``checkpoints/manifest.json``. ``device``
    overrides the run's device (e.g. ``"cpu"`` for a run trained on a GPU), ``data_root`` its
    ``data.root`` (a dataset that moved). ``check_data=False`` skips the data checks (``data.root``
    need not exist: enough to run the model on your own images, not for ``run.benchmark``'s
    datasets). The encoder's initial weight file (``model.weights``) is not needed: the checkpoint
    holds every weight. Raises :class:`~lhl.errors.RunDirectoryError` naming the file for a
    missing, unfinished or damaged run, and the usual :class:`~lhl.errors.LhlError` for a
    configuration this machine cannot assemble (e.g. a CUDA device on a machine without one).
    """
    directory = RunDirectory(path)
    where = str(directory.path)
    if not directory.path.exists():
        raise RunDirectoryError(f"{where!r} is not a run directory (it does not exist)")
    if not directory.path.is_dir():
        raise RunDirectoryError(f"{where!r} is not a run directory (it is a file)")
    if not (directory.path / "config.yaml").is_file():
        raise RunDirectoryError(f"{where!r} is not a run directory (no config.yaml; expected the --out directory "
                                "of an 'lhl run')")
    tree = directory.read_config()
    if device is not None:
        tree["device"] = device
    if data_root is not None:
        tree.setdefault("data", {})
        if not isinstance(tree["data"], dict):
            raise RunDirectoryError(f"{where!r}: config.yaml has no valid 'data' section; the run directory is damaged")
        tree["data"]["root"] = str(data_root)
    tree.pop("logging", None)  # changes nothing here (and tensorboard need not be installed to load a run)
    config = build_dataclass(RunConfig, tree)
    if device is None:
        try:
            resolve_device(config.device)
        except ConfigError as exc:
            raise ConfigError(f"{exc} (the run was trained on device {config.device!r}; load it on another "
                              "device with device='cpu', on the command line --device cpu)") from None
    assembly = copy.deepcopy(config)
    assembly.model.weights = None  # the checkpoint replaces the initial weights: their file is not needed
    run = build_run(assembly) if check_data else _assemble_without_data(assembly)

    performance = directory.read_performance()
    done = directory.last_completed_phase(performance)
    if done == 0:
        raise RunDirectoryError(f"{where!r} has no completed phase yet")
    phase = done if phase is None else phase
    if not 1 <= phase <= done:
        raise RunDirectoryError(f"phase {phase} of {where!r} is not available; completed phases: 1..{done}")
    kept = directory.manifest()
    if checkpoint_path(directory.path, phase).name not in kept:
        available = sorted(int(name[len("phase-"):-len(".pt")]) for name in kept
                           if name.startswith("phase-") and name.endswith(".pt"))
        keep = config.train.keep_checkpoints
        raise RunDirectoryError(f"phase {phase} of {where!r} has no checkpoint (train.keep_checkpoints: {keep} "
                                f"kept only the newest); phases with a checkpoint: "
                                f"{', '.join(map(str, available)) or 'none'}")
    state = directory.load_checkpoint(phase, run.config.method["name"])
    try:
        model, _ = run.build_model(list(state["tasks"]))
        model.add_adapters(state.get("adapters", {}))  # per-task feature adapters (none in older checkpoints)
        model.load_state_dict(state["model"])
    except (KeyError, RuntimeError, TypeError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"checkpoint of phase {phase} in {where!r} does not match its config.yaml: "
                              f"{reason}") from None
    model.eval()
    tasks = {name: run.tasks[name] for name in state["tasks"]}
    label = _phase_label(performance, phase, run)
    recorded = replace(run.config, model=replace(run.config.model, weights=config.model.weights))
    return LoadedRun(directory.path, phase, recorded, model, tasks, run, label)


def _phase_label(performance: dict[str, Any], phase: int, run: Run) -> str:
    entry = performance["phases"][phase - 1]
    if isinstance(entry.get("task"), str):
        return entry["task"]
    return "joint" if run.method_cls.joint else run.order[phase - 1]


def _assemble_without_data(config: RunConfig) -> Run:
    """:func:`~lhl.engine.build.build_run` without the checks that need the data (``data.root``,
    image counts): the registries, the method and its options, the tasks, the encoder and the
    device are still checked."""
    load_builtins()
    load_plugins(config.plugins)
    method_cls, options = resolve_method(config)
    benchmark = BENCHMARKS.get(config.benchmark)(config.data, config.seed)
    order = list(config.tasks) if config.tasks is not None else list(benchmark.default_tasks)
    benchmark.check_tasks(order)
    tasks = {name: benchmark.make_task(name) for name in order}
    ENCODERS.get(config.model.encoder)
    resolved = copy.deepcopy(config)
    resolved.tasks = order
    return Run(resolved, benchmark, order, tasks, method_cls, options, resolve_device(config.device))


__all__ = ["LoadedRun", "load_run"]
