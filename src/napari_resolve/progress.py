"""The progress record that long core jobs yield, and running such a job to its end."""

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


def drain(gen):
    """Run a generator to its end and return its return value (``StopIteration.value``).

    The ``run_*`` twins of the ``iter_*`` jobs use this for scripts, tests and
    the command line, which do not need the progress records.
    """
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value
