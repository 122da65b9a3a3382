"""Agreement of our SSIM / MS-SSIM with skimage and pytorch-msssim, and speed.

Prints JSON: max absolute differences (scalar and map) in 2D and 3D, and the
seconds our torch implementation takes for a 256^3 map on this machine.

    python benchmarks/quality_agreement.py
"""

import json
import time

import numpy as np
import torch
from pytorch_msssim import ms_ssim as ref_ms_ssim
from scipy import ndimage
from skimage.metrics import structural_similarity

from napari_resolve.measure import similarity as quality


def pair(shape, seed):
    rng = np.random.default_rng(seed)
    ref = ndimage.gaussian_filter(rng.random(shape), 2).astype(np.float32)
    pred = (ndimage.gaussian_filter(ref, 1) + rng.normal(0, 0.02, shape)).astype(np.float32)
    return pred, ref


def ssim_vs_skimage(shape, seed=0):
    pred, ref = pair(shape, seed)
    dr = float(ref.max() - ref.min())
    s_ref, m_ref = structural_similarity(
        pred.astype(np.float64), ref.astype(np.float64), gaussian_weights=True, sigma=1.5,
        use_sample_covariance=False, data_range=dr, full=True,
    )
    return {
        "shape": list(shape),
        "scalar_abs_diff": abs(quality.ssim(pred, ref, dr) - s_ref),
        "map_max_abs_diff": float(np.abs(quality.ssim_map(pred, ref, dr) - m_ref).max()),
    }


def ms_ssim_vs_pytorch_msssim(shape, seed=0):
    pred, ref = pair(shape, seed)
    dr = float(ref.max() - ref.min())
    ours = quality.ms_ssim(pred, ref, dr)
    theirs = float(ref_ms_ssim(torch.from_numpy(pred)[None, None], torch.from_numpy(ref)[None, None], data_range=dr))
    return {"shape": list(shape), "ours": ours, "pytorch_msssim": theirs, "abs_diff": abs(ours - theirs)}


def timing(shape=(256, 256, 256)):
    pred, ref = pair(shape, 1)
    quality.compare(pred[:32, :32, :32], ref[:32, :32, :32], 1.0)  # warm-up: first-call allocations
    out = {}
    jobs = (("ssim_map", quality.ssim_map), ("ms_ssim_map", quality.ms_ssim_map), ("compare", quality.compare))
    for name, fn in jobs:
        t = time.perf_counter()
        fn(pred, ref, 1.0)
        out[f"{name}_s"] = round(time.perf_counter() - t, 2)
    return {"shape": list(shape), "device": "cpu", "threads": torch.get_num_threads(), **out}


if __name__ == "__main__":
    import warnings

    warnings.simplefilter("ignore")  # the fewer-scales note for 3-scale volumes
    print(json.dumps({
        "ssim_vs_skimage": [ssim_vs_skimage((96, 120)), ssim_vs_skimage((32, 48, 56))],
        "ms_ssim_vs_pytorch_msssim": [ms_ssim_vs_pytorch_msssim((192, 200)),
                                      ms_ssim_vs_pytorch_msssim((168, 168, 168))],
        "speed": timing(),
    }, indent=2))
