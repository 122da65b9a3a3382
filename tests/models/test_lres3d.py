"""The default network on the LRES grid: interpolation, the identity start, its tiling contract."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from napari_resolve.errors import InputError
from napari_resolve.models import DEFAULT_MODEL, build_model, interpolate
from napari_resolve.models.interpolate import MATRIX_CHUNK, axis_matrix, matrix_axis
from napari_resolve.models.lres3d import INTERP_REACH

SMALL = {"width": 4, "blocks": 1, "hidden": 4}


def randomise(model, seed=0, std=0.3):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std)
    return model


def test_it_is_the_default_model():
    assert DEFAULT_MODEL == "lres3d"
    assert build_model().input_grid == "lres"


def test_linear_interpolation_matches_scipy_nearest_edge_mode():
    rng = np.random.default_rng(0)
    a = rng.random((5, 6, 7)).astype(np.float32)
    pos = [np.linspace(-0.7, n - 0.2, 2 * n + 1) for n in a.shape]
    ours = interpolate.interpolate(torch.from_numpy(a)[None, None], [torch.from_numpy(p) for p in pos], "linear")
    zz, yy, xx = np.meshgrid(*pos, indexing="ij")
    ref = ndimage.map_coordinates(a, [zz, yy, xx], order=1, mode="nearest")
    np.testing.assert_allclose(ours[0, 0].numpy(), ref, atol=1e-5)


def test_cubic_interpolation_passes_through_the_samples_and_reproduces_quadratics():
    x = torch.arange(10, dtype=torch.float64)
    f = (0.3 * x**2 - x + 2)[None, None, None, None]
    at_samples = matrix_axis(f, 4, x[2:8], "cubic")
    np.testing.assert_allclose(at_samples[0, 0, 0, 0].numpy(), f[0, 0, 0, 0, 2:8].numpy(), atol=1e-12)
    p = torch.tensor([2.25, 3.5, 6.75], dtype=torch.float64)
    # Keys' kernel (a = -0.5) is exact for polynomials of degree 2.
    np.testing.assert_allclose(matrix_axis(f, 4, p, "cubic")[0, 0, 0, 0].numpy(), (0.3 * p**2 - p + 2).numpy(),
                               atol=1e-12)
    assert axis_matrix(p, 10, "cubic").sum(-1).sub(1).abs().max() < 1e-12  # every row's weights sum to 1


@pytest.mark.parametrize("mode", ["linear", "cubic"])
def test_per_sample_positions_equal_one_call_per_sample(mode):
    g = torch.randn(2, 3, 4, 5, 6)
    pos = torch.tensor([[0.2, 1.7, 4.9], [3.1, -0.5, 2.0]])
    both = matrix_axis(g, 4, pos, mode)
    for b in range(2):
        torch.testing.assert_close(both[b], matrix_axis(g[b : b + 1], 4, pos[b], mode)[0])


@pytest.mark.parametrize("mode", ["linear", "cubic"])
@pytest.mark.parametrize("dim", [1, 2, 3])
def test_band_limited_chunks_equal_one_dense_product_on_a_long_axis(mode, dim, monkeypatch):
    """Several chunks of positions (each over its own band of input voxels), positions past
    both edges, shared and per-sample positions, any axis of a channels-last tensor."""
    g = torch.randn(2, 40, 41, 42, 3, dtype=torch.float64)
    n = g.shape[dim]
    shared = torch.linspace(-1.2, n + 0.4, 3 * MATRIX_CHUNK + 7, dtype=torch.float64)
    for pos in (shared, torch.stack([shared, shared.flip(0) - 0.3])):
        chunked = matrix_axis(g, dim, pos, mode)
        with monkeypatch.context() as m:
            m.setattr(interpolate, "MATRIX_CHUNK", 10**6)
            torch.testing.assert_close(chunked, matrix_axis(g, dim, pos, mode))


@pytest.mark.parametrize("refine", [0, 4])
def test_untrained_network_is_cubic_interpolation(refine):
    net = build_model("lres3d", **SMALL, refine=refine).eval()
    x = torch.randn(1, 9, 10, 11)
    pos = [torch.arange(3 * n, dtype=torch.float32) / 3 - 1 / 3 for n in x.shape[1:]]
    with torch.no_grad():
        out = net(x, pos)
        ref = interpolate.interpolate(x[:, None], pos, "cubic")[:, 0]
    assert out.shape == (1, 27, 30, 33)
    torch.testing.assert_close(out, ref)
    # The middle of each group of three output voxels is the LRES voxel centre itself.
    torch.testing.assert_close(out[0, 1::3, 1::3, 1::3], x[0])


@pytest.mark.parametrize("refine", [0, 4])
def test_chunked_inference_equals_one_pass_and_training_mode(refine):
    net = randomise(build_model("lres3d", **SMALL, refine=refine)).eval()
    x = torch.randn(1, 12, 8, 8)
    pos = [torch.arange(36, dtype=torch.float32) / 3 - 0.4, torch.arange(20) / 2.5, torch.arange(20) / 2.5]
    with torch.no_grad():
        chunked = net(x, pos)  # 36 output slices > HEAD_SLICES: slab by slab
        net.train()
        whole = net(x, pos)
    torch.testing.assert_close(chunked, whole, atol=1e-5, rtol=1e-5)


def test_nothing_beyond_the_declared_reach_changes_an_output_voxel():
    net = randomise(build_model("lres3d", **SMALL, refine=0), seed=2).eval()  # the refinement: tested in tiles
    r = net.receptive_radius[0]
    n = 2 * (r + 4) + 1
    x = torch.randn(1, n, n, n)
    c = n // 2
    p = torch.tensor([c + 0.4])  # floor(p) = c: features of c and c + 1 (radius r), cubic taps c - 1 .. c + 2
    lo, hi = c - r, c + 1 + r
    assert lo >= c - INTERP_REACH[0] - r and hi <= c + INTERP_REACH[1] + r  # inside the halo inference reads
    with torch.no_grad():
        ref = net(x, [p, p, p])
        for axis in range(3):
            for k, expect_change in ((lo - 1, False), (hi + 1, False), (lo, True), (hi, True)):
                y = x.clone()
                index = [c, c, c]
                index[axis] = k
                y[(0, *index)] += 5.0
                changed = float((net(y, [p, p, p]) - ref).abs().max()) > 1e-6
                assert changed == expect_change, (axis, k)


def test_bad_settings_and_inputs_are_refused():
    with pytest.raises(InputError, match="width"):
        build_model("lres3d", width=0)
    with pytest.raises(InputError, match="blocks"):
        build_model("lres3d", blocks=10**6)
    with pytest.raises(InputError, match="batch, z, y, x"):
        build_model("lres3d", **SMALL)(torch.randn(4, 4, 4), [torch.zeros(1)] * 3)
