"""Figures written by the command line (matplotlib, no GUI backend)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: How the demo's inputs are called in figures.
LABELS = {
    "lres": "LRES",
    "cubic": "cubic interpolation",
    "richardson_lucy": "Richardson-Lucy",
    "upscaled": "upscaled (model)",
    "truth": "truth",
}


def demo_figure(
    path: Path,
    *,
    lres_region: np.ndarray,
    images: dict[str, np.ndarray],
    ms_ssim: np.ndarray,
    pores: dict,
    history: list[dict],
    ratio: int,
    lres_voxel_um: float,
) -> Path:
    """The demo's one-page summary as a PNG.

    Top row: the centre z slice of the LRES region and of every image on the
    HRES grid (same grey range). Bottom row: the MS-SSIM map of the upscaled
    region against the truth, the absolute errors of cubic interpolation and of
    the model, the pore size distributions (one curve per input) and the
    training curves (loss, validation PSNR).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    truth = images["truth"]
    z = truth.shape[0] // 2
    lo, hi = np.percentile(truth, [0.5, 99.5])
    fig, axes = plt.subplots(2, 5, figsize=(19, 8), constrained_layout=True)
    extent = (0, truth.shape[2], truth.shape[1], 0)
    panels = [("lres", lres_region[min(z // ratio, lres_region.shape[0] - 1)])]
    panels += [(k, images[k][z]) for k in ("cubic", "richardson_lucy", "upscaled", "truth")]
    for ax, (key, img) in zip(axes[0], panels):
        ax.imshow(img, cmap="gray", vmin=lo, vmax=hi, extent=extent, interpolation="nearest")
        title = LABELS[key] + (f" ({lres_voxel_um:g} um)" if key == "lres" else "")
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_yticks([])

    # Low values (suspect regions) stand out dark; below 0.5 is already bad.
    im = axes[1, 0].imshow(ms_ssim[z], cmap="inferno", vmin=0.5, vmax=1)
    axes[1, 0].set_title(f"MS-SSIM model/truth (mean {ms_ssim.mean():.3f})")
    fig.colorbar(im, ax=axes[1, 0], shrink=0.8)
    err_hi = float(np.percentile(np.abs(images["cubic"] - truth), 99.5))
    for ax, key in zip(axes[1, 1:3], ("cubic", "upscaled")):
        err = np.abs(images[key][z] - truth[z])
        im = ax.imshow(err, cmap="magma", vmin=0, vmax=err_hi)
        ax.set_title(f"|{LABELS[key]} - truth|")
        fig.colorbar(im, ax=ax, shrink=0.8)
    for ax in axes[1, :3]:
        ax.set_xticks([])
        ax.set_yticks([])

    ax = axes[1, 3]
    diameters = [np.asarray(r.table["diameter_um"]) for r in pores.values()]
    diameters = [d for d in diameters if d.size]
    top = max((float(np.max(d)) for d in diameters), default=10.0)
    edges = np.arange(0, top + 2.0, 2.0)
    for key, res in pores.items():
        _, counts = res.size_histogram(edges)
        ax.step(edges[:-1], counts, where="post", label=f"{LABELS.get(key, key)} ({res.summary()['count']})")
    ax.set_xlabel("equivalent diameter (um)")
    ax.set_ylabel("pores per 2 um bin")
    ax.set_title("Pore size distribution")
    ax.legend(fontsize=8)

    ax = axes[1, 4]
    it = [h["iteration"] for h in history]
    ax.plot(it, [h["loss"] for h in history], color="0.6", lw=0.8, label="training loss (L1)")
    ax.set_xlabel("iteration")
    ax.set_ylabel("L1 loss (normalised)")
    ax.set_yscale("log")
    ax2 = ax.twinx()
    val = [(h["iteration"], h["val_psnr"]) for h in history if h.get("val_psnr") is not None]
    if val:
        ax2.plot(*zip(*val), "o-", color="tab:blue", ms=3, label="validation PSNR")
    ax2.set_ylabel("validation PSNR (dB)", color="tab:blue")
    ax.set_title("Training")
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return Path(path)
