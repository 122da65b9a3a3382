"""The job protocol: one progress record type, running a job to its end, nesting jobs.

Every long job is planned, then run (see ``docs/architecture.md``):

- an eager ``plan_*`` function checks everything on the caller's thread and
  raises :class:`~napari_resolve.errors.ResolveError` at once for bad input;
- an ``iter_*`` generator does the work, yields :class:`Progress` records and
  returns its result (``StopIteration.value``); closing it (napari's
  ``worker.quit()``) stops it at the next yield;
- a ``run_*`` twin drains it for scripts, the command line and tests (:func:`drain`).

A job made of smaller jobs re-yields their records as steps of its own with
:func:`forward`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, replace
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Progress:
    """One progress record of a long job.

    Attributes
    ----------
    step, total : int
        Steps done and the number of steps of the whole job.
    message : str
        What the job does now, for a progress bar or a log.
    data : object, optional
        What a display may show at this step besides the bar: a training
        iteration's losses and preview, an upscaled tile, a measured input.
        Each job documents what it puts here.
    remaining_s : float, optional
        The job's own estimate of the seconds left, where it has a better one
        than the elapsed time per step (e.g. excluding a slow first step).
    """

    step: int
    total: int
    message: str
    data: Any = None
    remaining_s: float | None = None

    @property
    def fraction(self) -> float:
        """Share of the job done, 0 to 1."""
        return min(1.0, max(0.0, self.step / self.total)) if self.total else 0.0


def drain(gen: Generator[Any, Any, T], on_record: Callable[[Any], None] | None = None) -> T:
    """Run a job's generator to its end and return its result (``StopIteration.value``).

    Parameters
    ----------
    gen : generator
        An ``iter_*`` job.
    on_record : callable, optional
        Called with every record (e.g. to print progress); by default records are dropped.
    """
    while True:
        try:
            record = next(gen)
        except StopIteration as stop:
            return stop.value
        if on_record is not None:
            on_record(record)


def forward(gen: Generator[Any, Any, T], offset: int, total: int, span: int | None = None,
            prefix: str = "") -> Generator[Progress, None, T]:
    """Re-yield a sub-job's records as steps ``offset`` .. ``offset + span`` of a longer job.

    Parameters
    ----------
    gen : generator
        The sub-job.
    offset : int
        The step of the longer job at which the sub-job starts.
    total : int
        Steps of the longer job.
    span : int, optional
        Steps of the longer job the sub-job takes: its own steps are scaled into
        them. By default its steps are counted one for one.
    prefix : str
        Put before every message (e.g. ``"HRES (2/3): "``).

    Returns
    -------
    The sub-job's result. Closing the outer job closes the sub-job.
    """
    try:
        while True:
            try:
                record = next(gen)
            except StopIteration as stop:
                return stop.value
            if span is None:
                step = offset + int(record.step)
            else:
                frac = record.step / record.total if record.total else 0.0
                step = offset + min(span - 1, int(frac * span)) if span > 0 else offset
            yield replace(record, step=step, total=total, message=prefix + record.message) if isinstance(
                record, Progress
            ) else Progress(step, total, prefix + record.message)
    finally:
        gen.close()


@contextlib.contextmanager
def dask_client(workers: int | None = None, scheduler: str | None = None, *, scheduler_parameter: str = "scheduler"
                ) -> Iterator[Any]:
    """A ``distributed.Client`` of the running cluster at ``scheduler``, or of a new local cluster of ``workers``
    single-threaded processes (closed on leaving); the one way every chunked job gets its workers.

    Raises
    ------
    InputError
        When no scheduler answers at ``scheduler`` (the message names ``scheduler_parameter``).
    """
    import logging

    from distributed import Client, LocalCluster

    from napari_resolve.errors import InputError

    if scheduler:
        try:
            client = Client(scheduler, timeout=30)
        except (OSError, TimeoutError, ValueError) as exc:
            raise InputError(f"No dask scheduler answered at {scheduler} ({exc}). Start one (dask scheduler, then "
                             f"dask worker ADDRESS on each machine) or check the {{{scheduler_parameter}}} address.",
                             parameters=(scheduler_parameter,)) from None
        with client:
            yield client
        return
    # One thread per worker process (the tasks parallelise inside). Its workers log cancelled tasks as warnings
    # after a stop, which the stop message already explains.
    with LocalCluster(n_workers=int(workers or 1), threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        yield client
