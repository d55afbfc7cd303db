"""lhl: lifelong heterogeneous learning on dense prediction (HAD and its baselines).

From Python, :func:`build_run` turns a configuration into its benchmark, task order, tasks,
method and model (validated, writing nothing)::

    from lhl import build_run, load_config
    run = build_run(load_config(preset="smoke", method="had"))
    model, _ = run.build_model(run.order)     # encoder + one head per task
"""

from lhl.version import __version__

__all__ = ["__version__", "build_run", "load_config", "load_run"]


def __getattr__(name: str):
    # Lazy, so that ``import lhl`` stays cheap and free of side effects.
    if name == "build_run":
        from lhl.engine.build import build_run

        return build_run
    if name == "load_run":
        from lhl.engine.loading import load_run

        return load_run
    if name == "load_config":
        from lhl.config import load_config

        return load_config
    raise AttributeError(f"module 'lhl' has no attribute {name!r}")
