"""A plain residual U-Net for low-light enhancement: the supervised reference network of the toolkit.

It is the backbone shape of the paper's enhancement network (3-level encoder-decoder, channels doubling per
level down, skip connections, no batch normalisation) without the 3D prior: small, fast on CPU, and the
network the demo trains before the full method exists.
"""
import torch
from torch import nn

from lowlight3d.archs.arch_util import Upsample2x, pad_to_multiple, residual_blocks
from lowlight3d.archs.checkpoint_upgrade import UpgradableCheckpoint
from lowlight3d.utils.registry import ARCH_REGISTRY, register

__all__ = ['LowLightUNet']



@register(ARCH_REGISTRY)
class LowLightUNet(UpgradableCheckpoint, nn.Module):
    """Residual U-Net mapping a low-light RGB image to its enhanced version.

    Args:
        in_channels (int): Input channels. out_channels (int): Output channels.
        num_feat (int): Channels of the first level; level ``k`` has ``num_feat * 2**k``.
        num_levels (int): Number of resolution levels (the paper's network has 3).
        num_blocks (int): Residual blocks per level on each side.
        global_residual (bool): Predict ``input + residual`` (the output is not clamped).
        upsample (str): Decoder up-sampling, a mode of :class:`~lowlight3d.archs.arch_util.Upsample2x`
            (default ``'bilinear'``, as the method's network; ``'pixel_shuffle'`` for checkpoints trained with it).

    Any input size works: the input is padded to a multiple of ``2 ** (num_levels - 1)`` and cropped back.
    """

    def __init__(self, in_channels=3, out_channels=3, num_feat=32, num_levels=3, num_blocks=1, global_residual=True,
                 upsample='bilinear'):
        super().__init__()
        if num_levels < 1:
            raise ValueError(f'num_levels must be >= 1, got {num_levels}')
        self.num_levels = num_levels
        self.global_residual = global_residual and in_channels == out_channels
        chans = [num_feat * 2**k for k in range(num_levels)]
        self.head = nn.Conv2d(in_channels, chans[0], 3, 1, 1)
        self.encoders = nn.ModuleList(residual_blocks(c, num_blocks) for c in chans)
        self.downs = nn.ModuleList(nn.Conv2d(chans[k], chans[k + 1], 4, 2, 1) for k in range(num_levels - 1))
        self.ups = nn.ModuleList(Upsample2x(chans[k + 1], chans[k], upsample) for k in range(num_levels - 1))
        self.fuses = nn.ModuleList(nn.Conv2d(chans[k] * 2, chans[k], 1) for k in range(num_levels - 1))
        self.decoders = nn.ModuleList(
            residual_blocks(chans[k], num_blocks) for k in range(num_levels - 1))
        self.tail = nn.Conv2d(chans[0], out_channels, 3, 1, 1)

    def legacy_renames(self):
        """``(old, new)`` key prefixes of checkpoints written before :class:`Upsample2x` (``ups.k.0.*``); applied
        by ``load_state_dict`` and by :func:`lowlight3d.archs.checkpoint_upgrade.load_weights_checked`."""
        return [(f'ups.{k}.0.', f'ups.{k}.conv.') for k in range(self.num_levels - 1)]

    def forward(self, x):
        """Enhance ``x`` (N, C, H, W) in [0, 1]; returns a tensor of the same spatial size."""
        inp, (h, w) = pad_to_multiple(x, 2**(self.num_levels - 1))
        feat = self.head(inp)
        skips = []
        for k, encoder in enumerate(self.encoders):
            feat = encoder(feat)
            if k < self.num_levels - 1:
                skips.append(feat)
                feat = self.downs[k](feat)
        for k in reversed(range(self.num_levels - 1)):
            feat = self.ups[k](feat)
            feat = self.decoders[k](self.fuses[k](torch.cat([feat, skips[k]], dim=1)))
        out = self.tail(feat)
        if self.global_residual:
            out = out + inp
        return out[..., :h, :w]
