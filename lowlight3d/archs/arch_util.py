"""Small building blocks shared by the toolkit's archs (no datasets, models or options here)."""
import torch
import torch.nn.functional as F
from torch import nn

from lowlight3d.archs.checkpoint_upgrade import UpgradableCheckpoint

__all__ = ['pad_to_multiple', 'ResidualBlock', 'residual_blocks', 'UPSAMPLE_MODES', 'DOWNSAMPLE_MODES',
           'icnr_init_', 'Upsample2x', 'Downsample2x', 'PADDING_MODES', 'set_padding_mode',
           'interpolate_any_precision']

#: Border handling of the spatial convolutions: see :func:`set_padding_mode`.
PADDING_MODES = ('zeros', 'replicate', 'reflect')

#: ``Upsample2x`` modes: see its docstring.
UPSAMPLE_MODES = ('pixel_shuffle', 'pixel_shuffle_icnr', 'bilinear')
#: ``Downsample2x`` modes: see its docstring.
DOWNSAMPLE_MODES = ('strided_conv', 'avgpool_conv')


def pad_to_multiple(x, multiple, mode='reflect'):
    """Pad an NCHW tensor at the bottom/right so H and W are multiples of ``multiple``.

    Args:
        x (Tensor): Input of shape (N, C, H, W).
        multiple (int): Required divisor of the spatial size (e.g. ``2 ** num_levels``).
        mode (str): ``F.pad`` mode; ``reflect`` falls back to ``replicate`` for inputs too small to reflect.

    Returns:
        tuple[Tensor, tuple[int, int]]: The padded tensor and the original ``(H, W)`` to crop back to.
    """
    h, w = x.shape[-2:]
    pad_h, pad_w = (-h) % multiple, (-w) % multiple
    if pad_h == 0 and pad_w == 0:
        return x, (h, w)
    if mode == 'reflect' and (pad_h >= h or pad_w >= w):
        mode = 'replicate'
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode), (h, w)


def set_padding_mode(module, mode):
    """Set the border handling of every padded ``nn.Conv2d`` inside ``module`` (in place) and return ``module``.

    ``'zeros'`` (PyTorch's default) shows the network a black frame around every feature map; a network that must
    multiply a dark input's values then brightens a band along the image border differently from the inside (an
    inset frame, ``docs/experiments.md`` section 2). ``'replicate'`` repeats the edge values, so a constant input
    stays constant up to the border; it works for maps of any size (``'reflect'`` needs maps larger than the
    padding). No parameters change, but the weights are trained for one mode:
    :class:`~lowlight3d.archs.prior_guided_enhancer_arch.PriorGuidedEnhancer` records it in its checkpoints and
    refuses a checkpoint of another mode.

    Args:
        module (nn.Module): Network whose convolutions are changed.
        mode (str): One of :data:`PADDING_MODES`.
    """
    if mode not in PADDING_MODES:
        raise ValueError(f'padding_mode must be one of {PADDING_MODES}, got {mode!r}')
    for m in module.modules():
        if isinstance(m, nn.Conv2d) and any(p > 0 for p in m.padding):
            m.padding_mode = mode
    return module


class ResidualBlock(nn.Module):
    """conv3x3 - LeakyReLU(0.2) - conv3x3 with an identity skip (no normalisation).

    Args:
        channels (int): Input = output channels.
    """

    def __init__(self, channels):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, 1, 1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(channels, channels, 3, 1, 1))

    def forward(self, x):
        """``x + body(x)``."""
        return x + self.body(x)


def residual_blocks(channels, num):
    """``num`` :class:`ResidualBlock` s in series (an empty ``nn.Sequential`` = identity when ``num`` is 0)."""
    return nn.Sequential(*[ResidualBlock(channels) for _ in range(num)])


