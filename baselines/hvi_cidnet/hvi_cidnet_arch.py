"""HVI-CIDNet (Yan, Feng, Zhang et al., CVPR 2025): HVI colour space and the Colour-and-Intensity Decoupling Network.

Reimplemented from ``docs/baselines.md`` section 8 (no code copied).  Images are RGB in ``[0, 1]``.

HVI transform (:class:`HVITransform`), ``v = max(R, G, B)``, ``h`` the HSV hue / 6 in ``[0, 1)``,
``s = (v - min) / (v + eps)`` and ``C_k(v) = (sin(pi v / 2) + eps)^k`` with a learnable ``k`` (0.2 at start)::

    H = C_k s cos(2 pi h),   V = C_k s sin(2 pi h),   I = v

Network (:class:`CIDNet`): two U-shaped branches (channels ``[36, 36, 72, 144]``, heads ``[1, 2, 4, 8]``): the
HV branch maps the 3-channel HVI image to 2 channels, the I branch maps ``I`` to 1 channel; six pairs of
Lighten Cross-Attention blocks (:class:`ILCA`, :class:`HVLCA`) let each branch attend to the other.  The result is
``PHVIT(concat(HV, I) + HVI)``, already in ``[0, 1]``.  Submodule names follow the original, so its released
``.pth`` files load with ``path.param_key_g: null``; 1,975,569 parameters with the default sizes (tested).
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

from lowlight3d.archs.prior_fusion_arch import LayerNorm2d
from lowlight3d.utils.registry import ARCH_REGISTRY, register

__all__ = [
    'HVITransform', 'hsv_to_rgb', 'ChannelLayerNorm', 'CrossAttentionBlock', 'IntensityEnhancementLayer', 'ILCA',
    'HVLCA',
    'NormDownsample', 'NormUpsample', 'CIDNet'
]

_EPS = 1e-8


class HVITransform(nn.Module):
    """RGB <-> HVI with a learnable density ``k`` (the original's ``RGB_HVI``; parameter ``density_k``).

    The original's comment says ``k`` is the reciprocal of the paper's parameter.  In the inverse ``k`` is
    detached (the original used ``k.item()``), so only :meth:`hvit` carries its gradient.

    Args:
        k_init (float): Initial ``k`` (0.2 in the original).
        eps (float): The original's ``eps`` (1e-8), kept at the same places so outputs match its weights.
    """

    def __init__(self, k_init=0.2, eps=_EPS):
        super().__init__()
        self.density_k = nn.Parameter(torch.full([1], float(k_init)))
        self.eps = float(eps)

    def _density(self, value, k):
        """``C_k(v) = (sin(pi v / 2) + eps)^k``."""
        return (torch.sin(value * 0.5 * math.pi) + self.eps).pow(k)

    def hvit(self, img):
        """RGB ``N x 3 x H x W`` in ``[0, 1]`` -> HVI ``N x 3 x H x W`` (``H, V`` in ``[-1, 1]``, ``I`` in ``[0, 1]``).

        Hue follows the original's order of precedence when two channels tie for the maximum (red, then green,
        then blue) and is 0 on gray pixels.
        """
        if img.dim() != 4 or img.shape[1] != 3:
            raise ValueError(f'HVITransform.hvit expects N x 3 x H x W RGB images, got shape {tuple(img.shape)}')
        eps = self.eps
        r, g, b = img[:, 0], img[:, 1], img[:, 2]
        value = img.max(1)[0]
        img_min = img.min(1)[0]
        delta = value - img_min + eps
        hue_r = torch.remainder((g - b) / delta, 6.0)
        hue_g = 2.0 + (b - r) / delta
        hue_b = 4.0 + (r - g) / delta
        hue = torch.where(r == value, hue_r, torch.where(g == value, hue_g, hue_b))
        hue = torch.where(img_min == value, torch.zeros_like(hue), hue) / 6.0
        saturation = (value - img_min) / (value + eps)
        saturation = torch.where(value == 0, torch.zeros_like(saturation), saturation)
        hue, saturation, value = hue.unsqueeze(1), saturation.unsqueeze(1), value.unsqueeze(1)
        density = self._density(value, self.density_k)
        h_chan = density * saturation * torch.cos(2.0 * math.pi * hue)
        v_chan = density * saturation * torch.sin(2.0 * math.pi * hue)
        return torch.cat([h_chan, v_chan, value], dim=1)

    def phvit(self, hvi):
        """HVI -> RGB in ``[0, 1]`` (the original's ``PHVIT`` without its evaluation-time saturation/scale gates).

        ``H, V`` are clamped to ``[-1, 1]`` and ``I`` to ``[0, 1]``, divided by ``C_k(I) + eps``, clamped again;
        ``h = atan2(V + eps, H + eps) / 2 pi mod 1``, ``s = clamp(sqrt(H^2 + V^2 + eps), 0, 1)``, then HSV -> RGB.
        """
        if hvi.dim() != 4 or hvi.shape[1] != 3:
            raise ValueError(f'HVITransform.phvit expects N x 3 x H x W HVI maps, got shape {tuple(hvi.shape)}')
        eps = self.eps
        h_chan = hvi[:, 0].clamp(-1, 1)
        v_chan = hvi[:, 1].clamp(-1, 1)
        value = hvi[:, 2].clamp(0, 1)
        density = self._density(value, self.density_k.detach()) + eps
        h_chan = (h_chan / density).clamp(-1, 1)
        v_chan = (v_chan / density).clamp(-1, 1)
        hue = torch.remainder(torch.atan2(v_chan + eps, h_chan + eps) / (2 * math.pi), 1.0)
        sat = torch.sqrt(h_chan**2 + v_chan**2 + eps).clamp(0, 1)
        return hsv_to_rgb(hue, sat, value)


def hsv_to_rgb(hue, sat, value):
    """Standard HSV -> RGB for ``N x H x W`` tensors (hue in ``[0, 1)``); returns ``N x 3 x H x W``.

    A hue that rounds to exactly 1 is treated as 0 (the original returned black for it).
    """
    sector = torch.remainder(torch.floor(hue * 6.0), 6.0)
    f = hue * 6.0 - torch.floor(hue * 6.0)
    p = value * (1.0 - sat)
    q = value * (1.0 - f * sat)
    t = value * (1.0 - (1.0 - f) * sat)
    table = {0: (value, t, p), 1: (q, value, p), 2: (p, value, t), 3: (p, q, value), 4: (t, p, value), 5: (value, p, q)}
    channels = []
    for c in range(3):
        out = table[5][c]
        for s in (4, 3, 2, 1, 0):
            out = torch.where(sector == s, table[s][c], out)
        channels.append(out)
    return torch.stack(channels, dim=1)


class ChannelLayerNorm(LayerNorm2d):
    """LayerNorm over the channels of ``N x C x H x W`` tensors (eps 1e-6, affine), as in the original: the
    toolkit's :class:`~lowlight3d.archs.prior_fusion_arch.LayerNorm2d` (same ``weight``/``bias`` keys).

    Args:
        channels (int): Number of channels.
        eps (float): Added to the variance.
    """


class CrossAttentionBlock(nn.Module):
    """CAB: channel ("transposed") cross attention, queries from ``x``, keys and values from ``y``.

    ``q = dw3x3(1x1(x))``, ``k, v = split(dw3x3(1x1(y)))``; per head, L2-normalised ``q, k`` over the pixels,
    ``softmax(q k^T * temperature) v``, then a 1x1 projection.

    Args:
        dim (int): Channels. num_heads (int): Heads (``dim`` must be divisible by it). bias (bool): Conv biases.
    """

    def __init__(self, dim, num_heads, bias=False):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'CrossAttentionBlock: dim {dim} is not divisible by num_heads {num_heads}')
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.q = nn.Conv2d(dim, dim, 1, bias=bias)
        self.q_dwconv = nn.Conv2d(dim, dim, 3, 1, 1, groups=dim, bias=bias)
        self.kv = nn.Conv2d(dim, dim * 2, 1, bias=bias)
        self.kv_dwconv = nn.Conv2d(dim * 2, dim * 2, 3, 1, 1, groups=dim * 2, bias=bias)
        self.project_out = nn.Conv2d(dim, dim, 1, bias=bias)

    def forward(self, x, y):
        """Attend from ``x`` (queries) to ``y`` (keys/values); both ``N x dim x H x W``."""
        n, c, h, w = x.shape
        q = self.q_dwconv(self.q(x))
        k, v = self.kv_dwconv(self.kv(y)).chunk(2, dim=1)
        q, k, v = (t.reshape(n, self.num_heads, c // self.num_heads, h * w) for t in (q, k, v))
        q = F.normalize(q, dim=-1)
        k = F.normalize(k, dim=-1)
        attn = torch.softmax((q @ k.transpose(-2, -1)) * self.temperature, dim=-1)
        return self.project_out((attn @ v).reshape(n, c, h, w))


class IntensityEnhancementLayer(nn.Module):
    """IEL: 1x1 to ``2 * int(2.66 dim)``, depthwise 3x3, split; each half ``u + tanh(dw3x3(u))``; product; 1x1.

    Args:
        dim (int): Channels. expansion (float): Hidden-width factor (2.66). bias (bool): Conv biases.
    """

    def __init__(self, dim, expansion=2.66, bias=False):
        super().__init__()
        hidden = int(dim * expansion)
        self.project_in = nn.Conv2d(dim, hidden * 2, 1, bias=bias)
        self.dwconv = nn.Conv2d(hidden * 2, hidden * 2, 3, 1, 1, groups=hidden * 2, bias=bias)
        self.dwconv1 = nn.Conv2d(hidden, hidden, 3, 1, 1, groups=hidden, bias=bias)
        self.dwconv2 = nn.Conv2d(hidden, hidden, 3, 1, 1, groups=hidden, bias=bias)
        self.project_out = nn.Conv2d(hidden, dim, 1, bias=bias)

    def forward(self, x):
        """``N x dim x H x W`` -> same shape."""
        x1, x2 = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        x1 = torch.tanh(self.dwconv1(x1)) + x1
        x2 = torch.tanh(self.dwconv2(x2)) + x2
        return self.project_out(x1 * x2)


class ILCA(nn.Module):
    """Intensity-branch Lighten Cross-Attention: ``x += CAB(LN x, LN y)``; ``x += IEL(LN x)`` (one shared LN).

    Args:
        dim (int): Channels. num_heads (int): CAB heads. bias (bool): Conv biases.
    """

    def __init__(self, dim, num_heads, bias=False):
        super().__init__()
        self.norm = ChannelLayerNorm(dim)
        self.gdfn = IntensityEnhancementLayer(dim)
        self.ffn = CrossAttentionBlock(dim, num_heads, bias=bias)

    def forward(self, x, y):
        """``x``: this branch's features; ``y``: the other branch's (same shape)."""
        x = x + self.ffn(self.norm(x), self.norm(y))
        return x + self.gdfn(self.norm(x))


class HVLCA(nn.Module):
    """Colour-branch Lighten Cross-Attention: as :class:`ILCA` but the IEL step has **no residual** (as the code).

    Args:
        dim (int): Channels. num_heads (int): CAB heads. bias (bool): Conv biases.
    """

    def __init__(self, dim, num_heads, bias=False):
        super().__init__()
        self.gdfn = IntensityEnhancementLayer(dim)
        self.norm = ChannelLayerNorm(dim)
        self.ffn = CrossAttentionBlock(dim, num_heads, bias=bias)

    def forward(self, x, y):
        """``x``: this branch's features; ``y``: the other branch's (same shape)."""
        x = x + self.ffn(self.norm(x), self.norm(y))
        return self.gdfn(self.norm(x))


class NormDownsample(nn.Module):
    """conv3x3 (no bias) -> bilinear x0.5 (``align_corners=True``, torch's ``UpsamplingBilinear2d``) -> PReLU.

    Args:
        in_ch (int): Input channels. out_ch (int): Output channels.
    """

    def __init__(self, in_ch, out_ch):
        super().__init__()
        self.prelu = nn.PReLU()
        self.down = nn.Sequential(nn.Conv2d(in_ch, out_ch, 3, 1, 1, bias=False),
                                  nn.UpsamplingBilinear2d(scale_factor=0.5))

    def forward(self, x):
        """Halve the resolution."""
        return self.prelu(self.down(x))


class NormUpsample(nn.Module):
    """conv3x3 -> bilinear x2 (``align_corners=True``), concat the skip, conv1x1, PReLU.

    Args:
        in_ch (int): Input channels. out_ch (int): Output channels (and the skip's).
    """

    def __init__(self, in_ch, out_ch):
        super().__init__()
        self.prelu = nn.PReLU()
        self.up_scale = nn.Sequential(nn.Conv2d(in_ch, out_ch, 3, 1, 1, bias=False),
                                      nn.UpsamplingBilinear2d(scale_factor=2))
        self.up = nn.Conv2d(out_ch * 2, out_ch, 1, bias=False)

    def forward(self, x, skip):
        """Double the resolution of ``x`` and fuse ``skip``."""
        return self.prelu(self.up(torch.cat([self.up_scale(x), skip], dim=1)))


def _stem(in_ch, out_ch):
    """Replicate-pad + conv3x3 without bias (the original's ``*_block0``)."""
    return nn.Sequential(nn.ReplicationPad2d(1), nn.Conv2d(in_ch, out_ch, 3, 1, 0, bias=False))


@register(ARCH_REGISTRY, name='HVICIDNet.CIDNet')
class CIDNet(nn.Module):
    """HVI-CIDNet: HVI transform, dual-branch LCA U-Net, inverse transform.

    Args:
        channels (Sequence[int]): Four widths (``[36, 36, 72, 144]``).
        heads (Sequence[int]): CAB heads per width (``[1, 2, 4, 8]``).
        upstream_quirks (bool): Reproduce the original forward pass that all released weights were trained with
            (default True): the third down-sampling blocks take the features *before* the second encoder LCA pair,
            whose output only feeds a skip (upstream issues #91, #104), and the output of the fifth I-branch LCA
            is discarded (upstream issue #60; ``I_LCA5`` then gets no gradient).  False: the evident intent (LCA
            outputs feed the next block); the parameter set is identical.
        k_init (float): Initial HVI density ``k``.
        pad_multiple (int): Inputs are reflect-padded on the bottom/right to a multiple of this (8 = three
            halvings, as the original's test loader) and the result cropped back, so any size works.
    """

    def __init__(self, channels=(36, 36, 72, 144), heads=(1, 2, 4, 8), upstream_quirks=True, k_init=0.2,
                 pad_multiple=8):
        super().__init__()
        channels, heads = list(channels), list(heads)
        if len(channels) != 4 or len(heads) != 4:
            raise ValueError(f'HVICIDNet.CIDNet needs 4 channels and 4 heads, got {channels} and {heads}')
        if int(pad_multiple) < 1:
            raise ValueError(f'HVICIDNet.CIDNet: pad_multiple must be >= 1, got {pad_multiple}')
        ch1, ch2, ch3, ch4 = channels
        _, head2, head3, head4 = heads
        self.upstream_quirks = bool(upstream_quirks)
        self.pad_multiple = int(pad_multiple)
        # colour (HV) branch
        self.HVE_block0 = _stem(3, ch1)
        self.HVE_block1 = NormDownsample(ch1, ch2)
        self.HVE_block2 = NormDownsample(ch2, ch3)
        self.HVE_block3 = NormDownsample(ch3, ch4)
        self.HVD_block3 = NormUpsample(ch4, ch3)
        self.HVD_block2 = NormUpsample(ch3, ch2)
        self.HVD_block1 = NormUpsample(ch2, ch1)
        self.HVD_block0 = _stem(ch1, 2)
        # intensity (I) branch
        self.IE_block0 = _stem(1, ch1)
        self.IE_block1 = NormDownsample(ch1, ch2)
        self.IE_block2 = NormDownsample(ch2, ch3)
        self.IE_block3 = NormDownsample(ch3, ch4)
        self.ID_block3 = NormUpsample(ch4, ch3)
        self.ID_block2 = NormUpsample(ch3, ch2)
        self.ID_block1 = NormUpsample(ch2, ch1)
        self.ID_block0 = _stem(ch1, 1)
        for idx, (dim, head) in enumerate([(ch2, head2), (ch3, head3), (ch4, head4), (ch4, head4), (ch3, head3),
                                           (ch2, head2)], start=1):
            setattr(self, f'HV_LCA{idx}', HVLCA(dim, head))
        for idx, (dim, head) in enumerate([(ch2, head2), (ch3, head3), (ch4, head4), (ch4, head4), (ch3, head3),
                                           (ch2, head2)], start=1):
            setattr(self, f'I_LCA{idx}', ILCA(dim, head))
        self.trans = HVITransform(k_init)

    def hvit(self, img):
        """RGB -> HVI with the network's current ``k`` (used by the HVI terms of the loss)."""
        return self.trans.hvit(img)

    def forward(self, x):
        """Enhance RGB ``N x 3 x H x W`` in ``[0, 1]``; returns RGB in ``[0, 1]`` of the same size."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f'HVICIDNet.CIDNet expects N x 3 x H x W RGB images, got shape {tuple(x.shape)}')
        h, w = x.shape[-2:]
        m = self.pad_multiple
        pad_h, pad_w = (-h) % m, (-w) % m
        if pad_h or pad_w:
            mode = 'reflect' if pad_h < h and pad_w < w else 'replicate'
            x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
        return self._forward(x)[..., :h, :w]

    def _forward(self, x):
        """The network on a size that is a multiple of 8 (the original's ``forward``)."""
        hvi = self.trans.hvit(x)
        i = hvi[:, 2:3]
        i_enc0 = self.IE_block0(i)
        i_enc1 = self.IE_block1(i_enc0)
        hv_0 = self.HVE_block0(hvi)
        hv_1 = self.HVE_block1(hv_0)
        i_jump0, hv_jump0 = i_enc0, hv_0

        i_enc2 = self.I_LCA1(i_enc1, hv_1)
        hv_2 = self.HV_LCA1(hv_1, i_enc1)
        i_jump1, hv_jump1 = i_enc2, hv_2
        i_enc2 = self.IE_block2(i_enc2)
        hv_2 = self.HVE_block2(hv_2)

        i_enc3 = self.I_LCA2(i_enc2, hv_2)
        hv_3 = self.HV_LCA2(hv_2, i_enc2)
        i_jump2, hv_jump2 = i_enc3, hv_3
        if self.upstream_quirks:  # issues #91/#104: the LCA2 outputs only feed the skips
            i_enc3, hv_3 = self.IE_block3(i_enc2), self.HVE_block3(hv_2)
        else:
            i_enc3, hv_3 = self.IE_block3(i_enc3), self.HVE_block3(hv_3)

        i_enc4 = self.I_LCA3(i_enc3, hv_3)
        hv_4 = self.HV_LCA3(hv_3, i_enc3)
        i_dec4 = self.I_LCA4(i_enc4, hv_4)
        hv_4 = self.HV_LCA4(hv_4, i_enc4)

        hv_3 = self.HVD_block3(hv_4, hv_jump2)
        i_dec3 = self.ID_block3(i_dec4, i_jump2)
        i_dec2 = self.I_LCA5(i_dec3, hv_3)
        hv_2 = self.HV_LCA5(hv_3, i_dec3)
        hv_2 = self.HVD_block2(hv_2, hv_jump1)
        # upstream issue #60: the I_LCA5 output is discarded
        i_dec2 = self.ID_block2(i_dec3 if self.upstream_quirks else i_dec2, i_jump1)

        i_dec1 = self.I_LCA6(i_dec2, hv_2)
        hv_1 = self.HV_LCA6(hv_2, i_dec2)
        i_dec0 = self.ID_block0(self.ID_block1(i_dec1, i_jump0))
        hv_0 = self.HVD_block0(self.HVD_block1(hv_1, hv_jump0))

        return self.trans.phvit(torch.cat([hv_0, i_dec0], dim=1) + hvi)
