"""11-class face-parsing masks (LaPa's classes) derived offline from mediapipe FaceMesh landmarks, cached to disk.

For face datasets without parsing annotations (Low-FaceNet's semantic brightness loss needs them).  mediapipe is the
optional extra of :mod:`lowlight3d.data.mediapipe_depth` (``mediapipe==0.10.14``), imported only when a mask has to
be computed.

Class mapping (LaPa's label values; ``left`` / ``right`` are the *subject's*, mediapipe's naming, so in a frontal
photo the left eye is on the image's right; LaPa's own convention is not documented here [I]):

=====  ===============  =======================================================================================
value  LaPa class       derived from (FaceMesh landmark polygons, filled in this order, later ones on top)
=====  ===============  =======================================================================================
0      background       what remains outside the head region (below)
1      skin             the face oval (36 landmarks, forehead to chin)
2      left eyebrow     landmarks 276, 283, 282, 295, 285 (lower edge) and 336, 296, 334, 293, 300 (upper edge)
3      right eyebrow    46, 53, 52, 65, 55 and 107, 66, 105, 63, 70
4      left eye         the 16-point contour 263 ... 466 (eyelid opening)
5      right eye        the 16-point contour 33 ... 246
6      nose             convex hull of mediapipe's ``FACEMESH_NOSE`` landmarks (bridge from 168, tip, alae)
7      upper lip        outer upper lip arc 61 ... 291 and inner arc 308 ... 78
8      inner mouth      the inner lip contour (78 ... 95), empty when the mouth is closed
9      lower lip        outer lower arc 291 ... 61 and inner arc 78 ... 308
10     hair             what remains inside the head region *above the eyes*: an ellipse around the face oval,
                        ``hair_scale`` times its half-width, reaching ``hair_top`` face heights above the oval's top
=====  ===============  =======================================================================================

Ears, neck, hat, glasses and beard are not modelled: they fall into skin, hair or background by position.  Hair is a
geometric guess (no colour model): on bald heads it is skin-coloured scalp, on long hair the part below the eyes is
background.  No face found -> the whole mask is background (0) and ``found`` is False.

:class:`ParsingMaskCache` keeps ``<folder>/<name>.png`` (uint8 labels) written atomically;
:func:`derive_parsing_masks` fills it for a list of images (``python -m lowlight3d.data.facemesh_parsing --images
DIR --out DIR``).
"""
import argparse
import os
import os.path as osp

import cv2
import numpy as np

from lowlight3d.utils.checkpoint import atomic_write

__all__ = [
    'LAPA_CLASSES', 'FLIP_CLASS_MAP', 'flip_parsing_mask', 'landmarks_to_parsing', 'FaceMeshParser',
    'ParsingMaskCache', 'derive_parsing_masks', 'main'
]

#: LaPa's 11 classes, by label value.
LAPA_CLASSES = ('background', 'skin', 'left eyebrow', 'right eyebrow', 'left eye', 'right eye', 'nose', 'upper lip',
                'inner mouth', 'lower lip', 'hair')
#: Label value after a horizontal flip (left and right swap).
FLIP_CLASS_MAP = np.array([0, 1, 3, 2, 5, 4, 6, 7, 8, 9, 10], dtype=np.uint8)

_FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152, 148, 176,
              149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)
_LEFT_BROW = (276, 283, 282, 295, 285, 336, 296, 334, 293, 300)
_RIGHT_BROW = (46, 53, 52, 65, 55, 107, 66, 105, 63, 70)
_LEFT_EYE = (263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466)
_RIGHT_EYE = (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246)
_NOSE = (168, 6, 197, 195, 5, 4, 1, 19, 94, 2, 97, 98, 64, 48, 115, 220, 45, 275, 440, 344, 278, 294, 327, 326)
_OUTER_UPPER = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291)
_OUTER_LOWER = (291, 375, 321, 405, 314, 17, 84, 181, 91, 146, 61)
_INNER_UPPER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
_INNER_LOWER = (308, 324, 318, 402, 317, 14, 87, 178, 88, 95, 78)


