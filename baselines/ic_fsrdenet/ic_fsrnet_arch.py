"""IC-FSRNet (stage 1 of IC-FSRDENet, Wang, Jiang, Jiang, Liu, AAAI 2024): a U-shaped CNN whose blocks brighten
features with curves read from a learned bilateral grid.

Reimplemented from ``docs/baselines.md`` section 6 (no code copied).  Images are RGB in ``[0, 1]``; the
network always works on ``input_size x input_size`` (256, hard-wired in the original: its grid is a 16 x 16 map made
from a x1/16 bicubic copy of the input).  Any other input size is resized to it (bicubic, antialiased when
shrinking) and the result resized back to the input's size (bicubic), see :meth:`ICFSRNet.forward`.

Parts (default width ``C = 64``):

* **Grid builder** (:class:`GridBuilder`, the paper's FENet): bicubic resize to 16 x 16 -> conv3x3 3->C + ReLU ->
  :class:`GridRefiner` with the tokens attending to themselves.  The result ``C x 16 x 16`` is read as a bilateral
  grid of ``C`` channels x depth 4 x 8 x 8 (:func:`as_bilateral_grid`).
* **Guidance** (:class:`GuidanceNet`, GNet): conv3x3 + ReLU, then four conv3x3 + ReLU stages at full, 1/2, 1/4 and
  1/8 resolution (average pooling between them), each read out by a conv3x3 C->1.  Upstream quirk kept: the 1/8
  map reuses the 1/4 read-out (the 4th read-out conv exists, 577 parameters, and is never used).
* **Backbone**: conv3x3 3->C + ReLU at full size; three down steps (pixel-unshuffle 2 + conv3x3 4C->C) to 1/2,
  1/4, 1/8 and three up steps (conv3x3 C->4C + pixel-shuffle 2); a :class:`BiaGroup` after every step with the
  guidance map of its resolution; the outputs of the three down steps ``d1, d2, d3`` are added back (``d3`` after
  the bottom Biablock, ``d2`` and ``d1`` after the first two up Biablocks, as the original); conv3x3 C->3; plus
  the input.
* **Grid refinement** (:class:`GridRefiner` as the original's RB, 5 of them): between Biablocks, grid tokens (queries)
  attend to the current feature map resized to 16 x 16 (keys/values), both projected by the same conv3x3 C->8.
* **Biablock** (:class:`BiaGroup` of :class:`BilateralCurveBlock`): ``n_blocks`` (6) units, then a bias-free conv3x3
  with NO activation (upstream: its ``act='relu'`` matches none of the helper's names) and ``+ s x`` (learnable
  ``s``, 1 at start).  A unit: an RCAB whose two conv3x3 have NO activation (upstream: an ``nn.ReLU`` object passed
  where a name was expected) + channel attention (reduction 4) + ``s' x``; then ``t = tanh(conv(ReLU(conv(x))))``,
  ``c = sigmoid(conv3x3(slice(grid, guide)))`` and ``out = t + c t (1 - t) + x`` (an LE-curve step).
* **Slicing** (:func:`slice_bilateral_grid`): trilinear ``grid_sample`` at ``(row, column, guide)``.  Upstream quirk
  kept: the row coordinate is passed as grid_sample's x (the grid's width axis) and the column as y, so the 8 x 8
  grid is read transposed; the guidance value (unbounded) selects the depth, outside ``[-1, 1]`` the sample is 0.

Token blocks (:class:`TokenTransformer`, the original's single-stream fusion transformer, 8-d tokens, 2 heads): the
query tokens and the context tokens are each layer-normalised, ``q = q_n + Attn(q_n, kv_n)`` (the residual is the
*normalised* query, as the original), then ``q + MLP(LN(q))`` (x4, GELU).  Upstream quirk kept: a fourth LayerNorm
exists and is never used (16 parameters per block).

8,910,017 parameters with the defaults (the original's count; tested); 135.4 GMACs at 256 x 256.
"""
import torch
import torch.nn.functional as F
from torch import nn

from lowlight3d.archs.arch_util import interpolate_any_precision
from lowlight3d.utils.registry import ARCH_REGISTRY, register

