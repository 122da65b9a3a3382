"""The ``napari-resolve`` command line: a thin layer over the core modules.

Every command prints one JSON object on stdout (logs go to stderr), so scripts
can parse the result. A :class:`ResolveError` is printed as a one-line message
and the command exits with status 2, without a traceback. Output files are
never written over an existing file unless ``--overwrite`` is given, and never
over an input file at all.

Heavy modules (torch, scikit-image) are imported inside the commands that need
them, so ``napari-resolve --help`` is quick.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
import warnings
from collections.abc import Sequence

from napari_resolve import __version__
from napari_resolve.cli import data, evaluate, export, measure, pores, predict, train
from napari_resolve.cli._common import emit, show_warning
from napari_resolve.errors import ResolveError, ResolveWarning


class Terminated(KeyboardInterrupt):
    """SIGTERM (a job scheduler's or ``kill``'s stop) or SIGHUP (the terminal closed), raised where the
    program runs, like Ctrl-C.

    A KeyboardInterrupt, so that every stop path a Ctrl-C takes runs for it too:
    temporary outputs are removed (:func:`napari_resolve.io.atomic_path`) and a
    training keeps the best model so far. ``signum`` is the signal; the command
    exits with 128 + it (143, 129), as a shell reports a process the signal ended.
    """

    def __init__(self, signum: int = signal.SIGTERM):
        super().__init__()
        self.signum = int(signum)

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name


#: The signals that stop a command like Ctrl-C (SIGHUP where the platform has it).
STOP_SIGNALS = tuple(getattr(signal, n) for n in ("SIGTERM", "SIGHUP") if hasattr(signal, n))


@contextlib.contextmanager
def _sigterm_stops():
    """Turn SIGTERM and SIGHUP into :class:`Terminated` while a command runs (main thread only, as Python allows)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise Terminated(signum)

    previous = {sig: signal.signal(sig, stop) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class UsageError(Exception):
    """A command line that argparse could not parse (unknown flag, bad choice, missing argument)."""

    def __init__(self, prog: str, message: str):
        super().__init__(message)
        self.prog = prog


class _Parser(argparse.ArgumentParser):
    """argparse with our error style: one line and exit status 2, like every other bad input.

    argparse's own ``error`` prints the whole usage text and exits from deep inside
    ``parse_args``; here it raises, and :func:`main` prints one line that points to
    ``--help``. Sub-parsers are made by the same class (``add_subparsers`` uses it).
    """

    def error(self, message: str):
        raise UsageError(self.prog, message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="napari-resolve",
        description="Learned resolution recovery for 3D microscopy volumes. "
        "Lengths are in micrometres (um); arrays are (z, y, x).",
    )
    parser.add_argument("--version", action="version", version=f"napari-resolve {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    data.add_phantom(sub)
    data.add_register(sub)
    measure.add_quality(sub)
    measure.add_resolution(sub)
    pores.add_pores(sub)
    train.add_train(sub)
    train.add_stack(sub)
    predict.add_predict(sub)
    export.add_export(sub)
    measure.add_baseline(sub)
    evaluate.add_evaluate(sub)
    data.add_demo(sub)
    return parser


def flag_namer(parser: argparse.ArgumentParser, command: str):
    """How the command line names a core parameter in a message: the command's flag for it.

    A parameter is the flag whose destination has its name, or its name less a
    ``_um`` unit suffix (``lres_voxel_um`` -> ``--lres-voxel``); a parameter this
    command has no flag for stays as it is (the core's own name).
    """
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    flags = {
        action.dest: max(action.option_strings, key=len)
        for action in sub.choices[command]._actions
        if action.option_strings
    }

    def name(parameter: str) -> str:
        return flags.get(parameter) or flags.get(parameter.removesuffix("_um")) or parameter

    return name


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 2 user error)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        print(f"{exc.prog}: error: {exc} (see {exc.prog} --help)", file=sys.stderr)
        return 2
    try:
        with warnings.catch_warnings(), _sigterm_stops():
            warnings.showwarning = show_warning
            warnings.simplefilter("once", ResolveWarning)
            result = args.func(args)
    except ResolveError as exc:
        print(f"napari-resolve {args.command}: error: {exc.render(flag_namer(parser, args.command))}", file=sys.stderr)
        return 2
    except MemoryError:
        print(
            f"napari-resolve {args.command}: error: not enough memory for this volume. "
            "Work on a smaller region or close other programs.",
            file=sys.stderr,
        )
        return 2
    except OSError as exc:  # permission denied, disk full...: the system's words suffice
        print(f"napari-resolve {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        how = f"by {exc.name}" if isinstance(exc, Terminated) else "by Ctrl-C"
        # A resumable job says what it kept instead (set on the exception by the command).
        kept = getattr(exc, "kept", None) or "unfinished outputs were removed."
        print(f"napari-resolve {args.command}: stopped {how}; {kept}", file=sys.stderr)
        return 128 + exc.signum if isinstance(exc, Terminated) else 130
    try:
        if result is not None:
            emit(result)
    except BrokenPipeError:  # e.g. piped into `head`: not an error of ours
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
