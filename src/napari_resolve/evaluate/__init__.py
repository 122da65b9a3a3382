"""Batch evaluation of a model against interpolation on a folder of LRES/HRES pairs."""

from napari_resolve.evaluate.batch import EvalResult, find_pairs, iter_evaluate, run_evaluate, write_csv

__all__ = ["EvalResult", "find_pairs", "iter_evaluate", "run_evaluate", "write_csv"]
