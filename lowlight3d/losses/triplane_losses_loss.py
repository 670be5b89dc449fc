"""Losses of the 3D feature generator (``docs/prior3d.md`` section 3.4).

Each is switched on by its ``train.<name>_opt`` block in :class:`~lowlight3d.models.triplane_generator_model.
TriplaneGeneratorModel`; the model calls them with the arguments documented on each ``forward``.
"""
import torch
from torch import nn

from lowlight3d.utils.registry import LOSS_REGISTRY, register

__all__ = ['MaskedDepthLoss', 'DensitySmoothnessLoss', 'OpacityMaskLoss', 'TriplaneRegularizerLoss']


@register(LOSS_REGISTRY)
class MaskedDepthLoss(nn.Module):
    """L1 between rendered and target z-depth inside a mask, optionally after a per-image scale/shift fit.

    Args:
        loss_weight (float): Weight.
        fit (str): ``'none'`` (metric depth, e.g. the demo faces' exact depth) or ``'scale_shift'`` (least-squares
            ``s * target + b`` per image, for relative depth such as FaceMesh's).
    """

    def __init__(self, loss_weight=1.0, fit='none'):
        super().__init__()
        if fit not in ('none', 'scale_shift'):
            raise ValueError(f"MaskedDepthLoss.fit must be 'none' or 'scale_shift', got {fit!r}")
        self.loss_weight, self.fit = float(loss_weight), fit

    def forward(self, pred, target, mask):
        """``pred``, ``target``, ``mask``: ``(B, 1, H, W)``; images with an empty mask contribute 0."""
        b = pred.shape[0]
        p, t, m = pred.reshape(b, -1), target.reshape(b, -1), mask.reshape(b, -1)
        count = m.sum(1)
        if self.fit == 'scale_shift':
            with torch.no_grad():
                n = count.clamp_min(1)
                mt, mp = (t * m).sum(1) / n, (p * m).sum(1) / n
                var = (((t - mt[:, None])**2) * m).sum(1) / n
                cov = ((t - mt[:, None]) * (p - mp[:, None]) * m).sum(1) / n
                s = (cov / var.clamp_min(1e-8)).clamp_min(1e-3)
                t = s[:, None] * t + (mp - s * mt)[:, None]
        per_image = ((p - t).abs() * m).sum(1) / count.clamp_min(1)
        return self.loss_weight * per_image.mean()


@register(LOSS_REGISTRY)
class DensitySmoothnessLoss(nn.Module):
    """EG3D's density regulariser: ``mean |sigma_raw(p) - sigma_raw(p + eps)|`` on random points.

    Args:
        loss_weight (float): Weight (EG3D 0.25).
        num_points (int): Random points per image, uniform in ``[-extent, extent]^3`` (EG3D 1000, extent 1).
        extent (float): Half side of the sampling cube (world units).
        perturbation (float): Std of ``eps`` (EG3D 0.004).
        every (int): Apply on every ``every``-th iteration (EG3D 4).
    """

    def __init__(self, loss_weight=0.25, num_points=1000, extent=1.0, perturbation=0.004, every=4):
        super().__init__()
        self.loss_weight, self.num_points, self.extent = float(loss_weight), int(num_points), float(extent)
        self.perturbation, self.every = float(perturbation), max(1, int(every))

    def points(self, batch, device):
        """``(p, p + eps)`` of shape ``(B, num_points, 3)`` (torch's global RNG)."""
        p = (torch.rand(batch, self.num_points, 3, device=device) * 2 - 1) * self.extent
        return p, p + torch.randn_like(p) * self.perturbation

    def forward(self, sigma_a, sigma_b):
        """Raw densities at ``p`` and ``p + eps``."""
        return self.loss_weight * (sigma_a - sigma_b).abs().mean()


@register(LOSS_REGISTRY)
class OpacityMaskLoss(nn.Module):
    """Binary cross-entropy of the accumulated opacity against the foreground mask (1 on the face, 0 outside).

    Args:
        loss_weight (float): Weight.
        inside_only (bool): Only push the opacity to 1 inside the mask (no background term), as in the design note.
    """

    def __init__(self, loss_weight=0.1, inside_only=False):
        super().__init__()
        self.loss_weight, self.inside_only = float(loss_weight), bool(inside_only)

    def forward(self, opacity, mask):
        """``opacity``, ``mask``: ``(B, 1, H, W)``.  Computed in float32: under bf16 autocast ``1 - 1e-4`` rounds
        to 1, ``log(1 - o)`` is ``-inf`` and ``0 * -inf`` made the loss NaN."""
        o, mask = opacity.float().clamp(1e-4, 1 - 1e-4), mask.float()
        bce = -(mask * torch.log(o) + (1 - mask) * torch.log(1 - o))
        if self.inside_only:
            return self.loss_weight * (bce * mask).sum() / mask.sum().clamp_min(1)
        return self.loss_weight * bce.mean()


@register(LOSS_REGISTRY)
class TriplaneRegularizerLoss(nn.Module):
    """Total variation and mean-square magnitude of the tri-planes (keeps them smooth and "diffusable").

    Args:
        tv_weight (float): Weight of the total variation (design note 1e-3).
        l2_weight (float): Weight of the mean square (design note 1e-4).
    """

    def __init__(self, tv_weight=1e-3, l2_weight=1e-4):
        super().__init__()
        self.tv_weight, self.l2_weight = float(tv_weight), float(l2_weight)

    def forward(self, planes):
        """``planes``: ``(B, 3, C, R, R)``."""
        tv = (planes[..., 1:, :] - planes[..., :-1, :]).abs().mean() + (planes[..., 1:] - planes[..., :-1]).abs().mean()
        return self.tv_weight * tv + self.l2_weight * planes.pow(2).mean()
