"""Experiments: grids of runs (methods and named variants × task orders × seeds) described by one
YAML file and run by ``lhl bench`` into one experiment directory, resumably, in parallel worker
processes or in shards over machines that share the directory.

* :mod:`lhl.experiments.schema` — the experiment file (:func:`load_experiment`);
* :mod:`lhl.experiments.plan` — the run list, every run's configuration validated (:func:`plan_runs`);
* :mod:`lhl.experiments.status` — done / failed / running / pending per run;
* :mod:`lhl.experiments.runner` — running the list (:func:`run_bench`);
* :mod:`lhl.experiments.command` — the ``lhl bench`` command.

This layer sits between the command line and the methods: it uses the engine (``build_run``, the
trainer, the run directory) and the reports (``lhl compare``), never the CLI.
"""

from lhl.experiments.plan import PlannedRun, plan_runs, shard_slice
from lhl.experiments.schema import Experiment, experiment_from_options, load_experiment

__all__ = ["Experiment", "PlannedRun", "load_experiment", "experiment_from_options", "plan_runs", "shard_slice"]
