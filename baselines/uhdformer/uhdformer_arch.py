"""UHDformer (Wang et al., AAAI 2024): a full-resolution perception path guiding a 1/8-resolution Transformer.

Reimplemented from ``docs/baselines.md`` section 3 (official code: ``FeMaSRNet`` -> ``Net`` in
supersupercong/UHDformer; nothing copied).  Images are RGB in ``[0, 1]``; the output is ``input + residual``
and is not clamped (the toolkit clamps for metrics and images).  With ``C = width``::

    e     = conv3x3(x)                                   3 -> C, full resolution
    s, m, d = the three chained ConvNeXt-like blocks     shallow, middle, deep features
    P     = PerceptionFusion(s, m, d)                    3C channels, full resolution (the "ACM")
    z     = conv8x8/8(e)                                 1/8 resolution, C channels
    z     = z + groups(z, P)                             5 groups x 3 Transformer blocks, each group 0.2 t + input
    f     = conv1x1([PixelShuffle8(conv3x3 z), d])       back to full resolution, 2C -> C
    y     = x + conv3x3(ConvNeXt(ConvNeXt(f)))

Every Transformer block uses the perception map through dual channel matching (:class:`DualChannelMatching`,
the paper's DualCMT) in its transposed attention (replacing the query) and in its feed-forward network.

Our addition: inputs are padded (reflect) to a multiple of ``scale`` and the output is cropped back, so any
size works (the official code requires multiples of 8 and crashes otherwise).  Multiples of 8 are untouched.
"""
import torch
import torch.nn.functional as F
from torch import nn

from lowlight3d.archs.prior_fusion_arch import LayerNorm2d
from lowlight3d.utils.registry import ARCH_REGISTRY, register

__all__ = [
    'ChannelLayerNorm', 'ConvNeXtLikeBlock', 'PerceptionFusion', 'match_channels', 'DualChannelMatching',
    'MatchedTransposedAttention', 'MatchedFeedForward', 'UHDformerBlock', 'UHDformerGroup', 'UHDformerNetwork',
    'pad_to_multiple'
]


def pad_to_multiple(x, multiple):
    """Pad ``x`` at the bottom/right to a multiple of ``multiple`` (reflect; replicate where reflect cannot).

    Args:
        x (Tensor): ``N x C x H x W``.
        multiple (int): Required divisor of H and W.

    Returns:
        tuple[Tensor, int, int]: The padded tensor and the original ``H``, ``W``.
    """
    h, w = x.shape[-2:]
    pad_h, pad_w = (-h) % multiple, (-w) % multiple
    if pad_h == 0 and pad_w == 0:
        return x, h, w
    mode = 'reflect' if pad_h < h and pad_w < w else 'replicate'
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode), h, w


class ChannelLayerNorm(LayerNorm2d):
    """LayerNorm over the channels of each pixel of an ``N x C x H x W`` map (Restormer's "WithBias" variant):
    the toolkit's :class:`~lowlight3d.archs.prior_fusion_arch.LayerNorm2d` with the original's eps 1e-5.

    Args:
        channels (int): Number of channels. eps (float): Added to the (biased) variance.
    """

    def __init__(self, channels, eps=1e-5):
        super().__init__(channels, eps)


