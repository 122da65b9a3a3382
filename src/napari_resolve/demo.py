"""``napari-resolve demo``: the whole workflow on the built-in foam phantom.

Makes a phantom and writes it; registers its HRES scan inside its LRES scan from
the written files (exercising the readers); trains the default model on the
registered pair; upscales an LRES region the model never saw; runs the cubic and
Richardson-Lucy baselines there; measures quality and pores of every version
against the noiseless truth. Everything goes to one folder: volumes (OME-TIFF,
in place over the LRES), the model, ``demo_report.json`` and ``demo_figure.png``;
a short table is returned for the terminal.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from napari_resolve.errors import FileFormatError, InputError, ResolveWarning

REPORT_NAME = "demo_report.json"
#: Training iterations of the demo.
DEMO_ITERATIONS = 600
#: How long the whole demo takes with the defaults, as measured (README, ``demo --help``).
DEMO_DURATION = "about 2.5 minutes on 2 CPU cores"


def _prepare_folder(out_dir: Path) -> bool:
    """Create ``out_dir``; allow replacing files only in a folder an earlier demo made."""
    if out_dir.exists() and not out_dir.is_dir():
        raise FileFormatError(f"{out_dir} is a file, not a folder. Give the demo a folder name.")
    if out_dir.exists() and any(out_dir.iterdir()):
        if not (out_dir / REPORT_NAME).exists():
            raise FileFormatError(
                f"{out_dir} already exists and holds files the demo did not write; they were "
                "left untouched. Give the demo an empty or new folder: napari-resolve demo OUT_DIR."
            )
        return True
    out_dir.mkdir(parents=True, exist_ok=True)
    return False


def run_demo(
    out_dir: Path,
    *,
    seed: int = 0,
    size: int = 64,
    ratio: int = 3,
    iterations: int = DEMO_ITERATIONS,
    device: str = "auto",
    log: Callable[[str], None] = print,
) -> dict:
    """Run the demo workflow and write its outputs to ``out_dir``.

    Steps: foam phantom -> register HRES in LRES -> train the default model on the
    registered pair -> upscale an LRES region that lies outside the HRES (never
    seen in training) -> cubic and Richardson-Lucy baselines on the same region ->
    quality against the noiseless truth (with an MS-SSIM map) -> pores on the
    LRES, baselines, upscaled and truth, with the share of true pores found ->
    a PNG figure, ``demo_report.json`` and a table.

    Parameters
    ----------
    out_dir : Path
        Output folder: new, empty, or one an earlier demo wrote (then replaced).
    seed, size, ratio : int
        Phantom seed, LRES voxels a side, LRES/HRES voxel size ratio.
    iterations : int
        Training iterations of the default model.
    device : str
        "auto", "cpu" or "cuda" for training and prediction.
    log : callable
        Receives progress lines.

    Returns
    -------
    dict
        The report (also written to ``demo_report.json``), with a ``table`` string.
    """
    from napari_resolve.geometry.grid import Grid
    from napari_resolve.io import read_volume, write_json, write_volume
    from napari_resolve.learn.inference import run_predict
    from napari_resolve.learn.training import TrainConfig, iter_train, plan_train
    from napari_resolve.measure.baselines import estimate_psf_sigma, interpolate, run_baseline
    from napari_resolve.measure.similarity import compare, ms_ssim_map
    from napari_resolve.phantom import write_phantom
    from napari_resolve.pores.segment import analyse_pores, match_pores
    from napari_resolve.registration import register

    t_start = time.perf_counter()
    out_dir = Path(out_dir)
    overwrite = _prepare_folder(out_dir)

    log(f"[1/7] Foam phantom: LRES {size}^3 voxels, ratio {ratio}, seed {seed} -> {out_dir}")
    paths, meta = write_phantom(out_dir, overwrite=overwrite, size=size, ratio=ratio, seed=seed)
    lres = read_volume(paths["lres"])
    hres = read_volume(paths["hres"])
    lres_data, hres_data = np.asarray(lres.data), np.asarray(hres.data)

    log("[2/7] Registering the HRES scan inside the LRES scan (from the written files)...")
    reg = register(lres_data, hres_data, lres.voxel_um, hres.voxel_um, progress=lambda m: log(f"      {m}"))
    reg.require_ok()
    write_json(out_dir / "registration.json", reg.to_dict())
    true_offset = np.array(meta["hres_offset_um"])
    err_vox = (np.array(reg.offset_um) - true_offset) / np.array(hres.voxel_um)
    log(f"      offset {np.round(reg.offset_um, 2).tolist()} um, error {np.round(err_vox, 3).tolist()} "
        f"HRES voxels, NCC {reg.ncc:.3f}")

    log(f"[3/7] Training the default model ({TrainConfig().model}) for up to {iterations} iterations on the "
        "registered pair...")
    cfg = TrainConfig(iterations=iterations, seed=seed, device=device)
    model_path = out_dir / "model.pt"
    plan = plan_train(lres_data, hres_data, lres.voxel_um, reg, cfg, out_path=model_path, overwrite=overwrite,
                      extra={"lres": paths["lres"].name, "hres": paths["hres"].name})
    trained = _drain_logged(iter_train(plan), log)
    ckpt = trained.checkpoint
    stopped = "; it stopped by itself (no longer improving)" if trained.early_stop else ""
    log(f"      {trained.seconds:.0f} s on {trained.device}; best validation PSNR {ckpt.val_psnr:.2f} dB "
        f"at iteration {ckpt.iteration}{stopped}")

    log("[4/7] Upscaling an LRES region outside the HRES (never seen in training)...")
    roi = _unseen_region(lres_data.shape, meta, ratio)
    t0 = time.perf_counter()
    pred = run_predict(ckpt, lres_data, lres.voxel_um, roi=roi, device=device)
    predict_s = time.perf_counter() - t0
    grid = pred.grid
    write_volume(out_dir / "upscaled.tif", pred.data, grid.voxel_um, origin_um=grid.origin_um, overwrite=overwrite)
    log(f"      LRES voxels {_roi_text(roi)} -> {' x '.join(map(str, grid.shape))} voxels of "
        f"{grid.voxel_um[0]:g} um in {predict_s:.1f} s")

    log("[5/7] Baselines on the same region: cubic interpolation and Richardson-Lucy...")
    cubic = interpolate(lres_data, lres.voxel_um, grid, "cubic")
    hres_grid = Grid(hres.shape, reg.scale, reg.offset_um)
    psf = estimate_psf_sigma(interpolate(lres_data, lres.voxel_um, hres_grid, "cubic"), hres_data, reg.scale)
    rl = run_baseline(lres_data, lres.voxel_um, grid, "rl", psf_sigma_um=psf.sigma_um).data
    write_volume(out_dir / "cubic.tif", cubic, grid.voxel_um, origin_um=grid.origin_um, overwrite=overwrite)
    write_volume(out_dir / "richardson_lucy.tif", rl, grid.voxel_um, origin_um=grid.origin_um, overwrite=overwrite)
    log(f"      PSF fitted on the registered pair: sigma {psf.sigma_um:.2f} um (FWHM {psf.fwhm_um:.2f} um)")

    log("[6/7] Quality against the noiseless truth, and an MS-SSIM map of the upscaled region...")
    truth_vol = read_volume(paths["truth"])
    labels_vol = read_volume(paths["truth_labels"])
    box = _fine_box(grid, truth_vol.origin_um, truth_vol.voxel_um)
    truth = np.asarray(truth_vol.data)[box]
    truth_labels = np.asarray(labels_vol.data)[box].astype(np.int32)
    images = {"upscaled": pred.data, "richardson_lucy": rl, "cubic": cubic}
    with warnings.catch_warnings():
        # A region of ~72 voxels a side has room for 3 MS-SSIM scales; the table says so.
        warnings.simplefilter("ignore", ResolveWarning)
        quality = {name: compare(img, truth, data_range=1.0) for name, img in images.items()}
        qmap = ms_ssim_map(pred.data, truth, data_range=1.0)
    write_volume(out_dir / "ms_ssim_map_upscaled.tif", qmap, grid.voxel_um, origin_um=grid.origin_um,
                 overwrite=overwrite)
    write_volume(out_dir / "truth_region.tif", truth, grid.voxel_um, origin_um=grid.origin_um, overwrite=overwrite)

    log("[7/7] Pores on the truth, upscaled, baselines and LRES of the region...")
    lres_region = lres_data[roi]
    lres_origin = tuple(s.start * v for s, v in zip(roi, lres.voxel_um))
    inputs = {
        "truth": (truth, grid.voxel_um, grid.origin_um),
        **{name: (img, grid.voxel_um, grid.origin_um) for name, img in images.items()},
        "lres": (lres_region, lres.voxel_um, lres_origin),
    }
    pores, pore_results = {}, {}
    for name, (image, voxel, origin) in inputs.items():
        # The region lies inside the sample, so the whole field is sample.
        res = analyse_pores(image, voxel, sample_mask=None)
        match = match_pores(truth_labels, grid.voxel_um, res.labels, voxel,
                            truth_origin_um=grid.origin_um, result_origin_um=origin)
        pores[name] = res.summary() | {"pore_recovery": match.recovery, "match": match.to_dict()}
        pore_results[name] = res

    report = {
        "out_dir": str(out_dir),
        "phantom": meta,
        "registration": reg.to_dict() | {"error_hres_voxels": err_vox.tolist()},
        "training": {
            "model": ckpt.architecture,
            "config": ckpt.config,
            "parameters": int(trained.model.parameter_count()),
            "iterations": iterations,
            "best_iteration": ckpt.iteration,
            "best_val_psnr_db": ckpt.val_psnr,
            "seconds": round(trained.seconds, 1),
            "device": trained.device,
            "roi_hres_voxels": ckpt.extra.get("roi"),
        },
        "region": {"roi_lres_voxels": _roi_text(roi), **grid.to_dict(), "predict_seconds": round(predict_s, 2)},
        "psf": psf.to_dict(),
        "quality": quality,
        "pores": pores,
    }
    figure = out_dir / "demo_figure.png"
    from napari_resolve.figures import demo_figure

    demo_figure(figure, lres_region=lres_region, images={"cubic": cubic, "richardson_lucy": rl,
                "upscaled": pred.data, "truth": truth}, ms_ssim=qmap, pores=pore_results,
                history=trained.history, ratio=ratio, lres_voxel_um=lres.voxel_um[0])
    report["figure"] = str(figure)
    report["seconds"] = round(time.perf_counter() - t_start, 1)
    write_json(out_dir / REPORT_NAME, report)
    report["table"] = _table(report, ratio, hres.voxel_um[0], lres.voxel_um[0])
    return report


def _drain_logged(gen, log):
    """Drain a training job, logging its validation records (``Progress`` with a ``TrainStep``)."""
    from napari_resolve.jobs import drain

    def show(rec) -> None:
        if rec.data.val_psnr is not None:
            log(f"      {rec.message} [{rec.data.elapsed_s:.0f} s, ~{rec.remaining_s:.0f} s left]")

    return drain(gen, show)


def _roi_text(roi) -> str:
    return ",".join(f"{s.start}:{s.stop}" for s in roi)


def _fine_box(grid, origin_um, voxel_um) -> tuple[slice, ...]:
    """The truth voxels under ``grid`` (the truth grid is in phase with it)."""
    start = np.rint((np.array(grid.origin_um) - np.array(origin_um)) / np.array(voxel_um)).astype(int)
    return tuple(slice(int(a), int(a) + n) for a, n in zip(start, grid.shape))


def _unseen_region(lres_shape, meta: dict, ratio: int, side: int = 24) -> tuple[slice, ...]:
    """A cube of LRES voxels inside the sample cylinder that does not touch the HRES box.

    Candidates are tried from the centre of the field outwards; the cube shrinks
    if none fits.
    """
    hs = np.array(meta["hres_start_fine_voxels"]) // ratio
    he = -(-(np.array(meta["hres_start_fine_voxels"]) + np.array(meta["hres_shape"])) // ratio)
    shape = np.array(lres_shape)
    centre = (shape[1:] - 1) / 2
    radius = 0.45 * shape[1:].min() - 1  # the phantom's cylinder, in LRES voxels, with a margin
    while side >= 8:
        best = None
        for z in range(0, shape[0] - side + 1):
            for y in range(0, shape[1] - side + 1, 2):
                for x in range(0, shape[2] - side + 1, 2):
                    lo, hi = np.array([z, y, x]), np.array([z, y, x]) + side
                    if np.all(lo < he + 1) and np.all(hi > hs - 1):
                        continue  # touches the HRES box (1-voxel gap)
                    corners = [(yy, xx) for yy in (y, y + side - 1) for xx in (x, x + side - 1)]
                    if max(np.hypot(*(np.array(c) - centre)) for c in corners) > radius:
                        continue
                    d = np.hypot(*(lo[1:] + side / 2 - shape[1:] / 2)) + abs(z + side / 2 - shape[0] / 2)
                    if best is None or d < best[0]:
                        best = (d, lo)
        if best is not None:
            return tuple(slice(int(a), int(a) + side) for a in best[1])
        side -= 4
    raise InputError("The phantom is too small for a test region outside the HRES; use a larger {size}.",
                     parameters=("size",))


def _table(report: dict, ratio: int, hres_um: float, lres_um: float) -> str:
    reg, tr, region = report["registration"], report["training"], report["region"]
    err = ", ".join(f"{e:+.2f}" for e in reg["error_hres_voxels"])
    shape = " x ".join(map(str, region["shape"]))
    lines = [
        f"napari-resolve demo: foam phantom, LRES {lres_um:g} um -> HRES {hres_um:g} um (ratio {ratio}), "
        f"{report['seconds']:.0f} s",
        f"Registration: NCC {reg['ncc']:.3f}, error ({err}) HRES voxels [{reg['status']}]",
        f"Training: {tr['model']} ({tr['parameters']:,} parameters), {tr['iterations']} iterations in "
        f"{tr['seconds']:.0f} s on {tr['device']}; best validation PSNR {tr['best_val_psnr_db']:.2f} dB",
        f"Region never seen in training: LRES voxels {region['roi_lres_voxels']} -> {shape} voxels of "
        f"{hres_um:g} um, upscaled in {region['predict_seconds']:.1f} s",
        "",
        f"{'against the truth':<22}{'PSNR dB':>8}{'SSIM':>7}{'MS-SSIM':>8}"
        f"{'porosity':>9}{'pores':>6}{'found':>10}{'mean d um':>10}{'spher.':>7}",
    ]
    names = {
        "truth": f"truth ({hres_um:g} um)",
        "upscaled": f"upscaled ({tr['model']})",
        "richardson_lucy": "Richardson-Lucy",
        "cubic": "cubic interpolation",
        "lres": f"LRES ({lres_um:g} um)",
    }
    for key, label in names.items():
        q = report["quality"].get(key)
        p = report["pores"][key]
        m = p["match"]
        qtxt = f"{q['psnr']:>8.2f}{q['ssim']:>7.3f}{q['ms_ssim']:>8.3f}" if q else f"{'-':>8}{'-':>7}{'-':>8}"
        found = f"{m['found']}/{m['total']}"
        lines.append(
            f"{label:<22}{qtxt}{p['porosity']:>9.3f}{p['count']:>6d}{found:>10}"
            f"{_fmt(p['mean_diameter_um']):>10}{_fmt(p['mean_sphericity'], 3):>7}"
        )
    lines.append(
        f"\nMS-SSIM over {report['quality']['upscaled']['ms_ssim_scales']} scales (the region's size allows no more). "
        "'found': true pores wholly inside the region that the analysis found, one to one.\n"
        f"Files, demo_figure.png and demo_report.json in {report['out_dir']}"
    )
    return "\n".join(lines)


def _fmt(value, digits: int = 1) -> str:
    return "-" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.{digits}f}"
