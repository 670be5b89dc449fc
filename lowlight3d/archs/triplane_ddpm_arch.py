"""Conditional denoiser of the tri-plane DDPM (paper Sec. 3.1.1; ``docs/prior3d.md`` 4.1 and 4.3).

``eps_theta(x_t, t, I)``: a condition extractor turns the low-light image into features at the tri-plane resolution
(stride-2 convs as needed, then 3 residual blocks) plus two stride-2 maps for U-Net levels 2 and 3; a 3-level U-Net
(widths C, 2C, 4C, one residual block per level down and up, skip concatenation, sinusoidal timestep embedding
added in every block) fuses them at levels 2 and 3 with a channel-attention adaptive fusion block.

With ``image_input`` (the regression U-Net of ablation V6) the level-1 condition features, at the tri-plane
resolution (the full image resolution at paper scale, ``image_downsample: 0``), are also concatenated to the U-Net
input, so the image reaches the network at full resolution and not only through the fusions at 1/2 and 1/4 (a
regression network sees ``x_t = 0`` and ``t = 0``: without it the input level carries nothing).

``x0`` layout: ``[planes (3 * plane_channels) | camera (25, broadcast)]``, standardised per channel with the
statistics held in the buffers ``x_mean``/``x_std`` (saved with the checkpoint); see :meth:`standardize`,
:meth:`split_x0`.
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

from lowlight3d.archs.triplane_encoder_arch import ResBlock, _groups
from lowlight3d.utils.camera import project_label
from lowlight3d.utils.registry import ARCH_REGISTRY, register

__all__ = ['ConditionExtractor', 'AdaptiveFusion', 'TriplaneDDPM', 'timestep_embedding']

CAMERA_DIMS = 25


def timestep_embedding(t, dim):
    """Sinusoidal embedding ``(B, dim)`` of (0-based) timesteps ``t`` ``(B,)``."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
    return F.pad(emb, (0, dim % 2))


class ConditionExtractor(nn.Module):
    """Low-light image -> condition features at levels 1 (R), 2 (R/2, 2C) and 3 (R/4, 4C).

    Args:
        channels (int): ``C``.
        downsample (int): Stride-2 convs before the residual blocks (``log2(image size / R)``).
        num_blocks (int): Residual blocks at the tri-plane resolution (paper 3).
    """

    def __init__(self, channels, downsample=0, num_blocks=3):
        super().__init__()
        layers = [nn.Conv2d(3, channels, 3, padding=1)]
        layers += [nn.Conv2d(channels, channels, 3, stride=2, padding=1) for _ in range(downsample)]
        self.stem = nn.Sequential(*layers)
        self.blocks = nn.Sequential(*[ResBlock(channels, channels) for _ in range(num_blocks)])
        self.down2 = nn.Conv2d(channels, 2 * channels, 3, stride=2, padding=1)
        self.down3 = nn.Conv2d(2 * channels, 4 * channels, 3, stride=2, padding=1)

    def forward(self, img):
        """Features ``[f1, f2, f3]`` of an image in ``[0, 1]``."""
        f1 = self.blocks(self.stem(img * 2 - 1))
        f2 = self.down2(F.silu(f1))
        f3 = self.down3(F.silu(f2))
        return [f1, f2, f3]