class ConvNeXtLikeBlock(nn.Module):
    """The official "ConvNeXt" block: full conv3x3 -> Linear -> GELU -> Linear -> layer scale, plus a residual.

    Unlike ConvNeXt the 3x3 convolution is a *full* convolution (not depthwise) and there is no LayerNorm.

    Args:
        dim (int): Channels. layer_scale_init (float): Initial value of the per-channel scale (1e-6).
    """

    def __init__(self, dim, layer_scale_init=1e-6):
        super().__init__()
        self.conv = nn.Conv2d(dim, dim, 3, padding=1)
        self.fc1 = nn.Linear(dim, dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(dim, dim)
        self.gamma = nn.Parameter(torch.full((dim, ), float(layer_scale_init)))

    def forward(self, x):
        """``x + gamma * MLP(conv(x))`` (MLP applied per pixel)."""
        y = self.conv(x).permute(0, 2, 3, 1)
        y = self.fc2(self.act(self.fc1(y))) * self.gamma
        return x + y.permute(0, 3, 1, 2)


class PerceptionFusion(nn.Module):
    """Fuses shallow, middle and deep features into the perception map ``P`` (3C channels, full resolution).

    ``P0 = [s, m, d]``; ``(a, b) = split(groupconv3x3(conv1x1(P0)))``; ``P = softmax_channels(a) * P0 + b``.

    Args:
        dim (int): Channels of each input feature (C).
    """

    def __init__(self, dim):
        super().__init__()
        self.mix = nn.Conv2d(3 * dim, 3 * dim, 1)
        self.spatial = nn.Conv2d(3 * dim, 6 * dim, 3, padding=1, groups=3 * dim)

    def forward(self, shallow, middle, deep):
        """The perception map from the three features."""
        stacked = torch.cat([shallow, middle, deep], dim=1)
        weights, offset = self.spatial(self.mix(stacked)).chunk(2, dim=1)
        return torch.softmax(weights, dim=1) * stacked + offset


def match_channels(x, candidates, num_matches):
    """For the ``num_matches`` channels of ``x`` closest to their nearest candidate channel, that candidate.

    Every channel of ``x`` (flattened over space) finds its nearest channel of ``candidates`` (L2 distance); the
    ``num_matches`` channels of ``x`` with the smallest such distances are kept *in their original order*, and
    the candidate channels they matched are returned.  The selection is hard (no gradient through the indices);
    gradients flow into the selected candidate channels.

    Args:
        x (Tensor): ``N x C x h x w``.
        candidates (Tensor): ``N x C' x h x w`` (same spatial size).
        num_matches (int): Number of channels returned (``1 <= num_matches <= C``).

    Returns:
        Tensor: ``N x num_matches x h x w``.
    """
    n, _, h, w = x.shape
    if candidates.shape[0] != n or candidates.shape[-2:] != x.shape[-2:]:
        raise ValueError(f'UHDformer channel matching: candidate map {tuple(candidates.shape)} does not match the '
                         f'feature map {tuple(x.shape)} in batch or spatial size')
    dist = torch.cdist(x.flatten(2), candidates.flatten(2))  # N x C x C'
    nearest_dist, nearest = dist.min(dim=2)  # N x C
    kept = torch.argsort(nearest_dist, dim=1, stable=True)[:, :num_matches]
    kept = torch.sort(kept, dim=1).values  # original channel order
    chosen = torch.gather(nearest, 1, kept)  # N x k, candidate channel indices
    index = chosen.view(n, num_matches, 1).expand(-1, -1, h * w)
    return torch.gather(candidates.flatten(2), 1, index).view(n, num_matches, h, w)


class DualChannelMatching(nn.Module):
    """DualCMT: features matched to max- and average-pooled perception channels, gated and projected back.

    ``p = conv1x1(P~)`` (3C -> C), pooled by ``scale`` (max and mean) to the feature's resolution; for each pooled
    map :func:`match_channels` picks ``C / match_factor`` channels; the two picks are concatenated (``2k``),
    gated by ``conv1x1 -> dwconv3x3 -> GELU -> conv1x1`` (through ``expansion * C`` channels) and projected to C.

    Args:
        dim (int): Feature channels C. match_factor (int): Keep ``C // match_factor`` matches per pooling.
        expansion (float): Hidden width factor of the gate. scale (int): Pooling factor (the resolution ratio).
    """

    def __init__(self, dim, match_factor=4, expansion=4, scale=8):
        super().__init__()
        self.num_matches = dim // match_factor
        hidden = int(dim * expansion)
        pair = 2 * self.num_matches
        self.perception = nn.Conv2d(3 * dim, dim, 1)
        self.max_pool = nn.MaxPool2d(scale, scale)
        self.avg_pool = nn.AvgPool2d(scale, scale)
        self.gate = nn.Sequential(
            nn.Conv2d(pair, hidden, 1), nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden), nn.GELU(),
            nn.Conv2d(hidden, pair, 1))
        self.project = nn.Conv2d(pair, dim, 1)

    def forward(self, x, perception):
        """``x``: ``N x C x h x w``; ``perception``: the normalised ``N x 3C x (scale h) x (scale w)`` map."""
        p = self.perception(perception)
        matched = torch.cat([
            match_channels(x, self.max_pool(p), self.num_matches),
            match_channels(x, self.avg_pool(p), self.num_matches)
        ], dim=1)
        return self.project(self.gate(matched) * matched)


