"""Pasting an enhanced, aligned face back into its frame: inverse affine, feathered mask, colour/exposure match.

For an aligned crop ``C = warp(frame, A)`` (``A``: the frame-to-crop affine of
:class:`~lowlight3d.face.alignment.AlignedFace`) and its enhancement ``E``, the face layer in frame coordinates is

* ``detail='residual'`` (default): ``frame + warp^-1(E - C)``: the enhancer's *change* is warped back and added to
  the frame's own pixels, so the frame's full-resolution detail survives (a face larger than the crop is not
  blurred by the round trip), and an enhancer that changes nothing returns the frame exactly;
* ``detail='replace'``: ``warp^-1(E)``, GFPGAN's choice (the face is re-sampled twice).

The layer is blended over the enhanced background ``B`` with a mask: the paste region warped back, eroded and
blurred (feather width ``feather`` x the face's side in frame pixels), so there is no hard seam.  The region
(``shape``) is the face's ellipse of the aligned crop (default: centre ``(0.5, 0.53)``, semi-axes ``0.34`` and
``0.42`` of the crop side, forehead to chin and cheek to cheek in the FFHQ crop; :data:`FACE_ELLIPSE`) or the whole
crop square (GFPGAN's choice).  The ellipse leaves the crop's corners, which show the scene and not the face, to
the background: a face model that denoises the crop otherwise leaves a smooth square of wall around a head on a
noisy background, a seam of texture that the mean-based measure of :mod:`.seam` does not see.  Before blending,
the layer is matched to ``B`` over the feather band (the same pixels, enhanced by both models):

* exposure: one gain, the ratio of ``B``'s mean luma to the layer's there, applied to the whole layer;
* colour: the remaining per-channel ratio, applied fully in the band and faded out towards the face's centre
  (a second, wider erosion of the mask), so the seam matches the background while the face keeps the colours its
  model gave it (matching the whole face to a naive background curve would give it the scene's cast: a face under
  trees turned green).

Gains are limited to ``[1/max_gain, max_gain]`` and raised to the power ``colour_match`` (0 = off, 1 = full).  A
face model brighter or warmer than the background model then meets it without a visible edge (GFPGAN #29).

``match='seamless'`` (default) goes further, so that a face model darker *and* flatter than the background meets it
without a visible edge too (the gains alone leave a seam step of several 8-bit levels there, :mod:`.seam`):

* exposure and contrast: the layer's luma is mapped affinely, ``(L - m_f) c + m_b``, so that over the paste region
  (the same pixels, rendered by both models) its mean and its structure contrast (standard deviation of the luma
  smoothed at 1 % of the face side, so noise does not count) equal the background's; ``c`` is limited to
  ``[1, max_gain]`` (a face is never made flatter) and applied as a per-pixel gain to the three channels;
* colour: the band's per-channel ratio, as above;
* the remaining low-frequency difference: ``blur(B) - blur(layer)`` (normalised blur inside the crop square, sigma
  a quarter of the feather width) is added to the layer with weight 1 in the band, fading to 0 towards the face's
  centre as the colour correction does; the band then carries the background's own low frequencies (three passes,
  clipping to ``[0, 1]`` after each, so that a face darker than a black background or brighter than a white one is
  still matched) and the seam step falls to a level or two (``docs/face_mode.md`` section 2), while the face's
  centre keeps its model's detail and tones.

``match='gain'`` applies the band gains only (exposure and colour, as above).  ``alpha`` scales the whole mask: a
face less trustworthy than its background (:mod:`.trust`) is blended at ``alpha < 1``.

All work is done inside the bounding box of the warped-back square, so a small face in a large photo costs little.
"""
import cv2
import numpy as np

from lowlight3d.utils.luma import luma_weights

__all__ = ['paste_face', 'face_mask', 'DETAIL_MODES', 'MATCH_MODES', 'MASK_SHAPES', 'FACE_ELLIPSE']

