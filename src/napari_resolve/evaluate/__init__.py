"""Batch evaluation of a model against interpolation on a folder of LRES/HRES pairs.

``discovery`` finds the pairs, ``batch`` plans and runs the job and writes its
tables, ``stats`` holds the paired statistics.
"""

from napari_resolve.evaluate.batch import EvalResult, iter_evaluate, plan_evaluate, run_evaluate, write_csv
from napari_resolve.evaluate.discovery import find_pairs

__all__ = ["EvalResult", "find_pairs", "iter_evaluate", "plan_evaluate", "run_evaluate", "write_csv"]
