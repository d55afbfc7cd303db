"""What ``lhl bench`` does with its arguments (the parser is in :mod:`lhl.cli.parser`).

    lhl bench EXPERIMENT.yaml --out DIR [--jobs N] [--shard I/N] [--set key=value ...]
    lhl bench --preset NAME --methods a,b --seeds 0,1 [--orders "a,b,c;c,b,a"] [--set key=value ...] --out DIR
    lhl bench EXPERIMENT.yaml --list [--out DIR] [--shard I/N]
    lhl bench --status DIR
"""

from __future__ import annotations

import functools
import signal
from pathlib import Path

from lhl.config import parse_override
from lhl.errors import ConfigError, Interrupted
from lhl.experiments.plan import parse_shard, plan_runs, shard_slice
from lhl.experiments.runner import (check_run_directories, comparison, format_run_list, format_status,
                                    prepare_directory, run_bench, runs_glob, summary)
from lhl.experiments.schema import Experiment, experiment_from_options, load_experiment

__all__ = ["bench", "sweep"]


def bench(experiment: str | None = None, *, preset: str | None = None, config: str | None = None,
          methods: str | None = None, seeds: str | None = None, orders: str | None = None,
          sets: list[str] | None = None, baseline: str | None = None, out: str | None = None, jobs: int = 1,
          shard: str | None = None, list_runs: bool = False, status: str | None = None, echo=None) -> int:
    """``lhl bench``; returns the exit status (0: every run of this invocation is complete, 1: some
    failed; an interruption raises :class:`~lhl.errors.Interrupted`)."""
    echo = echo or functools.partial(print, flush=True)  # progress lines reach a cluster's log file at once
    if status is not None:
        grid = (experiment, preset, config, methods, seeds, orders, out, shard)
        if any(v is not None for v in grid) or sets or list_runs:
            raise ConfigError("--status DIR takes no other option: it reads DIR/experiment.yaml")
        return _status(Path(status), echo)
    exp = _experiment(experiment, preset, config, methods, seeds, orders, sets or [], baseline)
    shard_range = parse_shard(shard)
    if jobs < 1:
        raise ConfigError(f"--jobs: invalid value {jobs}; expected an integer >= 1")
    runs = plan_runs(exp)
    if exp.orders is None:  # DIR/experiment.yaml records the order that ran
        exp.orders = list(dict.fromkeys(tuple(r.order) for r in runs))
        exp.orders = [list(o) for o in exp.orders]
    out_dir = Path(out) if out is not None else None
    if list_runs:
        echo(format_run_list(shard_slice(runs, shard_range), out_dir))
        return 0
    if out_dir is None:
        raise ConfigError("--out DIR is required: the experiment directory the runs go to "
                          "(DIR/runs/[<arm>/]<order>/<label>-s<seed>)")
    check_run_directories(runs, out_dir)
    prepare_directory(exp, out_dir, experiment or "the command line")
    result = run_bench(runs, out_dir, jobs=jobs, shard=shard_range, echo=echo)
    echo(summary(result, runs, out_dir))
    if result.interrupted is None:
        table = comparison(runs, out_dir, exp.default_baseline())
        if table is not None:
            echo(f"\nlhl compare {out_dir}/{runs_glob(runs)} --baseline {exp.default_baseline()}:\n\n{table}")
    if result.interrupted is not None:
        name = signal.Signals(result.interrupted).name
        raise Interrupted(f"{name} received: the bench stopped its runs at a safe point; rerun the same lhl bench "
                          "command to resume them", result.exit_code)
    return result.exit_code


