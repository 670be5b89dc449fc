"""Face landmarks (no gradient) and the differentiable crop -> level -> letterbox of Low-FaceNet's face loss.

Low-FaceNet runs a pretrained RetinaFace (MobileNet0.25) on the enhanced image *without* gradients, keeps the
largest face and its 5 landmarks (eyes, nose, mouth corners; "left" = smaller x in the image), crops the box from the
enhanced image, rotates the crop about its centre so that the eyes are level (torchvision ``rotate``, bilinear, zero
fill) and letterboxes it to 160 x 160 on gray 128/255 for FaceNet.  Crop, rotation and resize are differentiable, so
the recognition loss reaches the enhancer through the pixels (``docs/baselines.md`` section 5).

Landmark detectors (``face_opt.detector``):

* ``retinaface``: the original's detector, RetinaFace MobileNet0.25 through facexlib (weights
  ``detection_mobilenet0.25_Final.pth`` resolved offline by the toolkit's
  :class:`~lowlight3d.data.preparation.face_detection.RetinaFaceDetector`; a clear error when missing).  Score
  threshold 0.5 as the original; the image is given as it is (no brightening).  The original loads the same network
  from a differently keyed file (``Retinaface_mobilenet0.25.pth``); it is not converted here.
* ``mediapipe``: offline equivalent (its models ship in the mediapipe 0.10.14 wheel): FaceMesh landmarks through the
  toolkit's :class:`~lowlight3d.data.mediapipe_depth.FaceMeshDepth`; eye centres = mean of each eye contour, nose tip
  (landmark 1), mouth corners (61, 291), box = bounding box of the 468 landmarks.  Differences: FaceMesh's box is
  tight on the face oval (RetinaFace's includes some forehead and is looser), it needs a rather visible face
  (``min_detection_confidence`` 0.5) and it finds one face only (the most prominent, not necessarily the largest).
* ``template``: NOT a detector: fixed landmarks of a centred, frontal face (box = whole image).  For tests and
  aligned crops only; runs labelled as such.
"""
import math

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ['FaceBox', 'TemplateLandmarks', 'MediaPipeLandmarks', 'RetinaFaceLandmarks', 'build_landmark_detector',
           'DETECTORS', 'eye_angle', 'align_face', 'to_uint8_rgb']

#: Names accepted by :func:`build_landmark_detector`.
DETECTORS = ('retinaface', 'mediapipe', 'template')

#: FaceMesh contours of the two eyes (the subject's right eye, then the left one).
_MESH_EYES = ((33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246),
              (263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466))
_MESH_NOSE_TIP, _MESH_MOUTH = 1, (61, 291)


class FaceBox:
    """One face: ``box`` ``(x0, y0, x1, y1)`` and ``landmarks`` ``5 x 2`` (left eye, right eye, nose, left and right
    mouth corner; "left" = smaller x), in pixels of the image it was found in."""

    def __init__(self, box, landmarks):
        self.box = np.asarray(box, dtype=np.float64).reshape(4)
        self.landmarks = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)

    @property
    def area(self):
        """float: Box area in pixels."""
        return float(max(0.0, self.box[2] - self.box[0]) * max(0.0, self.box[3] - self.box[1]))


def to_uint8_rgb(img):
    """``3 x H x W`` tensor in ``[0, 1]`` -> ``H x W x 3`` uint8 RGB numpy array (detached)."""
    arr = img.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
    return np.ascontiguousarray((arr * 255.0 + 0.5).astype(np.uint8))


class TemplateLandmarks:
    """Fixed landmarks of a centred frontal face (NOT a detector: tests and pre-aligned crops only)."""

    name = 'template'
    is_standin = True
    _POINTS = ((0.35, 0.42), (0.65, 0.42), (0.5, 0.58), (0.38, 0.74), (0.62, 0.74))

    def describe(self):
        """str: One line naming the stand-in."""
        return 'template landmarks (fixed centred-face points, NOT a detector)'

    def __call__(self, rgb):
        """The template face of an ``H x W x 3`` image (always found)."""
        h, w = rgb.shape[:2]
        return FaceBox((0, 0, w, h), [(x * w, y * h) for x, y in self._POINTS])


class MediaPipeLandmarks:
    """Offline 5-point landmarks from mediapipe FaceMesh (see the module docstring for how they differ).

    Args:
        min_detection_confidence (float): FaceMesh face-detection threshold.
    """

    name = 'mediapipe'
    is_standin = False

    def __init__(self, min_detection_confidence=0.5):
        from lowlight3d.data.mediapipe_depth import FaceMeshDepth
        self.mesh = FaceMeshDepth(refine_landmarks=False, min_detection_confidence=min_detection_confidence)

    def describe(self):
        """str: One line naming the detector."""
        return 'mediapipe 0.10.14 FaceMesh (5 points from the 468 landmarks; offline)'

    def __call__(self, rgb):
        """The face of an ``H x W x 3`` uint8 RGB image, or None."""
        pts = self.mesh.landmarks(rgb)
        if pts is None:
            return None
        h, w = rgb.shape[:2]
        xy = pts[:, :2] * np.array([w, h], dtype=np.float64)
        eyes = sorted((xy[list(loop)].mean(0) for loop in _MESH_EYES), key=lambda p: p[0])
        mouth = sorted((xy[i] for i in _MESH_MOUTH), key=lambda p: p[0])
        box = (xy[:, 0].min(), xy[:, 1].min(), xy[:, 0].max(), xy[:, 1].max())
        return FaceBox(box, [eyes[0], eyes[1], xy[_MESH_NOSE_TIP], mouth[0], mouth[1]])


