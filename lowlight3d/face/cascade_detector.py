"""Several offline detectors tried in turn: the first one that finds a face in a photo gives its faces.

The inference default (:func:`~lowlight3d.face.detection.build_face_detector` ``'auto'`` without RetinaFace
weights) is :func:`build_dark_cascade`, all members on the ``denoise_gamma`` copy
(:data:`~lowlight3d.face.detection.DARK_BRIGHTEN`):

1. dlib's HOG detector (fast, ~60 ms for 640 x 480, faces from ~40 px), each box **checked by dlib's CNN** on a
   crop around it (HOG alone takes a dark scene without people for a face; checked: none);
2. mediapipe's full-range BlazeFace (~15 ms; few faces in the dark but no false ones);
3. dlib's CNN detector on the whole frame shrunk to 400 px (~0.25-0.4 s; the most faces in the dark).

On the shared dark photos it finds faces in 16 of the 19 Yale B ambient frames and in every frame lit from behind,
with no face in the dark scenes without people, at about 0.25 s per ambient frame on one CPU thread
(``python -m lowlight3d.face.survey``; the table is in ``docs/face_mode.md`` section 1).  Haar is left out: it finds
unverified boxes with estimated landmarks, and false faces in those scenes.
"""
__all__ = ['CascadeFaceDetector', 'build_dark_cascade']


class CascadeFaceDetector:
    """Try ``detectors`` in order (each with its own ``brighten`` setting); return the first non-empty result.

    Args:
        detectors (Sequence): Detectors with ``detect(img)``, ``describe()`` and ``brighten``.
        verifiers (Sequence, optional): Per detector, None or a detector with ``verify(img, box) -> bool`` that
            must confirm each of its faces (a face it does not confirm is dropped).
    """

    name = 'cascade'

    def __init__(self, detectors, verifiers=None):
        if not detectors:
            raise ValueError('CascadeFaceDetector needs at least one detector')
        self.detectors = list(detectors)
        self.verifiers = list(verifiers) if verifiers is not None else [None] * len(self.detectors)
        if len(self.verifiers) != len(self.detectors):
            raise ValueError(f'CascadeFaceDetector: {len(self.verifiers)} verifiers for {len(self.detectors)} '
                             'detectors')
        members = self.detectors + [v for v in self.verifiers if v is not None]
        self._own = [(m, m.brighten) for m in members]
        self._brighten = None

    @property
    def brighten(self):
        """None (each member's own setting), or the setting forced on every member (detection surveys)."""
        return self._brighten

    @brighten.setter
    def brighten(self, flag):
        self._brighten = flag
        for member, own in self._own:
            member.brighten = own if flag is None else flag

    def describe(self):
        """str: The members in order."""
        parts = []
        for det, ver in zip(self.detectors, self.verifiers):
            how = det.brighten if isinstance(det.brighten, str) else ('gamma copy' if det.brighten else
                                                                       'frame as it is')
            parts.append(f"{det.describe()} on the {how}" + (f', checked by {ver.name}' if ver is not None else ''))
        return 'cascade, the first that finds a face of: ' + '; '.join(parts)

    def detect(self, img):
        """Faces of the first member that finds any (largest first), else an empty list."""
        for det, ver in zip(self.detectors, self.verifiers):
            faces = det.detect(img)
            if ver is not None:
                faces = [f for f in faces if ver.verify(img, f.box)]
            if faces:
                return faces
        return []


def build_dark_cascade():
    """The inference cascade of the module docstring (dlib HOG checked by dlib CNN, mediapipe, dlib CNN).

    Raises:
        ImportError, FileNotFoundError: dlib, mediapipe or a model file is missing (the message says which).
    """
    from lowlight3d.face.detection import DARK_BRIGHTEN
    from lowlight3d.face.dlib_cnn_detector import DlibCnnFaceDetector
    from lowlight3d.face.dlib_detector import DlibFaceDetector
    from lowlight3d.face.mediapipe_detector import MediapipeFaceDetector
    cnn = DlibCnnFaceDetector(brighten=DARK_BRIGHTEN)
    return CascadeFaceDetector([DlibFaceDetector(brighten=DARK_BRIGHTEN), MediapipeFaceDetector(brighten=DARK_BRIGHTEN),
                                cnn], [cnn, None, None])
