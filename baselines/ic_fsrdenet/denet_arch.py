"""DENet (stage 2 of IC-FSRDENet): the SR3-style conditional U-Net that predicts the noise of ``x_t`` given the
stage-1 result and the continuous noise level ``gamma = sqrt(abar)``.

Reimplemented from ``docs/baselines.md`` section 6 (no code copied).  Input: ``concat(condition, x_t)``
(6 channels, ``[-1, 1]`` units) and ``gamma`` ``(B,)``; output: the predicted noise (3 channels).

* Noise-level embedding (:class:`NoiseLevelEmbedding`): the sinusoidal features of the *continuous* ``gamma``
  (not of a step index: that is the SR3/WaveGrad difference from the tri-plane DDPM, whose denoiser embeds the
  integer step), then Linear C->4C, Swish, Linear 4C->C.  The features are the toolkit's
  :func:`~lowlight3d.archs.triplane_ddpm_arch.timestep_embedding` evaluated at ``gamma`` (frequencies
  ``10000^(-k / (C/2))``, unscaled: ``gamma`` is in ``(0, 1]``, so only the lowest frequencies vary much, as in
  SR3), with the sine half first as in SR3.
* Levels: width ``C`` (64) x ``channel_mults`` ([1, 2, 2, 2, 2]), ``res_blocks`` (2) :class:`ResBlock` per level
  on the way down and ``res_blocks + 1`` on the way up (each fed the skip of one down output, concatenated), a
  stride-2 conv3x3 down and nearest x2 + conv3x3 up between levels, single-head :class:`SelfAttention` after every
  block of the levels whose resolution (from ``image_size``) is in ``attn_res`` ([16]) and in the middle (ResBlock +
  attention, ResBlock).  Head: conv3x3 6->C; tail: GroupNorm, Swish, conv3x3 C->3.
* :class:`ResBlock`: ``h = conv(Swish(GN(x))) + Linear(emb)``, ``h = conv(Dropout(Swish(GN(h))))``, plus ``x``
  (conv1x1 when the width changes).  GroupNorm with ``norm_groups`` (32) groups, dropout 0.2.
* Initialisation ``init: orthogonal`` (SR3's: every conv and linear weight orthogonal with gain 1, biases 0).

10,779,907 parameters with the defaults (tested); 91.96 GMACs per call at 256 x 256.  The network is fully
convolutional apart from the attention, so it runs at any size divisible by ``2^(levels - 1)``; the model feeds it
256 x 256 (``image_size``).
"""
import math

import torch
from torch import nn

from lowlight3d.archs.triplane_ddpm_arch import timestep_embedding
from lowlight3d.utils.registry import ARCH_REGISTRY, register

__all__ = ['NoiseLevelEmbedding', 'ResBlock', 'SelfAttention', 'DENet', 'orthogonal_init']


def orthogonal_init(module):
    """SR3's initialisation: orthogonal weights (gain 1) and zero biases for every conv and linear layer."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.orthogonal_(m.weight, gain=1)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class NoiseLevelEmbedding(nn.Module):
    """``gamma`` ``(B,)`` -> ``(B, dim)``: sinusoidal features of the continuous level, then an MLP.

    Args:
        dim (int): Embedding width (the U-Net's base width).
    """

    def __init__(self, dim):
        super().__init__()
        if dim % 2:
            raise ValueError(f'the noise-level embedding width must be even, got {dim}')
        self.dim = dim
        self.mlp = nn.Sequential(nn.Linear(dim, dim * 4), nn.SiLU(), nn.Linear(dim * 4, dim))

    def features(self, gamma):
        """``[sin(gamma f), cos(gamma f)]`` with ``f_k = 10000^(-k / (dim / 2))`` (SR3's order)."""
        cos_sin = timestep_embedding(gamma.reshape(-1).float(), self.dim)  # [cos, sin] of the same arguments
        half = self.dim // 2
        return torch.cat([cos_sin[:, half:], cos_sin[:, :half]], dim=1)

    def forward(self, gamma):
        """Embedding ``(B, dim)``."""
        return self.mlp(self.features(gamma))


class ResBlock(nn.Module):
    """SR3 residual block with the noise-level embedding added after the first convolution.

    Args:
        in_ch (int): Input channels. out_ch (int): Output channels. emb_dim (int): Embedding width.
        norm_groups (int): GroupNorm groups. dropout (float): Dropout before the second convolution.
    """

    def __init__(self, in_ch, out_ch, emb_dim, norm_groups=32, dropout=0.0):
        super().__init__()
        self.block1 = nn.Sequential(nn.GroupNorm(norm_groups, in_ch), nn.SiLU(), nn.Conv2d(in_ch, out_ch, 3, padding=1))
        self.emb = nn.Linear(emb_dim, out_ch)
        self.block2 = nn.Sequential(nn.GroupNorm(norm_groups, out_ch), nn.SiLU(),
                                    nn.Dropout(dropout) if dropout else nn.Identity(),
                                    nn.Conv2d(out_ch, out_ch, 3, padding=1))
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x, emb):
        """``x`` ``B x in_ch x H x W``, ``emb`` ``B x emb_dim``."""
        h = self.block1(x) + self.emb(emb)[:, :, None, None]
        return self.block2(h) + self.skip(x)


class SelfAttention(nn.Module):
    """Single-head self-attention over all positions (GroupNorm, bias-free qkv conv1x1, output conv1x1, residual).

    Args:
        channels (int): Channels. norm_groups (int): GroupNorm groups.
    """

    def __init__(self, channels, norm_groups=32):
        super().__init__()
        self.norm = nn.GroupNorm(norm_groups, channels)
        self.qkv = nn.Conv2d(channels, channels * 3, 1, bias=False)
        self.out = nn.Conv2d(channels, channels, 1)

    def forward(self, x):
        """``x + out(softmax(q^T k / sqrt(C)) v)``."""
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).unbind(1)
        attn = torch.softmax(q.transpose(1, 2) @ k / math.sqrt(c), dim=-1)  # B x HW(query) x HW(key)
        out = (v @ attn.transpose(1, 2)).reshape(b, c, h, w)
        return x + self.out(out)


