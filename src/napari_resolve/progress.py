"""The progress record that long core jobs yield (pores, baselines...)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Progress:
    """One progress record of a long job.

    Attributes
    ----------
    step, total : int
        Steps done and the number of steps of the whole job.
    message : str
        What the job does now, for a progress bar or a log.
    """

    step: int
    total: int
    message: str
