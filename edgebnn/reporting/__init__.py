"""Reports over run directories: loading manifests, tables, renderers, comparisons, plots.

The entry points: :func:`build_report` (runs -> the report), :func:`write_report` (rendered and
written with its plots), :func:`load_run`, :func:`compare` and :func:`compare_paths` (two runs side by side).
"""

from edgebnn.reporting.compare import compare, compare_paths
from edgebnn.reporting.load import build_report, find_runs, load_run
from edgebnn.reporting.render import write_report

__all__ = ["build_report", "compare", "compare_paths", "find_runs", "load_run", "write_report"]
