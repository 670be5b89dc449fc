"""Small building blocks shared by the toolkit's archs (no datasets, models or options here)."""
import torch.nn.functional as F

__all__ = ['pad_to_multiple']


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
