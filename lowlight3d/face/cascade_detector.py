"""Several offline detectors tried in turn: the first one that finds a face in a photo gives its faces.

Measured on the real dark photos of the shared data (``python -m lowlight3d.face.survey``): dlib on the brightened
copy finds a face in 18 of 57 dark Yale B frames and 3 of 64 DICM scenes; mediapipe on the frame as it is finds
faces in 6 and 2, partly others; tried one after the other they find faces in 22 and 4.  So the inference default
(:func:`~lowlight3d.face.detection.build_face_detector` ``'auto'`` without RetinaFace weights) is dlib on the
brightened copy, then mediapipe on the frame as it is, then mediapipe on the brightened copy.  Haar is left out:
on these photos it finds as many boxes, but unverified and with estimated landmarks.
"""
__all__ = ['CascadeFaceDetector']


class CascadeFaceDetector:
    """Try ``detectors`` in order (each with its own ``brighten`` flag); return the first non-empty result.

    Args:
        detectors (Sequence): Detectors with ``detect(img)``, ``describe()`` and ``brighten``.
    """

    name = 'cascade'

    def __init__(self, detectors):
        if not detectors:
            raise ValueError('CascadeFaceDetector needs at least one detector')
        self.detectors = list(detectors)
        self._own = [bool(d.brighten) for d in self.detectors]
        self._brighten = None

    @property
    def brighten(self):
        """None (each member's own setting), or the flag forced on every member (detection surveys)."""
        return self._brighten

    @brighten.setter
    def brighten(self, flag):
        self._brighten = flag
        for det, own in zip(self.detectors, self._own):
            det.brighten = own if flag is None else bool(flag)

    def describe(self):
        """str: The members in order."""
        parts = [f"{d.describe()} on the {'brightened copy' if d.brighten else 'frame as it is'}"
                 for d in self.detectors]
        return 'cascade, the first that finds a face of: ' + '; '.join(parts)

    def detect(self, img):
        """Faces of the first member that finds any (largest first), else an empty list."""
        for det in self.detectors:
            faces = det.detect(img)
            if faces:
                return faces
        return []
