"""The default network: a 2.5D U-Net, residual over the upsampled LRES.

After DeepNet 2024 (docs/references.md; https://doi.org/10.1515/mim-2024-0017) (2.2): a stack of ``slices``
neighbouring slices of the pre-upsampled LRES goes in as channels, and the centre
slice (``out="centre"``) or the whole stack (``out="stack"``, averaged over the
overlapping stacks) comes out. The network predicts the *difference* to the
upsampled input, which trains far faster than predicting the image itself.

No batch, instance or group normalisation: statistics taken over a tile make
tiled inference show seams, and the patches here are small anyway.

``multiscale=k`` adds the coarse output branches of MDCNN
(Wang et al. 2018, docs/references.md; https://arxiv.org/abs/1810.12183): 1x1 convolutions from the decoder
features at 1/2, 1/4 ... resolution to coarse predictions, which the training
loop compares with the block-averaged HRES so that the low frequencies are
matched early. They exist only for training: in eval mode the network computes
and returns the full-resolution output alone, so inference, tiling and the
receptive radius are those of the plain U-Net.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from napari_resolve.errors import InputError
from napari_resolve.models.base import ResolutionModel


def _block(c_in: int, c_out: int, n_convs: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(n_convs):
        layers += [nn.Conv2d(c_in if i == 0 else c_out, c_out, 3, padding=1), nn.LeakyReLU(0.1, inplace=True)]
    return nn.Sequential(*layers)


class UNet25D(ResolutionModel):
    """2.5D U-Net: ``slices`` neighbouring slices in, the centre slice or the stack out.

    Parameters
    ----------
    slices : int
        Odd number of neighbouring slices seen per prediction (1 = plain 2D).
    width : int
        Feature channels at full resolution; doubled at every level down.
    depth : int
        Number of 2x poolings (0 to 4).
    convs : int
        3x3 convolutions per level.
    out : {"centre", "stack"}
        Predict the centre slice, or every slice of the stack and average the
        predictions of overlapping stacks (smoother along z, ``slices`` times the
        output work).
    multiscale : int
        Number of coarse output branches (0 to ``depth``), at 1/2, 1/4 ... of the
        in-plane resolution, for multi-scale training (MDCNN): :meth:`forward_train`
        returns their predictions as ``extras["coarse"]``, finest first;
        prediction ``k - 1`` is shaped like the output with ``y`` and ``x``
        divided by ``2**k`` and is residual over the ``2**k`` block average of
        the input, so it is compared with the ``2**k`` block average of the
        target. :meth:`forward` never computes them. 0: the plain U-Net.
    """

    name = "unet25d"

    def __init__(
        self,
        slices: int = 5,
        width: int = 24,
        depth: int = 2,
        convs: int = 2,
        out: str = "centre",
        multiscale: int = 0,
    ):
        super().__init__(
            {"slices": slices, "width": width, "depth": depth, "convs": convs, "out": out, "multiscale": multiscale}
        )
        if slices < 1 or slices % 2 == 0:
            raise InputError(f"unet25d: slices must be an odd number >= 1, got {slices}.")
        if not 0 <= depth <= 4 or width < 1 or convs < 1:
            raise InputError(f"unet25d: need 0 <= depth <= 4, width >= 1, convs >= 1; got {depth}, {width}, {convs}.")
        if out not in ("centre", "stack"):
            raise InputError(f"unet25d: out must be 'centre' or 'stack', got {out!r}.")
        if not 0 <= multiscale <= depth:
            raise InputError(
                f"unet25d: multiscale must be between 0 and depth ({depth}): one coarse output per pooling "
                f"level; got {multiscale}."
            )
        self.slices, self.depth, self.convs, self.out, self.multiscale = slices, depth, convs, out, multiscale
        widths = [width * 2**level for level in range(depth + 1)]
        self.down = nn.ModuleList()
        c = slices
        for w in widths[:-1]:
            self.down.append(_block(c, w, convs))
            c = w
        self.pool = nn.MaxPool2d(2)
        self.bottom = _block(c, widths[-1], convs)
        self.up = nn.ModuleList()
        self.merge = nn.ModuleList()
        for w_skip, w_low in zip(reversed(widths[:-1]), reversed(widths[1:])):
            # Nearest upsampling + 3x3 convolution: no checkerboard artefacts of
            # transposed convolutions.
            self.up.append(
                nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(w_low, w_skip, 3, padding=1))
            )
            self.merge.append(_block(2 * w_skip, w_skip, convs))
        self.head = nn.Conv2d(widths[0], slices if out == "stack" else 1, 1)
        # Start as the identity map (zero residual): training then only has to
        # learn the correction to the upsampled input.
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        # Created after everything else, and only when asked for: with the same
        # seed the shared layers start from the same weights with or without them,
        # and multiscale=0 has exactly the plain U-Net's modules and state dict.
        if multiscale:
            # coarse_heads[k - 1] reads the decoder features at 1/2**k: the output of
            # merge[depth - 1 - k], or the bottom block for k == depth.
            self.coarse_heads = nn.ModuleList(
                nn.Conv2d(widths[k], self.head.out_channels, 1) for k in range(1, multiscale + 1)
            )
            for head in self.coarse_heads:  # zero residual: each starts as the block-averaged input
                nn.init.zeros_(head.weight)
                nn.init.zeros_(head.bias)

    @property
    def trim_z(self) -> int:
        h = self.slices // 2
        return 2 * h if self.out == "stack" else h

    @property
    def receptive_radius(self) -> tuple[int, int, int]:
        # Each 3x3 conv at stride s adds s; a 2x2 pool and a nearest 2x upsample
        # at stride s add s each (conservative).
        r = 0
        for level in range(self.depth):
            s = 2**level
            r += 2 * self.convs * s + s + 2 * s  # encoder + decoder convs, pool, upsample conv
        r += self.convs * 2**self.depth
        return (0, r, r)

    @property
    def size_multiple(self) -> tuple[int, int, int]:
        return (1, 2**self.depth, 2**self.depth)

    def _net(self, x: torch.Tensor) -> torch.Tensor:
        return self._net_scales(x, coarse=False)[0]

    def _net_scales(self, x: torch.Tensor, coarse: bool) -> list[torch.Tensor]:
        """The full-resolution residual, then (when ``coarse``) the coarse ones, finest first."""
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottom(x)
        # features[k]: the decoder's features at 1/2**k (the bottom block at k == depth).
        features = {self.depth: x}
        for level, (up, merge, skip) in enumerate(zip(self.up, self.merge, reversed(skips))):
            x = merge(torch.cat([up(x), skip], dim=1))
            features[self.depth - 1 - level] = x
        outs = [self.head(x)]
        if coarse:
            outs += [head(features[k]) for k, head in enumerate(self.coarse_heads, start=1)]
        return outs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stacks = self._stacks(x)
        return self._assemble(x, self._net_scales(stacks, coarse=False)[0])

    def forward_train(self, x: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """The output and, with ``multiscale`` > 0, the coarse outputs (``extras["coarse"]``)."""
        if not self.multiscale:
            return self(x), {}
        preds = self._net_scales(self._stacks(x), coarse=True)
        # Each coarse prediction is residual over the input block-averaged like the
        # target it is compared with (slice-wise 2**k x 2**k means, aligned with the
        # pooling windows): untrained it equals the block average of the untrained
        # full-resolution output, and what it learns is the block average of the
        # full-resolution correction, i.e. its low frequencies.
        coarse = [self._assemble(F.avg_pool2d(x, 2**s), p) for s, p in enumerate(preds[1:], start=1)]
        return self._assemble(x, preds[0]), {"coarse": coarse}

    def _stacks(self, x: torch.Tensor) -> torch.Tensor:
        """(b, z, y, x) -> (b * n, slices, y, x): one 2D sample per stack of neighbouring slices, checked."""
        b, z, y, w = x.shape
        k, h = self.slices, self.slices // 2
        n = z - 2 * h  # number of stacks
        if n < 1 or z - 2 * self.trim_z < 1:
            raise InputError(f"unet25d needs at least {2 * self.trim_z + 1} slices per block, got {z}.")
        m = 2**self.depth
        if y % m or w % m:
            raise InputError(f"unet25d with depth {self.depth} needs y and x multiples of {m}, got {y} x {w}.")
        # (b, n, y, x, k) -> (b * n, k, y, x)
        return x.unfold(1, k, 1).permute(0, 1, 4, 2, 3).reshape(b * n, k, y, w)

    def _assemble(self, x: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
        """Input block (b, z, y, x) plus the stacks' residuals (b * n, c, y, x) -> output."""
        b, z, y, w = x.shape
        k, h = self.slices, self.slices // 2
        n = z - 2 * h
        if self.out == "centre":
            return x[:, h : z - h] + pred.reshape(b, n, y, w)
        pred = pred.reshape(b, n, k, y, w)
        # Output slice s collects stack s - j's j-th slice; keep slices that all k
        # stacks cover, so the average does not depend on where a block ends.
        z_out = z - 4 * h
        acc = sum(pred[:, 2 * h - j : 2 * h - j + z_out, j] for j in range(k))
        return x[:, 2 * h : 2 * h + z_out] + acc / k
