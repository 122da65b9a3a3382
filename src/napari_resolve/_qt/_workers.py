"""Run core jobs in a napari thread worker, with one state object per job.

The core's long jobs are generators that yield progress records and return a
result (see ``napari_resolve.jobs``). :class:`Job` runs one in a
``napari.qt.threading`` worker and turns it into signals that are always
emitted on the main thread, so handlers may touch layers and widgets:

- ``state_changed(str)``: ``"idle"``, ``"running"``, ``"done"``, ``"stopped"``
  or ``"failed"``;
- ``progress(record)``: every record the job yields;
- ``finished(result)``: the job's return value (``None`` when stopped or failed).

Stop is cooperative: :meth:`Job.stop` sets a flag that is checked between two
records; the core generator is then closed *in the worker thread*, so its own
clean-up (removing a temporary file, keeping the best model) runs before the
state becomes ``"stopped"``.

Errors never escape to napari's traceback dialog: a
:class:`~napari_resolve.errors.ResolveError` becomes a notification with its
message (which already says what to do); anything else is shown with its type
and logged with the traceback. The widget stays usable either way.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
from collections.abc import Callable, Generator, Mapping
from typing import Any

from psygnal import Signal

from napari_resolve._text import MICRO
from napari_resolve.errors import ResolveError

log = logging.getLogger(__name__)

STATES = ("idle", "running", "done", "stopped", "failed")

_STOPPED = object()  # returned by the guarded generator when stopped


class JobStopped(Exception):
    """Raised inside a callback-style job when Stop was pressed."""


def parameter_label(name: str, labels: Mapping[str, str] | None = None) -> str:
    """How a widget names a core parameter in a message: its field's label, quoted.

    ``labels`` maps parameter names to the labels of the widget's fields; a
    parameter the widget has no field for reads in words (``stage_weight`` ->
    ``'stage weight'``), never as a command-line flag.
    """
    label = (labels or {}).get(name)
    if label is None:
        label = name.removesuffix("_um").replace("_", " ")
    return f"'{label}'"


#: The unit as the core writes it (plain ASCII, for terminals and logs): "3 um", "(um)". Only after a
#: space or bracket, so that names the user chose ("LRES 4um") are quoted as they are.
_ASCII_UM = re.compile(r"(?<=[ (])um(?![A-Za-z0-9])")


def in_micrometres(text: str) -> str:
    """A core message with its "um" written "µm", as every widget writes the unit."""
    return _ASCII_UM.sub(MICRO, text)


#: The core's "18 x 114 x 111" (voxels) and "3 x 3 x 3 um": plain ASCII for terminals and logs.
_ASCII_TIMES = re.compile(r"(?<=\d) x (?=\d)")


def as_shown(text: str) -> str:
    """A core message as the widgets write it: "µm" for "um" and "18 × 114 × 111" for "18 x 114 x 111"."""
    return _ASCII_TIMES.sub(" × ", in_micrometres(text))


def error_message(exc: BaseException, labels: Mapping[str, str] | None = None) -> str:
    """The text a user sees for a failed job (parameters named by ``labels``, see :func:`parameter_label`)."""
    if isinstance(exc, ResolveError):
        return as_shown(exc.render(lambda name: parameter_label(name, labels)))
    if isinstance(exc, MemoryError):
        return "Out of memory. Choose a smaller region, or close other programs, and try again."
    return f"{type(exc).__name__}: {exc}"


def _guarded(gen: Generator, stop: threading.Event):
    """Yield from ``gen`` until it returns or ``stop`` is set (then close it here)."""
    try:
        while True:
            if stop.is_set():
                gen.close()
                return _STOPPED
            try:
                record = next(gen)
            except StopIteration as done:
                return done.value
            yield record
    finally:
        gen.close()  # no-op when finished; runs the generator's clean-up on errors


def callback_generator(func: Callable[..., Any], *args, progress_kw: str = "progress", **kwargs) -> Generator:
    """Turn a function that reports through a callback into a job generator.

    ``func(*args, progress=callback, **kwargs)`` runs in a helper thread; each
    message it reports is yielded as a :class:`~napari_resolve.progress.Progress`
    record (step 0 of total 0: the bar shows "busy"). Closing the generator
    (Stop) makes the next callback raise :class:`JobStopped`, so a function
    like :func:`napari_resolve.registration.register` stops at its next stage.
    """
    from napari_resolve.jobs import Progress

    messages: queue.Queue = queue.Queue()
    stopping = threading.Event()
    outcome: dict[str, Any] = {}

    def callback(message) -> None:
        if stopping.is_set():
            raise JobStopped
        messages.put(str(message))

    def target() -> None:
        try:
            outcome["value"] = func(*args, **{progress_kw: callback}, **kwargs)
        except BaseException as exc:  # handed to the worker thread below
            outcome["error"] = exc
        finally:
            messages.put(None)

    thread = threading.Thread(target=target, name=getattr(func, "__name__", "job"), daemon=True)
    thread.start()
    try:
        while (message := messages.get()) is not None:
            yield Progress(0, 0, message)
    finally:
        stopping.set()
        thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


class Job:
    """One long job of a widget: its state, progress and result.

    Parameters
    ----------
    name : str
        What the job does, for messages ("Registration", "Training"...).
    labels : mapping, optional
        The widget's field labels by core parameter name, for error messages
        (see :func:`parameter_label`).
    """

    state_changed = Signal(str)
    progress = Signal(object)
    finished = Signal(object)

    def __init__(self, name: str, labels: Mapping[str, str] | None = None):
        self.name = name
        self.labels = dict(labels or {})
        self._state = "idle"
        self._stop = threading.Event()
        self.worker = None
        self.result: Any = None
        self.error: str | None = None

    @property
    def state(self) -> str:
        return self._state

    @property
    def running(self) -> bool:
        return self._state == "running"

    def _set_state(self, state: str) -> None:
        self._state = state
        self.state_changed.emit(state)

    def start(self, gen: Generator) -> None:
        """Run the generator ``gen`` (already created) in a worker thread.

        The generator is created on the main thread by the caller, from copies
        of layer data and geometry: napari layers never enter the worker.
        """
        from napari.qt.threading import create_worker

        if self.running:
            gen.close()
            raise ResolveError(f"{self.name} is already running; stop it first.")
        self._stop = threading.Event()
        self.result, self.error = None, None
        # We show errors ourselves; without _ignore_errors napari re-raises them in the main thread.
        worker = create_worker(_guarded, gen, self._stop, _start_thread=False, _ignore_errors=True)
        worker.yielded.connect(self.progress.emit)
        worker.returned.connect(self._returned)
        worker.errored.connect(self._errored)
        self.worker = worker
        self._set_state("running")
        worker.start()

    def stop(self) -> None:
        """Ask the job to stop at its next progress record."""
        if self.running:
            self._stop.set()

    def abandon(self) -> None:
        """Stop, and stop telling anyone: the widget that showed this job is gone.

        Called when the job's controls are destroyed (dock closed, viewer
        closed). Without it a training would run on unseen for minutes, keep
        Python from exiting, and its handlers would touch deleted widgets.
        """
        self.stop()
        for signal in (self.state_changed, self.progress, self.finished):
            signal.disconnect()

    @property
    def stopping(self) -> bool:
        return self.running and self._stop.is_set()

    def _returned(self, value) -> None:
        if value is _STOPPED:
            self._set_state("stopped")
            self.finished.emit(None)
            return
        self.result = value
        self._set_state("done")
        self.finished.emit(value)

    def _errored(self, exc: BaseException) -> None:
        if isinstance(exc, JobStopped):
            self._set_state("stopped")
            self.finished.emit(None)
            return
        from napari.utils.notifications import show_error

        self.error = error_message(exc, self.labels)
        if not isinstance(exc, ResolveError):
            log.error("%s failed", self.name, exc_info=(type(exc), exc, exc.__traceback__))
        show_error(f"{self.name} failed: {self.error}")
        self._set_state("failed")
        self.finished.emit(None)
