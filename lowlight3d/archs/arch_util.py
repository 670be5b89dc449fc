"""Small building blocks shared by the toolkit's archs (no datasets, models or options here)."""
import torch.nn.functional as F
from torch import nn

__all__ = ['pad_to_multiple', 'ResidualBlock', 'residual_blocks']


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
