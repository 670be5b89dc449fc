"""Per-image quality measurements used to filter real low-light frames.

All functions take float32 ``H x W x 3`` RGB images in ``[0, 1]`` (the toolkit's convention, see
:mod:`lowlight3d.utils.img_io`) or ``H x W`` luma arrays, and return plain floats, so that each decision written to the
CelebV-Low ledger can be traced back to a number.

* brightness: :func:`~lowlight3d.data.lowlight_degradation.mean_brightness` (mean of R, G, B; the paper's measure),
  :func:`luma` (Rec. 601 weights) and :func:`dark_fraction`;
* blur: :func:`blur_score`, the variance of the Laplacian of a brightness-normalised, downscaled copy minus its
  estimated noise floor (so a dark, noisy frame is comparable with a bright, clean one);
* exposure: :func:`exposure_clipping`, the shares of crushed-black and blown-out pixels;
* noise: :func:`noise_sigma`, Immerkaer's fast estimate ("Fast noise variance estimation", CVIU 1996): the mean
  absolute response to a Laplacian-difference kernel that cancels smooth image content;
* near duplicates: :func:`face_thumbnail` (a normalised 16 x 16 thumbnail), :func:`thumbnail_distance` and
  :class:`NearDuplicateFilter`.
"""
import math

import cv2
import numpy as np

from lowlight3d.data.lowlight_degradation import mean_brightness
from lowlight3d.utils.luma import luma_weights

__all__ = [
    'mean_brightness', 'luma', 'dark_fraction', 'normalise_brightness', 'blur_score', 'exposure_clipping',
    'noise_sigma', 'relative_noise', 'face_thumbnail', 'thumbnail_distance', 'NearDuplicateFilter'
]

_LUMA_WEIGHTS = luma_weights()
_IMMERKAER_KERNEL = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)


def luma(img):
    """Rec. 601 luma of an RGB image (a 2-D array is returned unchanged).

    Args:
        img (np.ndarray): ``H x W x 3`` RGB or ``H x W`` gray, float in ``[0, 1]``.

    Returns:
        np.ndarray: float32 ``H x W`` luma in ``[0, 1]``.
    """
    img = np.asarray(img, dtype=np.float32)
    if img.ndim == 2:
        return img
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f'luma: expected an H x W x 3 RGB image or an H x W gray image, got shape {img.shape}')
    return img @ _LUMA_WEIGHTS


def dark_fraction(img, level=0.1, mask=None):
    """Share of pixels whose luma is below ``level``.

    Args:
        img (np.ndarray): RGB or gray image in ``[0, 1]``.
        level (float): Luma level.
        mask (np.ndarray, optional): Boolean ``H x W`` mask of the pixels to count (all when None).

    Returns:
        float: The share in ``[0, 1]`` (0 for an empty mask).
    """
    y = luma(img)
    values = y[mask] if mask is not None else y
    return float(np.mean(values < level)) if values.size else 0.0


def normalise_brightness(img, target=0.5, max_gain=50.0):
    """Scale an image so that its mean luma is ``target`` (gain capped at ``max_gain``, result clipped to [0, 1]).

    Args:
        img (np.ndarray): RGB or gray image in ``[0, 1]``.
        target (float): Mean luma after scaling.
        max_gain (float): Largest gain applied (an all-black image stays black).

    Returns:
        np.ndarray: float32 luma image, ``H x W``.
    """
    y = luma(img)
    mean = float(y.mean())
    gain = max_gain if mean <= target / max_gain else target / mean
    return np.clip(y * gain, 0.0, 1.0)


def blur_score(img, size=64):
    """Sharpness: variance of the Laplacian (8-bit units) of a brightness-normalised copy, minus its noise floor.

    The image is resized to ``size`` pixels on its short side (area averaging, which also averages sensor noise)
    and scaled to a mean luma of 0.5, so the score does not depend on exposure or resolution.  White noise of
    standard deviation ``s`` adds ``20 s**2`` to the variance of the 4-neighbour Laplacian; ``s`` is estimated
    robustly (median absolute response to Immerkaer's kernel, which edges barely move) and that floor is
    subtracted, so an amplified dark, noisy frame does not look sharp.  Measured on 8 FFHQ faces (256-px crops,
    ``size`` 64): sharp 900-4800 (clean) and 280-4000 (darkened to 5-10 % with noise); Gaussian blur of sigma 5 px
    at 256 px: 40-340.  Very noisy frames (noise above about 5 % of the signal) remain hard to judge.

    Args:
        img (np.ndarray): RGB or gray image in ``[0, 1]``.
        size (int): Short side of the measured copy.

    Returns:
        float: The score (>= 0); low values mean blur.
    """
    y = luma(img)
    h, w = y.shape
    scale = size / float(min(h, w))
    if scale != 1.0:
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        y = cv2.resize(y, (max(3, round(w * scale)), max(3, round(h * scale))), interpolation=interp)
    y = normalise_brightness(y) * 255.0
    response = cv2.filter2D(y, cv2.CV_32F, _IMMERKAER_KERNEL)[1:-1, 1:-1]
    sigma = float(np.median(np.abs(response))) / 0.6745 / 6.0
    lap = cv2.Laplacian(y, cv2.CV_32F, ksize=1)[1:-1, 1:-1]
    return max(0.0, float(lap.var()) - 20.0 * sigma * sigma)