class AdaptiveFusion(nn.Module):
    """Channel-attention adaptive fusion of backbone ``B`` and condition ``F`` (same channels ``C``).

    ``w = conv(ReLU(conv(GAP([B; F]))))`` (``2C -> 2C/4 -> 2C``), then

    * ``mode='sk'`` (default, SK-Net reading): ``w`` viewed as ``(2, C)``, softmax over the two sources per channel,
      ``out = B + (w0 * B + w1 * F)``;
    * ``mode='proj'``: softmax over all ``2C`` channels (times ``2C`` so the mean weight is 1),
      ``out = B + Proj1x1(w * [B; F])`` with a zero-initialised projection.

    Args:
        channels (int): ``C``.
        mode (str): ``'sk'`` or ``'proj'``.
    """

    def __init__(self, channels, mode='sk'):
        super().__init__()
        if mode not in ('sk', 'proj'):
            raise ValueError(f"fusion mode must be 'sk' or 'proj', got {mode!r}")
        self.mode, self.channels = mode, channels
        self.attn = nn.Sequential(nn.Conv2d(2 * channels, max(2 * channels // 4, 1), 1), nn.ReLU(inplace=True),
                                  nn.Conv2d(max(2 * channels // 4, 1), 2 * channels, 1))
        if mode == 'proj':
            self.proj = nn.Conv2d(2 * channels, channels, 1)
            nn.init.zeros_(self.proj.weight)
            nn.init.zeros_(self.proj.bias)

    def forward(self, b, f):
        """Fuse ``b`` and ``f`` ``(N, C, h, w)``."""
        x = torch.cat([b, f], 1)
        w = self.attn(x.mean((2, 3), keepdim=True))
        if self.mode == 'sk':
            w = torch.softmax(w.reshape(-1, 2, self.channels, 1, 1), dim=1)
            return b + w[:, 0] * b + w[:, 1] * f
        w = torch.softmax(w, dim=1) * (2 * self.channels)
        return b + self.proj(w * x)


@register(ARCH_REGISTRY)
class TriplaneDDPM(nn.Module):
    """Noise predictor ``eps_theta(x_t, t, I_low)`` over standardised ``[tri-planes | camera]``.

    Args:
        plane_channels (int): Channels per plane (paper 32); ``x`` has ``3 * plane_channels + 25`` channels.
        base_channels (int): U-Net width ``C`` (level widths C, 2C, 4C).
        image_downsample (int): ``log2(image size / tri-plane resolution)`` (paper 256 -> 256: 0).
        cond_blocks (int): Residual blocks of the condition extractor (paper 3).
        fusion (str): ``'sk'`` or ``'proj'`` (see :class:`AdaptiveFusion`).
        image_input (bool): Concatenate the level-1 condition features to the U-Net input (ablation V6's
            regression U-Net; module docstring).  Default False (the paper's denoiser).
    """

    def __init__(self, plane_channels=32, base_channels=32, image_downsample=0, cond_blocks=3, fusion='sk',
                 image_input=False):
        super().__init__()
        self.plane_channels, self.image_downsample = int(plane_channels), int(image_downsample)
        c = int(base_channels)
        self.in_channels = 3 * self.plane_channels + CAMERA_DIMS
        emb = 4 * c
        self.base_channels = c
        self.time_mlp = nn.Sequential(nn.Linear(c, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.cond = ConditionExtractor(c, image_downsample, cond_blocks)
        self.image_input = bool(image_input)
        self.inp = nn.Conv2d(self.in_channels + (c if self.image_input else 0), c, 3, padding=1)
        self.down1 = ResBlock(c, c, emb)
        self.pool1 = nn.Conv2d(c, 2 * c, 3, stride=2, padding=1)
        self.down2 = ResBlock(2 * c, 2 * c, emb)
        self.fuse2 = AdaptiveFusion(2 * c, fusion)
        self.pool2 = nn.Conv2d(2 * c, 4 * c, 3, stride=2, padding=1)
        self.mid = ResBlock(4 * c, 4 * c, emb)
        self.fuse3 = AdaptiveFusion(4 * c, fusion)
        self.up2 = nn.Conv2d(4 * c, 2 * c, 3, padding=1)
        self.up2_block = ResBlock(4 * c, 2 * c, emb)
        self.up1 = nn.Conv2d(2 * c, c, 3, padding=1)
        self.up1_block = ResBlock(2 * c, c, emb)
        self.out = nn.Sequential(nn.GroupNorm(_groups(c), c), nn.SiLU(), nn.Conv2d(c, self.in_channels, 3, padding=1))
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)
        self.register_buffer('x_mean', torch.zeros(self.in_channels))
        self.register_buffer('x_std', torch.ones(self.in_channels))
        self.register_buffer('stats_ready', torch.zeros((), dtype=torch.bool))

    # ------------------------------------------------------------------ x0 layout and statistics
    def make_x0(self, planes, cameras):
        """Raw ``x0 = [planes.reshape(B, 3C, R, R) | camera broadcast]`` (not standardised)."""
        b, _, c, r, r2 = planes.shape
        return torch.cat([planes.reshape(b, 3 * c, r, r2), cameras[:, :, None, None].expand(b, CAMERA_DIMS, r, r2)], 1)

    @torch.no_grad()
    def set_statistics(self, x0, min_std=1e-6):
        """Per-channel mean/std from raw ``x0`` samples ``(N, C, R, R)``; std := 1 for (near) constant channels."""
        mean = x0.mean((0, 2, 3))
        std = x0.std((0, 2, 3))
        self.x_mean.copy_(mean)
        self.x_std.copy_(torch.where(std < min_std, torch.ones_like(std), std))
        self.stats_ready.fill_(True)

    def standardize(self, x0):
        """``(x0 - mean) / std`` per channel."""
        return (x0 - self.x_mean[:, None, None]) / self.x_std[:, None, None]

    def destandardize(self, x):
        """Inverse of :meth:`standardize`."""
        return x * self.x_std[:, None, None] + self.x_mean[:, None, None]

    def split_x0(self, x, standardized=True, project=True):
        """Tri-planes ``(B, 3, C, R, R)`` and cameras ``(B, 25)`` from a (standardised) ``x0``.

        The camera is the spatial mean of its 25 channels, projected to a valid pose (SO(3) rotation, radius 2.7,
        FFHQ intrinsics) when ``project``.
        """
        if standardized:
            x = self.destandardize(x)
        b, _, r, r2 = x.shape
        planes = x[:, :3 * self.plane_channels].reshape(b, 3, self.plane_channels, r, r2)
        cams = x[:, 3 * self.plane_channels:].mean((2, 3))
        return planes, (project_label(cams) if project else cams)

    # ------------------------------------------------------------------ network
    def condition(self, img):
        """Condition features of the low-light image (compute once per sample, reuse at every step)."""
        return self.cond(img)

    def denoise(self, x, t, feats):
        """``eps`` for ``x`` ``(B, in_channels, R, R)``, 0-based steps ``t`` ``(B,)`` and condition ``feats``."""
        if x.shape[1] != self.in_channels:
            raise ValueError(f'x_t must have {self.in_channels} channels (3 * {self.plane_channels} plane channels + '
                             f'25 camera), got {tuple(x.shape)}')
        if x.shape[-1] % 4 or x.shape[-2] % 4:
            raise ValueError(f'tri-plane resolution must be divisible by 4, got {tuple(x.shape[-2:])}')
        if feats[0].shape[-2:] != x.shape[-2:]:
            raise ValueError(f'condition features are {tuple(feats[0].shape[-2:])} but tri-planes are '
                             f'{tuple(x.shape[-2:])}: set image_downsample = log2(image size / plane resolution)')
        emb = self.time_mlp(timestep_embedding(t, self.base_channels))
        h1 = self.down1(self.inp(torch.cat([x, feats[0]], 1) if self.image_input else x), emb)
        h2 = self.fuse2(self.down2(self.pool1(h1), emb), feats[1])
        h = self.fuse3(self.mid(self.pool2(h2), emb), feats[2])
        h = self.up2_block(torch.cat([self.up2(F.interpolate(h, scale_factor=2, mode='nearest')), h2], 1), emb)
        h = self.up1_block(torch.cat([self.up1(F.interpolate(h, scale_factor=2, mode='nearest')), h1], 1), emb)
        return self.out(h)

    def forward(self, x, t, img):
        """``eps_theta(x_t, t, I)``: one denoiser step including the condition extractor."""
        return self.denoise(x, t, self.condition(img))

    def example_inputs(self, size):
        """``x_t`` at the tri-plane resolution of a ``size`` image, a timestep and the ``size`` image."""
        r = size // 2**self.image_downsample
        return torch.randn(1, self.in_channels, r, r), torch.tensor([500]), torch.rand(1, 3, size, size)
