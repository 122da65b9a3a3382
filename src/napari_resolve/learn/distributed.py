"""Chunked prediction on a dask cluster: one task per output chunk, resumable, an OME-Zarr pyramid out.

The output grid of :func:`~napari_resolve.learn.inference.plan_predict` is cut
into chunks, each a whole number of the result's zarr chunks. Each chunk is one
task: the worker
opens the model file and the LRES *by path* (once per worker process, never
pickled with the task), predicts exactly the chunk's grid with the same tiling
as a single process (every tile reads the network's halo from the real LRES
around it, so a chunk's voxels do not depend on where the chunk borders lie:
equal to a single-process run to float rounding, about 1e-6), and writes its
block and the block's means into every pyramid level of the store. Chunks are
multiples of the pyramid's coarsest factor, so no two tasks write the same zarr
chunk.

A chunk is *done* when a marker file named after it exists; the marker is made
by a rename after all of the chunk's levels are written, so a killed task
leaves no marker and its chunk is computed again. The run works in a hidden
store beside the output (``.OUT.zarr.partial``) holding a job record (model,
LRES, grid, tiling); ``resume=True`` checks the record and computes only the
chunks without a marker. When every chunk is done the store is renamed to the
output, which is never replaced unless overwriting was asked for.

Workers: ``workers=N`` starts a :class:`distributed.LocalCluster` of N
single-threaded processes, each running torch on ``cores // N`` threads;
``scheduler="tcp://HOST:PORT"`` (or ``DASK_SCHEDULER_ADDRESS``) uses a running
cluster. With CUDA GPUs, worker ``i`` uses GPU ``i % count``.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import math
import os
import resource
import shutil
import time
import uuid
from collections.abc import Generator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from napari_resolve._text import format_rate, format_shape
from napari_resolve.errors import FileFormatError, InputError
from napari_resolve.geometry.grid import Grid
from napari_resolve.jobs import Progress, dask_client, drain

#: Output voxels per chunk (task) side. Every task also reads and predicts the network's halo around its
#: chunk (for the default lres3d, 15 LRES voxels a side): 256-voxel chunks at ratio 3 do 2.5x the kept work,
#: 32-voxel chunks 35x (benchmarks/distributed.py). A 256^3 float32 chunk is 64 MiB in a worker's memory.
DEFAULT_CHUNK = 256
#: Largest zarr chunk side of the result (a chunk of 8 MiB float32 in 3D; napari reads the result by these).
MAX_STORE_CHUNK = 128
#: The job record and the done markers, inside the store.
JOB_FILE = "napari_resolve_job.json"
DONE_DIR = "napari_resolve_done"
#: Environment variable dask's own tools read for a scheduler address.
SCHEDULER_ENV = "DASK_SCHEDULER_ADDRESS"
#: How often the client looks for finished chunks (s).
POLL_S = 0.1


@dataclass(frozen=True)
class ChunkJob:
    """What every task needs: paths and settings only (small, picklable)."""

    model_path: str
    lres_path: str
    lres_voxel_um: tuple[float, ...]
    store: str
    shape: tuple[int, ...]
    voxel_um: tuple[float, ...]
    origin_um: tuple[float, ...]
    chunk: tuple[int, ...]
    store_chunk: tuple[int, ...]
    levels: int
    tile: tuple[int, ...] | None
    overlap: tuple[int, ...] | None
    margin: int | None
    blend: str
    device: str

    def grid(self, box) -> Grid:
        """The grid of output voxels ``box`` ((start, stop) per axis)."""
        return Grid(tuple(b - a for a, b in box), self.voxel_um,
                    tuple(o + a * v for o, (a, _), v in zip(self.origin_um, box, self.voxel_um)))


@dataclass(frozen=True, eq=False)
class ChunkedPlan:
    """A checked chunked prediction (made by :func:`plan_chunked_predict`), run by :func:`iter_chunked_predict`."""

    job: ChunkJob
    out_path: Path
    partial: Path
    boxes: tuple = field(repr=False)
    todo: tuple = field(repr=False)
    workers: int | None
    scheduler: str | None
    overwrite: bool

    @property
    def n_chunks(self) -> int:
        return len(self.boxes)


@dataclass
class ChunkedResult:
    """A finished chunked prediction."""

    path: Path
    grid: Grid
    chunks: int
    computed: int
    seconds: float
    workers: int
    levels: int
    peak_rss_mib: dict = field(default_factory=dict)
    chunk: tuple = ()
    zarr_chunk: tuple = ()

    def summary(self) -> dict:
        """What ``napari-resolve predict --workers/--scheduler`` prints."""
        return {
            "origin_um": list(self.grid.origin_um), "voxel_um": list(self.grid.voxel_um),
            "shape": list(self.grid.shape), "output": str(self.path), "format": "ome-zarr",
            "levels": self.levels, "chunk": list(self.chunk), "zarr_chunk": list(self.zarr_chunk),
            "chunks": self.chunks, "chunks_computed": self.computed,
            "chunks_already_done": self.chunks - self.computed, "workers": self.workers,
            "seconds": round(self.seconds, 2),
            "peak_rss_mib_per_worker": {k: round(v, 1) for k, v in sorted(self.peak_rss_mib.items())},
        }


# ----------------------------------------------------------------------------- plan


def plan_chunked_predict(model_path, lres_path, out_path, *, lres_voxel_um=None, roi=None, chunk=None, tile=None,
                         overlap=None, margin=None, blend=None, device="auto", workers=None, scheduler=None,
                         resume: bool = False, overwrite: bool = False) -> ChunkedPlan:
    """Check a chunked prediction; refuses bad input before any worker starts.

    Parameters
    ----------
    model_path, lres_path : path-like
        The model file and the LRES (TIFF, OME-TIFF or zarr); workers open both themselves.
    out_path : path-like
        The result: an OME-Zarr pyramid (``.zarr``).
    lres_voxel_um : float or sequence of float, optional
        Override of the LRES file's voxel size (um).
    roi, tile, overlap, margin, blend, device
        As :func:`~napari_resolve.learn.inference.plan_predict`; the tiling applies within each chunk.
    chunk : int or sequence of int, optional
        Output voxels per chunk (default :data:`DEFAULT_CHUNK`), rounded up to the
        network's size multiple and the pyramid's coarsest factor.
    workers : int, optional
        Local worker processes (default 1 without ``scheduler``).
    scheduler : str, optional
        Address of a running dask scheduler (default ``$DASK_SCHEDULER_ADDRESS``).
    resume : bool
        Finish an interrupted run of the same job: only chunks without a done marker are computed.
    overwrite : bool
        Replace an existing output when the run is complete.

    Returns
    -------
    ChunkedPlan

    Raises
    ------
    FileFormatError, InputError, VoxelSizeError
        As :func:`~napari_resolve.learn.inference.plan_predict`; also for an output
        that is not ``.zarr``, an unfinished run found without ``resume``, a
        ``resume`` with nothing to resume or of another job, generative models,
        and bad ``chunk`` or ``workers``.
    """
    from napari_resolve.io import open_lazily, read_volume
    from napari_resolve.learn.calibrate import is_generative
    from napari_resolve.learn.inference import plan_predict
    from napari_resolve.learn.predict_checks import output_grid
    from napari_resolve.learn.tiling import DEFAULT_BLEND
    from napari_resolve.models.checkpoint import load_checkpoint
    from napari_resolve.outputs import check_output
    from napari_resolve.pyramid import level_count

    out = Path(out_path).expanduser()
    if out.suffix.lower() != ".zarr":
        raise FileFormatError(f"{out.name}: a chunked run writes an OME-Zarr pyramid; give an output ({{out_path}}) "
                              "ending in .zarr.", parameters=("out_path",))
    ckpt = load_checkpoint(model_path)
    if is_generative(ckpt):
        raise InputError(f"{ckpt.architecture} draws random samples; chunked runs take deterministic models only. "
                         "Upscale it in one process (without {workers} and {scheduler}).",
                         parameters=("workers", "scheduler"))
    vol = read_volume(lres_path) if Path(lres_path).suffix.lower() == ".zarr" else None
    lres = vol.data if vol is not None else open_lazily(lres_path)
    voxel = lres_voxel_um if lres_voxel_um is not None else (vol or read_volume(lres_path)).voxel_um
    grid = output_grid(ckpt, lres.shape, voxel, roi)
    net = ckpt.build()
    blend = blend or DEFAULT_BLEND
    chunk3 = _chunk_shape(chunk, grid.shape, net.size_multiple[-grid.ndim:] if grid.ndim == 3 else
                          net.size_multiple[1:])
    store3 = tuple(_store_chunk(c) for c in chunk3)
    levels = level_count(grid.shape, store3)
    if workers is not None and int(workers) < 1:
        raise InputError(f"The number of {{workers}} must be at least 1, got {workers}.", parameters=("workers",))
    scheduler = scheduler or os.environ.get(SCHEDULER_ENV) or None
    if scheduler and workers:
        raise InputError("Give either {workers} (a cluster on this machine) or {scheduler} (a running one), "
                         "not both.", parameters=("workers", "scheduler"))
    boxes = tuple(_boxes(grid.shape, chunk3))
    # Every check of a single-process prediction, on the first chunk's grid (builds the network once).
    lv = tuple(plan_predict(ckpt, lres, voxel, grid=_sub_grid(grid, boxes[0]), tile=tile, overlap=overlap,
                            margin=margin, blend=blend, device=device).lres_voxel_um)
    partial = out.with_name(f".{out.name}.partial")
    job = ChunkJob(str(Path(model_path).resolve()), str(Path(lres_path).resolve()), lv, str(partial), grid.shape,
                   grid.voxel_um, grid.origin_um, chunk3, store3, levels, _tuple(tile), _tuple(overlap), margin, blend,
                   device)
    check_output(out, overwrite=overwrite, parameter="out_path")
    if resume:
        todo = _resumable(job, partial)
    elif partial.exists():
        raise FileFormatError(f"An unfinished run's chunks are in {partial}: add --resume to finish it (only the "
                              "missing chunks are computed), or delete that folder to start again.")
    else:
        todo = tuple(range(len(boxes)))
    return ChunkedPlan(job, out, partial, boxes, todo, None if workers is None else int(workers), scheduler,
                       bool(overwrite))


def _tuple(value):
    return None if value is None else (tuple(int(v) for v in value) if np.ndim(value) else int(value))


def _chunk_shape(chunk, shape, multiple) -> tuple[int, ...]:
    ndim = len(shape)
    sides = (DEFAULT_CHUNK,) * ndim if chunk is None else tuple(int(c) for c in np.atleast_1d(chunk))
    if len(sides) == 1:
        sides = sides * ndim
    if len(sides) != ndim or min(sides) < 1:
        raise InputError(f"The {{chunk}} must be 1 or {ndim} positive sizes (output voxels), got {chunk}.",
                         parameters=("chunk",))
    # Whole multiples of the network's downsampling (tiles start where a whole pass puts them) and of 8
    # (a pyramid of up to four levels covers whole blocks); never longer than the axis.
    out = []
    for c, m, n in zip(sides, multiple, shape):
        step = math.lcm(int(m), 8)
        out.append(min(math.ceil(c / step) * step, int(n)))
    return tuple(out)


def _store_chunk(side: int) -> int:
    """The zarr chunk side for a task chunk side: the chunk itself up to :data:`MAX_STORE_CHUNK`, else its
    largest divisor that is a multiple of 8 and at most that (so tasks write whole zarr chunks)."""
    if side <= MAX_STORE_CHUNK or side % 8:
        return side if side <= MAX_STORE_CHUNK else next(d for d in range(MAX_STORE_CHUNK, 0, -1) if side % d == 0)
    return next(d for d in range(MAX_STORE_CHUNK, 7, -8) if side % d == 0)


def _boxes(shape, chunk):
    starts = [range(0, n, c) for n, c in zip(shape, chunk)]
    for corner in itertools.product(*starts):
        yield tuple((a, min(a + c, n)) for a, c, n in zip(corner, chunk, shape))


def _sub_grid(grid: Grid, box) -> Grid:
    return Grid(tuple(b - a for a, b in box), grid.voxel_um,
                tuple(o + a * v for o, (a, _), v in zip(grid.origin_um, box, grid.voxel_um)))


def _fingerprint(job: ChunkJob) -> dict:
    """The job record: what must match for a resumed run to continue an earlier one."""
    record = asdict(job)
    record.pop("store")
    record.pop("device")  # the same model gives the same chunks on another device (to rounding)
    for key in ("model_path", "lres_path"):
        stat = Path(record[key]).stat()
        record[key.replace("_path", "_file")] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    record["model_sha256"] = hashlib.sha256(Path(job.model_path).read_bytes()).hexdigest()
    return json.loads(json.dumps(record))


def _resumable(job: ChunkJob, partial: Path) -> tuple[int, ...]:
    record = partial / JOB_FILE
    if not record.is_file():
        raise FileFormatError(f"There is no unfinished run to resume at {partial}. Run without --resume.")
    try:
        earlier = json.loads(record.read_text())
    except (OSError, ValueError) as exc:
        raise FileFormatError(f"{record} is unreadable ({exc}); delete {partial} and run again.") from exc
    now = _fingerprint(job)
    changed = sorted(k for k in set(now) | set(earlier) if now.get(k) != earlier.get(k))
    if changed:
        raise InputError(f"The unfinished run in {partial} was another job ({', '.join(changed)} differ): resume it "
                         "with the same model, LRES and settings, or delete that folder to start again.")
    done = _done(partial)
    n = math.prod(math.ceil(s / c) for s, c in zip(job.shape, job.chunk))
    return tuple(i for i in range(n) if i not in done)


def _done(partial: Path) -> set[int]:
    folder = partial / DONE_DIR
    return {int(p.name) for p in folder.iterdir() if p.name.isdigit()} if folder.is_dir() else set()


# ----------------------------------------------------------------------------- worker side

_CACHE: dict = {}


def _worker_state(job: ChunkJob, torch_threads: int):
    """The model and the LRES of this worker process, opened once by path."""
    key = (job.model_path, job.lres_path)
    if _CACHE.get("key") != key:
        import torch

        from napari_resolve.io import open_lazily, read_volume
        from napari_resolve.models.checkpoint import load_checkpoint

        torch.set_num_threads(max(1, int(torch_threads)))
        lres_path = Path(job.lres_path)
        lres = read_volume(lres_path).data if lres_path.suffix.lower() == ".zarr" else open_lazily(lres_path)
        _CACHE.update(key=key, checkpoint=load_checkpoint(job.model_path), lres=lres)
    return _CACHE["checkpoint"], _CACHE["lres"]


def _worker_device(device: str) -> str:
    """``cuda`` on a worker of a cluster with GPUs: GPU ``rank % count``, the rank from the worker's name."""
    if not device.startswith("cuda") or ":" in device:
        return device
    import torch

    try:
        rank = int(_worker_identity()[0].rsplit("-", 1)[-1])
    except ValueError:
        rank = 0
    return f"cuda:{rank % max(1, torch.cuda.device_count())}"


