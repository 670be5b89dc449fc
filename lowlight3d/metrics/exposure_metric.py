"""Exposure error (registered as ``exposure``): how far a result's brightness is from its reference's, in stops.

``exposure = |log2(mean luma(result) / mean luma(reference))|`` with BT.601 luma of the 8-bit images (``0.299 R +
0.587 G + 0.114 B``; a gray image is its own luma), both floored at half an 8-bit level.  0 means the same mean
brightness; 1 means twice as bright or half as bright.  Lower is better.  It says whether a very dark input
reached a normal brightness (the real Yale B frames against their flash reference), which PSNR on synthetic pairs
and the no-reference metrics do not.
"""
import numpy as np

from lowlight3d.metrics.metric_util import check_image, crop_image, register_metric
from lowlight3d.utils.luma import luma_weights

__all__ = ['mean_luma', 'exposure']

#: BT.601 luma weights of B, G, R (the metrics' images are BGR).
_LUMA_BGR = luma_weights('bgr', np.float64)


def mean_luma(img):
    """Mean BT.601 luma of an 8-bit BGR (or gray) image, in 8-bit levels."""
    img = np.asarray(img, dtype=np.float64)
    if img.ndim == 2 or img.shape[2] == 1:
        return float(img.mean())
    return float((img[:, :, :3] @ _LUMA_BGR).mean())


@register_metric('exposure', reference='full', better='lower')
def exposure(img, img2, crop_border=0, **kwargs):
    """``|log2(mean luma(img) / mean luma(img2))|`` (module docstring).

    Args:
        img (np.ndarray): Result, uint8-range ``H x W x 3`` BGR or ``H x W`` gray.
        img2 (np.ndarray): Reference, same layout (its size may differ: only means are compared).
        crop_border (int): Pixels removed on each side of both first.
        **kwargs: Other option keys (ignored).

    Returns:
        float: The exposure error in stops (0 = same mean brightness).
    """
    a = mean_luma(crop_image(check_image(img, 'img'), crop_border))
    b = mean_luma(crop_image(check_image(img2, 'img2'), crop_border))
    return float(abs(np.log2(max(a, 0.5) / max(b, 0.5))))