def icnr_init_(weight, scale=2, bias=None):
    """ICNR initialisation (Aitken et al. 2017) of the conv feeding a ``PixelShuffle(scale)``, in place.

    The ``scale**2`` sub-pixel filters (and biases) of every output channel are made identical copies of one
    Kaiming-initialised filter, so conv + pixel shuffle starts as conv + nearest-neighbour up-sampling: no
    period-``scale`` pattern at initialisation (the filters may still drift apart in training, and nearest
    up-sampling itself leaves ``scale x scale`` blocks).

    Args:
        weight (Tensor): Conv weight of shape ``(C_out * scale**2, C_in, k, k)``.
        scale (int): Pixel-shuffle factor.
        bias (Tensor, optional): The conv's bias ``(C_out * scale**2,)``; tied the same way.
    """
    out_channels = weight.shape[0]
    if out_channels % (scale * scale):
        raise ValueError(f'icnr_init_: {out_channels} output channels are not a multiple of scale**2 = {scale**2}')
    base = torch.empty(out_channels // (scale * scale), *weight.shape[1:], dtype=weight.dtype, device=weight.device)
    nn.init.kaiming_uniform_(base, a=5**0.5)  # nn.Conv2d's default initialisation
    with torch.no_grad():
        weight.copy_(base.repeat_interleave(scale * scale, dim=0))  # PixelShuffle reads channel c * r^2 + i
        if bias is not None:
            bias.copy_(bias[::scale * scale].repeat_interleave(scale * scale))


class Upsample2x(UpgradableCheckpoint, nn.Module):
    """2x spatial up-sampling from ``in_channels`` to ``out_channels``.

    Modes:
        * ``'pixel_shuffle'``: Conv1x1(in -> 4 out) + PixelShuffle(2), default initialisation: the four sub-pixel
          filters of a channel are independent, so the output carries a period-2 pattern from the first iteration.
        * ``'pixel_shuffle_icnr'``: the same layers with :func:`icnr_init_` (no pattern at initialisation).
        * ``'bilinear'``: Conv1x1(in -> out) then bilinear 2x (``align_corners=False``); conv1x1 and bilinear
          interpolation commute, so this is a resize-convolution at a quarter of the pixel-shuffle's cost and
          cannot produce a period-2 pattern at all.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        mode (str): One of :data:`UPSAMPLE_MODES`.
    """

    def __init__(self, in_channels, out_channels, mode='pixel_shuffle'):
        super().__init__()
        if mode not in UPSAMPLE_MODES:
            raise ValueError(f"Upsample2x: mode must be one of {UPSAMPLE_MODES}, got '{mode}'")
        self.mode = mode
        if mode == 'bilinear':
            self.conv = nn.Conv2d(in_channels, out_channels, 1)
        else:
            self.conv = nn.Conv2d(in_channels, out_channels * 4, 1)
            if mode == 'pixel_shuffle_icnr':
                icnr_init_(self.conv.weight, 2, self.conv.bias)

    def mismatch_hint(self, state_dict, prefix, block):
        """The other up-sampling mode when the checkpoint's conv has 4x more (or fewer) output channels."""
        theirs, own = state_dict.get(prefix + 'conv.weight'), self.conv.weight
        if theirs is None or not hasattr(theirs, 'shape') or theirs.shape[1:] != own.shape[1:]:
            return ''
        if theirs.shape[0] == 4 * own.shape[0]:
            return f'The checkpoint was trained before the bilinear up-sampling: set {block}.upsample: pixel_shuffle.'
        if 4 * theirs.shape[0] == own.shape[0]:
            return f'The checkpoint uses the bilinear up-sampling: set {block}.upsample: bilinear.'
        return ''

    def forward(self, x):
        """Up-sample ``x`` (N, in, H, W) to (N, out, 2H, 2W)."""
        x = self.conv(x)
        if self.mode == 'bilinear':
            return F.interpolate(x, scale_factor=2, mode='bilinear', align_corners=False)
        return F.pixel_shuffle(x, 2)


class Downsample2x(nn.Module):
    """2x spatial down-sampling from ``in_channels`` to ``out_channels`` (H and W must be even).

    Modes:
        * ``'strided_conv'``: Conv3x3 with stride 2 (the usual reading of "halve the resolution").
        * ``'avgpool_conv'``: 2x2 average pooling then Conv3x3 at the low resolution (same cost and parameters).
          Every input pixel gets the same weight, so the backward pass (the gradient the layer sends up to the
          full-resolution features) has no stride-2 pattern.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        mode (str): One of :data:`DOWNSAMPLE_MODES`.
    """

    def __init__(self, in_channels, out_channels, mode='strided_conv'):
        super().__init__()
        if mode not in DOWNSAMPLE_MODES:
            raise ValueError(f"Downsample2x: mode must be one of {DOWNSAMPLE_MODES}, got '{mode}'")
        self.mode = mode
        self.conv = nn.Conv2d(in_channels, out_channels, 3, 2 if mode == 'strided_conv' else 1, 1)

    def forward(self, x):
        """Down-sample ``x`` (N, in, H, W) to (N, out, H/2, W/2)."""
        if self.mode == 'avgpool_conv':
            x = F.avg_pool2d(x, 2)
        return self.conv(x)


def interpolate_any_precision(img, **kwargs):
    """``F.interpolate(img, **kwargs)`` for any floating dtype: computed in float32 and returned in ``img``'s dtype
    when ``img`` is half precision (bf16 autocast leaves such tensors; antialiased bicubic has no CPU half kernel)."""
    if img.dtype in (torch.float16, torch.bfloat16):
        return torch.nn.functional.interpolate(img.float(), **kwargs).to(img.dtype)
    return torch.nn.functional.interpolate(img, **kwargs)