class _Level(nn.Module):
    """A ResBlock optionally followed by self-attention (one entry of the U-Net's block lists)."""

    def __init__(self, in_ch, out_ch, emb_dim, norm_groups, dropout, attention):
        super().__init__()
        self.res = ResBlock(in_ch, out_ch, emb_dim, norm_groups, dropout)
        self.attn = SelfAttention(out_ch, norm_groups) if attention else None

    def forward(self, x, emb):
        x = self.res(x, emb)
        return self.attn(x) if self.attn is not None else x


@register(ARCH_REGISTRY, name='ICFSRDENet.DENet')
class DENet(nn.Module):
    """DENet noise predictor ``eps(concat(cond, x_t), gamma)`` (see the module docstring).

    Args:
        in_channels (int): ``concat(condition, x_t)`` channels (6). out_channels (int): 3.
        inner_channel (int): Base width ``C`` (64). channel_mults (list[int]): Width multipliers per level.
        attn_res (list[int]): Resolutions (of an ``image_size`` input) with self-attention ([16]).
        res_blocks (int): ResBlocks per level on the way down (2). dropout (float): 0.2.
        norm_groups (int): GroupNorm groups (32). image_size (int): Side the attention levels refer to (256).
        init (str): ``'orthogonal'`` (SR3) or ``'default'`` (PyTorch's).
    """

    def __init__(self, in_channels=6, out_channels=3, inner_channel=64, channel_mults=(1, 2, 2, 2, 2), attn_res=(16, ),
                 res_blocks=2, dropout=0.2, norm_groups=32, image_size=256, init='orthogonal'):
        super().__init__()
        mults = list(channel_mults)
        widths = [inner_channel * m for m in mults]
        if any(w % norm_groups for w in widths):
            raise ValueError(f'DENet: every level width {widths} must be divisible by norm_groups={norm_groups}')
        if init not in ('orthogonal', 'default'):
            raise ValueError(f"DENet: init must be 'orthogonal' or 'default', got {init!r}")
        self.in_channels, self.image_size = in_channels, int(image_size)
        self.multiple = 2**(len(mults) - 1)
        if self.image_size % self.multiple:
            raise ValueError(f'DENet: image_size {image_size} must be divisible by {self.multiple}')
        attn_res = set(int(r) for r in (attn_res or ()))
        self.embed = NoiseLevelEmbedding(inner_channel)
        self.head = nn.Conv2d(in_channels, inner_channel, 3, padding=1)
        self.down = nn.ModuleList()
        skips, ch, res = [inner_channel], inner_channel, self.image_size
        for i, width in enumerate(widths):
            for _ in range(res_blocks):
                self.down.append(_Level(ch, width, inner_channel, norm_groups, dropout, res in attn_res))
                ch = width
                skips.append(ch)
            if i < len(widths) - 1:
                self.down.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))
                skips.append(ch)
                res //= 2
        self.mid = nn.ModuleList([_Level(ch, ch, inner_channel, norm_groups, dropout, True),
                                  _Level(ch, ch, inner_channel, norm_groups, dropout, False)])
        self.up = nn.ModuleList()
        for i in reversed(range(len(widths))):
            for _ in range(res_blocks + 1):
                self.up.append(_Level(ch + skips.pop(), widths[i], inner_channel, norm_groups, dropout,
                                      res in attn_res))
                ch = widths[i]
            if i > 0:
                self.up.append(nn.Sequential(nn.Upsample(scale_factor=2, mode='nearest'),
                                             nn.Conv2d(ch, ch, 3, padding=1)))
                res *= 2
        self.tail = nn.Sequential(nn.GroupNorm(norm_groups, ch), nn.SiLU(), nn.Conv2d(ch, out_channels, 3, padding=1))
        if init == 'orthogonal':
            orthogonal_init(self)

    def forward(self, x, gamma):
        """``x``: ``concat(cond, x_t)`` ``B x in_channels x H x W`` (``H, W`` divisible by ``2^(levels-1)``);
        ``gamma``: ``(B,)`` or ``(B, 1)`` noise levels ``sqrt(abar)``.  Returns the predicted noise ``B x 3 x H x W``.
        """
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f'DENet expects B x {self.in_channels} x H x W (condition and x_t), got {tuple(x.shape)}')
        if x.shape[-1] % self.multiple or x.shape[-2] % self.multiple:
            raise ValueError(f'DENet: H and W must be divisible by {self.multiple}, got {tuple(x.shape[-2:])}')
        emb = self.embed(gamma.reshape(x.shape[0], -1)[:, 0])
        h = self.head(x)
        feats = [h]
        for layer in self.down:
            h = layer(h, emb) if isinstance(layer, _Level) else layer(h)
            feats.append(h)
        for layer in self.mid:
            h = layer(h, emb)
        for layer in self.up:
            h = layer(torch.cat([h, feats.pop()], dim=1), emb) if isinstance(layer, _Level) else layer(h)
        return self.tail(h)

    def example_inputs(self, size):
        """``concat(cond, x_t)`` at ``size`` (rounded up to a valid size) and one noise level (complexity counts)."""
        side = -(-int(size) // self.multiple) * self.multiple
        return torch.randn(1, self.in_channels, side, side), torch.full((1, ), 0.5)
