"""Where results go: the output rules and atomic, race-safe writes.

The one home of what an output may replace (:func:`check_output`) and of how it
is written (:func:`atomic_path`): to a temporary sibling first, renamed when
complete, so an interrupted write (an error, Ctrl-C, SIGTERM) never leaves a
half-written file under the user's name, and a file that appeared meanwhile is
never replaced. :mod:`napari_resolve.io` re-exports both.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

from napari_resolve._text import format_bytes
from napari_resolve.errors import FileFormatError

ZARR_SUFFIXES = (".zarr",)


def _looks_like_zarr(path: Path) -> bool:
    return any((path / name).exists() for name in (".zarray", ".zgroup", "zarr.json"))


def check_output(
    path: str | os.PathLike,
    *,
    inputs: Sequence[str | os.PathLike] = (),
    overwrite: bool = False,
    parameter: str = "output",
) -> Path:
    """Refuse an output that would destroy data or fail only after the work is done.

    The one home of the output rules, checked by every job before it starts (so
    nothing is computed in vain) and again by :func:`atomic_path` when it writes:
    an output is never one of the inputs, never replaces an existing file unless
    ``overwrite``, and its folder must exist and accept a new file (one is created
    there and removed: a read-only or special file system, or a file where the
    folder should be, is refused now, not after the work).

    Parameters
    ----------
    path : str or path-like
        The output file or folder (``.zarr``).
    inputs : sequence of str or path-like
        The job's input files; the output may be none of them, even with ``overwrite``.
    overwrite : bool
        Allow replacing an existing ``path``.
    parameter : str
        The caller's name of the output parameter, named in the messages.

    Returns
    -------
    Path
        ``path`` with ``~`` expanded.

    Raises
    ------
    FileFormatError
        If ``path`` is an input, exists without ``overwrite``, or its folder is missing,
        is a file, or does not accept new files.
    """
    path = Path(path).expanduser()
    for src in inputs:
        if Path(src).expanduser().resolve() == path.resolve():
            raise FileFormatError(
                f"The output {path} is one of the inputs; choose another {{{parameter}}}.", parameters=(parameter,)
            )
    if path.exists() and not overwrite:
        raise FileFormatError(
            f"{path} already exists and was left untouched. Choose another name, or allow overwriting ({{overwrite}}).",
            parameters=("overwrite",),
        )
    if path.exists():
        # Overwriting replaces like with like: a zarr store only by a zarr store, a file
        # only by a file. A folder that merely has a .zarr name may hold anything.
        if path.suffix.lower() in ZARR_SUFFIXES:
            if not (path.is_dir() and _looks_like_zarr(path)):
                raise FileFormatError(
                    f"{path} exists but is not a zarr store, so it was left untouched even with overwriting "
                    f"allowed. Choose another {{{parameter}}}.",
                    parameters=(parameter,),
                )
        elif not path.is_file():
            raise FileFormatError(
                f"{path} exists and is a folder, not a file; it was left untouched. Choose another {{{parameter}}}.",
                parameters=(parameter,),
            )
    _check_folder(path, parameter)
    return path


def _check_folder(path: Path, parameter: str) -> None:
    """The output's folder exists, is a folder and accepts a new file (a temporary one, removed at once)."""
    folder = path.parent
    if not folder.is_dir():
        blocker = next((p for p in (folder, *folder.parents) if p.exists()), None)
        if blocker is not None and not blocker.is_dir():
            raise FileFormatError(
                f"{blocker} is a file, not a folder, so {path.name} cannot be written in it. "
                f"Choose another {{{parameter}}}.",
                parameters=(parameter,),
            )
        raise FileFormatError(
            f"The folder {folder} does not exist. Create it first, or choose another {{{parameter}}}.",
            parameters=(parameter,),
        )
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise FileFormatError(
            f"The folder {folder} does not accept new files ({exc.strerror or exc}), so {path.name} cannot be "
            f"written there. Choose another {{{parameter}}}.",
            parameters=(parameter,),
        ) from None


def file_size_limit() -> int | None:
    """The largest file this process may write (``ulimit -f``, RLIMIT_FSIZE), in bytes; None: no limit."""
    try:
        import resource
    except ImportError:  # Windows has no such limit
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    return None if soft in (resource.RLIM_INFINITY, -1) or soft < 0 else int(soft)