def predict_chunk(job: ChunkJob, index: int, box, threads_per_host=None) -> tuple[int, float, int, float, str]:
    """Predict one chunk and write it into every level; returns (index, seconds, voxels, peak RSS in MiB, worker).

    Runs on a worker. ``threads_per_host`` maps a host to the dask threads of all
    workers on it; torch gets this machine's cores divided by that number. The
    chunk's done marker is made last, by a rename.
    """
    import zarr

    from napari_resolve.learn.inference import plan_predict, run_predict
    from napari_resolve.pyramid import write_levels

    t0 = time.perf_counter()
    name, host = _worker_identity()
    busy = (threads_per_host or {}).get(host, 1)
    ckpt, lres = _worker_state(job, max(1, (os.cpu_count() or 1) // max(1, busy)))
    device = job.device
    if device == "auto":
        from napari_resolve.devices import resolve_device

        device = str(resolve_device("auto"))
    plan = plan_predict(ckpt, lres, job.lres_voxel_um, grid=job.grid(box), tile=job.tile, overlap=job.overlap,
                        margin=job.margin, blend=job.blend, device=_worker_device(device))
    data = run_predict(plan).data
    write_levels(zarr.open_group(job.store, mode="r+"), box, data, job.levels)
    marker = Path(job.store) / DONE_DIR / str(index)
    tmp = marker.with_name(f".{index}.{os.getpid()}")
    tmp.write_text(json.dumps({"box": [list(b) for b in box]}))
    os.replace(tmp, marker)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return index, time.perf_counter() - t0, int(data.size), float(rss), name


def _worker_identity() -> tuple[str, str]:
    """This worker's name and host (``"local"`` outside a dask worker)."""
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return "local", ""
    return str(worker.name), worker.address.split("://")[-1].rsplit(":", 1)[0]


# ----------------------------------------------------------------------------- run


def iter_chunked_predict(plan: ChunkedPlan) -> Generator[Progress, None, ChunkedResult]:
    """Run a chunked prediction on dask; yields a :class:`~napari_resolve.jobs.Progress` per finished chunk.

    A stop (closing the generator, Ctrl-C, a failed chunk) cancels the chunks not
    yet started and keeps the finished ones for ``resume``.
    """
    from napari_resolve.outputs import publish
    from napari_resolve.pyramid import create_pyramid

    t0 = time.perf_counter()
    job = plan.job
    if not plan.partial.exists():
        create_pyramid(plan.partial, job.shape, job.voxel_um, job.origin_um, chunks=job.store_chunk, levels=job.levels,
                       name=plan.out_path.name.split(".")[0])
        (plan.partial / DONE_DIR).mkdir()
        (plan.partial / JOB_FILE).write_text(json.dumps(_fingerprint(job), indent=1))
    futures = []
    with contextlib.ExitStack() as stack:
        client = stack.enter_context(dask_client(plan.workers or _default_workers(job.device), plan.scheduler))
        # A stop (closing the generator, Ctrl-C, a failed chunk) cancels what has not run, before the client goes.
        stack.callback(lambda: [f.cancel() for f in futures if not f.done()])
        workers = client.scheduler_info()["workers"]
        threads = _threads_per_host(workers)
        total, done, voxels, rss = len(plan.todo), 0, 0, {}
        yield Progress(0, total, f"{total} of {plan.n_chunks} chunks of {format_shape(job.chunk)} output voxels "
                       f"to compute on {len(workers)} worker(s) ({client.scheduler.address})")
        futures = [client.submit(predict_chunk, job, i, plan.boxes[i], threads, key=f"chunk-{i}-{uuid.uuid4().hex}",
                                 pure=False) for i in plan.todo]
        pending = list(futures)
        while pending:
            # Poll rather than block in distributed's as_completed: a Ctrl-C or SIGTERM then lands in this loop,
            # not inside distributed's event-loop bridge (which logs a spurious traceback when interrupted).
            finished = [f for f in pending if f.done()]
            if not finished:
                time.sleep(POLL_S)
                continue
            taken = {id(f) for f in finished}
            pending = [f for f in pending if id(f) not in taken]
            for future in finished:
                _, _, n, peak, worker = future.result()
                done += 1
                voxels += n
                rss[worker] = max(peak, rss.get(worker, 0.0))
                elapsed = time.perf_counter() - t0
                yield Progress(done, total, f"chunk {done}/{total} ({format_rate(voxels / elapsed)})",
                               remaining_s=elapsed / done * (total - done))
    missing = set(range(plan.n_chunks)) - _done(plan.partial)
    if missing:
        raise FileFormatError(f"{len(missing)} chunks have no done marker in {plan.partial}; run again with "
                              "--resume to compute them.")
    # The markers only served the run; the job record stays as the result's provenance.
    shutil.rmtree(plan.partial / DONE_DIR, ignore_errors=True)
    publish(plan.partial, plan.out_path, overwrite=plan.overwrite)
    return ChunkedResult(plan.out_path, Grid(job.shape, job.voxel_um, job.origin_um), plan.n_chunks, len(plan.todo),
                         time.perf_counter() - t0, len(workers), job.levels, rss, job.chunk, job.store_chunk)


def _default_workers(device: str) -> int:
    if device.startswith("cuda") or device == "auto":
        import torch

        if torch.cuda.is_available():
            return torch.cuda.device_count()
    return 1


def _threads_per_host(workers: dict) -> dict[str, int]:
    """Dask threads of all workers on each host: the tasks on one machine share its cores instead of
    oversubscribing them (each task's torch gets cores / threads)."""
    per_host: dict[str, int] = {}
    for address, info in workers.items():
        host = address.split("://")[-1].rsplit(":", 1)[0]
        per_host[host] = per_host.get(host, 0) + int(info.get("nthreads", 1))
    return per_host


def run_chunked_predict(*args, **kwargs) -> ChunkedResult:
    """:func:`plan_chunked_predict` and :func:`iter_chunked_predict` run to the end."""
    return drain(iter_chunked_predict(plan_chunked_predict(*args, **kwargs)))
