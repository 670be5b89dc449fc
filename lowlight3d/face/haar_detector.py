"""OpenCV Haar-cascade face detector with eye detection (offline fallback; OpenCV 4.x ships the cascades).

Boxes come from ``haarcascade_frontalface_default``; the eye cascade is then run in the upper part of each box and,
when it finds a plausible pair, gives the two eye landmarks.  Nose and mouth are estimated by the aligner
(:func:`lowlight3d.face.alignment.five_landmarks`).  OpenCV 5.0 dropped ``CascadeClassifier`` and the XML files
(``docs/environment.md`` section 3): pin opencv-python(-headless) 4.14.
"""
import os.path as osp

import cv2
import numpy as np

from lowlight3d.face.detection import FaceDetection, detection_input

__all__ = ['HaarFaceDetector']


class HaarFaceDetector:
    """OpenCV Haar-cascade face detector with eye detection (offline; OpenCV 4.x ships the cascades).

    Args:
        min_face_fraction (float): Smallest face side as a fraction of the frame's short side.
        scale_factor (float): Cascade pyramid step.
        min_neighbors (int): Merged detections needed for a face (higher = fewer false faces).
        detect_eyes (bool): Run the eye cascade inside each face box to measure the eye landmarks.
        cascade_dir (str, optional): Folder of the cascade XML files (default ``cv2.data.haarcascades``).
        brighten (bool | str): Detect on the brightened copy (:func:`~lowlight3d.face.detection.detection_input`).
    """

    name = 'haar'

    def __init__(self, min_face_fraction=0.15, scale_factor=1.1, min_neighbors=5, detect_eyes=True, cascade_dir=None,
                 brighten=True):
        if not hasattr(cv2, 'CascadeClassifier'):
            raise RuntimeError('This OpenCV build has no CascadeClassifier (OpenCV 5 removed it): install '
                               'opencv-python(-headless)==4.14.0.94 as requirements.txt pins it')
        cascade_dir = cascade_dir or getattr(getattr(cv2, 'data', None), 'haarcascades', '')
        self.face_cascade = self._load(cascade_dir, 'haarcascade_frontalface_default.xml')
        self.eye_cascade = self._load(cascade_dir, 'haarcascade_eye.xml') if detect_eyes else None
        self.min_face_fraction = float(min_face_fraction)
        self.scale_factor = float(scale_factor)
        self.min_neighbors = int(min_neighbors)
        self.brighten = brighten if isinstance(brighten, str) else bool(brighten)

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
        bright = detection_input(img, self.brighten)
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
