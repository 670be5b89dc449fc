"""Dynamic range of a dark photo: how many stops its brightest pixels sit above its median pixel.

Real dark faces lit from the side or from behind hold a few bright pixels (the lit cheek, the nose ridge) far above
a face in shadow; a face darkened by a global exposure change does not.  :func:`dynamic_range_stops` measures it
in linear light (sRGB decoded) on the central part of the image (a sixth of each side cut away, where a face crop
holds the face), so that it can be compared between real frames and synthesised inputs
(``scripts/calibrate_noise.py``; numbers in ``docs/data_protocol.md``, "Dynamic range of real dark faces").
"""
import numpy as np

from lowlight3d.data.lowlight_degradation import srgb_to_linear

__all__ = ['dynamic_range_stops']


def dynamic_range_stops(img, high=98.0, low=50.0, highlight=0.8, eps=1e-4):
    """Stops between two percentiles of the linear luma of an image's centre, and its share of highlights.

    Args:
        img (np.ndarray): ``H x W`` or ``H x W x 3`` sRGB image in ``[0, 1]`` (at least 6 px a side).
        high (float): Upper percentile. low (float): Lower percentile (the median by default).
        highlight (float): sRGB luma above which a pixel counts as a highlight.
        eps (float): Added to both percentiles (black frames measure 0 stops, not a division by zero).

    Returns:
        tuple[float, float]: ``(log2((p_high + eps) / (p_low + eps)), fraction of centre pixels above highlight)``.

    Raises:
        ValueError: The image is not ``H x W`` or ``H x W x 3`` or is smaller than 6 px.
    """
    img = np.asarray(img, dtype=np.float32)
    if img.ndim == 3 and img.shape[2] == 3:
        img = img.mean(axis=2)
    if img.ndim != 2 or min(img.shape) < 6:
        raise ValueError(f'dynamic_range_stops needs an H x W (x 3) image of at least 6 px, got {img.shape}')
    h, w = img.shape
    centre = img[h // 6:h - h // 6, w // 6:w - w // 6]
    lo, hi = np.percentile(srgb_to_linear(centre), [low, high])
    return float(np.log2((hi + eps) / (lo + eps))), float(np.mean(centre > highlight))
