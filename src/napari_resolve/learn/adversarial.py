"""Adversarial training of networks with a discriminator (:class:`~napari_resolve.models.pix2pix.Pix2Pix`).

The training loop's optimiser steps the generator on its training loss plus the
adversarial term of :meth:`Adversary.generator_term`; :meth:`Adversary.step` then
steps the discriminator with its own optimiser (pix2pix's alternating updates,
vanilla GAN loss on logits, Adam with beta1 = 0.5 as in the paper).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class Adversary:
    """The discriminator side of a GAN-trained network: its optimiser and its two losses.

    Parameters
    ----------
    net : Pix2Pix
        A network with ``discriminator``, ``adv_weight`` and ``condition_pairs``.
    learning_rate : float
        The discriminator's Adam learning rate (the generator's).
    """

    def __init__(self, net, learning_rate: float):
        self.net = net
        self.optimiser = torch.optim.Adam(net.discriminator.parameters(), lr=learning_rate, betas=(0.5, 0.999))

    def generator_term(self, x: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
        """``adv_weight`` times the generator's adversarial loss: how far the discriminator is from
        taking ``pred`` for real (float32, outside autocast)."""
        d = self.net.discriminator
        d.requires_grad_(False)  # the gradient goes to the generator only: no discriminator gradients to discard
        try:
            logits = d(self.net.condition_pairs(x.float(), pred.float()))
        finally:
            d.requires_grad_(True)
        return self.net.adv_weight * F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))

    def step(self, x: torch.Tensor, pred: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
        """One discriminator step on a real and a generated batch; returns its loss and how often
        it was right (``loss_disc``, ``disc_accuracy``) for the training record."""
        d, pairs = self.net.discriminator, self.net.condition_pairs
        real = d(pairs(x.float(), target.float()))
        fake = d(pairs(x.float(), pred.detach().float()))
        loss = 0.5 * (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
                      + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))
        self.optimiser.zero_grad(set_to_none=True)
        loss.backward()
        self.optimiser.step()
        right = ((real > 0).float().mean() + (fake < 0).float().mean()) / 2
        return {"loss_disc": float(loss.detach()), "disc_accuracy": float(right)}


def make_adversary(net, learning_rate: float) -> Adversary | None:
    """The :class:`Adversary` of a network that has a discriminator, None for any other."""
    return Adversary(net, learning_rate) if hasattr(net, "discriminator") else None
