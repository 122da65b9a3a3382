"""MIMO-UNet (Cho et al. 2021): a multi-input multi-output U-Net for deblurring.

The deblurring network of Bizhani et al. 2022 (docs/references.md;
https://doi.org/10.1038/s41598-022-08170-8), its "MIMO-UNet+" (20 residual
blocks per stage), trained there with an L1 loss.

One U-Net does the work of a coarse-to-fine stack of networks:

* **multiple inputs**: the input at full, 1/2 and 1/4 resolution. The full one
  enters through a 3x3 convolution; each coarser one through a *shallow
  convolutional module* (SCM: 3x3, 1x1, 3x3 and 1x1 convolutions with ReLU,
  concatenated with the input itself, then a 1x1 convolution), which a *feature
  attention module* (FAM) merges into the encoder's features of that scale after
  their stride-2 convolution: ``e + conv3x3(e * s)``, so the image at that scale
  re-weights the features element by element;
* **encoder and decoder**: ``blocks`` residual blocks (``conv3x3-ReLU-conv3x3``
  plus the input) per scale, ``width``, ``2 * width`` and ``4 * width`` channels;
  the decoder goes up by transposed convolutions (4x4, stride 2);
* **asymmetric feature fusion** (AFF): the skip connection into each decoder
  scale is a 1x1 + 3x3 convolution over the encoder outputs of *all* scales
  resized to it (2x2 block means down, nearest-neighbour up), not only its own;
* **multiple outputs**: a 3x3 convolution from the decoder's features at 1/4
  and 1/2 resolution to a coarse prediction, each residual over the input at
  that scale, and the full-resolution one. Training compares every output with
  the target at its scale.

Departures from the paper, and why:

* On the pre-upsampled LRES, like every network here, on every slice or on
  stacks of ``slices`` neighbouring slices as input channels (2.5D; ``slices=1``
  is the paper's 2D network and the only choice for the ``deblur`` stage of
  :class:`~napari_resolve.models.multioutput.MultiOutput`); each output is
  added to the centre slice at its scale, and the three output convolutions
  start at zero, so an untrained MIMO-UNet returns its input at every scale.
* The coarse inputs are 2x2 and 4x4 block means of the input (the paper resizes
  the image), the same block means the training loop takes of the target for the
  coarse outputs; the AFF's downsampling is a 2x2 block mean too. Block means
  line up with the tiles (which start on multiples of 4), so tiling stays exact.
* The multi-scale content loss is the training loop's coarse-output loss
  (:meth:`MIMOUNet.forward_train` returns the 1/2 and 1/4 predictions as
  ``extras["coarse"]``, finest first, compared with the 2x2 and 4x4 block means of
  the target by the pixel term of the configured loss, weighted
  ``multiscale_weight``; the paper: L1 at every scale with weight 1, for the
  whole training, i.e. ``multiscale_until=1``; the default 0.5 drops them
  halfway). The paper's multi-scale *frequency* reconstruction loss (L1 between
  the FFTs, weight 0.1) is not there: the training loop has no such term.
  Inside a multi-output network the coarse outputs are not trained (the loop
  would compare them with the final target, not the deblurred one).
* Defaults sized for a CPU: ``width=8, blocks=2`` (about 130 k parameters). The
  paper's MIMO-UNet is ``width=32, blocks=8`` (6.8 M), MIMO-UNet+ ``width=32,
  blocks=20`` (16.1 M).

Tiling. Two stride-2 levels: :attr:`MIMOUNet.size_multiple` is 4 in y and x,
and with a margin of :attr:`MIMOUNet.receptive_radius` tiles equal a whole pass
(tested). No normalisation layers, no global statistics.

References
----------
.. [1] S.-J. Cho, S.-W. Ji, J.-P. Hong, S.-W. Jung, S.-J. Ko, "Rethinking
   Coarse-to-Fine Approach in Single Image Deblurring", Proceedings of the
   IEEE/CVF International Conference on Computer Vision (ICCV), 2021,
   pp. 4641-4650. https://doi.org/10.1109/ICCV48922.2021.00460
.. [2] M. Bizhani, O. Haeri Ardakani, E. Little, "Reconstructing high fidelity
   digital rock images using deep convolutional neural networks", Scientific
   Reports 12, 4264, 2022. https://doi.org/10.1038/s41598-022-08170-8
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from napari_resolve.errors import InputError
from napari_resolve.models.stack25d import SliceStackModel


def _conv(c_in: int, c_out: int, k: int = 3, stride: int = 1, relu: bool = True) -> nn.Module:
    conv = nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2)
    return nn.Sequential(conv, nn.ReLU(inplace=True)) if relu else conv


class _ResBlock(nn.Module):
    """``x + conv3x3(ReLU(conv3x3(x)))``."""

    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(_conv(c, c), _conv(c, c, relu=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def _stage(c: int, blocks: int) -> nn.Sequential:
    return nn.Sequential(*[_ResBlock(c) for _ in range(blocks)])


class ShallowConvModule(nn.Module):
    """SCM: the input at a coarse scale -> ``c`` feature channels."""

    def __init__(self, c_in: int, c: int):
        super().__init__()
        q = max(1, c // 4)
        h = max(1, c // 2)
        self.main = nn.Sequential(_conv(c_in, q), _conv(q, h, 1), _conv(h, h), _conv(h, c - c_in, 1))
        self.merge = _conv(c, c, 1, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.merge(torch.cat([x, self.main(x)], dim=1))


class FeatureAttention(nn.Module):
    """FAM: ``e + conv3x3(e * s)``, the encoder features ``e`` re-weighted by the SCM's ``s``."""

    def __init__(self, c: int):
        super().__init__()
        self.merge = _conv(c, c, relu=False)

    def forward(self, e: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return e + self.merge(e * s)


class _AFF(nn.Module):
    """Asymmetric feature fusion: 1x1 (ReLU) and 3x3 convolutions over the encoder outputs of all scales."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv = nn.Sequential(_conv(c_in, c_out, 1), _conv(c_out, c_out, relu=False))

    def forward(self, *features: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat(features, dim=1))


def _up(c_in: int, c_out: int) -> nn.Sequential:
    """The decoder's 2x upsampling: a 4x4 transposed convolution of stride 2 (ReLU)."""
    return nn.Sequential(nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1), nn.ReLU(inplace=True))


