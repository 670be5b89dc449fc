"""RDDM's conditional U-Net (the lucidrains ``denoising-diffusion-pytorch`` design used by nachifur/RDDM).

Reimplemented from ``docs/baselines.md`` section 7 (no code copied).  One network evaluation
``net(x_t, t, cond)``:

* input ``concat(x_t, cond)`` (3 + 3 channels), ``init_conv`` 7x7 to ``dim`` (64);
* time embedding: sinusoidal(``dim``) of the 0-based integer step ``t`` (``[sin | cos]``, frequencies
  ``exp(-log(10000) k / (dim / 2 - 1))``) -> Linear(4 dim) -> GELU -> Linear(4 dim);
* encoder, one level per width ``dim * (1, 2, 4, 8)``: two :class:`ResnetBlock` (weight-standardised conv3x3 +
  GroupNorm(8) + SiLU twice, the time scale/shift in the first), residual pre-normed :class:`LinearAttention`
  (4 heads x 32), then a stride-2 conv4x4 down-sampling to the next width (a conv3x3 at the last level);
* middle: ResnetBlock, residual pre-normed full :class:`Attention`, ResnetBlock;
* decoder (mirror): per level two ResnetBlocks on ``[x, skip]``, linear attention, nearest x2 + conv3x3 up-sampling
  (a conv3x3 at the last level); a final ResnetBlock on ``[x, init features]`` and a conv1x1 to 3 channels.

36,261,187 parameters at ``dim=64`` (tested).  Sub-module names follow the original (``init_conv``, ``time_mlp``,
``downs``, ``mid_block1`` ...) so that a state dict of its ``Unet`` has the same keys.  The spatial size must be a
multiple of ``2 ** (len(dim_mults) - 1)`` (8); :class:`~baselines.rddm.rddm_arch.RDDMNetwork` takes care of it.
"""
import itertools
import math

import torch
import torch.nn.functional as F
from torch import nn

from lowlight3d.utils.registry import ARCH_REGISTRY, register

__all__ = [
    'sinusoidal_embedding', 'WeightStandardizedConv2d', 'ChannelLayerNorm', 'PreNorm', 'Residual', 'Block',
    'ResnetBlock', 'LinearAttention', 'Attention', 'RDDMUNet'
]


def sinusoidal_embedding(t, dim):
    """``(B, dim)`` embedding ``[sin(t w_k) | cos(t w_k)]``, ``w_k = exp(-log(10000) k / (dim/2 - 1))``.

    The lucidrains convention (sin first, ``dim/2 - 1`` in the exponent); the toolkit's
    :func:`~lowlight3d.archs.triplane_ddpm_arch.timestep_embedding` is a different function (cos first, ``dim/2``),
    so it is not reused: the original's weights expect this one.
    """
    half = dim // 2
    if half < 2:
        raise ValueError(f'sinusoidal embedding needs dim >= 4, got {dim}')
    freqs = torch.exp(torch.arange(half, device=t.device, dtype=torch.float32) * -(math.log(10000) / (half - 1)))
    args = t.float()[:, None] * freqs[None]
    return torch.cat([args.sin(), args.cos()], dim=-1)


class _SinusoidalEmbedding(nn.Module):
    """Module wrapper of :func:`sinusoidal_embedding` (first entry of ``time_mlp``, no parameters)."""

    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, t):
        """Embed ``(B,)`` steps."""
        return sinusoidal_embedding(t, self.dim)


