"""EnlightenGAN (Jiang et al., TIP 2021): attention-guided U-Net generator and normalisation-free PatchGANs.

Reimplemented from the description in ``docs/baselines.md`` section 1 (official flags
``sid_unet_resize``, ``--self_attention --times_residual --skip 1 --use_norm 1``; ``no_norm_4`` discriminators).

Image convention of the toolkit: both networks take RGB images in ``[0, 1]``.  Internally they work in the
``[-1, 1]`` range of the original code: the generator maps its input to ``[-1, 1]``, predicts there and maps the
result back, so ``Generator(x)`` is an image in ``[0, 1]`` units (not clamped, like the original, which clips
only when saving).
"""
import torch
import torch.nn.functional as F
from torch import nn

from lowlight3d.archs.arch_util import pad_to_multiple
from lowlight3d.utils.registry import ARCH_REGISTRY, register

__all__ = ['attention_map', 'EnlightenGANGenerator', 'EnlightenGANDiscriminator']


def attention_map(img):
    """EnlightenGAN's self-regularised attention ``A = 1 - Y`` with ``Y`` the BT.601 luma of ``img``.

    Args:
        img (Tensor): ``N x 3 x H x W`` RGB in ``[0, 1]``.

    Returns:
        Tensor: ``N x 1 x H x W``; bright pixels get little attention, dark ones much.
    """
    return 1.0 - (0.299 * img[:, 0:1] + 0.587 * img[:, 1:2] + 0.114 * img[:, 2:3])


class _ConvLReLUBN(nn.Sequential):
    """conv3x3 -> LeakyReLU(0.2) -> BatchNorm (the original's order: the norm comes after the activation)."""

    def __init__(self, in_ch, out_ch, norm=True):
        layers = [nn.Conv2d(in_ch, out_ch, 3, 1, 1), nn.LeakyReLU(0.2, inplace=True)]
        if norm:
            layers.append(nn.BatchNorm2d(out_ch))
        super().__init__(*layers)


