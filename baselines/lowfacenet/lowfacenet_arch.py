"""Low-FaceNet's EnhanceNet (Fan et al., IEEE TIM 2024): a Retinex-style illumination estimator, 459,590 parameters.

Reimplemented from ``docs/baselines.md`` section 5 (no code copied).  Images are RGB in ``[0, 1]``; width
``C = 64``, every convolution 3x3 with padding 1 (any input size works, nothing is padded or cropped):

* ``e1 = ReLU(conv 3->C)``, ``e2 = ReLU(conv C->C)(e1)``, ``e3 = ReLU(conv C->C)(e2)``;
* ``e4 = ReLU(conv 2C->C)([e2, e3])``, ``e5 = ReLU(conv 2C->C)([e1, e4])``, ``e6 = ReLU(conv C->3)(e5)``;
* ``g``: conv 3->2C, conv 2C->2C, ReLU, conv 2C->C, conv C->C/4, conv C/4->3, sigmoid (one ReLU only, as the code);
* illumination ``i = clamp(x + g(e6), 1e-4, 1)``, output ``r = clamp(x / i, 0, 1)``.

``forward(x)`` returns ``r`` (inference); ``forward(x, return_illumination=True)`` (= :meth:`decompose`) returns
``(r, i)`` for training (the smoothness loss acts on ``i``; going through ``forward`` keeps DDP's gradient sync).
The submodule names follow the original (``e_conv1`` ... ``e_conv6``, ``conv``), so its ``Low-FaceNet.pth`` state
dict loads with ``path.param_key_g: null``.
"""
import torch
from torch import nn

from lowlight3d.utils.registry import ARCH_REGISTRY, register

__all__ = ['LowFaceNetEnhanceNet', 'init_original']


def init_original(module, std=0.02):
    """The original's initialisation: every convolution weight ``N(0, std)``, biases 0 (applied recursively).

    Args:
        module (nn.Module): Network to initialise in place (torch's global RNG). std (float): Weight std.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


@register(ARCH_REGISTRY, name='LowFaceNet.EnhanceNet')
class LowFaceNetEnhanceNet(nn.Module):
    """EnhanceNet of Low-FaceNet (module docstring); 459,590 parameters at ``num_feat = 64``.

    Args:
        num_feat (int): Width ``C`` (64 in the original).
        init (str): ``'original'`` (``N(0, 0.02)`` weights, zero biases, the original's ``init_weights``) or
            ``'default'`` (torch's defaults).
        eps (float): Lower clamp of the illumination (1e-4 in the original).
    """

    def __init__(self, num_feat=64, init='original', eps=1e-4):
        super().__init__()
        if init not in ('original', 'default'):
            raise ValueError(f"LowFaceNet.EnhanceNet: init must be 'original' or 'default', got {init!r}")
        if num_feat < 4 or num_feat % 4:
            raise ValueError(f'LowFaceNet.EnhanceNet: num_feat must be a positive multiple of 4, got {num_feat}')
        c = int(num_feat)
        self.eps = float(eps)
        self.e_conv1 = nn.Conv2d(3, c, 3, 1, 1)
        self.e_conv2 = nn.Conv2d(c, c, 3, 1, 1)
        self.e_conv3 = nn.Conv2d(c, c, 3, 1, 1)
        self.e_conv4 = nn.Conv2d(2 * c, c, 3, 1, 1)
        self.e_conv5 = nn.Conv2d(2 * c, c, 3, 1, 1)
        self.e_conv6 = nn.Conv2d(c, 3, 3, 1, 1)
        self.conv = nn.Sequential(
            nn.Conv2d(3, 2 * c, 3, 1, 1), nn.Conv2d(2 * c, 2 * c, 3, 1, 1), nn.ReLU(),
            nn.Conv2d(2 * c, c, 3, 1, 1), nn.Conv2d(c, c // 4, 3, 1, 1), nn.Conv2d(c // 4, 3, 3, 1, 1), nn.Sigmoid())
        self.relu = nn.ReLU()
        if init == 'original':
            init_original(self)

    def decompose(self, x):
        """Enhanced image and illumination of ``x``.

        Args:
            x (Tensor): ``N x 3 x H x W`` RGB in ``[0, 1]``.

        Returns:
            tuple[Tensor, Tensor]: ``r = clamp(x / i, 0, 1)`` and ``i = clamp(x + g(e6), eps, 1)``, both
            ``N x 3 x H x W``.
        """
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f'LowFaceNet.EnhanceNet expects N x 3 x H x W RGB images, got {tuple(x.shape)}')
        e1 = self.relu(self.e_conv1(x))
        e2 = self.relu(self.e_conv2(e1))
        e3 = self.relu(self.e_conv3(e2))
        e4 = self.relu(self.e_conv4(torch.cat([e2, e3], 1)))
        e5 = self.relu(self.e_conv5(torch.cat([e1, e4], 1)))
        e6 = self.relu(self.e_conv6(e5))
        illum = torch.clamp(x + self.conv(e6), self.eps, 1.0)
        return torch.clamp(x / illum, 0.0, 1.0), illum

    def forward(self, x, return_illumination=False):
        """The enhanced image ``r`` of ``x``, or ``(r, i)`` with ``return_illumination`` (see :meth:`decompose`)."""
        r, i = self.decompose(x)
        return (r, i) if return_illumination else r
