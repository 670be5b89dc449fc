"""FFHQ-style face alignment from five landmarks, or from a face box (plus eye detections) when that is all we have.

The crop follows the recipe the FFHQ authors describe for their data set: from the eye centres and the mouth
corners, ``eye_to_eye = right_eye - left_eye`` and ``eye_to_mouth = mouth_centre - eye_centre`` give the crop's
x axis ``x = eye_to_eye - rot90(eye_to_mouth)`` (normalised), its half-size
``max(2.0 |eye_to_eye|, 1.8 |eye_to_mouth|)`` and its centre ``eye_centre + 0.1 eye_to_mouth``.  The oriented square
(:func:`ffhq_quad`) is mapped onto the output square by a similarity transform (rotation, uniform scale,
translation).  Parts of the square outside the frame are filled by reflection (FFHQ also blurs them); the share of
the crop that lies outside the frame is returned, so truncated faces can be rejected.

**Approximation when only a box is known** (OpenCV's Haar detector): the landmarks are placed at their average
positions relative to a Haar ``frontalface_default`` box, :data:`HAAR_BOX_LANDMARKS`, measured by us on 25
FFHQ/CelebA-HQ-aligned faces of ``../shared/data/faces_hq`` (standard deviation about 0.02 of the box size per
coordinate).  The crop then has the right scale and position but no roll correction.  When the eye cascade found
both eyes, the measured eye centres are used and the nose and mouth are placed relative to them with the
proportions of the FFHQ five-point template (:data:`FFHQ_TEMPLATE_512`), which corrects roll too.  Yaw and pitch are
never estimated from a box, so such crops are less tightly aligned than RetinaFace ones.
"""
from dataclasses import dataclass, field

import cv2
import numpy as np

__all__ = [
    'FFHQ_TEMPLATE_512', 'HAAR_BOX_LANDMARKS', 'AlignedFace', 'five_landmarks', 'landmarks_from_eyes', 'ffhq_quad',
    'align_face', 'quad_affine'
]

#: Five-point positions (left eye, right eye, nose, left / right mouth corner) in a 512 x 512 FFHQ-aligned face.
FFHQ_TEMPLATE_512 = np.array([[192.98138, 239.94708], [318.90277, 240.1936], [256.63416, 314.01935],
                              [201.26117, 371.41043], [313.08905, 371.15118]],
                             dtype=np.float32)

#: Mean five-point positions relative to a Haar frontal-face box, as fractions of its width / height (measured).
HAAR_BOX_LANDMARKS = np.array([[0.3166, 0.3706], [0.6898, 0.3714], [0.5052, 0.5902], [0.3411, 0.7603],
                               [0.6726, 0.7595]],
                              dtype=np.float32)


def _template_offsets():
    """Nose and mouth positions in units of the eye distance, in the frame of the eye axis (from the template)."""
    t = FFHQ_TEMPLATE_512.astype(np.float64)
    eye_mid = (t[0] + t[1]) / 2.0
    axis = t[1] - t[0]
    dist = np.hypot(*axis)
    ex = axis / dist
    ey = np.array([-ex[1], ex[0]])
    rel = t[2:] - eye_mid
    return np.stack([rel @ ex, rel @ ey], axis=1) / dist  # 3 x 2: (along the eye axis, perpendicular)


_NOSE_MOUTH_OFFSETS = _template_offsets()


def landmarks_from_eyes(left, right):
    """Five landmarks from two measured eye centres, nose and mouth placed with the FFHQ template's proportions.

    Args:
        left, right (array-like): Eye centres ``(x, y)`` in frame pixels (left = smaller x).

    Returns:
        np.ndarray: ``5 x 2`` float32.
    """
    left, right = np.asarray(left, dtype=np.float64), np.asarray(right, dtype=np.float64)
    axis = right - left
    dist = np.hypot(*axis)
    if dist < 1e-6:
        raise ValueError(f'Degenerate eye landmarks (both at {left.tolist()})')
    ex = axis / dist
    ey = np.array([-ex[1], ex[0]])
    mid = (left + right) / 2.0
    rest = mid + dist * (_NOSE_MOUTH_OFFSETS[:, :1] * ex + _NOSE_MOUTH_OFFSETS[:, 1:] * ey)
    return np.vstack([left, right, rest]).astype(np.float32)


