"""Whether a face model's result is trustworthy enough to replace the background's rendering of the same face.

Face mode must never make a photo worse than its background alone.  :func:`assess_face` compares, on the aligned
crop, the face model's result with the background's rendering of the same face (the enhanced background warped
into the crop) over the face's centre (the middle 60 % of the FFHQ crop: eyes, nose, mouth, cheeks):

* **much darker**: mean luma below ``min_luma_ratio`` (0.5) of the background's; the paste-back's exposure match is
  limited to a gain of 2, so such a face cannot be matched: the background is kept;
* **flat**: structure contrast (standard deviation of a difference of Gaussians, sigmas 1 % and 4 % of the crop
  side: eyes, brows, nostrils, lips, not pixel noise) below ``flat_ratio`` (0.5) of the background's: the face is
  blended, ``weight = (ratio - min_detail_ratio) / (flat_ratio - min_detail_ratio)``, and below
  ``min_detail_ratio`` (0.25) the background is kept;
* **face no longer detected**: the run's detector finds a face in the background's rendering of the crop but none
  in the face model's result: the background is kept;
* **another person**: dlib's face-recognition embeddings (:class:`~lowlight3d.metrics.identity_metric.FaceEmbedder`)
  of the two renderings are ``max_identity_distance`` (0.4) or more apart: the face model changed who the face looks
  like, the background is kept.  dlib calls two *different photos* the same person below 0.6; these are two
  renderings of the *same* photo, so the limit is tighter (the distances it was set on, Yale B ambient frames and
  the generated figure scene: ``docs/face_mode.md`` sections 3 and 4).

:class:`FaceTrust` carries the weight (1: the face model's result, 0: the background, between: a blend), a reason
the command logs per face, and the measures.
"""
from dataclasses import dataclass, field

import cv2
import numpy as np

from lowlight3d.face.detection import luma

__all__ = ['FaceTrust', 'assess_face', 'structure_contrast']



@dataclass
class FaceTrust:
    """The verdict on one face (see the module docstring).

    Attributes:
        weight (float): Weight of the face model's result in the paste, 0 to 1.
        reason (str): Why, in words (``'face model kept'`` when nothing was wrong).
        measures (dict): ``luma_ratio``, ``detail_ratio`` and, when checked, ``detected`` (bool) and
            ``identity_distance``.
    """
    weight: float
    reason: str
    measures: dict = field(default_factory=dict)

    @property
    def action(self):
        """str: ``'face'``, ``'blend'`` or ``'background'``."""
        return 'face' if self.weight >= 1.0 else ('background' if self.weight <= 0.0 else 'blend')


def _centre(img, fraction=0.6):
    """The middle ``fraction`` (per side) of a square crop."""
    s = img.shape[0]
    a, b = int(round(s * (1 - fraction) / 2)), int(round(s * (1 + fraction) / 2))
    return img[a:b, a:b]


def structure_contrast(crop):
    """Standard deviation of the difference of Gaussians (sigmas 1 % and 4 % of the side) of a crop's luma."""
    lum = luma(crop)
    side = lum.shape[0]
    fine = cv2.GaussianBlur(lum, (0, 0), max(0.5, 0.01 * side))
    coarse = cv2.GaussianBlur(lum, (0, 0), max(1.0, 0.04 * side))
    return float(_centre(fine - coarse).std())


def _embedding_distance(embedder, a, b):
    """dlib embedding distance of two RGB float crops."""
    from lowlight3d.metrics.identity_metric import embedding_distance

    def embed(img):
        return embedder.embed(np.round(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)[..., ::-1])
    return embedding_distance(embed(a), embed(b))


def assess_face(restored, background_crop, detector=None, embedder=None, min_luma_ratio=0.5, flat_ratio=0.5,
                min_detail_ratio=0.25, max_identity_distance=0.4):
    """Weigh a face model's result against the background's rendering of the same aligned face.

    Args:
        restored (np.ndarray): ``S x S x 3`` face model result (float in ``[0, 1]``).
        background_crop (np.ndarray): ``S x S x 3`` the enhanced background warped into the same crop.
        detector (optional): The run's face detector (``detect(img)``); None skips the detection check.
        embedder (FaceEmbedder, optional): Face-recognition embedder; None skips the identity check.
        min_luma_ratio, flat_ratio, min_detail_ratio, max_identity_distance (float): Thresholds (module docstring).

    Returns:
        FaceTrust: Weight, reason and measures.
    """
    lum_r = float(_centre(luma(restored)).mean())
    lum_b = float(_centre(luma(background_crop)).mean())
    luma_ratio = lum_r / max(lum_b, 1e-4)
    detail_ratio = structure_contrast(restored) / max(structure_contrast(background_crop), 1e-5)
    measures = {'luma_ratio': round(luma_ratio, 3), 'detail_ratio': round(detail_ratio, 3)}
    if luma_ratio < min_luma_ratio:
        return FaceTrust(0.0, f'background kept: the face model\'s face is much darker ({luma_ratio:.2f} x the '
                         f'background\'s mean luma, limit {min_luma_ratio:g})', measures)
    if detector is not None and not detector.detect(np.asarray(restored, np.float32)):
        detected_bg = bool(detector.detect(np.asarray(background_crop, np.float32)))
        measures['detected'] = False
        if detected_bg:
            return FaceTrust(0.0, 'background kept: no face is detected in the face model\'s result, one is in the '
                             'background\'s', measures)
    if embedder is not None:
        distance = _embedding_distance(embedder, restored, background_crop)
        measures['identity_distance'] = round(distance, 3)
        if distance >= max_identity_distance:
            return FaceTrust(0.0, f'background kept: the face model\'s face looks like another person '
                             f'(face-recognition distance {distance:.2f} to the background\'s, limit '
                             f'{max_identity_distance:g})', measures)
    if detail_ratio < min_detail_ratio:
        return FaceTrust(0.0, f'background kept: the face model\'s face is flat (structure contrast {detail_ratio:.2f} '
                         f'x the background\'s, limit {min_detail_ratio:g})', measures)
    if detail_ratio < flat_ratio:
        weight = (detail_ratio - min_detail_ratio) / (flat_ratio - min_detail_ratio)
        return FaceTrust(float(weight), f'blended at {weight:.2f}: the face model\'s face is flatter (structure '
                         f'contrast {detail_ratio:.2f} x the background\'s, full trust from {flat_ratio:g})', measures)
    return FaceTrust(1.0, 'face model kept', measures)
