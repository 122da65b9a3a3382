"""``napari-resolve demo``: the workflow on the built-in foam phantom.

Makes a phantom, registers its HRES scan inside its LRES scan from the written
files (exercising the readers), measures image quality of the LRES interpolated
onto the HRES grid and of the HRES scan against the noiseless truth, and
measures pores on every version of the same region. Everything is written to
one folder with a JSON report; a short table is returned for the terminal.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from napari_resolve.errors import FileFormatError

REPORT_NAME = "demo_report.json"


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
    log: Callable[[str], None] = print,
) -> dict:
    """Run the demo workflow and write its outputs to ``out_dir``.

    Parameters
    ----------
    out_dir : Path
        Output folder: new, empty, or one an earlier demo wrote (then replaced).
    seed, size, ratio : int
        Phantom seed, LRES voxels a side, LRES/HRES voxel size ratio.
    log : callable
        Receives progress lines.

    Returns
    -------
    dict
        The report (also written to ``demo_report.json``), with a ``table`` string.
    """
    from napari_resolve.io import read_volume, write_json, write_volume
    from napari_resolve.phantom import write_phantom
    from napari_resolve.pores import analyse_pores
    from napari_resolve.quality import compare, ms_ssim_map
    from napari_resolve.registration import register
    from napari_resolve.resample import resample_to_grid

    t_start = time.perf_counter()
    out_dir = Path(out_dir)
    overwrite = _prepare_folder(out_dir)

    log(f"[1/4] Foam phantom: LRES {size}^3 voxels, ratio {ratio}, seed {seed} -> {out_dir}")
    paths, meta = write_phantom(out_dir, overwrite=overwrite, size=size, ratio=ratio, seed=seed)

    log("[2/4] Registering the HRES scan inside the LRES scan (from the written files)...")
    lres = read_volume(paths["lres"])
    hres = read_volume(paths["hres"])
    reg = register(np.asarray(lres.data), np.asarray(hres.data), lres.voxel_um, hres.voxel_um, progress=log)
    reg.require_ok()
    write_json(out_dir / "registration.json", reg.to_dict())
    true_offset = np.array(meta["hres_offset_um"])
    err_vox = (np.array(reg.offset_um) - true_offset) / np.array(hres.voxel_um)
    log(f"      offset {np.round(reg.offset_um, 2).tolist()} um, error {np.round(err_vox, 3).tolist()} HRES voxels, NCC {reg.ncc:.3f}")

    log("[3/4] Quality against the noiseless truth on the HRES region...")
    truth_full = read_volume(paths["truth"])
    start = meta["hres_start_fine_voxels"]
    box = tuple(slice(k, k + n) for k, n in zip(start, hres.shape))
    truth = np.asarray(truth_full.data)[box]
    cubic = resample_to_grid(lres.data, lres.voxel_um, hres.shape, reg.scale, reg.offset_um, order=3)
    write_volume(out_dir / "lres_cubic_on_hres.tif", cubic, reg.scale, origin_um=reg.offset_um, overwrite=overwrite)
    hres_data = np.asarray(hres.data)
    quality = {
        "lres_cubic": compare(cubic, truth, data_range=1.0),
        "hres_scan": compare(hres_data, truth, data_range=1.0),
    }
    qmap = ms_ssim_map(cubic, truth, data_range=1.0)
    write_volume(out_dir / "ms_ssim_map_lres_cubic.tif", qmap, reg.scale, origin_um=reg.offset_um, overwrite=overwrite)

    log("[4/4] Pores on the same region: truth, HRES scan, LRES interpolated, LRES...")
    lres_box = _lres_box(reg.offset_um, hres.shape, reg.scale, lres.voxel_um)
    inputs = {
        "truth": (truth, hres.voxel_um),
        "hres_scan": (hres_data, hres.voxel_um),
        "lres_cubic": (cubic, reg.scale),
        "lres": (np.asarray(lres.data)[lres_box], lres.voxel_um),
    }
    pores = {}
    for name, (image, voxel) in inputs.items():
        # The HRES region lies inside the sample, so the whole field is sample.
        res = analyse_pores(image, voxel, sample_mask=None)
        pores[name] = res.summary()
    truth_count = max(pores["truth"]["count"], 1)
    for name in pores:
        pores[name]["pore_recovery"] = pores[name]["count"] / truth_count

    report = {
        "out_dir": str(out_dir),
        "phantom": meta,
        "registration": reg.to_dict() | {"error_hres_voxels": err_vox.tolist()},
        "quality": quality,
        "pores": pores,
        "seconds": round(time.perf_counter() - t_start, 1),
    }
    write_json(out_dir / REPORT_NAME, report)
    report["table"] = _table(report, ratio, hres.voxel_um[0], lres.voxel_um[0])
    return report


def _lres_box(offset_um, shape, voxel_um, lres_voxel_um) -> tuple[slice, ...]:
    """LRES voxels whose centres lie inside the HRES box."""
    lo = np.ceil((np.array(offset_um) - 0.5 * np.array(voxel_um)) / np.array(lres_voxel_um))
    hi = np.floor((np.array(offset_um) + (np.array(shape) - 0.5) * np.array(voxel_um)) / np.array(lres_voxel_um))
    return tuple(slice(int(a), int(b) + 1) for a, b in zip(lo, hi))


def _table(report: dict, ratio: int, hres_um: float, lres_um: float) -> str:
    reg = report["registration"]
    err = ", ".join(f"{e:+.2f}" for e in reg["error_hres_voxels"])
    lines = [
        f"napari-resolve demo: foam phantom, LRES {lres_um:g} um -> HRES {hres_um:g} um (ratio {ratio}), "
        f"{report['seconds']:.0f} s",
        f"Registration: NCC {reg['ncc']:.3f}, error ({err}) HRES voxels [{reg['status']}]",
        "",
        f"{'region of the HRES scan':<24}{'PSNR dB':>8}{'SSIM':>7}{'MS-SSIM':>8}"
        f"{'porosity':>9}{'pores':>6}{'recov.':>7}{'mean d um':>10}{'spher.':>7}",
    ]
    names = {
        "truth": f"truth ({hres_um:g} um)",
        "hres_scan": f"HRES scan ({hres_um:g} um)",
        "lres_cubic": f"LRES cubic ({hres_um:g} um)",
        "lres": f"LRES ({lres_um:g} um)",
    }
    for key, label in names.items():
        q = report["quality"].get(key)
        p = report["pores"][key]
        qtxt = f"{q['psnr']:>8.2f}{q['ssim']:>7.3f}{q['ms_ssim']:>8.3f}" if q else f"{'-':>8}{'-':>7}{'-':>8}"
        lines.append(
            f"{label:<24}{qtxt}{p['porosity']:>9.3f}{p['count']:>6d}{p['pore_recovery']:>7.2f}"
            f"{_fmt(p['mean_diameter_um']):>10}{_fmt(p['mean_sphericity'], 3):>7}"
        )
    lines.append(f"\nFiles and demo_report.json in {report['out_dir']}")
    return "\n".join(lines)


def _fmt(value, digits: int = 1) -> str:
    return "-" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.{digits}f}"
