from lhl.report.tables import format_performance_matrix, summary_markdown

__all__ = ["format_performance_matrix", "summary_markdown"]