class RetinaFaceLandmarks:
    """RetinaFace MobileNet0.25 (facexlib) on the image as given; the largest face above ``conf_threshold``.

    Args:
        weights_path (str, optional): Explicit ``detection_mobilenet0.25_Final.pth``; otherwise resolved offline.
        conf_threshold (float): Score threshold (0.5 in the original).
        device (str): torch device.

    Raises:
        lowlight3d.utils.weights.WeightsNotFoundError: The weight file is not on disk (named in the message).
    """

    name = 'retinaface'
    is_standin = False

    def __init__(self, weights_path=None, conf_threshold=0.5, device='cpu'):
        from lowlight3d.data.preparation.face_detection import RetinaFaceDetector
        self.detector = RetinaFaceDetector('retinaface_mobile0.25', weights_path=weights_path,
                                           conf_threshold=conf_threshold, device=device)

    def describe(self):
        """str: One line naming the detector and its weights."""
        return self.detector.describe()

    def __call__(self, rgb):
        """The largest face of an ``H x W x 3`` uint8 RGB image, or None."""
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])
        with torch.no_grad():
            rows = self.detector.model.detect_faces(bgr, conf_threshold=self.detector.conf_threshold)
        rows = np.asarray(rows).reshape(-1, 15)
        if len(rows) == 0:
            return None
        faces = [FaceBox(r[:4], r[5:15]) for r in rows]
        return max(faces, key=lambda f: f.area)


def build_landmark_detector(name='retinaface', **kwargs):
    """Build one of :data:`DETECTORS` (keyword options go to its constructor)."""
    if name == 'retinaface':
        return RetinaFaceLandmarks(**kwargs)
    if name == 'mediapipe':
        return MediaPipeLandmarks(**kwargs)
    if name == 'template':
        return TemplateLandmarks()
    raise ValueError(f"Low-FaceNet face loss: unknown detector {name!r}; choose one of {DETECTORS}")


def eye_angle(landmarks):
    """Angle in degrees (counter-clockwise on screen) that levels the eyes: ``atan(dy / dx)``, 0 when ``dx = 0``."""
    dx = landmarks[0, 0] - landmarks[1, 0]
    dy = landmarks[0, 1] - landmarks[1, 1]
    return 0.0 if dx == 0 else math.degrees(math.atan(dy / dx))


def align_face(img, face, size=160, fill=128.0 / 255.0):
    """Differentiable crop of ``face`` from ``img``, levelled and letterboxed to ``size x size``.

    Steps (the original's): the box is clamped at 0 and truncated to integers; the crop is rotated by
    :func:`eye_angle` about ``(w // 2, h // 2)`` (bilinear, zero fill); it is resized keeping its aspect ratio to
    ``int(w * s) x int(h * s)``, ``s = min(size / w, size / h)`` (bilinear, no antialiasing) and centred on a
    ``fill`` gray canvas.

    Args:
        img (Tensor): ``1 x 3 x H x W`` image (gradients flow through).
        face (FaceBox): Box and landmarks in ``img``'s pixels.
        size (int): Output side (160 for FaceNet). fill (float): Letterbox gray.

    Returns:
        Tensor: ``1 x 3 x size x size``.
    """
    from torchvision.transforms import functional as TF
    h_img, w_img = img.shape[-2:]
    x0, y0, x1, y1 = (max(0, int(v)) for v in face.box)
    x1, y1 = min(x1, w_img), min(y1, h_img)
    if x1 - x0 < 2 or y1 - y0 < 2:  # degenerate box: use the whole image
        x0, y0, x1, y1 = 0, 0, w_img, h_img
    crop = img[:, :, y0:y1, x0:x1]
    h, w = crop.shape[-2:]
    angle = eye_angle(face.landmarks - np.array([x0, y0], dtype=np.float64))
    if angle != 0.0:
        crop = TF.rotate(crop, angle, interpolation=TF.InterpolationMode.BILINEAR, center=[w // 2, h // 2])
    scale = min(size / w, size / h)
    nw, nh = max(1, int(w * scale)), max(1, int(h * scale))
    crop = F.interpolate(crop, size=(nh, nw), mode='bilinear', align_corners=False)
    top, left = (size - nh) // 2, (size - nw) // 2
    return F.pad(crop - fill, (left, size - nw - left, top, size - nh - top), value=0.0) + fill
