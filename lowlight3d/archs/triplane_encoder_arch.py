"""The toolkit's own 3D feature generator: image -> tri-planes (CNN encoder) + tri-plane renderer.

Design (``docs/prior3d.md`` section 3.3): the image in ``[-1, 1]`` plus two coordinate channels goes through a stem
conv, ``len(channel_mults)`` stride-2 residual stages, residual blocks and one global self-attention at the
bottleneck (to hallucinate occluded parts), then ``num_up`` upsampling stages with skip connections, and a 1x1 conv
to ``3 * plane_channels`` reshaped to ``(3, C, R, R)``.  The plane resolution is
``image_size / 2 ** (len(channel_mults) - num_up)`` (paper: 256 -> 256, i.e. ``num_up = len(channel_mults)``).
"""
import torch
import torch.nn.functional as F
from torch import nn

from lowlight3d.archs.triplane_renderer_arch import TriplaneRenderer
from lowlight3d.utils.registry import ARCH_REGISTRY, register

__all__ = ['ResBlock', 'SelfAttention2d', 'TriplaneEncoder', 'TriplaneGenerator']


def _groups(channels, groups=8):
    g = min(groups, channels)
    while channels % g:
        g -= 1
    return g


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv3x3 twice with a residual (1x1 conv when the width changes).

    Args:
        in_ch (int): Input channels.
        out_ch (int): Output channels.
        emb_ch (int): Channels of an optional embedding added after the first conv (0: none).
    """

    def __init__(self, in_ch, out_ch, emb_ch=0):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(_groups(in_ch), in_ch), nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.norm2, self.conv2 = nn.GroupNorm(_groups(out_ch), out_ch), nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.emb = nn.Linear(emb_ch, out_ch) if emb_ch else None
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x, emb=None):
        """``x + f(x)`` (``emb`` of shape ``(B, emb_ch)`` is added per channel when configured)."""
        h = self.conv1(F.silu(self.norm1(x)))
        if self.emb is not None:
            h = h + self.emb(F.silu(emb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class SelfAttention2d(nn.Module):
    """Single-head global self-attention over all positions, residual, zero-initialised output."""

    def __init__(self, channels):
        super().__init__()
        self.norm = nn.GroupNorm(_groups(channels), channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x):
        """``x + proj(attention(norm(x)))``."""
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).unbind(1)
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return x + self.proj(out.transpose(1, 2).reshape(b, c, h, w))


@register(ARCH_REGISTRY)
class TriplaneEncoder(nn.Module):
    """Image -> tri-planes ``(B, 3, C, R, R)``.

    Args:
        plane_channels (int): Channels per plane (paper 32).
        base_channels (int): Width of the stem.
        channel_mults (Sequence[int]): Width multipliers of the stride-2 stages.
        num_up (int): Upsampling stages (``len(channel_mults)`` keeps the input resolution).
        num_bottleneck_blocks (int): Residual blocks at the bottleneck.
        attention (bool): One global self-attention at the bottleneck.
        coord_channels (bool): Append 2 coordinate channels to the image (as LP3D).
        out_scale (float): Multiplier of the zero-mean initial plane output.
    """

    def __init__(self, plane_channels=32, base_channels=64, channel_mults=(1, 2, 4, 4), num_up=4,
                 num_bottleneck_blocks=2, attention=True, coord_channels=True, out_scale=1.0):
        super().__init__()
        if not 0 <= num_up <= len(channel_mults):
            raise ValueError(f'num_up must be in [0, {len(channel_mults)}] (len(channel_mults)), got {num_up}')
        self.plane_channels, self.num_down, self.num_up = int(plane_channels), len(channel_mults), int(num_up)
        self.coord_channels, self.out_scale = bool(coord_channels), float(out_scale)
        in_ch = 3 + (2 if coord_channels else 0)
        widths = [base_channels * m for m in channel_mults]
        self.stem = nn.Conv2d(in_ch, base_channels, 3, padding=1)
        self.down = nn.ModuleList()
        prev = base_channels
        for w in widths:
            self.down.append(nn.ModuleDict({'conv': nn.Conv2d(prev, w, 3, stride=2, padding=1),
                                            'block': ResBlock(w, w)}))
            prev = w
        mid = [ResBlock(prev, prev) for _ in range(num_bottleneck_blocks)]
        if attention:
            mid.insert(min(1, len(mid)), SelfAttention2d(prev))
        self.mid = nn.Sequential(*mid)
        skips = [base_channels] + widths[:-1]  # resolution of the skip that each up stage meets
        self.up = nn.ModuleList()
        for i in range(num_up):
            skip_ch = skips[len(skips) - 1 - i]
            self.up.append(nn.ModuleDict({'conv': nn.Conv2d(prev, skip_ch, 3, padding=1),
                                          'block': ResBlock(2 * skip_ch, skip_ch)}))
            prev = skip_ch
        self.out = nn.Sequential(nn.GroupNorm(_groups(prev), prev), nn.SiLU(), nn.Conv2d(prev, 3 * plane_channels, 1))

    def plane_resolution(self, image_size):
        """Plane resolution for an input of ``image_size``."""
        return image_size // 2**(self.num_down - self.num_up)

    def forward(self, img):
        """Encode images in ``[-1, 1]`` ``(B, 3, H, W)`` (H, W divisible by ``2 ** len(channel_mults)``)."""
        b, _, h, w = img.shape
        if h % 2**self.num_down or w % 2**self.num_down:
            raise ValueError(f'image size {h}x{w} must be divisible by {2 ** self.num_down} '
                             f'(2 ** len(channel_mults)) for the tri-plane encoder')
        x = img
        if self.coord_channels:
            ys = torch.linspace(-1, 1, h, dtype=img.dtype, device=img.device)
            xs = torch.linspace(-1, 1, w, dtype=img.dtype, device=img.device)
            yy, xx = torch.meshgrid(ys, xs, indexing='ij')
            x = torch.cat([x, xx.expand(b, 1, h, w), yy.expand(b, 1, h, w)], 1)
        x = self.stem(x)
        skips = [x]
        for stage in self.down:
            x = stage['block'](stage['conv'](x))
            skips.append(x)
        x = self.mid(x)
        skips.pop()
        for stage in self.up:
            x = stage['conv'](F.interpolate(x, scale_factor=2, mode='nearest'))
            x = stage['block'](torch.cat([x, skips.pop()], 1))
        x = self.out(x) * self.out_scale
        r = x.shape[-1]
        return x.reshape(b, 3, self.plane_channels, x.shape[-2], r)


@register(ARCH_REGISTRY)
class TriplaneGenerator(nn.Module):
    """The 3D feature generator: :class:`TriplaneEncoder` + :class:`TriplaneRenderer` in one checkpoint.

    ``forward(img)`` returns the tri-planes (the diffusion targets); :meth:`render` renders them.

    Args:
        encoder (dict): Keyword arguments of :class:`TriplaneEncoder`.
        renderer (dict): Keyword arguments of :class:`TriplaneRenderer` (its ``plane_channels`` defaults to the
            encoder's).
        input_size (int): Size the image is resized to before encoding (paper 256).
    """

    def __init__(self, encoder=None, renderer=None, input_size=256):
        super().__init__()
        encoder = dict(encoder or {})
        renderer = dict(renderer or {})
        renderer.setdefault('plane_channels', encoder.get('plane_channels', 32))
        if renderer['plane_channels'] != encoder.get('plane_channels', 32):
            raise ValueError('renderer.plane_channels must equal encoder.plane_channels')
        self.encoder = TriplaneEncoder(**encoder)
        self.renderer = TriplaneRenderer(**renderer)
        self.input_size = int(input_size)

    @property
    def plane_shape(self):
        """``(3, C, R, R)`` of the tri-planes for ``input_size`` images."""
        r = self.encoder.plane_resolution(self.input_size)
        return (3, self.encoder.plane_channels, r, r)

    def forward(self, img):
        """Tri-planes of images in ``[0, 1]`` ``(B, 3, H, W)``, resized to ``input_size`` when needed."""
        if img.shape[-1] != self.input_size or img.shape[-2] != self.input_size:
            img = F.interpolate(img, size=(self.input_size, self.input_size), mode='bilinear', align_corners=False,
                                antialias=True)
        return self.encoder(img * 2 - 1)

    def render(self, planes, cameras=None, resolution=None, deterministic=None):
        """See :meth:`TriplaneRenderer.forward`."""
        return self.renderer(planes, cameras, resolution, deterministic)

    def example_inputs(self, size):
        """One image of the encoder's input size (``size`` is ignored: the input is resized anyway)."""
        return (torch.rand(1, 3, self.input_size, self.input_size), )
