"""UHDformer's frequency loss (``docs/baselines.md`` section 3).

The official training objective is ``L1(out, gt) + 0.1 * FFTLoss(out, gt)``: BasicSR's ``L1Loss`` (weight 1) as
``train.pixel_opt`` plus :class:`FFTLoss` (weight 0.1) as ``train.fft_opt``.  The unused terms of the released
YAML (SSIM 0.25 never read, LPIPS / GAN / codebook / semantic at weight 0) are not implemented.
"""
import torch
from torch import nn

from lowlight3d.utils.registry import LOSS_REGISTRY, register

__all__ = ['fft_l1', 'FFTLoss']

_REDUCTIONS = ('mean', 'sum', 'none')


def fft_l1(pred, target, reduction='mean'):
    """L1 distance between the real and imaginary parts of the 2-D real FFTs of two images.

    ``rfft2`` over the last two dimensions with torch's default ("backward": unnormalised) scaling; the real and
    imaginary parts are stacked on a new last axis, so ``mean`` averages over ``N x C x H x (W//2+1) x 2`` numbers.

    Args:
        pred, target (Tensor): ``N x C x H x W`` of the same shape.
        reduction (str): ``mean`` | ``sum`` | ``none``.

    Returns:
        Tensor: The loss (``none``: ``N x C x H x (W//2+1) x 2``).
    """
    if pred.shape != target.shape:
        raise ValueError(f'UHDformer.FFTLoss: prediction {tuple(pred.shape)} and target {tuple(target.shape)} '
                         'differ in shape')
    p, t = torch.fft.rfft2(pred), torch.fft.rfft2(target)
    diff = (torch.stack([p.real, p.imag], dim=-1) - torch.stack([t.real, t.imag], dim=-1)).abs()
    if reduction == 'mean':
        return diff.mean()
    if reduction == 'sum':
        return diff.sum()
    return diff


@register(LOSS_REGISTRY, name='UHDformer.FFTLoss')
class FFTLoss(nn.Module):
    """``loss_weight * L1(real/imag parts of rfft2(pred), of rfft2(target))`` (official weight: 0.1).

    Args:
        loss_weight (float): Multiplier (0.1 in the official YAML). reduction (str): ``mean`` | ``sum`` | ``none``.
    """

    def __init__(self, loss_weight=0.1, reduction='mean'):
        super().__init__()
        if reduction not in _REDUCTIONS:
            raise ValueError(f'UHDformer.FFTLoss: reduction must be one of {_REDUCTIONS}, got {reduction!r}')
        self.loss_weight = float(loss_weight)
        self.reduction = reduction

    def forward(self, pred, target):
        """The weighted frequency L1 of ``pred`` against ``target``."""
        return self.loss_weight * fft_l1(pred, target, self.reduction)
