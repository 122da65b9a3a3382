"""Pores: segmentation and statistics (:mod:`.segment`), with the public names re-exported."""

from napari_resolve.pores.segment import PoreMatch, PoreResult, analyse_pores, iter_analyse_pores, match_pores

__all__ = ["PoreMatch", "PoreResult", "analyse_pores", "iter_analyse_pores", "match_pores"]
