"""Face detection for data preparation: facexlib RetinaFace when its weights are on disk, else OpenCV's Haar cascade.

* :class:`RetinaFaceDetector` (facexlib 0.3.0): boxes, scores and 5 landmarks (eyes, nose, mouth corners).  Its
  weights (``detection_Resnet50_Final.pth`` or ``detection_mobilenet0.25_Final.pth``) are found with
  :func:`lowlight3d.utils.weights.resolve_weights` and never downloaded here; facexlib is always given
  ``device='cpu'`` (or the requested device) and ``model_rootpath`` = the folder holding the file, so it neither
  tries CUDA nor writes into site-packages (``../shared/docs/environment.md`` section 3).
* :class:`HaarFaceDetector` (offline fallback, OpenCV 4.x bundled cascades ``cv2.data.haarcascades``): frontal-face
  boxes; the eye cascade is then run in the upper part of the box and, when it finds a plausible pair, gives the two
  eye landmarks.  Nose and mouth landmarks are estimated (see :mod:`lowlight3d.data.preparation.face_alignment`).
  mediapipe is not a dependency of the toolkit and is not used.

Detection in the dark runs on a brightened copy (:func:`brighten_for_detection`): a gamma curve that brings the mean
luma to about 0.4.  Boxes and landmarks are in the pixel coordinates of the input frame; the caller crops the
original (dark) pixels.

:func:`build_face_detector` picks the detector (``'auto'``: RetinaFace when its weights resolve, else Haar) and says
which one it picked and why.
"""
import os.path as osp
from dataclasses import dataclass

import cv2
import numpy as np

from lowlight3d.data.preparation.frame_quality import luma

__all__ = [
    'FaceDetection', 'brighten_for_detection', 'HaarFaceDetector', 'RetinaFaceDetector', 'build_face_detector',
    'RETINAFACE_WEIGHTS', 'DETECTOR_CHOICES'
]

#: facexlib model name -> (weight file, download address).
RETINAFACE_WEIGHTS = {
    'retinaface_resnet50': ('detection_Resnet50_Final.pth', 'https://github.com/xinntao/facexlib/releases/'
                            'download/v0.1.0/detection_Resnet50_Final.pth'),
    'retinaface_mobile0.25': ('detection_mobilenet0.25_Final.pth', 'https://github.com/xinntao/facexlib/releases/'
                              'download/v0.1.0/detection_mobilenet0.25_Final.pth'),
}


@dataclass
class FaceDetection:
    """One detected face.

    Attributes:
        box (np.ndarray): ``(x0, y0, x1, y1)`` float pixels.
        score (float): Detector confidence (Haar: the number of merged neighbour detections, as
            ``min(1, neighbours / 50)``; RetinaFace: its probability).
        landmarks (np.ndarray | None): ``5 x 2`` (left eye, right eye, nose, left mouth corner, right mouth corner,
            "left" = smaller x in the image), ``2 x 2`` (the two eyes) when ``eyes_only``, or None.
        eyes_only (bool): True when only the two eye centres were measured (Haar + eye cascade); the aligner
            estimates the other three (:func:`~lowlight3d.data.preparation.face_alignment.five_landmarks`).
    """
    box: np.ndarray
    score: float
    landmarks: np.ndarray = None
    eyes_only: bool = False

    @property
    def area(self):
        """float: Box area in pixels."""
        return float(max(0.0, self.box[2] - self.box[0]) * max(0.0, self.box[3] - self.box[1]))


def brighten_for_detection(img, target=0.4, min_gamma=0.2):
    """An 8-bit copy of ``img`` brightened by a gamma curve so that its mean luma is about ``target``.

    ``out = img ** g`` with ``g = log(target) / log(mean luma)``, limited to ``[min_gamma, 1]`` (bright images are
    not changed).  A gamma curve lifts shadows more than highlights, which is what a detector needs in the dark.

    Args:
        img (np.ndarray): ``H x W x 3`` RGB float image in ``[0, 1]``.
        target (float): Desired mean luma.
        min_gamma (float): Strongest gamma allowed (very dark frames would otherwise turn into pure noise).

    Returns:
        np.ndarray: ``H x W x 3`` uint8 RGB image.
    """
    img = np.clip(np.asarray(img, dtype=np.float32), 0.0, 1.0)
    mean = float(luma(img).mean())
    gamma = 1.0
    if 0.0 < mean < target:
        gamma = float(np.clip(np.log(target) / np.log(mean), min_gamma, 1.0))
    out = np.power(img, gamma) if gamma != 1.0 else img
    return np.round(out * 255.0).astype(np.uint8)