def _experiment(path, preset, config, methods, seeds, orders, sets, baseline) -> Experiment:
    if path is not None:
        given = [name for name, value in (("--preset", preset), ("--config", config), ("--methods", methods),
                                          ("--seeds", seeds), ("--orders", orders), ("--baseline", baseline))
                 if value is not None]
        if given:
            raise ConfigError(f"{given[0]}: not allowed with an experiment file (write it in the file; only --set "
                              "adds to a file's settings)")
        exp = load_experiment(path)
        for text in sets:  # --set applies to every run, after the file's own `set`
            key, value = parse_override(text)
            exp = _with_override(exp, key, value)
        return exp
    if preset is None and config is None and methods is None:
        raise ConfigError("expected an experiment file (lhl bench FILE.yaml --out DIR) or its command-line form "
                          "(lhl bench --preset NAME --methods a,b --seeds 0,1 --out DIR)")
    return experiment_from_options(preset=preset, config=config, methods=methods, seeds=seeds, orders=orders,
                                   sets=sets, baseline=baseline)


def _with_override(exp: Experiment, key: str, value) -> Experiment:
    from lhl.experiments.schema import experiment_from_mapping

    tree = exp.to_dict()
    tree["set"] = {**tree.get("set", {}), key: value}
    return experiment_from_mapping(tree, exp.source, Path(exp.base).parent if exp.base_is_file else Path.cwd(),
                                   keys=exp.keys)


def _status(out: Path, echo) -> int:
    path = out / "experiment.yaml"
    if not path.is_file():
        raise ConfigError(f"--status: {str(out)!r} holds no experiment.yaml; expected a directory lhl bench ran into")
    runs = plan_runs(load_experiment(path), validate=False)
    text, _ = format_status(runs, out)
    echo(text)
    return 0


def sweep(path: str | None = None, *, out: str | None = None, jobs: int = 1, shard: str | None = None,
          list_runs: bool = False, status: str | None = None, echo=None) -> int:
    """``lhl sweep SWEEP.yaml --out DIR``: the grid's runs (with the runner of ``lhl bench``), then,
    when every run is complete, the selection on validation results (``DIR/selected.yaml``) and the
    report (``DIR/sweep.md``); returns the exit status (1: some run failed)."""
    from lhl.experiments.sweep import (load_sweep, select, validation_pairs, validation_table, with_val_size,
                                       write_report, write_selected)
    from lhl.experiments.status import is_complete

    echo = echo or functools.partial(print, flush=True)
    if status is not None:
        if path is not None or out is not None or shard is not None or list_runs:
            raise ConfigError("--status DIR takes no other option: it reads DIR/experiment.yaml")
        return _status(Path(status), echo)
    if path is None:
        raise ConfigError("expected a sweep file: lhl sweep SWEEP.yaml --out DIR")
    if jobs < 1:
        raise ConfigError(f"--jobs: invalid value {jobs}; expected an integer >= 1")
    spec = with_val_size(load_sweep(path))
    exp = spec.experiment()
    shard_range = parse_shard(shard)
    runs = plan_runs(exp)
    if exp.orders is None:
        exp.orders = [list(o) for o in dict.fromkeys(tuple(r.order) for r in runs)]
    out_dir = Path(out) if out is not None else None
    if list_runs:
        echo(format_run_list(shard_slice(runs, shard_range), out_dir))
        return 0
    if out_dir is None:
        raise ConfigError("--out DIR is required: the sweep directory the runs go to (DIR/runs/<order>/<label>-s<seed>)")
    check_run_directories(runs, out_dir)
    prepare_directory(exp, out_dir, path)
    result = run_bench(runs, out_dir, jobs=jobs, shard=shard_range, echo=echo)
    echo(summary(result, runs, out_dir))
    if result.interrupted is not None:
        name = signal.Signals(result.interrupted).name
        raise Interrupted(f"{name} received: the sweep stopped its runs at a safe point; rerun the same lhl sweep "
                          "command to resume them", result.exit_code)
    if all(is_complete(out_dir / r.rel_dir) for r in runs):
        points, directions = validation_pairs(spec, runs, out_dir)
        winner, means = select(points, directions)
        selected = write_selected(spec, out_dir, winner, means)
        report = write_report(spec, runs, out_dir, winner, points, directions)
        echo(f"\nvalidation Δ vs {spec.baseline} (selection):\n\n{validation_table(spec, points, directions, winner)}")
        echo(f"\nselected: {winner} -> {selected}\nreport (test numbers of the selected setting): {report}")
    return result.exit_code
