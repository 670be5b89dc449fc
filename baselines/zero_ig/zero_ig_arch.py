"""ZERO-IG (Shi et al., CVPR 2024): noise estimator, illumination enhancer, joint denoiser, pair downsampler.

Reimplemented from ``docs/baselines.md`` section 2.  Images are RGB in ``[0, 1]``; ``eps = 1e-4`` is
added to the input.  Inference (:meth:`ZeroIGNetwork.forward`)::

    L  = clamp(x - D1(x), eps, 1)            pre-denoised image (D1: noise estimator)
    s  = E(L)                                 3-channel illumination in [1e-4, 1] (E: enhancer)
    H2 = clamp(x / s, eps, 1)                 enhanced, not yet denoised (uses the raw x)
    (H3, s3) = clamp([H2, s] - D2([H2, s]), eps, 1)   joint denoising; H3 is the result

Training (:meth:`ZeroIGNetwork.decompose`) also runs D1 and D2 on the two half-resolution "noisy pairs" of the
pair downsampler (zero-shot Noise2Noise).  Submodule names (``enhance``, ``denoise_1``, ``denoise_2``) follow the
original so that its released ``.pt`` files load with ``path.param_key_g: null``.
"""
import torch
from torch import nn

from lowlight3d.utils.registry import ARCH_REGISTRY, register

__all__ = ['pair_downsample', 'ZeroIGDenoiser', 'ZeroIGEnhancer', 'ZeroIGNetwork', 'EPS']

#: Offset added to the input and lower clamp of every image-valued intermediate (the original's ``eps``).
EPS = 1e-4


def pair_downsample(img):
    """Two half-resolution images from the two diagonals of each 2x2 block (ZS-N2N's pair downsampler).

    Args:
        img (Tensor): ``N x C x H x W`` (odd sizes drop the last row/column).

    Returns:
        tuple[Tensor, Tensor]: ``(mean of top-right and bottom-left, mean of top-left and bottom-right)``.
    """
    h, w = img.shape[-2] // 2 * 2, img.shape[-1] // 2 * 2
    img = img[..., :h, :w]
    top_left, top_right = img[..., 0::2, 0::2], img[..., 0::2, 1::2]
    bottom_left, bottom_right = img[..., 1::2, 0::2], img[..., 1::2, 1::2]
    return (top_right + bottom_left) / 2, (top_left + bottom_right) / 2


class ZeroIGDenoiser(nn.Module):
    """Residual-noise estimator: conv3x3 -> LReLU -> conv3x3 -> LReLU -> conv1x1 (D1: 3 channels, D2: 6).

    Args:
        channels (int): Image channels in and out. hidden (int): Hidden channels (48 in the original).
    """

    def __init__(self, channels=3, hidden=48):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, hidden, 3, padding=1)
        self.conv2 = nn.Conv2d(hidden, hidden, 3, padding=1)
        self.conv3 = nn.Conv2d(hidden, channels, 1)
        self.act = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x):
        """The estimated noise of ``x`` (subtract it to denoise)."""
        return self.conv3(self.act(self.conv2(self.act(self.conv1(x)))))


class ZeroIGEnhancer(nn.Module):
    """Illumination estimator: conv3x3 + ReLU, one shared (conv3x3 + BN + ReLU) block applied ``layers`` times
    with residual additions (SCI-style weight sharing), conv3x3 + sigmoid, clamped to ``[1e-4, 1]``.

    Args:
        channels (int): Hidden channels (64). layers (int): Applications of the shared block (3).
    """

    def __init__(self, channels=64, layers=3):
        super().__init__()
        self.in_conv = nn.Sequential(nn.Conv2d(3, channels, 3, 1, 1), nn.ReLU())
        self.conv = nn.Sequential(nn.Conv2d(channels, channels, 3, 1, 1), nn.BatchNorm2d(channels), nn.ReLU())
        self.blocks = nn.ModuleList([self.conv] * layers)  # the same module: weights shared
        self.out_conv = nn.Sequential(nn.Conv2d(channels, 3, 3, 1, 1), nn.Sigmoid())

    def forward(self, x):
        """3-channel illumination map ``s`` of ``x``."""
        fea = self.in_conv(x)
        for block in self.blocks:
            fea = fea + block(fea)
        return torch.clamp(self.out_conv(fea), 1e-4, 1)


