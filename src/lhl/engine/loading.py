"""Using a finished run from Python: :func:`load_run` rebuilds its model with every head, its
tasks and its configuration from the run directory.

    import lhl
    loaded = lhl.load_run("runs/demo")             # the last completed phase
    outputs = loaded.model(images)                 # {task: raw output [B, C, H, W]}
    depth = loaded.tasks["depth"].postprocess(outputs["depth"])
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


from lhl.config.schema import RunConfig, build_dataclass
from lhl.engine.build import Run, build_run
from lhl.engine.rundir import RunDirectory
from lhl.errors import CheckpointError, RunDirectoryError
from lhl.models import MultiTaskNet
from lhl.tasks import Task


@dataclass
class LoadedRun:
    """A run's model after ``phase`` (eval mode, heads of every task seen by then), its tasks in
    the run's order, its resolved configuration and its assembled :class:`~lhl.engine.build.Run`
    (benchmark, datasets)."""

    path: Path
    phase: int
    config: RunConfig
    model: MultiTaskNet
    tasks: dict[str, Task]
    run: Run


def load_run(path: str | Path, phase: int | None = None, device: str | None = None) -> LoadedRun:
    """Load the checkpoint of ``phase`` (default: the last completed one) of the run in ``path``.

    The checkpoint's SHA-256 is verified against ``checkpoints/manifest.json``. ``device``
    overrides the run's device (e.g. ``"cpu"`` for a run trained on a GPU). Raises
    :class:`~lhl.errors.RunDirectoryError` naming the file for a missing or damaged run.
    """
    directory = RunDirectory(path)
    if not directory.path.is_dir():
        raise RunDirectoryError(f"{str(directory.path)!r} is not a run directory (it does not exist)")
    tree = directory.read_config()
    if device is not None:
        tree["device"] = device
    config = build_dataclass(RunConfig, tree)
    run = build_run(config)
    performance = directory.read_performance()
    done = directory.last_completed_phase(performance)
    if done == 0:
        raise RunDirectoryError(f"{str(directory.path)!r} has no completed phase yet")
    phase = done if phase is None else phase
    if not 1 <= phase <= done:
        raise RunDirectoryError(f"phase {phase} of {str(directory.path)!r} is not available; completed phases: "
                                f"1..{done}")
    state = directory.load_checkpoint(phase, run.config.method["name"])
    try:
        model, _ = run.build_model(list(state["tasks"]))
        model.load_state_dict(state["model"])
    except (KeyError, RuntimeError) as exc:
        raise CheckpointError(f"checkpoint of phase {phase} in {str(directory.path)!r} does not match its "
                              f"config.yaml: {str(exc).splitlines()[0]}") from None
    model.eval()
    tasks = {name: run.tasks[name] for name in state["tasks"]}
    return LoadedRun(directory.path, phase, run.config, model, tasks, run)


__all__ = ["LoadedRun", "load_run"]