class MIMOUNet(SliceStackModel):
    """MIMO-UNet on every slice (or stacks of slices), residual over the upsampled LRES at three scales.

    Parameters
    ----------
    slices : int
        Odd number of neighbouring slices per prediction, as input channels (1: the
        paper's 2D network).
    width : int
        Feature channels at full resolution (32 in the paper); ``2 * width`` at
        1/2, ``4 * width`` at 1/4.
    blocks : int
        Residual blocks per encoder and decoder scale (8: MIMO-UNet, 20: MIMO-UNet+).
    """

    name = "mimo_unet"

    def __init__(self, slices: int = 1, width: int = 8, blocks: int = 2):
        super().__init__({"slices": slices, "width": width, "blocks": blocks})
        self._set_slices(slices)
        if not (isinstance(width, int) and width >= 2 and isinstance(blocks, int) and blocks >= 1):
            raise InputError(f"mimo_unet: width must be at least 2 and blocks at least 1, got {width!r}, {blocks!r}.")
        if 2 * width <= slices:
            raise InputError(f"mimo_unet: 2 * width must exceed slices (the coarse-input modules add features to "
                             f"the input's {slices} channels); got width {width}.")
        self.blocks = blocks
        c, k = width, slices
        self.head = _conv(k, c)
        self.enc1, self.enc2, self.enc3 = _stage(c, blocks), _stage(2 * c, blocks), _stage(4 * c, blocks)
        self.down1, self.down2 = _conv(c, 2 * c, 3, stride=2), _conv(2 * c, 4 * c, 3, stride=2)
        self.scm2, self.scm4 = ShallowConvModule(k, 2 * c), ShallowConvModule(k, 4 * c)
        self.fam2, self.fam4 = FeatureAttention(2 * c), FeatureAttention(4 * c)
        self.aff1, self.aff2 = _AFF(7 * c, c), _AFF(7 * c, 2 * c)
        self.dec3, self.dec2, self.dec1 = _stage(4 * c, blocks), _stage(2 * c, blocks), _stage(c, blocks)
        self.up3, self.up2 = _up(4 * c, 2 * c), _up(2 * c, c)
        self.merge2, self.merge1 = _conv(4 * c, 2 * c, 1, relu=False), _conv(2 * c, c, 1, relu=False)
        self.out = _conv(c, 1, relu=False)
        # The coarse outputs (training only): 1/2 and 1/4 resolution.
        self.out2, self.out4 = _conv(2 * c, 1, relu=False), _conv(4 * c, 1, relu=False)
        for conv in (self.out, self.out2, self.out4):  # zero residuals: the identity at every scale
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)

    @property
    def receptive_radius(self) -> tuple[int, int, int]:
        # In input voxels, conservative: a 3x3 convolution at stride s reaches s; a
        # stride-2 convolution from stride s reaches s further; a 4x4 transposed
        # convolution to stride s reaches 2 s. The longest path runs through the
        # bottom: head 1, encoder 2 * blocks, down 1, FAM 2, encoder 4 * blocks,
        # down 2, FAM 4, encoder and decoder 8 * blocks each, up 4, decoder
        # 4 * blocks, up 2, decoder 2 * blocks, output 1. The SCM and AFF paths are
        # shorter for blocks >= 1.
        r = 17 + 28 * self.blocks
        return (0, r, r)

    @property
    def size_multiple(self) -> tuple[int, int, int]:
        return (1, 4, 4)

    def _net(self, x: torch.Tensor) -> torch.Tensor:
        return self._net_scales(x, coarse=False)[0]

    def _net_scales(self, x: torch.Tensor, coarse: bool) -> list[torch.Tensor]:
        """The full-resolution residual, then (when ``coarse``) the 1/2 and 1/4 ones."""
        x2 = F.avg_pool2d(x, 2)
        x4 = F.avg_pool2d(x2, 2)
        e1 = self.enc1(self.head(x))
        e2 = self.enc2(self.fam2(self.down1(e1), self.scm2(x2)))
        e3 = self.enc3(self.fam4(self.down2(e2), self.scm4(x4)))
        skip2 = self.aff2(F.avg_pool2d(e1, 2), e2, F.interpolate(e3, scale_factor=2.0, mode="nearest"))
        skip1 = self.aff1(e1, F.interpolate(e2, scale_factor=2.0, mode="nearest"),
                          F.interpolate(e3, scale_factor=4.0, mode="nearest"))
        d3 = self.dec3(e3)
        d2 = self.dec2(self.merge2(torch.cat([self.up3(d3), skip2], dim=1)))
        d1 = self.dec1(self.merge1(torch.cat([self.up2(d2), skip1], dim=1)))
        outs = [self.out(d1)]
        if coarse:
            outs += [self.out2(d2), self.out4(d3)]
        return outs

    def forward_train(self, x: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """The output and the 1/2 and 1/4 resolution outputs (``extras["coarse"]``, finest first).

        Coarse prediction ``k - 1`` is residual over the ``2**k`` block mean of the
        input's centre slices and compared, in training, with the ``2**k`` block
        mean of the target.
        """
        base = self._centre(x)
        preds = self._net_scales(self._stacks(x), coarse=True)
        coarse = [self._assemble(F.avg_pool2d(base, 2**k), p) for k, p in enumerate(preds[1:], start=1)]
        return self._assemble(base, preds[0]), {"coarse": coarse}
