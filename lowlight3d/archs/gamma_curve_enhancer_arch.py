"""A non-learned reference of the real-face benchmark: one gamma curve per image, chosen to reach a target brightness.

For each image ``x`` in ``[0, 1]`` the output is ``x ** gamma`` with the **same** ``gamma`` on every channel (a gray
input stays gray, hues are kept), where ``gamma`` is solved so that the mean luma of the output equals
``target_mean``:

    mean over pixels of  0.299 * R**gamma + 0.587 * G**gamma + 0.114 * B**gamma  ==  target_mean

(Rec. 601 luma weights on the gamma-encoded values, the ``Y`` of OpenCV's ``COLOR_RGB2GRAY``; a 1-channel input
uses its channel, other channel counts the channel mean).  The left side decreases monotonically with ``gamma``
(for values in ``(0, 1)``), so ``log gamma`` is found by bisection inside ``gamma_range``: 40 halvings of
``log(50 / 0.02)`` leave an error below ``1e-11`` in ``log gamma``, far below the ``1e-3`` needed on the mean.

Limits, by construction:

* Pixels at exactly 0 stay 0 and pixels at 1 stay 1, whatever ``gamma``; an image with many pure black pixels may
  not be able to reach the target: ``gamma`` then stops at ``gamma_range[0]`` (as bright as allowed).  Likewise an
  image brighter than the target that is mostly saturated stops at ``gamma_range[1]``.
* An all-black image (or any image whose mean luma cannot move) is returned unchanged.

The default ``target_mean`` of 0.45 is a neutral mid-tone for faces; the real-face benchmark sets it to the mean
luma of its UTKFace training ground truths (``options/real/test_GammaCurve_real.yml``, measured by
``scripts/prepare_real_faces.py``), i.e. the brightness a learned method is taught to produce.

The network has no parameters: it needs no training and no weight file.
"""
import math

import torch
from torch import nn

from lowlight3d.utils.luma import LUMA_WEIGHTS
from lowlight3d.utils.registry import ARCH_REGISTRY, register

__all__ = ['GammaCurveEnhancer', 'LUMA_WEIGHTS']


@register(ARCH_REGISTRY)
class GammaCurveEnhancer(nn.Module):
    """Per-image gamma curve ``x ** gamma`` with ``gamma`` solved so the output's mean luma is ``target_mean``.

    Args:
        target_mean (float): Mean luma of the output, in ``(0, 1)`` (default 0.45).
        gamma_range (Sequence[float]): ``[low, high]`` bounds of ``gamma``, ``0 < low <= 1 <= high``.
        iterations (int): Bisection steps on ``log gamma`` (default 40).
    """

    def __init__(self, target_mean=0.45, gamma_range=(0.02, 50.0), iterations=40):
        super().__init__()
        target_mean = float(target_mean)
        if not 0.0 < target_mean < 1.0:
            raise ValueError(f'GammaCurveEnhancer: target_mean must be in (0, 1), got {target_mean} '
                             '(network_g.target_mean in the option file)')
        if not isinstance(gamma_range, (list, tuple)) or len(gamma_range) != 2:
            raise ValueError(f'GammaCurveEnhancer: gamma_range must be a [low, high] pair, got {gamma_range!r}')
        low, high = float(gamma_range[0]), float(gamma_range[1])
        if not 0.0 < low <= 1.0 <= high:
            raise ValueError(f'GammaCurveEnhancer: gamma_range must satisfy 0 < low <= 1 <= high, got {gamma_range!r}')
        if int(iterations) < 1:
            raise ValueError(f'GammaCurveEnhancer: iterations must be >= 1, got {iterations}')
        self.target_mean = target_mean
        self.gamma_range = (low, high)
        self.iterations = int(iterations)

    def extra_repr(self):
        """Options shown by ``print(net)``."""
        return f'target_mean={self.target_mean}, gamma_range={self.gamma_range}, iterations={self.iterations}'

    @staticmethod
    def _weights(x):
        """Per-channel luma weights (1, C, 1, 1) for ``x`` (N, C, H, W)."""
        c = x.shape[1]
        if c == 3:
            w = torch.tensor(LUMA_WEIGHTS, dtype=x.dtype, device=x.device)
        else:
            w = torch.full((c, ), 1.0 / c, dtype=x.dtype, device=x.device)
        return w.view(1, c, 1, 1)

    @staticmethod
    def mean_luma(x):
        """Mean luma of each image of ``x`` (N, C, H, W) in ``[0, 1]``; returns a tensor of N values."""
        return (x * GammaCurveEnhancer._weights(x)).sum(1).mean(dim=(1, 2))

    @torch.no_grad()
    def solve_gamma(self, x):
        """The ``gamma`` of each image of ``x`` (N, C, H, W), clamped to ``[0, 1]`` first.

        Returns:
            torch.Tensor: N values in ``gamma_range`` (1 for an image whose mean luma cannot change).
        """
        if x.dim() != 4:
            raise ValueError(f'GammaCurveEnhancer expects an N x C x H x W batch, got shape {tuple(x.shape)}')
        x = x.clamp(0, 1)
        n = x.shape[0]
        w = self._weights(x)
        lo = torch.full((n, ), math.log(self.gamma_range[0]), dtype=x.dtype, device=x.device)
        hi = torch.full((n, ), math.log(self.gamma_range[1]), dtype=x.dtype, device=x.device)
        for _ in range(self.iterations):
            mid = (lo + hi) / 2
            mean = (x.pow(mid.exp().view(n, 1, 1, 1)) * w).sum(1).mean(dim=(1, 2))
            too_dark = mean < self.target_mean  # the mean falls as gamma grows: search lower gammas
            hi = torch.where(too_dark, mid, hi)
            lo = torch.where(too_dark, lo, mid)
        gamma = ((lo + hi) / 2).exp()
        # An image whose values are all 0 or 1 (e.g. all black) has the same mean for every gamma: keep it as is.
        movable = ((x > 0) & (x < 1)).flatten(1).any(dim=1)
        return torch.where(movable, gamma, torch.ones_like(gamma))

    def forward(self, x):
        """Apply each image's gamma to all its channels: ``clamp(x, 0, 1) ** gamma`` (N, C, H, W)."""
        gamma = self.solve_gamma(x)
        return x.clamp(0, 1).pow(gamma.view(-1, 1, 1, 1)).clamp(0, 1)
