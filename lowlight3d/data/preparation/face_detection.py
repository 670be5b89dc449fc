"""Face detection for data preparation: re-exported from its home, :mod:`lowlight3d.face`.

Detection and alignment serve both data preparation and inference, so they live in :mod:`lowlight3d.face`
(:mod:`~lowlight3d.face.detection`, :mod:`~lowlight3d.face.haar_detector`, :mod:`~lowlight3d.face.retinaface_detector`,
...).  This module keeps the old import path working; new code imports from :mod:`lowlight3d.face`.
"""
from lowlight3d.face.detection import (
    DETECTOR_CHOICES,
    RETINAFACE_WEIGHTS,
    FaceDetection,
    brighten_for_detection,
    build_face_detector,
)
from lowlight3d.face.haar_detector import HaarFaceDetector
from lowlight3d.face.retinaface_detector import RetinaFaceDetector

__all__ = [
    'FaceDetection', 'brighten_for_detection', 'HaarFaceDetector', 'RetinaFaceDetector', 'build_face_detector',
    'RETINAFACE_WEIGHTS', 'DETECTOR_CHOICES'
]
