"""Face-aware enhancement of whole dark photos: the plain class the command and users' code call (as ``GFPGANer``).

``FaceEnhancer.enhance(img)``:

1. detect faces on a **brightened copy** of the dark photo (:mod:`lowlight3d.face.detection`; dlib, mediapipe,
   Haar or RetinaFace), 5 landmarks each (measured or estimated, :func:`~lowlight3d.face.alignment.five_landmarks`);
2. align each face to the method's face size with the FFHQ crop (:func:`~lowlight3d.face.alignment.align_face`);
3. enhance all faces of the photo in one batch with the method's own ``test()`` (our method samples its 3D prior
   on each aligned face);
4. enhance the whole photo with the background enhancer (``--bg_model``, :mod:`.background`) at full resolution;
5. weigh each enhanced face against the background's rendering of it (:func:`~lowlight3d.face.trust.assess_face`):
   a face that is much darker, flat, or no longer detected is blended or replaced by the background, per face, with
   the reason in :attr:`FaceResult.trust`;
6. paste every kept face back through the inverse affine with a feathered mask, matched to the enhanced background
   in exposure, contrast and colour (:func:`~lowlight3d.face.paste_back.paste_face`, ``match='seamless'``).

A photo with no detected face gets the background enhancer's result (``fallback='background'``) or the face
model on the whole photo (``fallback='model'``).  ``has_aligned=True`` treats the input as one aligned face.
"""
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

from lowlight3d.face.alignment import align_face, five_landmarks
from lowlight3d.face.paste_back import paste_face
from lowlight3d.face.trust import FaceTrust, assess_face
from lowlight3d.inference.image_enhancer import to_array, to_tensor
from lowlight3d.utils.gray import keep_gray

__all__ = ['FaceEnhancer', 'FaceResult']


@dataclass
class FaceResult:
    """What :meth:`FaceEnhancer.enhance` returns.

    Attributes:
        cropped_faces (list[np.ndarray]): Aligned input faces (``S x S x 3``).
        restored_faces (list[np.ndarray]): Their enhancement.
        image (np.ndarray): The whole enhanced photo (None with ``paste_back=False`` or ``has_aligned``).
        landmarks (list[np.ndarray]): The 5 landmarks of each face (frame pixels).
        sources (list[str]): Where each face's landmarks came from (``detector``, ``eyes``, ``box``).
        gains (list[np.ndarray]): Colour-match gain applied to each face.
        trust (list[FaceTrust]): Per face, the weight it was pasted with and why (:mod:`lowlight3d.face.trust`).
        background (np.ndarray): The background-only result (the photo without any face pasted).
        pastes (list[dict]): Per pasted face, ``box`` and soft ``mask`` in that box (for the seam measure,
            :func:`~lowlight3d.face.seam.seam_step`).
    """
    cropped_faces: list = field(default_factory=list)
    restored_faces: list = field(default_factory=list)
    image: np.ndarray = None
    landmarks: list = field(default_factory=list)
    sources: list = field(default_factory=list)
    gains: list = field(default_factory=list)
    trust: list = field(default_factory=list)
    background: np.ndarray = None
    pastes: list = field(default_factory=list)


