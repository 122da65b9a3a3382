"""Pores: segmentation (:mod:`.segment`), per-pore statistics (:mod:`.stats`), recovery against true
labels (:mod:`.match`), sample masks carried onto an input's grid (:mod:`.masks`), several inputs
compared on their common box (:mod:`.compare`) and volumes larger than memory by chunks
(:mod:`.chunked`, its tasks in :mod:`.blocks`).

The public names are re-exported here.
"""

from napari_resolve.pores.chunked import (
    ChunkedPorePlan,
    ChunkedPoreResult,
    iter_chunked_pores,
    plan_chunked_pores,
    run_chunked_pores,
)
from napari_resolve.pores.compare import (
    MeasuredInput,
    PoreComparison,
    PoreInput,
    iter_compare_pores,
    plan_compare_pores,
    run_compare_pores,
)
from napari_resolve.pores.masks import mask_on_grid, polygon_mask
from napari_resolve.pores.match import PoreMatch, match_pores
from napari_resolve.pores.segment import PorePlan, analyse_pores, iter_analyse_pores, plan_analyse_pores
from napari_resolve.pores.stats import PoreResult, PoreWarning, pore_table, porosity

__all__ = [
    "ChunkedPorePlan",
    "ChunkedPoreResult",
    "MeasuredInput",
    "PoreComparison",
    "PoreInput",
    "PoreMatch",
    "PorePlan",
    "PoreResult",
    "PoreWarning",
    "analyse_pores",
    "iter_analyse_pores",
    "iter_chunked_pores",
    "iter_compare_pores",
    "mask_on_grid",
    "match_pores",
    "plan_analyse_pores",
    "plan_chunked_pores",
    "plan_compare_pores",
    "polygon_mask",
    "pore_table",
    "porosity",
    "run_chunked_pores",
    "run_compare_pores",
]