#: Ways to build the face layer (see the module docstring).
DETAIL_MODES = ('residual', 'replace')
#: Ways to match the face layer to the background (see the module docstring).
MATCH_MODES = ('seamless', 'gain')
#: Paste regions (see the module docstring).
MASK_SHAPES = ('ellipse', 'square')
#: The face's ellipse in an aligned crop: centre ``(x, y)`` and semi-axes ``(a, b)``, fractions of the crop side.
FACE_ELLIPSE = ((0.5, 0.53), (0.34, 0.42))
_LUMA = luma_weights()


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
    mask = np.clip(cv2.GaussianBlur(mask, (0, 0), sigmaX=k / 2.0, borderType=cv2.BORDER_CONSTANT), 0.0, 1.0)
    mask[mask < 1e-4] = 0.0  # the blur's far tails: outside the paste region is the background exactly
    return mask


def _region(size, shape):
    """The paste region in crop coordinates, ``S x S`` float32 (1 inside)."""
    if shape not in MASK_SHAPES:
        raise ValueError(f'shape must be one of {MASK_SHAPES}, got {shape!r}')
    if shape == 'square':
        return np.ones((size, size), np.float32)
    (cx, cy), (a, b) = FACE_ELLIPSE
    yy, xx = (np.mgrid[:size, :size].astype(np.float32) + 0.5) / size
    return (((xx - cx) / a)**2 + ((yy - cy) / b)**2 <= 1.0).astype(np.float32)


def face_mask(affine, size, box, feather=0.06, shape='ellipse'):
    """Feathered mask of the paste region (``shape``, :data:`MASK_SHAPES`) in frame box ``box`` (float32 in
    ``[0, 1]``).

    Args:
        affine (np.ndarray): ``2 x 3`` frame-to-crop map. size (int): Crop side. box (tuple): Frame box.
        feather (float): Feather width as a fraction of the face's side in frame pixels.
    """
    return _soft_erode(_warp_back(_region(size, shape), affine, box), _feather_px(affine, size, feather))


def _normalised_blur(img, weight, sigma):
    """Gaussian blur of ``img`` over the pixels where ``weight`` is 1 (weighted average; 0 where no weight)."""
    w = cv2.GaussianBlur(weight, (0, 0), sigma)
    num = cv2.GaussianBlur(img * weight[..., None], (0, 0), sigma)
    if num.ndim == 2:
        num = num[..., None]
    return num / np.maximum(w, 1e-4)[..., None]


def _match_exposure_contrast(layer, bg, region, side, max_gain):
    """Per-pixel gain ``H x W x 1`` mapping the layer's luma affinely onto the background's over ``region``."""
    sigma = max(1.0, 0.01 * side)
    lf = cv2.GaussianBlur(layer @ _LUMA, (0, 0), sigma)
    lb = cv2.GaussianBlur(bg @ _LUMA, (0, 0), sigma)
    mf, mb = float(lf[region].mean()), float(lb[region].mean())
    sf, sb = float(lf[region].std()), float(lb[region].std())
    c = float(np.clip(sb / max(sf, 1e-4), 1.0, max_gain))
    luma = layer @ _LUMA
    target = np.maximum((luma - mf) * c + mb, 0.0)
    gain = np.clip((target + 1e-3) / (luma + 1e-3), 1.0 / max_gain**2, max_gain**2)
    return gain[..., None].astype(np.float32)


