"""Reports: a run's ``summary.md`` and performance matrix (:mod:`lhl.report.tables`) and the
comparison of finished runs, ``lhl compare`` (:mod:`lhl.report.compare`)."""

from lhl.report.compare import comparison_table, load_run, load_runs
from lhl.report.tables import format_performance_matrix, summary_markdown

__all__ = ["comparison_table", "format_performance_matrix", "load_run", "load_runs", "summary_markdown"]