class MatchedTransposedAttention(nn.Module):
    """Restormer's transposed (channel) attention whose query is replaced by DualCMT(q, P~).

    ``q, k, v = dwconv3x3(conv1x1(x))``; q, k L2-normalised over space; per head ``softmax(q k^T * t) v`` with a
    learnable temperature ``t``; 1x1 output projection.

    Args:
        dim (int): Channels (divisible by ``num_heads``). num_heads (int): Heads.
        match_factor, expansion, scale: Passed to :class:`DualChannelMatching`.
        matching (bool): Use DualCMT on the query (the official setting); False keeps the plain query.
    """

    def __init__(self, dim, num_heads=8, match_factor=4, expansion=4, scale=8, matching=True):
        super().__init__()
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv = nn.Conv2d(dim, 3 * dim, 1)
        self.qkv_dwconv = nn.Conv2d(3 * dim, 3 * dim, 3, padding=1, groups=3 * dim)
        self.project_out = nn.Conv2d(dim, dim, 1)
        self.matching = DualChannelMatching(dim, match_factor, expansion, scale) if matching else None

    def forward(self, x, perception):
        """Attention over channels of ``x`` (``N x C x h x w``) guided by ``perception``."""
        n, c, h, w = x.shape
        q, k, v = self.qkv_dwconv(self.qkv(x)).chunk(3, dim=1)
        if self.matching is not None:
            q = self.matching(q, perception)
        q, k, v = (t.reshape(n, self.num_heads, c // self.num_heads, h * w) for t in (q, k, v))
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        attn = torch.softmax(q @ k.transpose(-2, -1) * self.temperature, dim=-1)
        return self.project_out((attn @ v).reshape(n, c, h, w))


class MatchedFeedForward(nn.Module):
    """The official FFN: ``conv1x1 (C -> eC) -> groupconv3x3 (eC -> C)``, DualCMT, ``groupconv3x3 (C -> eC) ->
    conv1x1 (eC -> C)``; no other nonlinearity.

    Args:
        dim (int): Channels C. expansion (float): Hidden factor e (an integer multiple is needed by the grouping).
        match_factor, scale: Passed to :class:`DualChannelMatching`. matching (bool): Use DualCMT (official: True).
    """

    def __init__(self, dim, match_factor=4, expansion=4, scale=8, matching=True):
        super().__init__()
        hidden = int(dim * expansion)
        self.project_in = nn.Sequential(
            nn.Conv2d(dim, hidden, 1), nn.Conv2d(hidden, dim, 3, padding=1, groups=dim))
        self.matching = DualChannelMatching(dim, match_factor, expansion, scale) if matching else None
        self.project_out = nn.Sequential(
            nn.Conv2d(dim, hidden, 3, padding=1, groups=dim), nn.Conv2d(hidden, dim, 1))

    def forward(self, x, perception):
        """The FFN output for ``x`` guided by ``perception``."""
        y = self.project_in(x)
        if self.matching is not None:
            y = self.matching(y, perception)
        return self.project_out(y)


class UHDformerBlock(nn.Module):
    """One Transformer block: ``P~ = LN(P)``; ``x += Attn(LN x, P~)``; ``x += FFN(LN x, P~)``.

    Args:
        dim (int): Channels C. num_heads, match_factor, expansion, scale: see the sub-modules.
        attention_matching, ffn_matching (bool): DualCMT in the attention / the FFN.
    """

    def __init__(self, dim, num_heads=8, match_factor=4, expansion=4, scale=8, attention_matching=True,
                 ffn_matching=True):
        super().__init__()
        self.norm1 = ChannelLayerNorm(dim)
        self.attn = MatchedTransposedAttention(dim, num_heads, match_factor, expansion, scale, attention_matching)
        self.norm2 = ChannelLayerNorm(dim)
        self.ffn = MatchedFeedForward(dim, match_factor, expansion, scale, ffn_matching)
        self.norm_perception = ChannelLayerNorm(3 * dim)

    def forward(self, x, perception):
        """``x``: low-resolution features; ``perception``: the full-resolution perception map ``P``."""
        p = self.norm_perception(perception)
        x = x + self.attn(self.norm1(x), p)
        return x + self.ffn(self.norm2(x), p)


class UHDformerGroup(nn.Module):
    """``num_blocks`` chained :class:`UHDformerBlock` with the residual ``0.2 * t + input``.

    Args:
        dim (int): Channels. num_blocks (int): Blocks (3 in the official code). **block_kwargs: see the block.
    """

    def __init__(self, dim, num_blocks=3, **block_kwargs):
        super().__init__()
        self.blocks = nn.ModuleList(UHDformerBlock(dim, **block_kwargs) for _ in range(num_blocks))

    def forward(self, x, perception):
        """Scaled residual over the chained blocks."""
        y = x
        for block in self.blocks:
            y = block(y, perception)
        return 0.2 * y + x


@register(ARCH_REGISTRY, name='UHDformer.Network')
class UHDformerNetwork(nn.Module):
    """UHDformer with the official configuration by default (width 16: 339,323 parameters).

    Args:
        width (int): Channel width C (official: 16, hard-coded as ``channel_query_dict[256]``).  ``width: 108``
            with ``num_heads: 12`` gives 13.33 M parameters, the closest to the face paper's 13.35 M
            (``baselines/README.md``).  Must be divisible by ``num_heads`` and ``match_factor``.
        num_groups (int): Residual groups at 1/8 resolution (official ``number_block``: 5).
        blocks_per_group (int): Transformer blocks per group (official ``unit_num``: 3).
        num_heads (int): Attention heads (8). match_factor (int): DualCMT keeps ``C / match_factor`` channels (4).
        ffn_expansion_factor (int): Hidden factor of the FFN and of the DualCMT gate (4).
        scale (int): Resolution ratio of the two paths (8): the strided-conv stride, the pooling of DualCMT and the
            PixelShuffle factor.  Inputs are padded to a multiple of it.
        attention_matching, ffn_matching (bool): DualCMT in the attention / the FFN (official: both True).
    """

    def __init__(self, width=16, num_groups=5, blocks_per_group=3, num_heads=8, match_factor=4,
                 ffn_expansion_factor=4, scale=8, attention_matching=True, ffn_matching=True):
        super().__init__()
        for key, value in (('width', width), ('num_groups', num_groups), ('blocks_per_group', blocks_per_group),
                           ('num_heads', num_heads), ('match_factor', match_factor), ('scale', scale),
                           ('ffn_expansion_factor', ffn_expansion_factor)):
            if int(value) != value or value < 1:
                raise ValueError(f'UHDformer.Network: {key} must be a positive integer, got {value!r}')
        if width % num_heads:
            raise ValueError(f'UHDformer.Network: width ({width}) must be divisible by num_heads ({num_heads})')
        if width % match_factor:
            raise ValueError(f'UHDformer.Network: width ({width}) must be divisible by match_factor '
                             f'({match_factor}) so that DualCMT keeps width / match_factor channels')
        self.scale = int(scale)
        c = int(width)
        self.enter = nn.Conv2d(3, c, 3, padding=1)
        self.shallow, self.middle, self.deep = ConvNeXtLikeBlock(c), ConvNeXtLikeBlock(c), ConvNeXtLikeBlock(c)
        self.perception_fusion = PerceptionFusion(c)
        block_kwargs = dict(num_heads=num_heads, match_factor=match_factor, expansion=ffn_expansion_factor,
                            scale=self.scale, attention_matching=attention_matching, ffn_matching=ffn_matching)
        self.groups = nn.ModuleList(
            UHDformerGroup(c, blocks_per_group, **block_kwargs) for _ in range(num_groups))
        self.downsample = nn.Conv2d(c, c, self.scale, stride=self.scale, bias=False)
        self.upsample = nn.Sequential(
            nn.Conv2d(c, c * self.scale**2, 3, padding=1, bias=False), nn.PixelShuffle(self.scale))
        self.fusion = nn.Conv2d(2 * c, c, 1)
        self.out = nn.Sequential(ConvNeXtLikeBlock(c), ConvNeXtLikeBlock(c), nn.Conv2d(c, 3, 3, padding=1))

    def forward(self, x):
        """Enhance ``x`` (``N x 3 x H x W`` in ``[0, 1]``, any H, W); returns the same size, unclamped."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f'UHDformer.Network expects N x 3 x H x W images, got {tuple(x.shape)}')
        padded, h, w = pad_to_multiple(x, self.scale)
        enter = self.enter(padded)
        shallow = self.shallow(enter)
        middle = self.middle(shallow)
        deep = self.deep(middle)
        perception = self.perception_fusion(shallow, middle, deep)
        low = self.downsample(enter)
        z = low
        for group in self.groups:
            z = group(z, perception)
        z = z + low
        fused = self.fusion(torch.cat([self.upsample(z), deep], dim=1))
        out = self.out(fused) + padded
        return out[..., :h, :w]