class WeightStandardizedConv2d(nn.Conv2d):
    """Conv2d whose kernel is standardised per output channel (zero mean, unit biased variance, eps 1e-5)."""

    def forward(self, x):
        """Convolve with the standardised kernel."""
        eps = 1e-5 if x.dtype == torch.float32 else 1e-3
        w = self.weight
        mean = w.mean(dim=(1, 2, 3), keepdim=True)
        var = w.var(dim=(1, 2, 3), unbiased=False, keepdim=True)
        return F.conv2d(x, (w - mean) * (var + eps).rsqrt(), self.bias, self.stride, self.padding, self.dilation,
                        self.groups)


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channels of an NCHW map with a gain ``g`` and no bias (the original's ``LayerNorm``)."""

    def __init__(self, dim):
        super().__init__()
        self.g = nn.Parameter(torch.ones(1, dim, 1, 1))

    def forward(self, x):
        """Normalise each pixel's channel vector."""
        eps = 1e-5 if x.dtype == torch.float32 else 1e-3
        var = x.var(dim=1, unbiased=False, keepdim=True)
        return (x - x.mean(dim=1, keepdim=True)) * (var + eps).rsqrt() * self.g


class PreNorm(nn.Module):
    """``fn(ChannelLayerNorm(x))``."""

    def __init__(self, dim, fn):
        super().__init__()
        self.fn = fn
        self.norm = ChannelLayerNorm(dim)

    def forward(self, x):
        """Normalise, then apply ``fn``."""
        return self.fn(self.norm(x))


class Residual(nn.Module):
    """``fn(x) + x``."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        """Add the identity."""
        return self.fn(x) + x


class Block(nn.Module):
    """Weight-standardised conv3x3 -> GroupNorm -> optional ``x (scale + 1) + shift`` -> SiLU."""

    def __init__(self, dim, dim_out, groups=8):
        super().__init__()
        self.proj = WeightStandardizedConv2d(dim, dim_out, 3, padding=1)
        self.norm = nn.GroupNorm(groups, dim_out)
        self.act = nn.SiLU()

    def forward(self, x, scale_shift=None):
        """Apply the block (``scale_shift``: the time embedding's ``(scale, shift)``)."""
        x = self.norm(self.proj(x))
        if scale_shift is not None:
            scale, shift = scale_shift
            x = x * (scale + 1) + shift
        return self.act(x)


class ResnetBlock(nn.Module):
    """Two :class:`Block` s (the first modulated by the time embedding) plus a (1x1-projected) skip.

    Args:
        dim (int): Input channels. dim_out (int): Output channels. time_emb_dim (int): Embedding width.
        groups (int): GroupNorm groups (8).
    """

    def __init__(self, dim, dim_out, time_emb_dim, groups=8):
        super().__init__()
        self.mlp = nn.Sequential(nn.SiLU(), nn.Linear(time_emb_dim, dim_out * 2))
        self.block1 = Block(dim, dim_out, groups)
        self.block2 = Block(dim_out, dim_out, groups)
        self.res_conv = nn.Conv2d(dim, dim_out, 1) if dim != dim_out else nn.Identity()

    def forward(self, x, emb):
        """``block2(block1(x, scale/shift(emb))) + res_conv(x)``."""
        scale_shift = self.mlp(emb)[:, :, None, None].chunk(2, dim=1)
        return self.block2(self.block1(x, scale_shift)) + self.res_conv(x)


def _split_heads(t, heads):
    """``(B, heads * d, H, W)`` -> ``(B, heads, d, H * W)``."""
    b, c, h, w = t.shape
    return t.reshape(b, heads, c // heads, h * w)


class LinearAttention(nn.Module):
    """Linear attention: ``q`` softmax over its channels, ``k`` over positions, context ``k v^T``; conv1x1 +
    :class:`ChannelLayerNorm` out.  Cost linear in the number of pixels."""

    def __init__(self, dim, heads=4, dim_head=32):
        super().__init__()
        self.scale, self.heads = dim_head**-0.5, heads
        hidden = dim_head * heads
        self.to_qkv = nn.Conv2d(dim, hidden * 3, 1, bias=False)
        self.to_out = nn.Sequential(nn.Conv2d(hidden, dim, 1), ChannelLayerNorm(dim))

    def forward(self, x):
        """Attend over all pixels of ``x``."""
        b, _, h, w = x.shape
        q, k, v = (_split_heads(t, self.heads) for t in self.to_qkv(x).chunk(3, dim=1))
        q = q.softmax(dim=-2) * self.scale
        k = k.softmax(dim=-1)
        v = v / (h * w)
        context = torch.einsum('bhdn,bhen->bhde', k, v)
        out = torch.einsum('bhde,bhdn->bhen', context, q)
        return self.to_out(out.reshape(b, -1, h, w))


class Attention(nn.Module):
    """Full softmax attention over pixels (``heads`` x ``dim_head``), conv1x1 out (the middle of the U-Net)."""

    def __init__(self, dim, heads=4, dim_head=32):
        super().__init__()
        self.scale, self.heads = dim_head**-0.5, heads
        hidden = dim_head * heads
        self.to_qkv = nn.Conv2d(dim, hidden * 3, 1, bias=False)
        self.to_out = nn.Conv2d(hidden, dim, 1)

    def forward(self, x):
        """Attend over all pixels of ``x``."""
        b, _, h, w = x.shape
        q, k, v = (_split_heads(t, self.heads) for t in self.to_qkv(x).chunk(3, dim=1))
        attn = torch.einsum('bhdi,bhdj->bhij', q * self.scale, k).softmax(dim=-1)
        out = torch.einsum('bhij,bhdj->bhid', attn, v)  # (B, heads, N, d)
        return self.to_out(out.permute(0, 1, 3, 2).reshape(b, -1, h, w))


@register(ARCH_REGISTRY, name='RDDM.UNet')
class RDDMUNet(nn.Module):
    """Conditional U-Net ``f(x_t, t, cond)`` of RDDM (see the module docstring).

    Args:
        dim (int): Base width (64).
        dim_mults (list[int]): Width multipliers per level ((1, 2, 4, 8)).
        channels (int): Channels of ``x_t`` and of the output (3).
        cond_channels (int): Channels of the condition concatenated to ``x_t`` (3; 0 = unconditional).
        resnet_block_groups (int): GroupNorm groups (8).
        attn_heads (int): Heads of every attention (4). attn_dim_head (int): Width per head (32).
    """

    def __init__(self, dim=64, dim_mults=(1, 2, 4, 8), channels=3, cond_channels=3, resnet_block_groups=8,
                 attn_heads=4, attn_dim_head=32):
        super().__init__()
        dim, groups = int(dim), int(resnet_block_groups)
        dim_mults = tuple(int(m) for m in dim_mults)
        if not dim_mults:
            raise ValueError('RDDM.UNet: dim_mults must name at least one level')
        widths = [dim, *(dim * m for m in dim_mults)]
        if any(w % groups for w in widths):
            raise ValueError(f'RDDM.UNet: every width {widths} must be divisible by resnet_block_groups ({groups})')
        self.channels, self.cond_channels = int(channels), int(cond_channels)
        self.downscale = 2**(len(dim_mults) - 1)
        self.init_conv = nn.Conv2d(self.channels + self.cond_channels, dim, 7, padding=3)
        time_dim = dim * 4
        self.time_mlp = nn.Sequential(_SinusoidalEmbedding(dim), nn.Linear(dim, time_dim), nn.GELU(),
                                      nn.Linear(time_dim, time_dim))
        in_out = list(itertools.pairwise(widths))

        def resnet(a, b):
            return ResnetBlock(a, b, time_dim, groups)

        def linear_attention(d):
            return Residual(PreNorm(d, LinearAttention(d, attn_heads, attn_dim_head)))

        self.downs = nn.ModuleList()
        for i, (d_in, d_out) in enumerate(in_out):
            last = i == len(in_out) - 1
            down = nn.Conv2d(d_in, d_out, 3, padding=1) if last else nn.Conv2d(d_in, d_out, 4, 2, 1)
            self.downs.append(nn.ModuleList([resnet(d_in, d_in), resnet(d_in, d_in), linear_attention(d_in), down]))
        mid = widths[-1]
        self.mid_block1 = resnet(mid, mid)
        self.mid_attn = Residual(PreNorm(mid, Attention(mid, attn_heads, attn_dim_head)))
        self.mid_block2 = resnet(mid, mid)
        self.ups = nn.ModuleList()
        for i, (d_in, d_out) in enumerate(reversed(in_out)):
            last = i == len(in_out) - 1
            up = (nn.Conv2d(d_out, d_in, 3, padding=1) if last else nn.Sequential(
                nn.Upsample(scale_factor=2, mode='nearest'), nn.Conv2d(d_out, d_in, 3, padding=1)))
            self.ups.append(
                nn.ModuleList([resnet(d_out + d_in, d_out),
                               resnet(d_out + d_in, d_out),
                               linear_attention(d_out), up]))
        self.final_res_block = resnet(dim * 2, dim)
        self.final_conv = nn.Conv2d(dim, self.channels, 1)

    def forward(self, x, t, cond=None):
        """One network evaluation.

        Args:
            x (Tensor): ``(B, channels, H, W)`` noisy image ``I_t``; ``H, W`` multiples of :attr:`downscale`.
            t (Tensor): ``(B,)`` 0-based integer steps.
            cond (Tensor, optional): ``(B, cond_channels, H, W)`` condition (required when ``cond_channels > 0``).

        Returns:
            Tensor: ``(B, channels, H, W)`` prediction.
        """
        if self.cond_channels:
            if cond is None:
                raise ValueError(f'RDDM.UNet was built with cond_channels={self.cond_channels}: pass the condition')
            x = torch.cat([x, cond], dim=1)
        if x.shape[-2] % self.downscale or x.shape[-1] % self.downscale:
            raise ValueError(f'RDDM.UNet: height and width must be multiples of {self.downscale}, got '
                             f'{tuple(x.shape[-2:])}')
        x = self.init_conv(x)
        r = x.clone()
        emb = self.time_mlp(t)
        skips = []
        for block1, block2, attn, down in self.downs:
            x = block1(x, emb)
            skips.append(x)
            x = attn(block2(x, emb))
            skips.append(x)
            x = down(x)
        x = self.mid_block2(self.mid_attn(self.mid_block1(x, emb)), emb)
        for block1, block2, attn, up in self.ups:
            x = block1(torch.cat([x, skips.pop()], dim=1), emb)
            x = attn(block2(torch.cat([x, skips.pop()], dim=1), emb))
            x = up(x)
        return self.final_conv(self.final_res_block(torch.cat([x, r], dim=1), emb))

    def example_inputs(self, size):
        """``(x_t, t, cond)`` of one network evaluation at ``size`` (for complexity measurements)."""
        cond = torch.rand(1, self.cond_channels, size, size) * 2 - 1 if self.cond_channels else None
        inputs = (torch.randn(1, self.channels, size, size), torch.tensor([500]))
        return inputs + ((cond, ) if cond is not None else ())