__all__ = ['slice_bilateral_grid', 'as_bilateral_grid', 'TokenAttention', 'TokenTransformer', 'GridRefiner',
           'GridBuilder', 'GuidanceNet', 'ChannelAttention', 'RCAB', 'BilateralCurveBlock', 'BiaGroup', 'ICFSRNet',
           'resize_to']

GRID_TOKENS = 16  # the grid is a 16 x 16 map of tokens
GRID_DEPTH = 4    # ... read as depth 4 x 8 x 8


def resize_to(img, size):
    """Bicubic resize of ``N x C x H x W`` to ``size`` (h, w); antialiased when shrinking; unchanged if equal."""
    size = tuple(int(s) for s in size)
    if tuple(img.shape[-2:]) == size:
        return img
    shrink = size[0] < img.shape[-2] or size[1] < img.shape[-1]
    return interpolate_any_precision(img, size=size, mode='bicubic', align_corners=False, antialias=shrink)


def as_bilateral_grid(grid_map):
    """``N x C x 16 x 16`` grid map -> the bilateral grid ``N x C x 4 x 8 x 8`` (a view, as the original)."""
    n, c, h, w = grid_map.shape
    side = h * w // GRID_DEPTH
    side = int(round(side**0.5))
    return grid_map.reshape(n, c, GRID_DEPTH, side, side)


def slice_bilateral_grid(grid, guide):
    """Read a bilateral grid at every pixel: trilinear ``grid_sample`` at ``(row, column, guide)``.

    Args:
        grid (torch.Tensor): ``N x C x D x Gh x Gw``.
        guide (torch.Tensor): ``N x 1 x H x W`` guidance (the depth coordinate, ``[-1, 1]`` spans the grid).

    Returns:
        torch.Tensor: ``N x C x H x W``.  As the original, the row coordinate (``-1`` at the top, ``1`` at the
        bottom) is grid_sample's first (x, width) coordinate and the column the second (y, height), i.e. the grid's
        spatial axes are read transposed; ``align_corners=True``, zeros outside.
    """
    n, _, h, w = guide.shape
    rows = torch.linspace(-1, 1, h, device=guide.device, dtype=guide.dtype)
    cols = torch.linspace(-1, 1, w, device=guide.device, dtype=guide.dtype)
    row_c, col_c = torch.meshgrid(rows, cols, indexing='ij')
    coords = torch.stack([row_c.expand(n, h, w), col_c.expand(n, h, w), guide[:, 0]], dim=-1)
    return F.grid_sample(grid, coords.unsqueeze(1), mode='bilinear', padding_mode='zeros',
                         align_corners=True).squeeze(2)