def check_room(path: str | os.PathLike, nbytes: int, *, parameter: str = "output") -> None:
    """Refuse an output of about ``nbytes`` that this process's file-size limit would cut short.

    Parameters
    ----------
    path : str or path-like
        The output (for the message).
    nbytes : int
        Its expected size in bytes, with a margin.
    parameter : str
        The caller's name of the output parameter.

    Raises
    ------
    FileFormatError
        If the file-size limit (``ulimit -f``) is smaller than ``nbytes``.
    """
    limit = file_size_limit()
    if limit is not None and limit < nbytes:
        raise FileFormatError(
            f"{Path(path).name} ({{{parameter}}}) will be about {format_bytes(nbytes)}, more than this process may "
            f"write to one file: its file-size limit (ulimit -f) is {format_bytes(limit)}. Raise the limit "
            "(ulimit -f unlimited) and run again.",
            parameters=(parameter,),
        )


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling path; rename it to ``path`` only on success.

    If the body raises (including KeyboardInterrupt), the temporary file or
    folder is removed and ``path`` is untouched.

    Raises
    ------
    FileFormatError
        As :func:`check_output`.
    """
    path = check_output(path, overwrite=overwrite)
    tmp = path.with_name(f".{path.name}.partial-{uuid.uuid4().hex[:8]}")
    try:
        yield tmp
        publish(tmp, path, overwrite=overwrite)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def publish(tmp: Path, path: Path, *, overwrite: bool = False) -> None:
    """Put a finished temporary at ``path``: :func:`atomic_path`'s last step, for jobs that keep theirs across runs.

    Replaces an existing ``path`` only with ``overwrite`` (and only a zarr store or
    a file, as :func:`check_output` allows); otherwise a ``path`` that appeared
    meanwhile is kept and the result saved under a free name (:func:`_publish`).
    """
    if overwrite and path.exists():
        check_output(path, overwrite=True)  # still the kind of thing it may replace
        _replace(tmp, path)
    else:
        _publish(tmp, path)


def _replace(tmp: Path, path: Path) -> None:
    """Put ``tmp`` in the place of an existing ``path`` (overwriting was allowed)."""
    if path.is_dir() and tmp.is_dir():
        # os.replace cannot swap directories: move the old one aside first.
        old = path.with_name(f".{path.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, path)


#: What a rename or link onto a name that is taken fails with.
_TAKEN = (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR)


def _publish(tmp: Path, path: Path) -> None:
    """Rename ``tmp`` to ``path`` only if nothing is there, checked in the same system call.

    The existence check before a job can be minutes old: another job may have
    written the same output since. A hard link (files) or a rename onto a missing
    name (folders; POSIX refuses a non-empty target) fails if it has, where
    os.replace would silently replace the other result. Then this result is kept
    under a visible name of its own and the user is told.
    """
    try:
        if tmp.is_dir():
            if path.exists():
                raise FileExistsError(errno.EEXIST, "exists", str(path))
            os.rename(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except OSError as exc:
                if exc.errno == errno.EEXIST:
                    raise
                # This file system has no hard links (FAT, some network shares): check, then rename.
                if path.exists():
                    raise FileExistsError(errno.EEXIST, "exists", str(path)) from exc
                os.replace(tmp, path)
            else:
                tmp.unlink()
    except OSError as exc:
        if exc.errno not in _TAKEN:
            raise
        kept = _free_name(path)
        os.replace(tmp, kept)
        raise FileFormatError(
            f"{path} appeared while this job ran (another job writing the same output?) and was left untouched; "
            f"this result was saved as {kept.name} instead."
        ) from None


def _free_name(path: Path) -> Path:
    """``name-2.tif``, ``name-3.tif``, ... : the first that does not exist."""
    name = path.name
    stem, suffix = (name[: -len(s)], s) if (s := _suffix(name)) else (name, "")
    for i in range(2, 10_000):
        candidate = path.with_name(f"{stem}-{i}{suffix}")
        if not candidate.exists():
            return candidate
    return path.with_name(f"{stem}-{uuid.uuid4().hex[:8]}{suffix}")


def _suffix(name: str) -> str:
    """The image suffix of a file name, with ``.ome.tif``/``.ome.zarr`` kept whole."""
    low = name.lower()
    for suffix in (".ome.tiff", ".ome.tif", ".ome.zarr"):
        if low.endswith(suffix):
            return name[-len(suffix):]
    return Path(name).suffix