class HaarFaceDetector:
    """OpenCV Haar-cascade face detector with eye detection (offline; OpenCV 4.x ships the cascades).

    Args:
        min_face_fraction (float): Smallest face side as a fraction of the frame's short side.
        scale_factor (float): Cascade pyramid step.
        min_neighbors (int): Merged detections needed for a face (higher = fewer false faces).
        detect_eyes (bool): Run the eye cascade inside each face box to measure the eye landmarks.
        cascade_dir (str, optional): Folder of the cascade XML files (default ``cv2.data.haarcascades``).
    """

    name = 'haar'

    def __init__(self, min_face_fraction=0.15, scale_factor=1.1, min_neighbors=5, detect_eyes=True, cascade_dir=None):
        if not hasattr(cv2, 'CascadeClassifier'):
            raise RuntimeError('This OpenCV build has no CascadeClassifier (OpenCV 5 removed it): install '
                               'opencv-python(-headless)==4.14.0.94 as requirements.txt pins it')
        cascade_dir = cascade_dir or getattr(getattr(cv2, 'data', None), 'haarcascades', '')
        self.face_cascade = self._load(cascade_dir, 'haarcascade_frontalface_default.xml')
        self.eye_cascade = self._load(cascade_dir, 'haarcascade_eye.xml') if detect_eyes else None
        self.min_face_fraction = float(min_face_fraction)
        self.scale_factor = float(scale_factor)
        self.min_neighbors = int(min_neighbors)

    @staticmethod
    def _load(folder, filename):
        """Load one cascade, with an error naming the file when it is missing or unreadable."""
        path = osp.join(folder, filename)
        cascade = cv2.CascadeClassifier(path) if osp.isfile(path) else None
        if cascade is None or cascade.empty():
            raise FileNotFoundError(f"Haar cascade '{path}' is missing or unreadable: OpenCV 4.x wheels ship it in "
                                    'cv2.data.haarcascades (opencv-python 5.0 does not)')
        return cascade

    def describe(self):
        """str: One line naming the detector and its settings."""
        return (f'OpenCV {cv2.__version__} Haar cascade (frontalface_default + eye), min_neighbors '
                f'{self.min_neighbors}, min face {self.min_face_fraction:g} of the short side')

    def _eyes(self, gray, box):
        """Two eye centres ``2 x 2`` (image coordinates, left first) inside ``box``, or None."""
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        w, h = x1 - x0, y1 - y0
        roi = gray[y0:y0 + int(0.6 * h), x0:x1]
        if roi.size == 0:
            return None
        found = self.eye_cascade.detectMultiScale(roi, 1.1, 5, minSize=(max(4, w // 10), max(4, w // 10)),
                                                  maxSize=(w // 3, w // 3))
        centres = [(x0 + ex + ew / 2.0, y0 + ey + eh / 2.0) for ex, ey, ew, eh in found]
        best = None
        for i in range(len(centres)):
            for j in range(i + 1, len(centres)):
                (ax, ay), (bx, by) = sorted((centres[i], centres[j]))
                dist = np.hypot(bx - ax, by - ay)
                angle = abs(np.degrees(np.arctan2(by - ay, bx - ax)))
                # plausible pair: 25-60 % of the box width apart, tilted < 30 degrees, one each side of the centre
                if 0.25 * w <= dist <= 0.6 * w and angle < 30 and ax < x0 + w / 2 < bx:
                    score = abs(dist - 0.37 * w) + abs((ay + by) / 2 - (y0 + 0.37 * h))
                    if best is None or score < best[0]:
                        best = (score, np.array([[ax, ay], [bx, by]], dtype=np.float32))
        return None if best is None else best[1]

    def detect(self, img):
        """Detect faces in an RGB frame (brightened internally when dark).

        Args:
            img (np.ndarray): ``H x W x 3`` RGB float image in ``[0, 1]``.

        Returns:
            list[FaceDetection]: Faces, largest first; ``landmarks`` holds the two measured eye centres (with
            ``eyes_only=True``) when the eye cascade found a plausible pair, else None.
        """
        bright = brighten_for_detection(img)
        gray = cv2.equalizeHist(cv2.cvtColor(bright, cv2.COLOR_RGB2GRAY))
        side = max(8, int(self.min_face_fraction * min(gray.shape)))
        boxes, neighbours = self.face_cascade.detectMultiScale2(gray,
                                                                scaleFactor=self.scale_factor,
                                                                minNeighbors=self.min_neighbors,
                                                                minSize=(side, side))
        faces = []
        for (x, y, w, h), count in zip(np.asarray(boxes).reshape(-1, 4), np.asarray(neighbours).reshape(-1)):
            box = np.array([x, y, x + w, y + h], dtype=np.float32)
            eyes = self._eyes(gray, box) if self.eye_cascade is not None else None
            score = float(min(1.0, count / 50.0))
            faces.append(FaceDetection(box, score, eyes, eyes_only=eyes is not None))
        return sorted(faces, key=lambda f: -f.area)


class RetinaFaceDetector:
    """facexlib RetinaFace (5 landmarks) on CPU with weights resolved offline.

    Args:
        model_name (str): ``'retinaface_resnet50'`` or ``'retinaface_mobile0.25'``.
        weights_path (str, optional): Explicit weight file; otherwise :func:`resolve_weights` looks in
            ``$LOWLIGHT3D_WEIGHTS``, ``experiments/pretrained_models`` and the torch hub cache (no download).
        conf_threshold (float): Score threshold.
        device (str): torch device (``'cpu'`` by default; facexlib's own default is CUDA).

    Raises:
        lowlight3d.utils.weights.WeightsNotFoundError: The weight file is not on disk.
    """

    name = 'retinaface'

    def __init__(self, model_name='retinaface_resnet50', weights_path=None, conf_threshold=0.8, device='cpu'):
        from lowlight3d.utils.weights import resolve_weights
        if model_name not in RETINAFACE_WEIGHTS:
            raise ValueError(f'Unknown RetinaFace model {model_name!r}; choose one of {sorted(RETINAFACE_WEIGHTS)}')
        filename, url = RETINAFACE_WEIGHTS[model_name]
        path = resolve_weights(filename, url, local_path=weights_path, download=False,
                               purpose=f'facexlib {model_name} face detector')
        if osp.basename(path) != filename:
            raise ValueError(f"facexlib loads '{filename}' from its folder; name the weight file {filename} "
                             f"(got '{path}')")
        import torch
        from facexlib.detection import init_detection_model
        self.model_name = model_name
        self.weights_path = path
        self.conf_threshold = float(conf_threshold)
        self.device = device
        self.model = init_detection_model(model_name, half=False, device=device,
                                          model_rootpath=osp.dirname(osp.abspath(path)))
        self._torch = torch

    def describe(self):
        """str: One line naming the detector and its weights."""
        return f'facexlib {self.model_name} ({self.weights_path}), score >= {self.conf_threshold:g}, {self.device}'

    def detect(self, img):
        """Detect faces in an RGB frame (brightened internally when dark).

        Args:
            img (np.ndarray): ``H x W x 3`` RGB float image in ``[0, 1]``.

        Returns:
            list[FaceDetection]: Faces with 5 landmarks, largest first.
        """
        bgr = cv2.cvtColor(brighten_for_detection(img), cv2.COLOR_RGB2BGR)
        with self._torch.no_grad():
            rows = self.model.detect_faces(bgr, conf_threshold=self.conf_threshold)
        faces = []
        for row in np.asarray(rows).reshape(-1, 15):
            faces.append(FaceDetection(row[:4].astype(np.float32), float(row[4]), row[5:15].reshape(5, 2).astype(
                np.float32)))
        return sorted(faces, key=lambda f: -f.area)


#: Detector names accepted by :func:`build_face_detector`.
DETECTOR_CHOICES = ('auto', 'retinaface', 'haar')


def build_face_detector(name='auto', retinaface_model='retinaface_resnet50', weights_path=None, device='cpu',
                        **haar_kwargs):
    """Build the face detector and say which one was chosen and why.

    Args:
        name (str): ``'auto'`` (RetinaFace when its weights resolve, else Haar), ``'retinaface'`` (error without
            weights) or ``'haar'``.
        retinaface_model (str): facexlib model name for RetinaFace.
        weights_path (str, optional): Explicit RetinaFace weight file.
        device (str): torch device for RetinaFace.
        **haar_kwargs: Options of :class:`HaarFaceDetector`.

    Returns:
        tuple[HaarFaceDetector | RetinaFaceDetector, str]: The detector and a one-line report.
    """
    from lowlight3d.utils.weights import WeightsNotFoundError
    if name not in DETECTOR_CHOICES:
        raise ValueError(f'Unknown face detector {name!r}; choose one of {DETECTOR_CHOICES}')
    if name in ('auto', 'retinaface'):
        try:
            det = RetinaFaceDetector(retinaface_model, weights_path=weights_path, device=device)
            return det, f'face detector: {det.describe()}'
        except (WeightsNotFoundError, ImportError) as err:
            if name == 'retinaface':
                raise
            why = str(err).split('. Put the file')[0].splitlines()[0]
    det = HaarFaceDetector(**haar_kwargs)
    if name == 'haar':
        return det, f'face detector: {det.describe()} (chosen by option)'
    return det, f'face detector: {det.describe()} (fallback: {why})'
