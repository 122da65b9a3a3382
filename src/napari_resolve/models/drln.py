"""DRLN, the densely residual Laplacian network for super-resolution (Anwar & Barnes 2022).

The network the SEM study (docs/references.md, "DRLN on SEM 2021") evaluated
against interpolation. Structure, as in the paper:

* a head convolution;
* **cascading residual on the residual**: ``groups`` cascading blocks, each of
  ``modules`` densely residual Laplacian modules (DRLM); inside a block the
  modules are *densely* connected (each module's output is concatenated with
  everything before it in the block, and a 3x3 convolution with ReLU compresses
  the concatenation back to ``features`` channels for the next module); a
  *medium* skip adds each block's input to its output, and a *long* skip adds the
  head's features to the body's output;
* a **DRLM**: three residual units (``ReLU(x + conv3x3(ReLU(conv3x3(x))))``),
  densely connected (the second sees the input and the first's output, the
  third all three: ``features``, ``2 * features`` and ``4 * features``
  channels), a 1x1 convolution with ReLU from the ``8 * features``
  concatenation back to ``features``, and the **Laplacian attention**: per-channel
  weights in (0, 1) from average-pooled features through three 3x3
  convolutions of dilation 3, 5 and 7 in parallel (ReLU, each to ``features /
  reduction`` channels), concatenated, then a 3x3 convolution and a sigmoid; the
  module's features are multiplied by them;
* the reconstruction: a 3x3 convolution with ReLU (the original's upsampler
  without its pixel shuffle) and an output convolution.

Departures from the paper, and why:

* **No upsampler**: it works on the pre-upsampled LRES, like the other
  super-resolution networks here (EDSR, WDSR, DFCAN), on every slice or on stacks
  of ``slices`` neighbouring slices as input channels, and predicts the
  difference to the (centre slice of the) input; the output convolution starts at
  zero, so an untrained DRLN is the identity. No mean shift (the input is
  normalised).
* **Local attention statistics**: the paper pools each feature map over the
  whole image (global average), so its dilated convolutions see a 1x1 map and
  every output voxel depends on the whole image: tiles could not equal a whole
  pass (DFCAN's case). Here the statistics are ``pool`` x ``pool`` local means
  (stride 1), and the dilated convolutions then really combine them at three
  spatial scales, which is the Laplacian pyramid of the name; the network has a
  finite receptive radius and tiles exactly (tested). ``pool=0`` gives the
  paper's global average (then :attr:`DRLN.global_context` is true, and tiles
  are close to, not equal to, a whole pass).
* Cascading blocks of equal size (the paper's 20 modules come as 3, 3, 3, 3, 4, 4).
* Defaults sized for a CPU: ``features=8, groups=2, modules=2, reduction=2``
  (113 k parameters; 4 channels per attention branch, as the paper's 64 / 16);
  the paper's network is ``features=64``, 6 blocks of 3-4 modules,
  ``reduction=16`` (about 34 M parameters). The densely connected units run at
  up to 8 x ``features`` channels at full resolution, so DRLN costs more per
  parameter than EDSR: about 1.3 times EDSR's time per slice at these defaults.

Tiling. No downsampling (:attr:`DRLN.size_multiple` 1); with the local
attention the receptive radius is 91 at the defaults (each DRLM reaches 6 + 7 +
7 + 1 + 1 voxels: its convolutions, the local mean, the widest dilation, the
gate and the compressing convolution) and tiles equal a whole pass.

References
----------
.. [1] S. Anwar, N. Barnes, "Densely Residual Laplacian Super-Resolution",
   IEEE Transactions on Pattern Analysis and Machine Intelligence 44(3),
   1192-1204, 2022. https://doi.org/10.1109/TPAMI.2020.3021088
.. [2] "Application of Deep Learning Super Resolution Model to Scientific
   Images", Data Centered Leadership, 2021.
   https://datacenteredleadership.com/2021/10/04/application-of-deep-learning-super-resolution-model-to-scientific-images/
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from napari_resolve.errors import InputError
from napari_resolve.models.stack25d import SliceStackModel

#: Dilations of the Laplacian attention's three branches.
DILATIONS = (3, 5, 7)


def _conv(c_in: int, c_out: int, k: int = 3, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, k, padding=dilation * (k // 2), dilation=dilation)


class _ResidualUnit(nn.Module):
    """``ReLU(x + conv3x3(ReLU(conv3x3(x))))``."""

    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(_conv(c, c), nn.ReLU(inplace=True), _conv(c, c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.body(x))


class LaplacianAttention(nn.Module):
    """Per-channel weights from pooled features at three dilations (3, 5, 7)."""

    def __init__(self, features: int, reduction: int, pool: int):
        super().__init__()
        squeeze = max(1, features // reduction)
        self.pool = pool
        self.branches = nn.ModuleList(
            nn.Sequential(_conv(features, squeeze, 3, d), nn.ReLU(inplace=True)) for d in DILATIONS
        )
        self.gate = nn.Sequential(_conv(len(DILATIONS) * squeeze, features), nn.Sigmoid())

    def weights(self, h: torch.Tensor) -> torch.Tensor:
        if self.pool:
            stats = F.avg_pool2d(h, self.pool, stride=1, padding=self.pool // 2, count_include_pad=False)
        else:
            stats = h.mean(dim=(-2, -1), keepdim=True)
        """(n, features, y, x) weights in (0, 1), or (n, features, 1, 1) for the global average."""
        return self.gate(torch.cat([branch(stats) for branch in self.branches], dim=1))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h * self.weights(h)


class DRLM(nn.Module):
    """Densely residual Laplacian module: three densely connected residual units, 1x1 compression, attention."""

    def __init__(self, features: int, reduction: int, pool: int):
        super().__init__()
        c = features
        self.units = nn.ModuleList(_ResidualUnit(m * c) for m in (1, 2, 4))
        self.compress = nn.Sequential(_conv(8 * c, c, 1), nn.ReLU(inplace=True))
        self.attention = LaplacianAttention(c, reduction, pool)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for unit in self.units:
            x = torch.cat([x, unit(x)], dim=1)
        return self.attention(self.compress(x))


class _Cascade(nn.Module):
    """A cascading block: densely connected DRLMs, each followed by a compressing 3x3 convolution."""

    def __init__(self, features: int, modules: int, reduction: int, pool: int):
        super().__init__()
        c = features
        self.modules_ = nn.ModuleList(DRLM(c, reduction, pool) for _ in range(modules))
        self.joins = nn.ModuleList(
            nn.Sequential(_conv((i + 2) * c, c), nn.ReLU(inplace=True)) for i in range(modules)
        )

    def forward(self, a: torch.Tensor, o: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Block input ``a`` and the previous block's last compressed output ``o`` -> (a + o', o')."""
        dense, h = o, a
        for drlm, join in zip(self.modules_, self.joins):
            dense = torch.cat([dense, drlm(h)], dim=1)
            h = join(dense)
        return a + h, h