def five_landmarks(detection):
    """Five landmarks of a detection: measured, estimated from the two eyes, or estimated from the box.

    Args:
        detection (FaceDetection): A :class:`~lowlight3d.face.detection.FaceDetection`.

    Returns:
        tuple[np.ndarray, str]: ``5 x 2`` float32 landmarks and their source: ``'detector'``, ``'eyes'`` or ``'box'``.
    """
    lm = detection.landmarks
    if lm is not None and not detection.eyes_only:
        return np.asarray(lm, dtype=np.float32).reshape(5, 2), 'detector'
    if lm is not None:
        left, right = np.asarray(lm, dtype=np.float64).reshape(2, 2)
        return landmarks_from_eyes(left, right), 'eyes'
    x0, y0, x1, y1 = (float(v) for v in detection.box)
    pts = np.array([x0, y0], dtype=np.float32) + HAAR_BOX_LANDMARKS * np.array([x1 - x0, y1 - y0], dtype=np.float32)
    return pts.astype(np.float32), 'box'


def ffhq_quad(landmarks):
    """The FFHQ crop square for five landmarks (see the module docstring).

    Args:
        landmarks (np.ndarray): ``5 x 2`` (left eye, right eye, nose, left mouth corner, right mouth corner).

    Returns:
        np.ndarray: ``4 x 2`` float64 corners: top-left, bottom-left, bottom-right, top-right.
    """
    lm = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    eye_avg = (lm[0] + lm[1]) / 2.0
    eye_to_eye = lm[1] - lm[0]
    mouth_avg = (lm[3] + lm[4]) / 2.0
    eye_to_mouth = mouth_avg - eye_avg
    x = eye_to_eye - np.array([-eye_to_mouth[1], eye_to_mouth[0]])
    norm = np.hypot(*x)
    if norm < 1e-6:
        raise ValueError(f'Degenerate landmarks (eyes and mouth coincide): {lm.tolist()}')
    x = x / norm * max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = np.array([-x[1], x[0]])
    c = eye_avg + eye_to_mouth * 0.1
    return np.stack([c - x - y, c - x + y, c + x + y, c + x - y])


@dataclass
class AlignedFace:
    """An aligned face crop.

    Attributes:
        image (np.ndarray): ``size x size x 3`` float32 RGB in ``[0, 1]``.
        quad (np.ndarray): ``4 x 2`` crop square in frame coordinates.
        outside_fraction (float): Share of the crop that lies outside the frame (filled by reflection).
        landmark_source (str): ``'detector'``, ``'eyes'`` or ``'box'``.
        affine (np.ndarray): ``2 x 3`` float64 map from frame pixels to crop pixels (its inverse pastes back,
            :mod:`lowlight3d.face.paste_back`).
    """
    image: np.ndarray
    quad: np.ndarray
    outside_fraction: float
    landmark_source: str = 'detector'
    affine: np.ndarray = field(default=None, repr=False)


def quad_affine(quad, size):
    """The ``2 x 3`` similarity mapping the crop square ``quad`` (frame pixels) onto ``[0, size]^2``."""
    dst = np.array([[0, 0], [0, size], [size, size]], dtype=np.float32)
    return cv2.getAffineTransform(np.asarray(quad, dtype=np.float32)[:3], dst).astype(np.float64)


def align_face(img, landmarks, size=256, landmark_source='detector'):
    """Warp the FFHQ crop square of ``landmarks`` to a ``size x size`` image.

    When the square is more than twice the output size the frame is first shrunk by area averaging (no aliasing).

    Args:
        img (np.ndarray): ``H x W x 3`` float32 RGB frame in ``[0, 1]``.
        landmarks (np.ndarray): ``5 x 2`` landmarks in frame pixels.
        size (int): Output side.
        landmark_source (str): Recorded in the result.

    Returns:
        AlignedFace: The crop and its geometry.
    """
    quad = ffhq_quad(landmarks)
    h, w = img.shape[:2]
    side = float(np.hypot(*(quad[3] - quad[0])))
    src, work = quad.copy(), img
    shrink = side / (2.0 * size)
    if shrink > 1.0:
        nw, nh = max(1, int(round(w / shrink))), max(1, int(round(h / shrink)))
        work = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA)
        src = quad * np.array([nw / w, nh / h])
    dst = np.array([[0, 0], [0, size], [size, size]], dtype=np.float32)
    matrix = cv2.getAffineTransform(src[:3].astype(np.float32), dst)
    out = cv2.warpAffine(work, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    inside = cv2.warpAffine(np.ones(work.shape[:2], np.float32), matrix, (size, size), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return AlignedFace(np.clip(out, 0.0, 1.0).astype(np.float32), quad, float(1.0 - inside.mean()), landmark_source,
                       quad_affine(quad, size))