class FaceEnhancer:
    """Detect, align, enhance and paste back the faces of dark photos.

    Args:
        face_model (ImageEnhancer): The method run on the aligned faces (its ``face_size``: the alignment size).
        background: Background enhancer (``enhance(img, name) -> img``, :func:`~.background.build_background`).
        detector: Face detector (``detect(img) -> list[FaceDetection]``), or None for aligned inputs only.
        only_center_face (bool): Keep only the face nearest the photo's centre.
        max_faces (int): Largest number of faces enhanced per photo (largest first).
        min_face (int): Smallest eye-to-mouth distance (pixels) of a face worth enhancing.
        feather (float): Paste-back feather width (fraction of the face side).
        colour_match (float): Strength of the colour/exposure match (0 = off).
        fallback (str): A photo without faces: ``'background'`` or ``'model'`` (the face method on the photo).
        match (str): How faces are matched to the background (:data:`~lowlight3d.face.paste_back.MATCH_MODES`;
            ``'gain'``: band gains, the whole crop square; ``'seamless'``: the face's ellipse, see docs/face_mode.md).
        trust (bool): Weigh each face against the background's rendering of it (blend or keep the background).
    """

    def __init__(self, face_model, background, detector=None, only_center_face=False, max_faces=16, min_face=8,
                 feather=0.06, colour_match=1.0, fallback='background', match='seamless', trust=True):
        if fallback not in ('background', 'model'):
            raise ValueError(f"fallback must be 'background' or 'model', got {fallback!r}")
        self.face_model, self.background, self.detector = face_model, background, detector
        self.only_center_face, self.max_faces, self.min_face = bool(only_center_face), int(max_faces), float(min_face)
        self.feather, self.colour_match, self.fallback = float(feather), float(colour_match), fallback
        self.match, self.trust = match, bool(trust)
        self._embedder = None
        self.notes = []

    @property
    def check_detector(self):
        """The detector of the trust check's "still a face" test: dlib HOG on the aligned crops (about 10 ms),
        else the photo detector."""
        if getattr(self, '_check_detector', None) is None:
            try:
                from lowlight3d.face.detection import DARK_BRIGHTEN
                from lowlight3d.face.dlib_detector import DlibFaceDetector
                self._check_detector = DlibFaceDetector(upsample=0, brighten=DARK_BRIGHTEN)
            except ImportError:
                self._check_detector = self.detector
        return self._check_detector

    @property
    def embedder(self):
        """dlib's face-recognition embedder for the trust check's identity test, or None (with a note) without dlib."""
        if self._embedder is None:
            from lowlight3d.metrics.identity_metric import FaceEmbedder, load_face_models
            from lowlight3d.metrics.metric_util import MetricUnavailable
            try:
                load_face_models()
                self._embedder = FaceEmbedder()
            except MetricUnavailable as err:
                self._embedder = False
                self.notes.append(f'trust check without the identity test: {err}')
        return self._embedder or None

    @property
    def face_size(self):
        """int: Side of the aligned faces."""
        return self.face_model.model.face_size

    def detect(self, img):
        """5 landmarks per face, largest first (and only the centre face with ``only_center_face``)."""
        if self.detector is None:
            raise ValueError('FaceEnhancer has no detector: pass one, or use has_aligned=True / --no_face')
        faces = self.detector.detect(img)
        found = []
        for det in faces:
            lm, source = five_landmarks(det)
            size = np.hypot(*(lm[1] - lm[0])) + np.hypot(*((lm[3] + lm[4]) / 2 - (lm[0] + lm[1]) / 2))
            if size >= self.min_face:
                found.append((lm, source))
        if self.only_center_face and found:
            centre = np.array([img.shape[1] / 2.0, img.shape[0] / 2.0])
            found = [min(found, key=lambda f: np.hypot(*(f[0].mean(0) - centre)))]
        return found[:self.max_faces]

    def enhance_faces(self, crops, name='image'):
        """Enhance aligned crops (list of ``S x S x 3``) in one batch (one by one for per-image optimisation)."""
        model = self.face_model.model
        if not crops:
            return []
        batch = torch.cat([to_tensor(c, model.device) for c in crops])
        names = [f'{name}_{i:02d}' for i in range(len(crops))]
        if model.tileable:
            out = model.enhance(batch, names)
        else:
            out = torch.cat([model.enhance(batch[i:i + 1], [n]) for i, n in enumerate(names)])
        out = keep_gray(batch.to(out.device), out, self.face_model.gray_mode)
        return [to_array(out[i:i + 1]) for i in range(out.shape[0])]

    def enhance(self, img, has_aligned=False, paste_back=True, name='image', landmarks=None):
        """Enhance one photo (see the module docstring).

        Args:
            img (np.ndarray): ``H x W x 3`` float32 RGB in ``[0, 1]``.
            has_aligned (bool): The input is one aligned face (resized to the face size and enhanced).
            paste_back (bool): Build the whole enhanced photo.
            name (str): Name of the photo (seeds per-image optimisation).
            landmarks (list[np.ndarray], optional): Use these faces instead of detecting (video smoothing).

        Returns:
            FaceResult: Crops, restored faces, the photo.
        """
        result = FaceResult()
        size = self.face_size
        if has_aligned:
            crop = img if img.shape[:2] == (size, size) else cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA
                                                                         if img.shape[0] > size else cv2.INTER_CUBIC)
            result.cropped_faces = [np.clip(crop, 0, 1).astype(np.float32)]
            result.restored_faces = self.enhance_faces(result.cropped_faces, name)
            result.image = result.restored_faces[0]
            return result
        faces = self.detect(img) if landmarks is None else [(np.asarray(lm, np.float32), 'tracked')
                                                              for lm in landmarks]
        aligned = [align_face(img, lm, size, source) for lm, source in faces]
        result.landmarks = [lm for lm, _ in faces]
        result.sources = [source for _, source in faces]
        result.cropped_faces = [a.image for a in aligned]
        result.restored_faces = self.enhance_faces(result.cropped_faces, name)
        if not paste_back:
            return result
        if not aligned and self.fallback == 'model':
            result.image = self.face_model.enhance(img, name)
            return result
        out = self.background.enhance(img, name)
        result.background = out
        for a, restored in zip(aligned, result.restored_faces):
            if self.trust:
                bg_crop = cv2.warpAffine(result.background, a.affine, (size, size), flags=cv2.INTER_LINEAR,
                                         borderMode=cv2.BORDER_REFLECT)
                verdict = assess_face(restored, bg_crop, self.check_detector, self.embedder)
            else:
                verdict = FaceTrust(1.0, 'face model kept (trust check off)')
            result.trust.append(verdict)
            info = {}
            out, gain = paste_face(out, img, a.image, restored, a.affine, self.feather, self.colour_match,
                                   match=self.match, alpha=verdict.weight, info=info,
                                   shape='square' if self.match == 'gain' else 'ellipse')
            result.gains.append(gain)
            if verdict.weight > 0:
                result.pastes.append(info)
        if self.face_model.gray_mode == 'keep':
            out = to_array(keep_gray(to_tensor(img), to_tensor(out), 'keep'))
            result.background = to_array(keep_gray(to_tensor(img), to_tensor(result.background), 'keep'))
        result.image = out
        return result