class DRLN(SliceStackModel):
    """DRLN on every slice (or stacks of slices), residual over the upsampled LRES.

    Parameters
    ----------
    slices : int
        Odd number of neighbouring slices per prediction, as input channels (1: 2D).
    features : int
        Feature channels (64 in the paper).
    groups : int
        Cascading blocks (6 in the paper).
    modules : int
        DRLMs per cascading block (3 or 4 in the paper).
    reduction : int
        Squeeze factor of the attention's dilated convolutions (16 in the paper).
    pool : int
        Odd window (voxels a side) of the local means the attention is computed
        from; 0: the paper's global average (tiles then differ slightly from a
        whole pass, see :attr:`global_context`).
    """

    name = "drln"

    def __init__(self, slices: int = 1, features: int = 8, groups: int = 2, modules: int = 2, reduction: int = 2,
                 pool: int = 15):
        super().__init__({"slices": slices, "features": features, "groups": groups, "modules": modules,
                          "reduction": reduction, "pool": pool})
        self._set_slices(slices)
        counts = {"features": features, "groups": groups, "modules": modules, "reduction": reduction}
        bad = {k: v for k, v in counts.items() if not (isinstance(v, int) and v >= 1)}
        if bad:
            raise InputError(f"drln: {', '.join(bad)} must be at least 1, got {bad}.")
        if not (isinstance(pool, int) and pool >= 0 and (pool == 0 or pool % 2 == 1)):
            raise InputError(f"drln: pool must be an odd window size, or 0 for the global average; got {pool!r}.")
        self.n_modules = groups * modules
        self.pool = pool
        c = features
        self.head = _conv(slices, c)
        self.cascades = nn.ModuleList(_Cascade(c, modules, reduction, pool) for _ in range(groups))
        self.reconstruct = nn.Sequential(_conv(c, c), nn.ReLU(inplace=True))
        self.out = _conv(c, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    @property
    def global_context(self) -> bool:
        """With ``pool=0`` (the paper's global average) the output depends on the whole slice."""
        return self.pool == 0

    @property
    def receptive_radius(self) -> tuple[int, int, int]:
        # Head 1; per DRLM the three residual units' six 3x3 convolutions (6), then
        # the attention's local mean (pool // 2), widest dilated convolution (7) and
        # gate (1), and the compressing 3x3 after it (1); reconstruction 1, output 1.
        # With pool=0 the attention is global and this is the convolutions' reach.
        per_module = 7 + (self.pool // 2 + max(DILATIONS) + 1 if self.pool else 0)
        r = 3 + self.n_modules * per_module
        return (0, r, r)

    def _net(self, x: torch.Tensor) -> torch.Tensor:
        h0 = self.head(x)
        a = o = h0
        for cascade in self.cascades:
            a, o = cascade(a, o)
        return self.out(self.reconstruct(a + h0))
