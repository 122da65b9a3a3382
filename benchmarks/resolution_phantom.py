"""Effective resolution (Gaussian fit and FSC) of the classical baselines on the foam phantom.

Prints JSON: for cubic interpolation of the LRES, Richardson-Lucy (PSF fitted on
the registered noisy HRES, 10 iterations) and the noisy HRES itself, the
Gaussian-fit sigma and FWHM against the noiseless truth on the HRES voxels (gain and
offset fitted; also the sigma of the paper's plain MSE), and
the FSC resolution (1/7 and half-bit) against the truth and against the noisy
HRES. Optionally writes the curves as a PNG.

    python benchmarks/resolution_phantom.py [--size 64] [--plot curves.png]
"""

import argparse
import json
import time

from napari_resolve.geometry.grid import Grid
from napari_resolve.measure.baselines import run_baseline
from napari_resolve.measure.similarity import frc, gaussian_resolution
from napari_resolve.phantom import make_phantom


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--ratio", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot")
    args = parser.parse_args()

    p = make_phantom(args.size, args.ratio, seed=args.seed)
    truth, hres, voxel = p.hres_truth, p.hres, p.hres_voxel_um
    grid = Grid(hres.shape, voxel, p.hres_offset_um)
    images = {
        "cubic": run_baseline(p.lres, p.lres_voxel_um, grid, "cubic").data,
        "richardson_lucy": run_baseline(p.lres, p.lres_voxel_um, grid, "rl", reference=hres).data,
        "hres_noisy": hres,
    }
    out = {
        "phantom": {"size": args.size, "ratio": args.ratio, "seed": args.seed, "hres_shape": list(hres.shape),
                    "hres_voxel_um": list(voxel), "lres_blur_um": p.params.get("blur_um"),
                    "hres_blur_um": p.params.get("hres_blur_um")},
        "results": {},
    }
    fits, curves = {}, {}
    for name, img in images.items():
        t = time.perf_counter()
        g = gaussian_resolution(img, truth, voxel)
        f_truth = frc(img, truth, voxel)
        f_hres = frc(img, hres, voxel) if name != "hres_noisy" else None
        fits[name], curves[name] = g, f_truth
        out["results"][name] = {
            "sigma_um": round(g.sigma_um, 3),
            "fwhm_um": round(g.fwhm_um, 3),
            "sigma_plain_mse_um": round(gaussian_resolution(img, truth, voxel, fit_contrast=False).sigma_um, 3),
            "fsc_vs_truth_um": {k: None if v is None else round(v, 2) for k, v in f_truth.resolution_um.items()},
            "fsc_vs_noisy_hres_um": None if f_hres is None else
            {k: None if v is None else round(v, 2) for k, v in f_hres.resolution_um.items()},
            "seconds": round(time.perf_counter() - t, 2),
        }
    out["finest_um"] = round(curves["cubic"].finest_um, 3)
    if args.plot:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(10, 4), layout="constrained")
        ax_g, ax_f = fig.subplots(1, 2)
        for (name, g), color in zip(fits.items(), ("tab:blue", "tab:red", "tab:purple")):
            ax_g.plot(g.sigmas_um, g.mse, "-o", markersize=3, color=color, label=f"{name}: FWHM {g.fwhm_um:.2f} um")
            ax_g.axvline(g.sigma_um, color=color, linestyle=":")
            ax_f.plot(curves[name].frequencies_per_um, curves[name].correlation, color=color, label=name)
        ax_f.plot(curves["cubic"].frequencies_per_um, curves["cubic"].thresholds["1/7"], "--", color="gray",
                  label="1/7")
        ax_f.plot(curves["cubic"].frequencies_per_um, curves["cubic"].thresholds["half-bit"], ":", color="k",
                  label="half-bit")
        ax_g.set(xlabel="sigma applied to the truth (um)", ylabel="MSE (gain/offset fitted)")
        ax_f.set(xlabel="spatial frequency (1/um)", ylabel="FSC against the truth")
        ax_g.legend(fontsize=8)
        ax_f.legend(fontsize=8)
        fig.savefig(args.plot, dpi=100)
        out["plot"] = args.plot
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
