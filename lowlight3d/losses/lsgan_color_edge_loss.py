"""Least-squares GAN loss for the colour-edge discriminator, eq. (14) (``docs/method.md`` section 3.3).

Eq. (14): ``L_adv = E[(D(I_u^s, I_p^gt) - 1)^2]`` with ``D`` NeRCo's dual-channel colour-edge discriminator
(:class:`~lowlight3d.archs.color_edge_discriminator_arch.ColorEdgeDiscriminator`), real samples normal-light
images, fake samples the student's enhanced unpaired images.  Following NeRCo (``docs/baselines.md`` section 9):

* generator: ``loss_weight * [MSE(D_colour(fake), 1) + edge_weight * MSE(D_edge(E(fake)), 1)]``;
* discriminator, per call: ``MSE(D_colour(x), t) + MSE(D_edge(E(x)), t)`` with ``t`` = 1 (real) or 0 (fake),
  without ``loss_weight``; the caller averages the halves, ``0.5 * (real + fake)``, as NeRCo does.

NeRCo's code bug, fixed here by construction: its generator step feeds the *raw RGB* fake to the edge
discriminator, which was trained on edge maps, so D and G see different input domains.  ``ColorEdgeDiscriminator``
computes ``E(x)`` inside its ``forward``, so the edge branch sees ``E(fake)`` in both the D and G steps.
"""
import torch.nn.functional as F
from torch import nn

from lowlight3d.utils.registry import LOSS_REGISTRY, register

__all__ = ['ColorEdgeLSGANLoss']


@register(LOSS_REGISTRY)
class ColorEdgeLSGANLoss(nn.Module):
    """LSGAN loss (MSE to 1 for real, 0 for fake) on the two score maps of ``ColorEdgeDiscriminator``.

    Args:
        loss_weight (float): Multiplier of the generator loss (the paper's ``l2 = 0.01``); not applied to the
            discriminator loss.
        edge_weight (float): Weight of the edge branch in the generator loss (NeRCo 0.5).
    """

    def __init__(self, loss_weight=1.0, edge_weight=0.5):
        super().__init__()
        self.loss_weight, self.edge_weight = float(loss_weight), float(edge_weight)

    def forward(self, scores, target_is_real, is_disc=False):
        """Loss of one batch of scores.

        Args:
            scores (tuple[Tensor, Tensor]): ``(colour_scores, edge_scores)`` from ``ColorEdgeDiscriminator``.
            target_is_real (bool): Target 1 (real / generator step) or 0 (fake in the discriminator step).
            is_disc (bool): Discriminator loss (both branches weighted 1, no ``loss_weight``) or generator loss.

        Returns:
            Tensor: Scalar loss.
        """
        if not (isinstance(scores, (tuple, list)) and len(scores) == 2):
            raise ValueError('ColorEdgeLSGANLoss expects scores = (colour_scores, edge_scores) from '
                             f'ColorEdgeDiscriminator, got {type(scores).__name__}')
        colour, edge = scores
        target = 1.0 if target_is_real else 0.0
        l_colour = F.mse_loss(colour, colour.new_full(colour.shape, target))
        l_edge = F.mse_loss(edge, edge.new_full(edge.shape, target))
        if is_disc:
            return l_colour + l_edge
        return self.loss_weight * (l_colour + self.edge_weight * l_edge)
