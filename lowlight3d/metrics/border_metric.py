"""``border_step``: a frame along the image border, against the ground truth (``docs/metric_protocol.md`` section 6).

A network with zero-padded convolutions sees a black frame around every feature map; on dark inputs it then
brightens a band along the border differently from the inside, and the result shows an inset rectangle. The
error of such a result, seen as a function of the distance to the border, has a step where the band ends.

Definition (full reference, in 8-bit luma levels; lower is better):

1. luma ``Y = 0.299 R + 0.587 G + 0.114 B`` of the result and of the reference, 0-255;
2. signed error ``E = Y_result - Y_reference``;
3. ring ``d`` = the pixels whose distance to the nearest image edge is ``d`` (``d = 0`` is the outermost row and
   column); profile ``p[d]`` = mean of ``E`` over ring ``d``, for ``d = 0 .. rings - 1`` (``rings`` = 32, at most a
   quarter of the shorter side, so that the innermost ring still holds about half the pixels of the outermost);
4. ``border_step = max_d |p[d + 1] - p[d]|``.

A result whose error does not depend on the distance to the border scores well under 1 level (random errors
average out over a ring of a few hundred pixels); a visible frame scores several levels (the demo models with and
without zero padding: ``docs/experiments.md`` section 2).
"""
import numpy as np

from lowlight3d.metrics.metric_util import bgr_luma, check_image, crop_image, register_metric

__all__ = ['border_profile', 'border_step', 'BORDER_RINGS']

#: Rings (pixels from the edge) the profile covers.
BORDER_RINGS = 32


def border_profile(img, img2, rings=BORDER_RINGS):
    """Mean signed luma error ``result - reference`` (0-255) of each ring ``d = 0 .. rings - 1`` from the edge.

    Args:
        img (np.ndarray): Result, uint8 ``H x W x 3`` BGR (or ``H x W``).
        img2 (np.ndarray): Reference of the same shape.
        rings (int): Rings to measure (capped so that the innermost ring is not the centre).

    Returns:
        np.ndarray: The profile ``p`` (float64, length ``min(rings, min(H, W) // 4)``).
    """
    img, img2 = check_image(img, 'img'), check_image(img2, 'img2')
    if img.shape != img2.shape:
        raise ValueError(f'border_step: result and reference differ in shape: {img.shape} vs {img2.shape}')
    err = 255.0 * (bgr_luma(img) - bgr_luma(img2))
    h, w = err.shape
    n = min(int(rings), min(h, w) // 4)
    if n < 2:
        raise ValueError(f'border_step needs images of at least 8 x 8 pixels, got {h} x {w}')
    yy, xx = np.mgrid[:h, :w]
    dist = np.minimum(np.minimum(yy, h - 1 - yy), np.minimum(xx, w - 1 - xx))
    return np.array([err[dist == d].mean() for d in range(n)])


@register_metric('border_step', reference='full', better='lower')
def border_step(img, img2, crop_border=0, **kwargs):
    """Largest ring-to-ring step of the border error profile (:func:`border_profile`), in 8-bit luma levels.

    Args:
        img (np.ndarray): Result, uint8 BGR.
        img2 (np.ndarray): Ground truth.
        crop_border (int): Pixels removed on each side first.
        **kwargs: Other option keys (ignored).

    Returns:
        float: ``max |p[d + 1] - p[d]|`` (lower is better; a visible frame scores several levels).
    """
    profile = border_profile(crop_image(img, crop_border), crop_image(img2, crop_border))
    return float(np.abs(np.diff(profile)).max())
