"""The seam of a pasted face: the step of mean luma and colour across the paste boundary, in 8-bit levels.

A pasted face shows a seam when the pixels just inside the paste region differ from those just outside by more than
the scene itself does there.  :func:`seam_step` measures it on the soft paste mask of
:func:`~lowlight3d.face.paste_back.paste_face` (``1`` = face layer, ``0`` = background):

* the **inner ring**: pixels where the mask is above ``0.95`` and within ``ring`` pixels of where it drops below;
  the **outer ring**: pixels where the mask is below ``0.05`` and within ``ring`` pixels of where it rises above
  (``ring`` defaults to half the width of the feather band, at least 3 pixels: the step right across the band);
* both rings are cut into ``sectors`` angular sectors around the mask's centre (a face brighter on one side and
  darker on the other must not average out); in each sector with at least ``ring`` squared pixels in both rings
  (at least ``min_sectors`` such sectors, else the seam is "n/a": the boundary lies outside the photo) the step is
  ``mean(inner) - mean(outer)`` of luma (Rec. 601) and of each RGB channel, in 8-bit levels;
* the same steps are measured, on the same rings, in the **background-only result** (the photo enhanced without
  the face); the scene's own gradient across the rings is not a seam, so the seam is the difference
  ``step(result) - step(background)`` per sector.

:class:`SeamStep` reports the mean over sectors of its absolute value for luma (``luma``) and, for colour, of the
largest absolute per-channel difference after removing the luma step (``colour``: a shift of hue, not of
exposure), plus the same means of the raw steps of both images (``result_luma``, ``background_luma``).  A seam of
3 levels or less is not visible on a smooth background at normal viewing; the feather spreads a larger step over
the band, so the measure is conservative.
"""
from dataclasses import dataclass

import cv2
import numpy as np

from lowlight3d.utils.luma import luma_weights

__all__ = ['SeamStep', 'seam_step', 'seam_rings', 'paste_seam', 'LUMA_WEIGHTS']

#: Rec. 601 luma weights of R, G, B.
LUMA_WEIGHTS = luma_weights(dtype=np.float64)


@dataclass
class SeamStep:
    """The seam of one pasted face (8-bit levels; see the module docstring).

    Attributes:
        luma (float): Mean over sectors of ``|step(result) - step(background)|`` of luma.
        colour (float): Mean over sectors of the largest per-channel ``|step difference - luma step difference|``.
        result_luma (float): Mean over sectors of ``|step(result)|`` of luma (the raw step, scene included).
        background_luma (float): The same in the background-only result.
        sectors (int): Sectors measured (those with pixels in both rings).
    """
    luma: float
    colour: float
    result_luma: float
    background_luma: float
    sectors: int

    def describe(self):
        """str: One line, e.g. ``seam 1.2 levels luma, 0.4 colour (raw step 5.1, background 4.3)``."""
        if self.sectors == 0:
            return 'seam n/a (the paste boundary lies mostly outside the photo)'
        return (f'seam {self.luma:.1f} levels luma, {self.colour:.1f} colour (raw step {self.result_luma:.1f}, '
                f'background {self.background_luma:.1f})')


def seam_rings(mask, ring=None):
    """The inner and outer rings (boolean ``H x W``) of a soft paste mask, and the ring width used.

    Args:
        mask (np.ndarray): ``H x W`` float mask in ``[0, 1]``.
        ring (int, optional): Ring width in pixels (default: half the feather band's width, at least 3).

    Returns:
        tuple[np.ndarray, np.ndarray, int]: ``(inner, outer, ring)``.
    """
    mask = np.asarray(mask, np.float32)
    full, some = (mask > 0.95).astype(np.uint8), (mask >= 0.05).astype(np.uint8)
    if ring is None:
        band = (mask >= 0.05) & (mask <= 0.95)
        # band width ~ band area / boundary length; the boundary length ~ perimeter of the "some" region
        contours, _ = cv2.findContours(some, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        length = sum(cv2.arcLength(c, True) for c in contours)
        ring = int(round(0.5 * band.sum() / length)) if length > 0 else 3
    ring = max(3, int(ring))
    inside_dist = cv2.distanceTransform(full, cv2.DIST_L2, 3)  # distance to the nearest pixel not fully inside
    outside_dist = cv2.distanceTransform(1 - some, cv2.DIST_L2, 3)  # distance to the nearest pixel of the layer
    inner = (full > 0) & (inside_dist <= ring)
    outer = (some == 0) & (outside_dist <= ring)
    return inner, outer, ring


def _sector_steps(img, inner, outer, labels, sectors, min_pixels):
    """``(sectors x 4)`` steps (luma, R, G, B) inside minus outside per sector (NaN where a ring has fewer than
    ``min_pixels`` pixels)."""
    img = np.asarray(img, np.float64) * 255.0
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, 2)
    chans = np.concatenate([(img @ LUMA_WEIGHTS)[..., None], img], axis=2)
    steps = np.full((sectors, 4), np.nan)
    for s in range(sectors):
        i, o = inner & (labels == s), outer & (labels == s)
        if i.sum() >= min_pixels and o.sum() >= min_pixels:
            steps[s] = chans[i].mean(0) - chans[o].mean(0)
    return steps