class TokenAttention(nn.Module):
    """Multi-head attention of query tokens over context tokens (q, k, v without bias; output projection with bias).

    Args:
        dim (int): Token width. num_heads (int): Heads (``dim`` must be divisible by it).
    """

    def __init__(self, dim, num_heads):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'token width {dim} is not divisible by num_heads {num_heads}')
        self.num_heads = num_heads
        self.scale = (dim // num_heads)**-0.5
        self.q = nn.Linear(dim, dim, bias=False)
        self.k = nn.Linear(dim, dim, bias=False)
        self.v = nn.Linear(dim, dim, bias=False)
        self.proj = nn.Linear(dim, dim)

    def _heads(self, x):
        b, n, c = x.shape
        return x.reshape(b, n, self.num_heads, c // self.num_heads).transpose(1, 2)

    def forward(self, query, context):
        """``query`` ``B x N x dim``, ``context`` ``B x M x dim`` -> ``B x N x dim``."""
        q, k, v = self._heads(self.q(query)), self._heads(self.k(context)), self._heads(self.v(context))
        attn = (q @ k.transpose(-2, -1) * self.scale).softmax(dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(query.shape)
        return self.proj(out)


class TokenTransformer(nn.Module):
    """One attention + MLP block on tokens (the original's single-stream fusion transformer; see module docstring).

    Args:
        dim (int): Token width (8). num_heads (int): Heads (2). mlp_ratio (float): MLP expansion (4).
    """

    def __init__(self, dim=8, num_heads=2, mlp_ratio=4.0):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm_query = nn.LayerNorm(dim)
        self.norm_context = nn.LayerNorm(dim)
        self.attn = TokenAttention(dim, num_heads)
        self.norm_mlp = nn.LayerNorm(dim)
        self.unused_norm = nn.LayerNorm(dim)  # upstream quirk: built, never called (parameter parity)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, query, context):
        """Tokens ``B x N x dim`` attending to ``context`` ``B x M x dim``."""
        query = self.norm_query(query)
        query = query + self.attn(query, self.norm_context(context))
        return query + self.mlp(self.norm_mlp(query))


class GridRefiner(nn.Module):
    """Grid tokens refined by attention (the original's FENet body and RB): project, attend, project back, convs.

    ``x`` (``N x C x 16 x 16``) and the context (``None``: ``x`` itself; else a feature map bicubic-resized to
    16 x 16) are both projected by the same conv3x3 C->8 + LeakyReLU into 256 tokens; the tokens of ``x`` attend to
    the context's (:class:`TokenTransformer`); a conv3x3 8->C maps them back, then conv5x5 + ReLU, conv3x3 + ReLU,
    conv1x1.

    Args:
        num_feat (int): ``C``. embed_dim (int): Token width (8). num_heads (int): Heads (2).
    """

    def __init__(self, num_feat=64, embed_dim=8, num_heads=2):
        super().__init__()
        self.token_proj = nn.Sequential(nn.Conv2d(num_feat, embed_dim, 3, padding=1), nn.LeakyReLU(inplace=True))
        self.block = TokenTransformer(embed_dim, num_heads)
        self.map_proj = nn.Conv2d(embed_dim, num_feat, 3, padding=1)
        self.enhance = nn.Sequential(nn.Conv2d(num_feat, num_feat, 5, padding=2), nn.ReLU(inplace=True),
                                     nn.Conv2d(num_feat, num_feat, 3, padding=1), nn.ReLU(inplace=True),
                                     nn.Conv2d(num_feat, num_feat, 1))

    def _tokens(self, x):
        return self.token_proj(x).flatten(2).transpose(1, 2)

    def forward(self, x, context=None):
        """Refined ``N x C x 16 x 16`` grid map."""
        n, _, h, w = x.shape
        tokens = self._tokens(x)
        ctx = tokens if context is None else self._tokens(resize_to(context, (h, w)))
        tokens = self.block(tokens, ctx)
        return self.enhance(self.map_proj(tokens.transpose(1, 2).reshape(n, -1, h, w)))


class GridBuilder(nn.Module):
    """The paper's FENet: a bicubic 16 x 16 copy of the input -> conv3x3 + ReLU -> self-attending :class:`GridRefiner`.

    Args:
        num_feat (int): ``C``.
    """

    def __init__(self, num_feat=64):
        super().__init__()
        self.head = nn.Sequential(nn.Conv2d(3, num_feat, 3, padding=1), nn.ReLU(inplace=True))
        self.refine = GridRefiner(num_feat)

    def forward(self, img):
        """``N x 3 x S x S`` -> grid map ``N x C x 16 x 16`` (no antialiasing, as the original's x1/16 bicubic)."""
        small = F.interpolate(img, size=(GRID_TOKENS, GRID_TOKENS), mode='bicubic', align_corners=False)
        return self.refine(self.head(small))


class GuidanceNet(nn.Module):
    """The paper's GNet: guidance maps at full, 1/2, 1/4 and 1/8 resolution (see the module docstring's quirk).

    Args:
        num_feat (int): ``C``.
    """

    def __init__(self, num_feat=64):
        super().__init__()

        def conv_relu(pool):
            layers = [nn.Conv2d(num_feat, num_feat, 3, padding=1), nn.ReLU(inplace=True)]
            return nn.Sequential(*layers, nn.AvgPool2d(2)) if pool else nn.Sequential(*layers)

        self.head = nn.Sequential(nn.Conv2d(3, num_feat, 3, padding=1), nn.ReLU(inplace=True))
        self.stages = nn.ModuleList([conv_relu(False), conv_relu(True), conv_relu(True), conv_relu(True)])
        self.readouts = nn.ModuleList([nn.Conv2d(num_feat, 1, 3, padding=1) for _ in range(4)])

    def forward(self, img):
        """List of 4 guidance maps ``N x 1 x S/2^k x S/2^k`` (``k = 0..3``)."""
        f = self.head(img)
        maps = []
        for k, stage in enumerate(self.stages):
            f = stage(f)
            maps.append(self.readouts[min(k, 2)](f))  # upstream quirk: the 1/8 map reuses readout 2
        return maps


class ChannelAttention(nn.Module):
    """Squeeze-and-excitation channel attention: ``x * sigmoid(conv1x1(ReLU(conv1x1(avgpool(x)))))``.

    Args:
        num_feat (int): Channels. reduction (int): Squeeze ratio (4).
    """

    def __init__(self, num_feat, reduction=4):
        super().__init__()
        self.body = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(num_feat, num_feat // reduction, 1),
                                  nn.ReLU(inplace=True), nn.Conv2d(num_feat // reduction, num_feat, 1), nn.Sigmoid())

    def forward(self, x):
        """Reweighted ``x``."""
        return x * self.body(x)


class RCAB(nn.Module):
    """Residual channel-attention block as the original runs it: two conv3x3 WITHOUT activation (upstream quirk),
    channel attention, plus ``s x`` (learnable ``s``, 1 at start).

    Args:
        num_feat (int): Channels. reduction (int): Channel-attention reduction (4).
    """

    def __init__(self, num_feat, reduction=4):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(num_feat, num_feat, 3, padding=1),
                                  nn.Conv2d(num_feat, num_feat, 3, padding=1), ChannelAttention(num_feat, reduction))
        self.res_scale = nn.Parameter(torch.ones(1))

    def forward(self, x):
        """``body(x) + s x``."""
        return self.body(x) + self.res_scale * x


class BilateralCurveBlock(nn.Module):
    """One Biablock unit (the original's BasicBlock2): RCAB, then an LE-curve step whose coefficient is sliced from
    the bilateral grid: ``t = tanh(conv(ReLU(conv(x))))``, ``c = sigmoid(conv(slice))``, ``t + c t (1 - t) + x``.

    Args:
        num_feat (int): Channels (= the grid's channels).
    """

    def __init__(self, num_feat=64):
        super().__init__()
        self.rcab = RCAB(num_feat)
        self.conv1 = nn.Conv2d(num_feat, num_feat, 3, padding=1)
        self.conv2 = nn.Conv2d(num_feat, num_feat, 3, padding=1)
        self.coeff = nn.Sequential(nn.Conv2d(num_feat, num_feat, 3, padding=1), nn.Sigmoid())

    def forward(self, x, guide, grid):
        """Features ``x`` ``N x C x H x W``, guidance ``N x 1 x H x W``, bilateral grid ``N x C x 4 x 8 x 8``."""
        x = self.rcab(x)
        t = torch.tanh(self.conv2(F.relu(self.conv1(x))))
        c = self.coeff(slice_bilateral_grid(grid, guide))
        return t + c * t * (1 - t) + x


class BiaGroup(nn.Module):
    """A Biablock: ``n_blocks`` :class:`BilateralCurveBlock`, a bias-free conv3x3 without activation, ``+ s x``.

    Args:
        num_feat (int): Channels. n_blocks (int): Units (6).
    """

    def __init__(self, num_feat=64, n_blocks=6):
        super().__init__()
        self.blocks = nn.ModuleList([BilateralCurveBlock(num_feat) for _ in range(n_blocks)])
        self.tail = nn.Conv2d(num_feat, num_feat, 3, padding=1, bias=False)
        self.re_scale = nn.Parameter(torch.ones(1))

    def forward(self, x, guide, grid):
        """See the class docstring."""
        res = x
        for block in self.blocks:
            res = block(res, guide, grid)
        return self.tail(res) + self.re_scale * x


@register(ARCH_REGISTRY, name='ICFSRDENet.ICFSRNet')
class ICFSRNet(nn.Module):
    """IC-FSRNet, stage 1 of IC-FSRDENet (see the module docstring).

    Args:
        num_feat (int): Width ``C`` of every part (64; the original fixes the grid builder's and GNet's width at 64
            and the rest at ``n_feats``, equal by default).  The bilateral grid has ``C`` channels.
        n_blocks (int): Units per Biablock (6).
        input_size (int): Side the network works at (256, the original's only size).  Must be a multiple of 8
            and at least 32; inputs of any other size are resized to it and the result resized back.
    """

    def __init__(self, num_feat=64, n_blocks=6, input_size=256):
        super().__init__()
        if num_feat % 4 or num_feat < 4:
            raise ValueError(f'ICFSRNet: num_feat must be a positive multiple of 4 (channel attention reduction 4), '
                             f'got {num_feat}')
        if input_size % 8 or input_size < 32:
            raise ValueError(f'ICFSRNet: input_size must be a multiple of 8 and >= 32 (three 2x down steps), got '
                             f'{input_size}')
        self.num_feat, self.input_size = num_feat, int(input_size)
        self.grid_builder = GridBuilder(num_feat)
        self.guidance = GuidanceNet(num_feat)
        self.head = nn.Sequential(nn.Conv2d(3, num_feat, 3, padding=1), nn.ReLU(inplace=True))
        self.downs = nn.ModuleList([nn.Sequential(nn.PixelUnshuffle(2), nn.Conv2d(4 * num_feat, num_feat, 3, padding=1))
                                    for _ in range(3)])
        self.ups = nn.ModuleList([nn.Sequential(nn.Conv2d(num_feat, 4 * num_feat, 3, padding=1), nn.PixelShuffle(2))
                                  for _ in range(3)])
        self.down_groups = nn.ModuleList([BiaGroup(num_feat, n_blocks) for _ in range(3)])
        self.up_groups = nn.ModuleList([BiaGroup(num_feat, n_blocks) for _ in range(3)])
        self.grid_refiners = nn.ModuleList([GridRefiner(num_feat) for _ in range(5)])
        self.tail = nn.Conv2d(num_feat, 3, 3, padding=1)

    def enhance(self, img):
        """The network at its own size: ``N x 3 x S x S`` (``S = input_size``) -> same size (not clamped)."""
        grid_map = self.grid_builder(img)
        guides = self.guidance(img)
        d1 = self.downs[0](self.head(img))                                       # 1/2
        x = self.down_groups[0](d1, guides[1], as_bilateral_grid(grid_map))
        d2 = self.downs[1](x)                                                    # 1/4
        grid_map = self.grid_refiners[0](grid_map, d2)
        x = self.down_groups[1](d2, guides[2], as_bilateral_grid(grid_map))
        d3 = self.downs[2](x)                                                    # 1/8
        grid_map = self.grid_refiners[1](grid_map, d3)
        x = self.down_groups[2](d3, guides[3], as_bilateral_grid(grid_map)) + d3
        x = self.ups[0](x)                                                       # 1/4
        grid_map = self.grid_refiners[2](grid_map, x)
        x = self.up_groups[0](x, guides[2], as_bilateral_grid(grid_map)) + d2
        x = self.ups[1](x)                                                       # 1/2
        grid_map = self.grid_refiners[3](grid_map, x)
        x = self.up_groups[1](x, guides[1], as_bilateral_grid(grid_map)) + d1
        x = self.ups[2](x)                                                       # 1
        grid_map = self.grid_refiners[4](grid_map, x)
        x = self.up_groups[2](x, guides[0], as_bilateral_grid(grid_map))
        return self.tail(x) + img

    def forward(self, img):
        """``N x 3 x H x W`` in ``[0, 1]`` -> enhanced ``N x 3 x H x W`` (not clamped).

        Any ``H x W`` other than ``input_size`` squared is resized to it (bicubic, antialiased when shrinking) and
        the network's output is resized back to ``H x W`` (bicubic): the original only accepts 256 x 256.
        """
        if img.dim() != 4 or img.shape[1] != 3:
            raise ValueError(f'ICFSRNet expects N x 3 x H x W RGB images, got shape {tuple(img.shape)}')
        size = tuple(img.shape[-2:])
        out = self.enhance(resize_to(img, (self.input_size, self.input_size)))
        return resize_to(out, size)