def paste_face(background, frame, crop_in, crop_out, affine, feather=0.06, colour_match=1.0, max_gain=2.0,
               detail='residual', match='seamless', alpha=1.0, info=None, shape='ellipse'):
    """Blend an enhanced aligned face over the enhanced background (see the module docstring).

    Args:
        background (np.ndarray): ``H x W x 3`` float32 enhanced background (modified copy returned).
        frame (np.ndarray): ``H x W x 3`` float32 original frame the crop was taken from.
        crop_in (np.ndarray): ``S x S x 3`` aligned crop that was enhanced.
        crop_out (np.ndarray): ``S x S x 3`` its enhancement.
        affine (np.ndarray): ``2 x 3`` frame-to-crop map.
        feather (float): Feather width (fraction of the face side).
        colour_match (float): Strength of the colour/exposure match, 0 (off) to 1 (full).
        max_gain (float): Limit of the per-channel gain (and of the contrast factor).
        detail (str): ``'residual'`` or ``'replace'``.
        match (str): ``'seamless'`` or ``'gain'`` (:data:`MATCH_MODES`; ignored with ``colour_match=0``).
        alpha (float): Weight of the face layer, 0 (the background) to 1.
        shape (str): Paste region, ``'ellipse'`` (the face) or ``'square'`` (the whole crop).
        info (dict, optional): Filled with ``box`` (the frame box worked in) and ``mask`` (the soft paste mask in
            that box, before ``alpha``), e.g. to measure the seam (:func:`~lowlight3d.face.seam.seam_step`).

    Returns:
        tuple[np.ndarray, np.ndarray]: The new image ``H x W x 3`` float32 and the per-channel gain applied in the
        feather band (``'gain'``: exposure x colour, the face's centre gets the exposure gain only; ``'seamless'``:
        the ratio of the band's mean after matching to before).
    """
    if detail not in DETAIL_MODES:
        raise ValueError(f'detail must be one of {DETAIL_MODES}, got {detail!r}')
    if match not in MATCH_MODES:
        raise ValueError(f'match must be one of {MATCH_MODES}, got {match!r}')
    size = crop_out.shape[0]
    box = _roi(affine, size, frame.shape)
    x0, y0, x1, y1 = box
    out = np.array(background, dtype=np.float32, copy=True)
    if x1 <= x0 or y1 <= y0:
        return out, np.ones(3, np.float32)
    square = _warp_back(np.ones((size, size), np.float32), affine, box)
    region = square if shape == 'square' else _warp_back(_region(size, shape), affine, box)
    k = _feather_px(affine, size, feather)
    mask = _soft_erode(region, k)[..., None]
    if info is not None:
        info.update(box=box, mask=mask[..., 0].copy())
    if detail == 'residual':
        layer = frame[y0:y1, x0:x1] + _warp_back((crop_out - crop_in).astype(np.float32), affine, box)
    else:
        layer = _warp_back(crop_out.astype(np.float32), affine, box)
    bg = out[y0:y1, x0:x1]
    gain = np.ones(3, np.float32)
    band = (mask[..., 0] > 0.05) & (mask[..., 0] < 0.95)
    if colour_match > 0 and band.sum() >= 16:
        # 1 well inside the face, 0 from the band outwards (the ellipse is smaller than the square: less erosion)
        centre = _soft_erode(region, (3 if shape == 'square' else 2) * k)[..., None]
        before = layer[band].mean(0).astype(np.float64)
        if match == 'seamless':
            side = size / np.sqrt(abs(np.linalg.det(affine[:, :2])))
            pasted = mask[..., 0] > 0.05
            layer = layer * _match_exposure_contrast(layer, bg, pasted, side, max_gain) ** float(colour_match)
        luma = luma_weights(dtype=np.float64)
        mean_bg, mean_face = bg[band].mean(0).astype(np.float64), layer[band].mean(0).astype(np.float64)
        exposure = np.clip(mean_bg @ luma / max(mean_face @ luma, 1e-4), 1.0 / max_gain, max_gain)
        colour = np.clip(np.where(mean_face > 1e-4, mean_bg / np.maximum(mean_face, 1e-4), 1.0) / exposure,
                         1.0 / max_gain, max_gain)
        exposure, colour = exposure**float(colour_match), colour**float(colour_match)
        per_pixel = exposure * (1.0 + (colour - 1.0) * (1.0 - centre))
        layer = layer * per_pixel.astype(np.float32)
        gain = (exposure * colour).astype(np.float32)
        if match == 'seamless':
            inside = (square > 0.999).astype(np.float32)
            reach = (1.0 - centre) * float(colour_match)
            target = _normalised_blur(bg, inside, k / 4.0)
            for _ in range(3):  # repeated: what clipping to [0, 1] took from one pass is given back by the next
                layer = np.clip(layer + (target - _normalised_blur(layer, inside, k / 4.0)) * reach, 0.0, 1.0)
            gain = (layer[band].mean(0) / np.maximum(before, 1e-4)).astype(np.float32)
    mask = mask * float(np.clip(alpha, 0.0, 1.0))
    out[y0:y1, x0:x1] = np.clip(bg * (1.0 - mask) + layer * mask, 0.0, 1.0)
    return out, gain