def seam_step(result, background, mask, ring=None, sectors=16, min_sectors=4):
    """Measure the seam of a pasted face (see the module docstring).

    Args:
        result (np.ndarray): ``H x W x 3`` (or ``H x W``) float image in ``[0, 1]`` with the face pasted.
        background (np.ndarray): The background-only result, same shape.
        mask (np.ndarray): ``H x W`` soft paste mask of that face (1 = face layer).
        ring (int, optional): Ring width in pixels (default: half the feather band's width, at least 3).
        sectors (int): Angular sectors around the mask's centre.
        min_sectors (int): Fewest sectors measured (each with at least ``ring`` squared pixels in both rings).

    Returns:
        SeamStep: The seam; all zeros with ``sectors=0`` when fewer than ``min_sectors`` sectors can be measured
        (the paste boundary lies mostly outside the photo: a face filling an aligned crop).

    Raises:
        ValueError: The shapes differ.
    """
    if np.shape(result) != np.shape(background) or np.shape(result)[:2] != np.shape(mask):
        raise ValueError(f'seam_step: result {np.shape(result)}, background {np.shape(background)} and mask '
                         f'{np.shape(mask)} must have the same height and width')
    inner, outer, ring = seam_rings(mask, ring)
    if not inner.any() or not outer.any():
        return SeamStep(0.0, 0.0, 0.0, 0.0, 0)
    ys, xs = np.nonzero(np.asarray(mask) > 0.5)
    cy, cx = (ys.mean(), xs.mean()) if len(ys) else (mask.shape[0] / 2.0, mask.shape[1] / 2.0)
    yy, xx = np.mgrid[:mask.shape[0], :mask.shape[1]]
    labels = ((np.arctan2(yy - cy, xx - cx) + np.pi) / (2 * np.pi) * sectors).astype(int) % sectors
    a = _sector_steps(result, inner, outer, labels, sectors, ring * ring)
    b = _sector_steps(background, inner, outer, labels, sectors, ring * ring)
    ok = ~np.isnan(a[:, 0])
    if ok.sum() < min_sectors:
        return SeamStep(0.0, 0.0, 0.0, 0.0, 0)
    diff = a[ok] - b[ok]
    colour = np.abs(diff[:, 1:] - diff[:, :1]).max(1)
    return SeamStep(float(np.abs(diff[:, 0]).mean()), float(colour.mean()), float(np.abs(a[ok, 0]).mean()),
                    float(np.abs(b[ok, 0]).mean()), int(ok.sum()))


def paste_seam(result, background, paste):
    """The seam of one face pasted by :func:`~lowlight3d.face.paste_back.paste_face`.

    Args:
        result (np.ndarray): The photo with the face pasted. background (np.ndarray): The background-only result.
        paste (dict): The ``info`` that ``paste_face`` filled (``box`` and the soft ``mask`` in it).

    Returns:
        SeamStep: See :func:`seam_step`.
    """
    x0, y0, x1, y1 = paste['box']
    mask = np.zeros(np.shape(result)[:2], np.float32)
    mask[y0:y1, x0:x1] = paste['mask']
    return seam_step(result, background, mask)
