"""Pasting an enhanced, aligned face back into its frame: inverse affine, feathered mask, colour/exposure match.

For an aligned crop ``C = warp(frame, A)`` (``A``: the frame-to-crop affine of
:class:`~lowlight3d.face.alignment.AlignedFace`) and its enhancement ``E``, the face layer in frame coordinates is

* ``detail='residual'`` (default): ``frame + warp^-1(E - C)``: the enhancer's *change* is warped back and added to
  the frame's own pixels, so the frame's full-resolution detail survives (a face larger than the crop is not
  blurred by the round trip), and an enhancer that changes nothing returns the frame exactly;
* ``detail='replace'``: ``warp^-1(E)``, GFPGAN's choice (the face is re-sampled twice).

The layer is blended over the enhanced background ``B`` with a mask: the crop square warped back, eroded and
blurred (feather width ``feather`` x the face's side in frame pixels), so there is no square seam.  Before
blending, the layer is matched to ``B`` over the feather band (the same pixels, enhanced by both models):

* exposure: one gain, the ratio of ``B``'s mean luma to the layer's there, applied to the whole layer;
* colour: the remaining per-channel ratio, applied fully in the band and faded out towards the face's centre
  (a second, wider erosion of the mask), so the seam matches the background while the face keeps the colours its
  model gave it (matching the whole face to a naive background curve would give it the scene's cast: a face under
  trees turned green).

Gains are limited to ``[1/max_gain, max_gain]`` and raised to the power ``colour_match`` (0 = off, 1 = full).  A
face model brighter or warmer than the background model then meets it without a visible edge (GFPGAN #29).

All work is done inside the bounding box of the warped-back square, so a small face in a large photo costs little.
"""
import cv2
import numpy as np

__all__ = ['paste_face', 'face_mask', 'DETAIL_MODES']

#: Ways to build the face layer (see the module docstring).
DETAIL_MODES = ('residual', 'replace')


def _roi(affine, size, shape, margin=2):
    """Integer box ``(x0, y0, x1, y1)`` of the frame covered by the crop square warped back (clipped)."""
    inv = cv2.invertAffineTransform(affine)
    corners = np.array([[0, 0, 1], [size, 0, 1], [0, size, 1], [size, size, 1]], dtype=np.float64) @ inv.T
    h, w = shape[:2]
    x0, y0 = np.floor(corners.min(0)).astype(int) - margin
    x1, y1 = np.ceil(corners.max(0)).astype(int) + margin
    return max(0, x0), max(0, y0), min(w, x1), min(h, y1)


def _warp_back(img, affine, box):
    """Warp a crop back into the frame box ``box`` (bilinear; outside the crop: 0)."""
    x0, y0, x1, y1 = box
    shifted = affine.copy()
    shifted[:, 2] += shifted[:, :2] @ np.array([x0, y0], dtype=np.float64)  # box pixel -> crop pixel
    inv = cv2.invertAffineTransform(shifted)
    return cv2.warpAffine(img, inv, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=0)


def _feather_px(affine, size, feather):
    """Feather width in frame pixels: ``feather`` x the crop's side in the frame."""
    side = size / np.sqrt(abs(np.linalg.det(affine[:, :2])))
    return max(1, int(round(feather * side)))


def _soft_erode(mask, k):
    """Erode a binary mask by ``k`` pixels, then blur it with sigma ``k / 2`` (float32 in ``[0, 1]``)."""
    mask = cv2.erode((mask > 0.999).astype(np.float32), np.ones((2 * k + 1, 2 * k + 1), np.uint8))
    return np.clip(cv2.GaussianBlur(mask, (0, 0), sigmaX=k / 2.0, borderType=cv2.BORDER_CONSTANT), 0.0, 1.0)


def face_mask(affine, size, box, feather=0.06):
    """Feathered mask of the crop square in frame box ``box`` (float32 in ``[0, 1]``).

    Args:
        affine (np.ndarray): ``2 x 3`` frame-to-crop map. size (int): Crop side. box (tuple): Frame box.
        feather (float): Feather width as a fraction of the face's side in frame pixels.
    """
    return _soft_erode(_warp_back(np.ones((size, size), np.float32), affine, box), _feather_px(affine, size, feather))


def paste_face(background, frame, crop_in, crop_out, affine, feather=0.06, colour_match=1.0, max_gain=2.0,
               detail='residual'):
    """Blend an enhanced aligned face over the enhanced background (see the module docstring).

    Args:
        background (np.ndarray): ``H x W x 3`` float32 enhanced background (modified copy returned).
        frame (np.ndarray): ``H x W x 3`` float32 original frame the crop was taken from.
        crop_in (np.ndarray): ``S x S x 3`` aligned crop that was enhanced.
        crop_out (np.ndarray): ``S x S x 3`` its enhancement.
        affine (np.ndarray): ``2 x 3`` frame-to-crop map.
        feather (float): Feather width (fraction of the face side).
        colour_match (float): Strength of the colour/exposure match, 0 (off) to 1 (full).
        max_gain (float): Limit of the per-channel gain.
        detail (str): ``'residual'`` or ``'replace'``.

    Returns:
        tuple[np.ndarray, np.ndarray]: The new image ``H x W x 3`` float32 and the per-channel gain applied in the
        feather band (exposure x colour; the face's centre gets the exposure gain only).
    """
    if detail not in DETAIL_MODES:
        raise ValueError(f'detail must be one of {DETAIL_MODES}, got {detail!r}')
    size = crop_out.shape[0]
    box = _roi(affine, size, frame.shape)
    x0, y0, x1, y1 = box
    out = np.array(background, dtype=np.float32, copy=True)
    if x1 <= x0 or y1 <= y0:
        return out, np.ones(3, np.float32)
    square = _warp_back(np.ones((size, size), np.float32), affine, box)
    k = _feather_px(affine, size, feather)
    mask = _soft_erode(square, k)[..., None]
    if detail == 'residual':
        layer = frame[y0:y1, x0:x1] + _warp_back((crop_out - crop_in).astype(np.float32), affine, box)
    else:
        layer = _warp_back(crop_out.astype(np.float32), affine, box)
    bg = out[y0:y1, x0:x1]
    gain = np.ones(3, np.float32)
    band = (mask[..., 0] > 0.05) & (mask[..., 0] < 0.95)
    if colour_match > 0 and band.sum() >= 16:
        luma = np.array([0.299, 0.587, 0.114], np.float64)
        mean_bg, mean_face = bg[band].mean(0).astype(np.float64), layer[band].mean(0).astype(np.float64)
        exposure = np.clip(mean_bg @ luma / max(mean_face @ luma, 1e-4), 1.0 / max_gain, max_gain)
        colour = np.clip(np.where(mean_face > 1e-4, mean_bg / np.maximum(mean_face, 1e-4), 1.0) / exposure,
                         1.0 / max_gain, max_gain)
        exposure, colour = exposure**float(colour_match), colour**float(colour_match)
        centre = _soft_erode(square, 3 * k)[..., None]  # 1 well inside the face, 0 from the band outwards
        per_pixel = exposure * (1.0 + (colour - 1.0) * (1.0 - centre))
        layer = layer * per_pixel.astype(np.float32)
        gain = (exposure * colour).astype(np.float32)
    out[y0:y1, x0:x1] = np.clip(bg * (1.0 - mask) + layer * mask, 0.0, 1.0)
    return out, gain
