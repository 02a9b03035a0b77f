"""Comparison report (python -m common.report): the run table (common.table) and its analysis (common.analysis) ->
summary.md, other_runs.md, the part CSVs and plots. Modules, top down: markdown -> findings | budget | latest -> plots
| cells -> runs (words)."""
from common.report.markdown import write_summary

__all__ = ["write_summary"]
