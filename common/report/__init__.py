"""Comparison report: the run table (common.table: records and predictions) -> summary.md, part CSVs, plots.

Per part: a headline table (one setup, one row per method, side by side), its sentences and plots; every other
setup below under "Other runs", labelled by what differs from the headline. Modules, top down: markdown (the
summary) -> plots -> comparison (statistics) -> runs (rows, groups, setups).

  python -m common.report [--output-dir results]
"""
from common.report.markdown import write_summary

__all__ = ["write_summary"]