def flip_parsing_mask(mask):
    """Horizontal mirror of a parsing mask with left/right classes swapped (values >= 11 are kept)."""
    mask = np.ascontiguousarray(np.asarray(mask)[:, ::-1])
    out = mask.copy()
    small = mask < len(FLIP_CLASS_MAP)
    out[small] = FLIP_CLASS_MAP[mask[small]]
    return out


def _fill(mask, xy, indices, value, hull=False):
    pts = np.round(xy[list(indices)] * 16).astype(np.int32)  # 4 fractional bits
    if hull:
        pts = cv2.convexHull(pts)
    cv2.fillPoly(mask, [pts.reshape(-1, 1, 2)], int(value), lineType=cv2.LINE_8, shift=4)


def landmarks_to_parsing(uv, height, width, hair_scale=1.25, hair_top=0.35):
    """A ``height x width`` uint8 LaPa-class mask from FaceMesh landmarks (mapping: module docstring).

    Args:
        uv (np.ndarray): ``(N >= 468, 2+)`` landmarks, ``x`` / ``y`` as fractions of the width / height.
        height, width (int): Mask size.
        hair_scale (float): Half-width of the head ellipse in face-oval half-widths.
        hair_top (float): How far the head ellipse reaches above the oval's top, in oval heights.

    Returns:
        np.ndarray: ``height x width`` uint8 labels in ``[0, 10]``.
    """
    uv = np.asarray(uv, dtype=np.float64)
    if uv.ndim != 2 or uv.shape[0] < 468 or uv.shape[1] < 2:
        raise ValueError(f'landmarks_to_parsing needs (468+, 2) FaceMesh landmarks, got shape {uv.shape}')
    xy = uv[:, :2] * np.array([width, height], dtype=np.float64) - 0.5  # pixel centres at integers
    mask = np.zeros((height, width), dtype=np.uint8)
    oval = xy[list(_FACE_OVAL)]
    x0, y0 = oval.min(0)
    x1, y1 = oval.max(0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    ax, top = hair_scale * (x1 - x0) / 2, y0 - hair_top * (y1 - y0)
    ay = cy - top
    yy, xx = np.mgrid[0:height, 0:width]
    eye_line = xy[list(_LEFT_EYE + _RIGHT_EYE), 1].mean()
    head = ((xx - cx) / max(ax, 1e-6))**2 + ((yy - cy) / max(ay, 1e-6))**2 <= 1.0
    mask[head & (yy < eye_line)] = 10
    _fill(mask, xy, _FACE_OVAL, 1)
    _fill(mask, xy, _NOSE, 6, hull=True)
    _fill(mask, xy, _LEFT_BROW, 2)
    _fill(mask, xy, _RIGHT_BROW, 3)
    _fill(mask, xy, _LEFT_EYE, 4)
    _fill(mask, xy, _RIGHT_EYE, 5)
    _fill(mask, xy, _OUTER_UPPER + _INNER_UPPER[::-1], 7)
    _fill(mask, xy, _OUTER_LOWER + _INNER_LOWER[::-1], 9)
    _fill(mask, xy, _INNER_UPPER + _INNER_LOWER[1:-1], 8)
    return mask


class FaceMeshParser:
    """Parsing masks of RGB face images via mediapipe FaceMesh (the FaceMesh graph is created on first use).

    Args:
        min_detection_confidence (float): FaceMesh face-detection threshold.
        hair_scale, hair_top (float): See :func:`landmarks_to_parsing`.
    """

    def __init__(self, min_detection_confidence=0.5, hair_scale=1.25, hair_top=0.35):
        from lowlight3d.data.mediapipe_depth import FaceMeshDepth
        self.mesh = FaceMeshDepth(refine_landmarks=False, min_detection_confidence=min_detection_confidence)
        self.hair_scale, self.hair_top = float(hair_scale), float(hair_top)

    def parse(self, rgb):
        """``(mask, found)`` of an ``H x W x 3`` RGB image (uint8, or float in ``[0, 1]``)."""
        pts = self.mesh.landmarks(rgb)
        if pts is None:
            return np.zeros(rgb.shape[:2], dtype=np.uint8), False
        return landmarks_to_parsing(pts, rgb.shape[0], rgb.shape[1], self.hair_scale, self.hair_top), True


class ParsingMaskCache:
    """``<folder>/<name>.png`` parsing masks (uint8 labels), each written once and atomically.

    Args:
        folder (str): Cache folder (created).
    """

    def __init__(self, folder):
        if not folder:
            raise ValueError('a parsing-mask cache needs a folder (option parsing.cache)')
        self.folder = folder
        os.makedirs(folder, exist_ok=True)

    def path(self, name):
        """Cache file of image ``name`` (its stem)."""
        return osp.join(self.folder, name + '.png')

    def has(self, name):
        """Whether ``name`` is cached."""
        return osp.isfile(self.path(name))

    def read(self, name):
        """The cached mask of ``name`` (``H x W`` uint8)."""
        mask = cv2.imread(self.path(name), cv2.IMREAD_UNCHANGED)
        if mask is None or mask.ndim != 2:
            raise ValueError(f'{self.path(name)} is not a single-channel label PNG; delete it to re-derive it')
        return mask

    def write(self, name, mask):
        """Store ``mask`` for ``name`` (temporary file + rename)."""
        def write(tmp):
            if not cv2.imwrite(tmp, np.asarray(mask, dtype=np.uint8)):
                raise OSError(f'cannot write {tmp}')

        atomic_write(self.path(name), write, suffix='.png')


def derive_parsing_masks(image_paths, cache_folder, parser=None, names=None):
    """Derive and cache the masks of ``image_paths`` that the cache lacks.

    Args:
        image_paths (Sequence[str]): Normal-light face images (detection is unreliable in the dark).
        cache_folder (str): Mask folder (:class:`ParsingMaskCache`).
        parser (FaceMeshParser, optional): Reused parser; built when needed.
        names (Sequence[str], optional): Cache names (default: the file stems).

    Returns:
        dict: ``computed``, ``cached`` (already there) and ``no_face`` (list of names whose mask is all background).
    """
    from lowlight3d.utils.img_io import read_image
    cache = ParsingMaskCache(cache_folder)
    names = list(names) if names is not None else [osp.splitext(osp.basename(p))[0] for p in image_paths]
    report = {'computed': 0, 'cached': 0, 'no_face': []}
    for path, name in zip(image_paths, names):
        if cache.has(name):
            report['cached'] += 1
            continue
        parser = parser or FaceMeshParser()
        mask, found = parser.parse(read_image(path))
        cache.write(name, mask)
        report['computed'] += 1
        if not found:
            report['no_face'].append(name)
    return report


def main(argv=None):
    """CLI: ``python -m lowlight3d.data.facemesh_parsing --images DIR --out DIR``."""
    from lowlight3d.data.image_source import scan_images
    ap = argparse.ArgumentParser(description='Derive LaPa-class parsing masks from mediapipe FaceMesh landmarks.')
    ap.add_argument('--images', required=True, help='folder of normal-light face images')
    ap.add_argument('--out', required=True, help='mask folder (<stem>.png, uint8 labels 0-10)')
    args = ap.parse_args(argv)
    files = [osp.join(args.images, f) for f in scan_images(args.images)]
    report = derive_parsing_masks(files, args.out)
    print(f"{report['computed']} masks derived, {report['cached']} already cached, {len(report['no_face'])} "
          f"without a face (all background) -> {args.out}")
    return report


if __name__ == '__main__':
    main()
