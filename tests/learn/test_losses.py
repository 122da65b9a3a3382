"""Training losses (napari_resolve.learn.losses): the slice-wise (MS-)SSIM agrees with the
reported measurements, the losses are what they say, and they can be optimised."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from napari_resolve.errors import InputError
from napari_resolve.learn.losses import LOSSES, make_loss, ms_ssim_2d, ssim_2d
from napari_resolve.measure.similarity import ms_ssim, ssim


def pair(seed=0, shape=(2, 3, 52, 44), noise=0.05):
    """A smooth (batch, z, y, x) target in [0, 1] (40 x 48 slices) and a noisy prediction."""
    g = torch.Generator().manual_seed(seed)
    target = F.avg_pool2d(torch.rand(shape, generator=g), 5, 1)
    return target + noise * torch.randn(target.shape, generator=g), target


def per_slice(fn, pred, target):
    p = pred.numpy().reshape(-1, *pred.shape[-2:])
    t = target.numpy().reshape(-1, *target.shape[-2:])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MS-SSIM on small slices warns that it uses fewer scales
        return float(np.mean([fn(a, b, data_range=1.0) for a, b in zip(p, t)]))


def test_ssim_loss_is_the_mean_of_the_measured_slice_ssims():
    pred, target = pair()
    value = float(ssim_2d(pred, target))
    assert value == pytest.approx(per_slice(ssim, pred, target), abs=1e-5)
    assert 0.3 < value < 0.95  # a real comparison, neither identical nor unrelated
    assert float(ssim_2d(target, target)) == pytest.approx(1.0, abs=1e-6)


def test_ms_ssim_loss_is_the_mean_of_the_measured_slice_ms_ssims():
    pred, target = pair(seed=1)
    assert float(ms_ssim_2d(pred, target)) == pytest.approx(per_slice(ms_ssim, pred, target), abs=1e-5)
    # Unchanged by the refactoring that shares its SSIM terms with the SSIM loss.
    g = torch.Generator().manual_seed(0)
    a = torch.rand(2, 3, 48, 40, generator=g)
    b = a + 0.1 * torch.randn(2, 3, 48, 40, generator=g)
    assert float(ms_ssim_2d(a, b)) == pytest.approx(0.938508927822113, abs=1e-6)
    assert float(ms_ssim_2d(a[:, :, :20, :20], b[:, :, :20, :20])) == pytest.approx(0.9408917427062988, abs=1e-6)


def test_mse_plus_ssim_is_mse_plus_the_weighted_ssim_term():
    assert "mse+ssim" in LOSSES
    pred, target = pair(seed=2)
    mse = F.mse_loss(pred, target)
    s = ssim_2d(pred, target)
    assert float(make_loss("mse+ssim")(pred, target)) == pytest.approx(float(mse + 0.1 * (1 - s)), rel=1e-6)
    assert float(make_loss("mse+ssim", ssim_weight=2.5)(pred, target)) == pytest.approx(
        float(mse + 2.5 * (1 - s)), rel=1e-6
    )
    assert float(make_loss("mse+ssim", ssim_weight=0)(pred, target)) == pytest.approx(float(mse), rel=1e-6)
    assert float(make_loss("mse+ssim")(target, target)) == pytest.approx(0.0, abs=1e-6)


def test_the_ssim_term_prefers_kept_structure_at_equal_mse():
    """A grey-level offset and noise of the same MSE: plain MSE cannot tell them
    apart, the SSIM term prefers the prediction whose structure is intact."""
    _, target = pair(seed=3)
    offset = target + 0.05
    g = torch.Generator().manual_seed(4)
    noise = torch.randn(target.shape, generator=g)
    noisy = target + 0.05 * noise / noise.square().mean().sqrt()
    mse, mix = make_loss("mse"), make_loss("mse+ssim")
    assert float(mse(offset, target)) == pytest.approx(float(mse(noisy, target)), rel=1e-4)
    assert float(mix(offset, target)) < float(mix(noisy, target)) - 0.01


def test_losses_can_be_optimised():
    _, target = pair(seed=5)
    g = torch.Generator().manual_seed(6)
    for name in ("mse+ssim", "l1+msssim"):
        pred = (target + 0.2 * torch.randn(target.shape, generator=g)).requires_grad_(True)
        loss_fn = make_loss(name)
        opt = torch.optim.Adam([pred], lr=0.01)
        with torch.no_grad():
            first = float(loss_fn(pred, target))
        for _ in range(30):
            opt.zero_grad()
            loss = loss_fn(pred, target)
            loss.backward()
            assert torch.isfinite(pred.grad).all()
            opt.step()
        with torch.no_grad():
            assert float(loss_fn(pred, target)) < 0.5 * first, name


def test_loss_errors():
    with pytest.raises(InputError, match="mse\\+ssim"):
        make_loss("ssim")  # the message lists the losses
    with pytest.raises(InputError, match="ssim_weight"):
        make_loss("mse+ssim", ssim_weight=-0.1)
    with pytest.raises(InputError, match="msssim_weight"):
        make_loss("l1+msssim", msssim_weight=1.5)
    small = torch.zeros(1, 1, 10, 32)
    with pytest.raises(InputError, match="larger than 10"):
        make_loss("mse+ssim")(small, small)
    with pytest.raises(InputError):
        make_loss("l1+msssim")(small, small)