@register(ARCH_REGISTRY, name='ZeroIG.Network')
class ZeroIGNetwork(nn.Module):
    """The whole ZERO-IG network (86,572 unique parameters at the default widths).

    Args:
        enhancer_channels (int): Hidden channels of the enhancer (64). enhancer_layers (int): Shared-block uses (3).
        denoiser_channels (int): Hidden channels of D1 and D2 (48).
        init (str): ``'original'``: the enhancer's convs ~ N(0, 0.02) with zero bias and BN weights ~ N(1, 0.02),
            the denoisers keep PyTorch's default initialisation (as in the original); ``'default'``: PyTorch's.

    ``forward(x)`` returns the final enhanced and denoised image ``H3``; :meth:`decompose` every intermediate
    the training losses need.
    """

    def __init__(self, enhancer_channels=64, enhancer_layers=3, denoiser_channels=48, init='original'):
        super().__init__()
        if init not in ('original', 'default'):
            raise ValueError(f"init must be 'original' or 'default', got {init!r}")
        self.init = init
        self.enhance = ZeroIGEnhancer(enhancer_channels, enhancer_layers)
        self.denoise_1 = ZeroIGDenoiser(3, denoiser_channels)
        self.denoise_2 = ZeroIGDenoiser(6, denoiser_channels)
        self.init_weights(reset=False)

    def init_weights(self, reset=True):
        """(Re-)initialise every parameter from torch's global RNG with the ``init`` rule.

        Args:
            reset (bool): Also reset the layers PyTorch initialises by default (needed when re-initialising a
                network that was already trained; at construction they are fresh already).
        """
        if reset:
            for module in self.modules():
                if isinstance(module, (nn.Conv2d, nn.BatchNorm2d)):
                    module.reset_parameters()
        if self.init == 'original':
            for module in self.enhance.modules():
                if isinstance(module, nn.Conv2d):
                    nn.init.normal_(module.weight, 0.0, 0.02)
                    nn.init.zeros_(module.bias)
                elif isinstance(module, nn.BatchNorm2d):
                    nn.init.normal_(module.weight, 1.0, 0.02)

    def _joint_denoise(self, img, illum):
        """``clamp([img, illum] - D2([img, illum]), eps, 1)`` with the subtracted input detached (original)."""
        both = torch.cat([img, illum], 1)
        return torch.clamp(both.detach() - self.denoise_2(both), EPS, 1)

    def forward(self, x):
        """Enhanced and denoised image ``H3`` of ``x`` (``N x 3 x H x W`` in ``[0, 1]``)."""
        x = x + EPS
        pre = torch.clamp(x - self.denoise_1(x), EPS, 1)
        illum = self.enhance(pre)
        enhanced = torch.clamp(x / illum, EPS, 1)
        return self._joint_denoise(enhanced, illum)[:, :3]

    def decompose(self, x):
        """Every intermediate of the training forward pass (names follow the paper/spec).

        Args:
            x (Tensor): Low-light images ``N x 3 x H x W`` in ``[0, 1]`` (even sizes).

        Returns:
            dict[str, Tensor]: ``input`` (``x`` + eps), ``L_pred1``/``L_pred2`` (D1 on the two half-resolution
            pairs, not clamped), ``L`` (pre-denoised), ``s`` (illumination; the enhancer sees ``L`` detached),
            ``s_1``/``s_2`` (its pair-downsampled halves), ``H2`` (enhanced), ``H1`` (``clamp(L / s, 0, 1)``),
            ``pred1``/``pred2`` (6-channel D2 outputs on the half-resolution ``[H, s]`` pairs), ``H3``/``s3``
            (final image and illumination), ``H11``/``H12`` (the half-resolution enhanced pairs).
        """
        x = x + EPS
        x1, x2 = pair_downsample(x)
        out = {'input': x}
        out['L_pred1'] = x1 - self.denoise_1(x1)
        out['L_pred2'] = x2 - self.denoise_1(x2)
        pre = torch.clamp(x - self.denoise_1(x), EPS, 1)
        out['L'] = pre
        illum = self.enhance(pre.detach())
        out['s'] = illum
        s1, s2 = pair_downsample(illum)
        out['s_1'], out['s_2'] = s1, s2
        out['H2'] = torch.clamp(x / illum, EPS, 1)
        out['H11'] = torch.clamp(x1 / s1, EPS, 1)
        out['H12'] = torch.clamp(x2 / s2, EPS, 1)
        out['pred1'] = self._joint_denoise(out['H11'], s1)
        out['pred2'] = self._joint_denoise(out['H12'], s2)
        final = self._joint_denoise(out['H2'], illum)
        out['H3'], out['s3'] = final[:, :3], final[:, 3:]
        out['H1'] = torch.clamp(pre / illum, 0, 1)
        return out