def exposure_clipping(img, low=2.0 / 255, high=253.0 / 255, mask=None):
    """Shares of crushed (luma <= ``low``) and blown-out (any channel >= ``high``) pixels.

    Args:
        img (np.ndarray): RGB image in ``[0, 1]``.
        low (float): Luma at or below which a pixel counts as crushed black.
        high (float): Channel value at or above which a pixel counts as blown out.
        mask (np.ndarray, optional): Boolean ``H x W`` mask of the pixels to count.

    Returns:
        tuple[float, float]: ``(crushed_fraction, blown_fraction)``.
    """
    img = np.asarray(img, dtype=np.float32)
    y = luma(img)
    top = img.max(axis=2) if img.ndim == 3 else img
    if mask is not None:
        y, top = y[mask], top[mask]
    if y.size == 0:
        return 0.0, 0.0
    return float(np.mean(y <= low)), float(np.mean(top >= high))


def noise_sigma(img):
    """Immerkaer's estimate of the standard deviation of additive white noise, in 8-bit units.

    ``sigma = sqrt(pi / 2) / (6 (W - 2) (H - 2)) * sum |I * N|`` with
    ``N = [[1, -2, 1], [-2, 4, -2], [1, -2, 1]]`` on the luma in ``[0, 255]``.  Edges and texture add to the
    estimate, so it is an upper bound on smooth content and best compared between images of similar content.

    Args:
        img (np.ndarray): RGB or gray image in ``[0, 1]`` (at least 3 x 3).

    Returns:
        float: The noise standard deviation in 8-bit units.
    """
    y = luma(img) * 255.0
    if y.shape[0] < 3 or y.shape[1] < 3:
        raise ValueError(f'noise_sigma needs an image of at least 3 x 3 pixels, got {y.shape}')
    response = cv2.filter2D(y, cv2.CV_32F, _IMMERKAER_KERNEL)[1:-1, 1:-1]
    return float(math.sqrt(math.pi / 2.0) * np.abs(response, dtype=np.float32).mean() / 6.0)


def relative_noise(img):
    """Noise relative to brightness: :func:`noise_sigma` / (255 x mean luma); high for real low-light captures.

    Args:
        img (np.ndarray): RGB or gray image in ``[0, 1]``.

    Returns:
        float: The ratio (a floor of 1/255 on the mean keeps black images finite).
    """
    return noise_sigma(img) / (255.0 * max(float(luma(img).mean()), 1.0 / 255))


def face_thumbnail(img, size=16):
    """A small, brightness- and contrast-normalised luma thumbnail for near-duplicate comparison.

    The luma is reduced to ``size x size`` by area averaging (which averages away noise and compression
    artefacts) and standardised to zero mean and unit standard deviation, so a darker or brighter copy of the same
    picture gives the same thumbnail.

    Args:
        img (np.ndarray): RGB or gray image in ``[0, 1]``.
        size (int): Thumbnail side.

    Returns:
        np.ndarray: float32 ``size x size`` thumbnail.
    """
    small = cv2.resize(luma(img), (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)
    return (small - small.mean()) / max(float(small.std()), 1e-6)


def thumbnail_distance(a, b):
    """Root-mean-square difference of two :func:`face_thumbnail` (0 = identical, about 1.4 = unrelated).

    Args:
        a (np.ndarray): First thumbnail.
        b (np.ndarray): Second thumbnail.

    Returns:
        float: The distance.
    """
    return float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b))**2)))


class NearDuplicateFilter:
    """Remembers the thumbnails of kept images of one group (e.g. one video) and flags near duplicates.

    Args:
        max_distance (float): Two images whose :func:`thumbnail_distance` is at most this are near duplicates
            (default 0.6.  Measured on generated test videos: the same face in another frame, re-encoded and
            re-aligned from Haar eye detections, 0.2-0.5; two different people 0.8-1.5).  A negative value disables
            the filter.
    """

    def __init__(self, max_distance=0.6):
        self.max_distance = float(max_distance)
        self.kept = []  # (label, thumbnail)

    def check(self, thumbnail):
        """Label of the closest kept image that ``thumbnail`` nearly duplicates, or None.

        Args:
            thumbnail (np.ndarray): A :func:`face_thumbnail`.

        Returns:
            str | None: The label given to :meth:`add`, None when there is no near duplicate.
        """
        if self.max_distance < 0:
            return None
        best = None
        for label, kept in self.kept:
            dist = thumbnail_distance(thumbnail, kept)
            if dist <= self.max_distance and (best is None or dist < best[0]):
                best = (dist, label)
        return None if best is None else best[1]

    def add(self, label, thumbnail):
        """Remember a kept image.

        Args:
            label (str): Name reported when a later image duplicates it.
            thumbnail (np.ndarray): Its :func:`face_thumbnail`.
        """
        self.kept.append((str(label), np.asarray(thumbnail, dtype=np.float32)))