@register(ARCH_REGISTRY, name='EnlightenGAN.Generator')
class EnlightenGANGenerator(nn.Module):
    """The attention-guided U-Net of EnlightenGAN (8.64 M parameters at the default widths).

    Encoder: five stages of two (conv3x3 -> LReLU -> BN) with ``num_feat * (1, 2, 4, 8, 16)`` channels,
    separated by 2x2 max-pooling.  The attention map ``A`` (max-pooled to each scale) multiplies the bottleneck
    after its first conv and every skip feature.  Decoder: four stages of bilinear x2, a conv3x3 halving the
    channels, concatenation with the attended skip and two convs (the very last without BN); a 1x1 conv gives
    the residual ``R``; the output is ``x + A * R`` in ``[-1, 1]`` units.

    Args:
        num_feat (int): Channels of the first stage (32 in the original).
        use_norm (bool): BatchNorm after each activation (``--use_norm 1``).
        max_side (int | None): Inputs with a side longer than this are average-pooled by 2 before the network
            and the result upsampled back (the original's rule for images wider than 2200 px).  ``None``: never.

    Any input size works: inputs are reflect-padded to a multiple of 16 and the output cropped back.
    """

    def __init__(self, num_feat=32, use_norm=True, max_side=2200):
        super().__init__()
        self.max_side = max_side
        chans = [num_feat * 2**k for k in range(5)]
        self.encoders = nn.ModuleList()
        in_ch = 4  # RGB in [-1, 1] + attention map
        for k, ch in enumerate(chans):
            if k < 4:
                self.encoders.append(nn.Sequential(_ConvLReLUBN(in_ch, ch, use_norm), _ConvLReLUBN(ch, ch, use_norm)))
            in_ch = ch
        self.bottleneck_in = _ConvLReLUBN(chans[3], chans[4], use_norm)
        self.bottleneck_out = _ConvLReLUBN(chans[4], chans[4], use_norm)
        self.up_convs = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for k in (3, 2, 1, 0):
            self.up_convs.append(nn.Conv2d(chans[k + 1], chans[k], 3, 1, 1))
            last = k == 0
            self.decoders.append(
                nn.Sequential(_ConvLReLUBN(chans[k] * 2, chans[k], use_norm), _ConvLReLUBN(chans[k], chans[k],
                                                                                          use_norm and not last)))
        self.to_residual = nn.Conv2d(chans[0], 3, 1)

    def _unet(self, x, gray):
        """Residual ``R`` (``[-1, 1]`` units) of ``x`` (``[-1, 1]``) given the attention map ``gray``."""
        grays = [gray]
        for _ in range(4):
            grays.append(F.max_pool2d(grays[-1], 2))
        skips = []
        feat = torch.cat([x, gray], 1)
        for k, encoder in enumerate(self.encoders):
            feat = encoder(feat)
            skips.append(feat * grays[k])
            feat = F.max_pool2d(feat, 2)
        feat = self.bottleneck_in(feat) * grays[4]
        feat = self.bottleneck_out(feat)
        for up_conv, decoder, skip in zip(self.up_convs, self.decoders, reversed(skips)):
            feat = F.interpolate(feat, scale_factor=2, mode='bilinear', align_corners=False)
            feat = decoder(torch.cat([up_conv(feat), skip], 1))
        return self.to_residual(feat)

    def forward(self, x):
        """Enhance ``x`` (``N x 3 x H x W`` RGB in ``[0, 1]``); returns the same shape in ``[0, 1]`` units."""
        h, w = x.shape[-2:]
        shrink = self.max_side is not None and max(h, w) > self.max_side
        inp = F.avg_pool2d(x, 2) if shrink else x
        inp, (ih, iw) = pad_to_multiple(inp, 16)
        gray = attention_map(inp)
        signed = inp * 2 - 1
        out = signed + gray * self._unet(signed, gray)
        out = ((out + 1) / 2)[..., :ih, :iw]
        if shrink:
            out = F.interpolate(out, size=(h, w), mode='bilinear', align_corners=False)
        return out


@register(ARCH_REGISTRY, name='EnlightenGAN.Discriminator')
class EnlightenGANDiscriminator(nn.Module):
    """EnlightenGAN's normalisation-free PatchGAN (``no_norm_4``): 4x4 convs, padding 2, LeakyReLU, no sigmoid.

    ``n_layers`` stride-2 convs with ``ndf * min(2**k, 8)`` channels, one stride-1 conv with
    ``ndf * min(2**n_layers, 8)`` channels, then a stride-1 conv to one channel.  The global discriminator has
    ``n_layers = 5`` (11.15 M parameters), the local (patch) one ``n_layers = 4`` (6.96 M).

    Args:
        in_channels (int): Image channels. ndf (int): Channels of the first conv. n_layers (int): Stride-2 convs.

    Input: ``N x C x H x W`` in ``[0, 1]`` (mapped to ``[-1, 1]`` as in the original); output: one score map.
    """

    def __init__(self, in_channels=3, ndf=64, n_layers=5):
        super().__init__()
        if n_layers < 1:
            raise ValueError(f'n_layers must be >= 1, got {n_layers}')
        layers = [nn.Conv2d(in_channels, ndf, 4, 2, 2), nn.LeakyReLU(0.2, inplace=True)]
        ch = ndf
        for k in range(1, n_layers):
            out = ndf * min(2**k, 8)
            layers += [nn.Conv2d(ch, out, 4, 2, 2), nn.LeakyReLU(0.2, inplace=True)]
            ch = out
        out = ndf * min(2**n_layers, 8)
        layers += [nn.Conv2d(ch, out, 4, 1, 2), nn.LeakyReLU(0.2, inplace=True), nn.Conv2d(out, 1, 4, 1, 2)]
        self.body = nn.Sequential(*layers)

    def forward(self, x):
        """Patch scores (unbounded) of images ``x`` in ``[0, 1]``."""
        return self.body(x * 2 - 1)
