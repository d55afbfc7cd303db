"""``lhl report``: an experiment's report — the paper-style tables (Tables 1, 2, 7, 8), per-phase
curves (Figures 1 and 7), performance-matrix heat maps, forgetting and backward transfer,
training-loss curves, a qualitative grid — as Markdown, LaTeX, CSV, PNG and one self-contained
HTML page.

An experiment is any directory tree holding run directories (a directory with ``config.yaml`` and
``performance.json``), e.g. ``EXP/runs/<order-id>/<label>-s<seed>/`` as ``lhl bench`` writes it.
Rows, labels, Δ (eq. 11) and MR follow ``lhl compare`` (:mod:`lhl.report.compare`, whose
grouping this package reuses).

Layering: this package reads what the engine wrote (the event log through
:func:`lhl.engine.events.read_events`, models through :func:`lhl.engine.loading.load_run` for the
qualitative grid), so it sits *above* :mod:`lhl.engine` in the import contract, while
:mod:`lhl.report.tables` (which the engine uses for ``summary.md``) and :mod:`lhl.report.compare`
stay below it. For that reason :mod:`lhl.report`'s ``__init__`` must not import this package.

    from lhl.report.experiment import write_report
    write_report("experiments/demo", baseline="vanilla")     # → experiments/demo/report/
"""

from lhl.report.experiment.collect import Experiment, collect_experiment, find_run_dirs
from lhl.report.experiment.writer import ReportFiles, write_report

__all__ = ["Experiment", "ReportFiles", "collect_experiment", "find_run_dirs", "write_report"]
