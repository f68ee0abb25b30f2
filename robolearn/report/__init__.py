"""Reports from run directories: aggregate statistics with bootstrap CIs, learning curves, and the
provenance of every number (python -m robolearn.report runs=<path> out=<dir>)."""

from robolearn.report.build import BuiltReport, build_report
from robolearn.report.collect import Collection, collect
from robolearn.report.results import ReportOptions, Results, compute_results

__all__ = [
    "BuiltReport",
    "Collection",
    "ReportOptions",
    "Results",
    "build_report",
    "collect",
    "compute_results",
]
