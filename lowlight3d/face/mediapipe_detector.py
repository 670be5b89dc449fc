"""mediapipe's BlazeFace detector (the TFLite models ship inside the mediapipe wheel): offline, no download.

Uses the legacy ``mediapipe.solutions.face_detection`` API (mediapipe 0.10.14).  Each detection has a box and six
keypoints (both eyes, nose tip, mouth centre, both ear tragions).  The eyes and nose are measured; the two mouth
corners are placed on the line through the measured mouth centre, parallel to the eye axis, half the FFHQ
template's mouth width apart (:data:`~lowlight3d.face.alignment.FFHQ_TEMPLATE_512`).
"""
import numpy as np

from lowlight3d.face.alignment import FFHQ_TEMPLATE_512
from lowlight3d.face.detection import FaceDetection, detection_input

__all__ = ['MediapipeFaceDetector']

#: Mouth width / eye distance of the FFHQ template.
_MOUTH_TO_EYES = float(np.hypot(*(FFHQ_TEMPLATE_512[4] - FFHQ_TEMPLATE_512[3])) /
                       np.hypot(*(FFHQ_TEMPLATE_512[1] - FFHQ_TEMPLATE_512[0])))


class MediapipeFaceDetector:
    """mediapipe face detection (boxes + eyes, nose, mouth centre).

    Args:
        model_selection (int): 0 = short range (faces within about 2 m), 1 = full range (small faces too).
        min_confidence (float): Score threshold.
        brighten (bool | str): Detect on the brightened copy (:func:`~lowlight3d.face.detection.detection_input`).
    """

    name = 'mediapipe'

    def __init__(self, model_selection=1, min_confidence=0.5, brighten=True):
        import mediapipe
        from mediapipe.python.solutions import face_detection
        self._version = mediapipe.__version__
        self.model_selection, self.min_confidence = int(model_selection), float(min_confidence)
        self.brighten = brighten if isinstance(brighten, str) else bool(brighten)
        self.model = face_detection.FaceDetection(model_selection=self.model_selection,
                                                  min_detection_confidence=self.min_confidence)

    def describe(self):
        """str: One line naming the detector and its settings."""
        kind = 'full range' if self.model_selection == 1 else 'short range'
        return f'mediapipe {self._version} face detection ({kind}), score >= {self.min_confidence:g}'

    def detect(self, img):
        """Detect faces in an RGB frame.

        Args:
            img (np.ndarray): ``H x W x 3`` RGB float image in ``[0, 1]``.

        Returns:
            list[FaceDetection]: Faces with 5 landmarks, largest first.
        """
        rgb = np.ascontiguousarray(detection_input(img, self.brighten))
        h, w = rgb.shape[:2]
        result = self.model.process(rgb)
        faces = []
        for det in result.detections or []:
            rel = det.location_data.relative_bounding_box
            box = np.array([rel.xmin * w, rel.ymin * h, (rel.xmin + rel.width) * w, (rel.ymin + rel.height) * h],
                           dtype=np.float32)
            kp = np.array([(k.x * w, k.y * h) for k in det.location_data.relative_keypoints], dtype=np.float64)
            left, right = sorted([kp[0], kp[1]], key=lambda e: e[0])
            axis = right - left
            half = 0.5 * _MOUTH_TO_EYES * axis
            lm = np.stack([left, right, kp[2], kp[3] - half, kp[3] + half]).astype(np.float32)
            faces.append(FaceDetection(box, float(det.score[0]), lm))
        return sorted(faces, key=lambda f: -f.area)

    def close(self):
        """Release the mediapipe graph."""
        self.model.close()
