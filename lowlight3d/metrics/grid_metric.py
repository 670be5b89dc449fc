"""Two no-reference defect measures of enhanced images: periodic grid artifacts (``grid``) and colour cast (``chroma``).

``grid``: periodic-artifact energy at the period-2 and period-4 frequencies
=============================================================================
Up-sampling by pixel shuffle / transposed convolution and down-sampling by strided convolution leave a fine
regular pattern of period 2 or 4 pixels (a "grid" or checkerboard).  In the power spectrum of an image such a
pattern is a bright **line** at the horizontal or vertical frequency 1/2 or 1/4 cycles per pixel: the pattern
is multiplied by the image content, so its energy is spread along the other frequency axis.  The score is how
far these lines stand above their spectral neighbourhood:

1. luma ``Y = 0.299 R + 0.587 G + 0.114 B`` in [0, 1] (a gray image: its one channel);
2. crop to a multiple of 4 pixels (bottom/right) so both frequencies fall exactly on an FFT bin;
3. high-pass ``H = Y - GaussianBlur(Y, sigma=1)`` (removes the smooth content whose leakage would dominate);
4. ``P = |FFT2(H * hann2d)|^2`` (a separable Hann window, so the image border is not a discontinuity);
5. column energies ``Ex[k] = sum_v P[v, k]`` (all vertical frequencies of horizontal frequency ``k / W``) and row
   energies ``Ey[k]`` likewise;
6. for each axis and each period ``p`` in (2, 4): ``ratio = E[k0] / mean(E[k0 +- d] for d in 2, 3, 4)`` with
   ``k0 = N / p`` (indices modulo N; bins +-1 are skipped because the Hann window leaks a line into them);
7. ``grid`` = the largest of the four ratios.

About 1 for noise and smooth photos; natural photos reach 2-6 (JPEG's 8x8 blocks have harmonics at exactly these
periods); an image with a visible grid scores 10 and more.  Lower is better; compare a method against the ground
truth or input of the same set.  :func:`grid_ratios` returns the four ratios for diagnosis.

``chroma``: colour of a result
==============================
Mean over pixels of ``max(R, G, B) - min(R, G, B)`` in 0-255 units (the HSV chroma).  For **grayscale inputs**
(Yale B) a faithful result is gray and scores 0: any value is a colour cast the method invented.  On colour sets
it is just the colourfulness of the result and has no better direction.
"""
import cv2
import numpy as np

from lowlight3d.metrics.metric_util import MetricUnavailable, bgr_luma, check_image, crop_image, register_metric

__all__ = ['grid', 'grid_ratios', 'luma_grid_ratios', 'chroma', 'GRID_PERIODS', 'GRID_MIN_SIZE']

#: The artifact periods (pixels) the ``grid`` score looks at.
GRID_PERIODS = (2, 4)
#: Smallest side (after cropping to a multiple of 4) for which the neighbourhood bins exist.
GRID_MIN_SIZE = 32
_NEIGHBOUR_OFFSETS = (2, 3, 4)
_HIGHPASS_SIGMA = 1.0


def _line_ratio(energy, period):
    """Energy of the line at frequency 1/period over the mean of its neighbours (indices modulo N)."""
    n = energy.shape[0]
    k0 = n // period
    neighbours = [energy[(k0 + s * d) % n] for d in _NEIGHBOUR_OFFSETS for s in (-1, 1)]
    return float(energy[k0] / max(np.mean(neighbours), 1e-30))


def grid_ratios(img):
    """The four line ratios behind :func:`grid` (see the module docstring).

    Args:
        img (np.ndarray): uint8 image, ``H x W x 3`` BGR or ``H x W`` gray.

    Returns:
        dict: ``{'x2': r, 'x4': r, 'y2': r, 'y4': r}``: horizontal/vertical frequency, period in pixels.

    Raises:
        MetricUnavailable: Image smaller than 32x32 (after cropping to a multiple of 4), or without any
            high-frequency content (a constant image).
    """
    return luma_grid_ratios(bgr_luma(check_image(img, 'img')))


def luma_grid_ratios(luma):
    """:func:`grid_ratios` of a float 2-D map (a luma in [0, 1], or any signal such as a loss gradient).

    Args:
        luma (np.ndarray): ``H x W`` float array.

    Returns:
        dict: ``{'x2': r, 'x4': r, 'y2': r, 'y4': r}``.
    """
    y = np.asarray(luma, dtype=np.float64)
    if y.ndim != 2:
        raise ValueError(f'luma_grid_ratios expects a 2-D map, got shape {y.shape}')
    h, w = (y.shape[0] // 4) * 4, (y.shape[1] // 4) * 4
    if min(h, w) < GRID_MIN_SIZE:
        raise MetricUnavailable(f'grid needs an image of at least {GRID_MIN_SIZE}x{GRID_MIN_SIZE} pixels, got '
                                f'{y.shape[1]}x{y.shape[0]}')
    y = y[:h, :w]
    high = y - cv2.GaussianBlur(y, (0, 0), _HIGHPASS_SIGMA, borderType=cv2.BORDER_REFLECT)
    window = np.outer(np.hanning(h), np.hanning(w))
    power = np.abs(np.fft.fft2(high * window))**2
    if not np.isfinite(power).all() or power.sum() <= 1e-20 * max(float((y * y).sum()), 1e-20):
        raise MetricUnavailable(f'grid is undefined on an image without high-frequency content ({w}x{h}, constant?)')
    col_energy, row_energy = power.sum(axis=0), power.sum(axis=1)
    ratios = {}
    for axis, energy in (('x', col_energy), ('y', row_energy)):
        for period in GRID_PERIODS:
            ratios[f'{axis}{period}'] = _line_ratio(energy, period)
    return ratios


@register_metric('grid', reference='no', better='lower')
def grid(img, img2=None, crop_border=0, **kwargs):
    """Periodic grid-artifact score (no reference; lower is better; about 1-6 for clean photos).

    Args:
        img (np.ndarray): The image to score, uint8 ``H x W x 3`` BGR (or ``H x W`` gray).
        img2 (np.ndarray, optional): Ignored (no-reference metric; BasicSR's calling convention).
        crop_border (int): Pixels removed on each side first.
        **kwargs: Other option keys (ignored, e.g. ``test_y_channel``: the score always uses the luma).

    Returns:
        float: ``max`` of the four line ratios of :func:`grid_ratios`.
    """
    img = crop_image(check_image(img, 'img'), crop_border)
    return max(grid_ratios(img).values())


@register_metric('chroma', reference='no', better='lower')
def chroma(img, img2=None, crop_border=0, **kwargs):
    """Mean HSV chroma ``max(R,G,B) - min(R,G,B)`` in 0-255 units (0 for a gray image).

    Args:
        img (np.ndarray): uint8 ``H x W x 3`` image (a 2-D gray image scores 0).
        img2 (np.ndarray, optional): Ignored (no-reference metric).
        crop_border (int): Pixels removed on each side first.
        **kwargs: Other option keys (ignored).

    Returns:
        float: The mean chroma; on grayscale inputs, the colour cast a method added.
    """
    img = crop_image(check_image(img, 'img'), crop_border).astype(np.float64)
    return float((img.max(axis=2) - img.min(axis=2)).mean())
