"""Deciding whether a frame is a real low-light capture: the paper's brightness rule and a scene-aware rule.

* ``'brightness'`` (:class:`BrightnessCriterion`): the paper's rule (section 4.1): mean brightness (mean of R, G, B
  in ``[0, 1]``) below ``threshold`` (0.2).  It is biased: a well-lit photo of a person with dark skin, framed
  tightly, has a low mean too (``../shared/data/README.md``; measured by
  :mod:`lowlight3d.data.preparation.criterion_report`).
* ``'scene'`` (:class:`SceneCriterion`, our proposal): the mean-brightness rule **and** a dark *scene*: at least
  ``min_scene_dark_fraction`` (0.5) of the scene's pixels must have a luma below ``dark_level`` (0.1), i.e. the
  scene's median luma is below 0.1.  The scene is the frame outside the (enlarged) face box when a face box is
  given and that leaves at least ``min_background_share`` of the frame, else the whole frame.  A dark face in a lit
  scene, or a dark-skinned face whose skin is mid-dark (luma 0.15-0.35) but not black, fails this test; a real
  low-light frame, where most of the picture sits near black, passes it.  Optionally the frame's noise relative to
  its brightness (:func:`~lowlight3d.data.preparation.frame_quality.relative_noise`) must reach
  ``min_relative_noise`` (off by default: video compression removes much of the sensor noise, so noise is
  reported but not required).

Both return a :class:`CriterionResult` with the decision, a short reason and the measured statistics.
"""
from dataclasses import dataclass, field

import numpy as np

from lowlight3d.data.preparation.frame_quality import dark_fraction, mean_brightness, relative_noise

__all__ = ['CriterionResult', 'BrightnessCriterion', 'SceneCriterion', 'LOWLIGHT_CRITERIA', 'build_lowlight_criterion']


@dataclass
class CriterionResult:
    """Outcome of a low-light criterion.

    Attributes:
        is_lowlight (bool): The decision.
        reason (str): ``'low_light'`` when accepted, else why not (``'too_bright'``, ``'scene_not_dark'``,
            ``'too_clean'``).
        stats (dict): The measured values (floats), written to the decision ledger.
    """
    is_lowlight: bool
    reason: str
    stats: dict = field(default_factory=dict)


def _check_fraction(name, value, allow_zero=True):
    """Validate an option in ``[0, 1]`` (or ``(0, 1]``)."""
    value = float(value)
    if not (0.0 <= value <= 1.0) or (not allow_zero and value == 0.0):
        raise ValueError(f"low-light criterion option '{name}' must be in {'[0' if allow_zero else '(0'}, 1], "
                         f'got {value!r}')
    return value


class BrightnessCriterion:
    """The paper's rule: mean brightness (mean of R, G, B in ``[0, 1]``) below ``threshold``.

    Args:
        threshold (float): Brightness threshold (0.2 in the paper).
    """

    name = 'brightness'

    def __init__(self, threshold=0.2):
        self.threshold = _check_fraction('threshold', threshold, allow_zero=False)

    def __call__(self, img, face_box=None):
        """Decide for one image.

        Args:
            img (np.ndarray): ``H x W x 3`` RGB float image in ``[0, 1]``.
            face_box (Sequence[float], optional): Unused (accepted for a uniform interface).

        Returns:
            CriterionResult: Decision, reason and ``{'brightness': mean}``.
        """
        brightness = mean_brightness(img)
        ok = brightness < self.threshold
        return CriterionResult(ok, 'low_light' if ok else 'too_bright', {'brightness': brightness})


class SceneCriterion:
    """Scene-aware rule: mean brightness below ``threshold`` and a dark scene (see the module docstring).

    Args:
        threshold (float): Mean-brightness threshold (as in the brightness rule).
        dark_level (float): Luma below which a pixel counts as dark.
        min_scene_dark_fraction (float): Share of dark pixels the scene needs.
        min_background_share (float): Smallest share of the frame outside the face box for it to be used as the
            scene; otherwise the whole frame is the scene (tight face crops).
        face_margin (float): The face box is enlarged by this fraction of its size on each side before it is cut
            out of the scene (hair, neck).
        min_relative_noise (float): Required noise/brightness ratio (0 disables the test).
    """

    name = 'scene'

    def __init__(self,
                 threshold=0.2,
                 dark_level=0.1,
                 min_scene_dark_fraction=0.5,
                 min_background_share=0.2,
                 face_margin=0.15,
                 min_relative_noise=0.0):
        self.threshold = _check_fraction('threshold', threshold, allow_zero=False)
        self.dark_level = _check_fraction('dark_level', dark_level, allow_zero=False)
        self.min_scene_dark_fraction = _check_fraction('min_scene_dark_fraction', min_scene_dark_fraction)
        self.min_background_share = _check_fraction('min_background_share', min_background_share)
        self.face_margin = float(face_margin)
        if self.face_margin < 0:
            raise ValueError(f"low-light criterion option 'face_margin' must be >= 0, got {face_margin!r}")
        self.min_relative_noise = float(min_relative_noise)
        if self.min_relative_noise < 0:
            raise ValueError("low-light criterion option 'min_relative_noise' must be >= 0, "
                             f'got {min_relative_noise!r}')

    def scene_mask(self, shape, face_box):
        """Boolean mask of the scene pixels, and whether it is the background (True) or the whole frame (False).

        Args:
            shape (tuple): Image shape ``(H, W, ...)``.
            face_box (Sequence[float] | None): ``(x0, y0, x1, y1)`` in pixels.

        Returns:
            tuple[np.ndarray | None, bool]: The mask (None = whole frame) and whether a background was used.
        """
        if face_box is None:
            return None, False
        h, w = shape[:2]
        x0, y0, x1, y1 = (float(v) for v in face_box)
        mx, my = (x1 - x0) * self.face_margin, (y1 - y0) * self.face_margin
        xa, xb = int(max(0, np.floor(x0 - mx))), int(min(w, np.ceil(x1 + mx)))
        ya, yb = int(max(0, np.floor(y0 - my))), int(min(h, np.ceil(y1 + my)))
        mask = np.ones((h, w), dtype=bool)
        mask[ya:yb, xa:xb] = False
        if mask.mean() < self.min_background_share:
            return None, False
        return mask, True

    def __call__(self, img, face_box=None):
        """Decide for one image.

        Args:
            img (np.ndarray): ``H x W x 3`` RGB float image in ``[0, 1]``.
            face_box (Sequence[float], optional): ``(x0, y0, x1, y1)`` of the face, when known.

        Returns:
            CriterionResult: Decision, reason and stats ``brightness``, ``scene_dark_fraction``,
            ``scene_is_background`` (0/1) and ``relative_noise``.
        """
        brightness = mean_brightness(img)
        mask, is_background = self.scene_mask(img.shape, face_box)
        scene_dark = dark_fraction(img, self.dark_level, mask)
        noise = relative_noise(img)
        stats = {
            'brightness': brightness,
            'scene_dark_fraction': scene_dark,
            'scene_is_background': float(is_background),
            'relative_noise': noise
        }
        if brightness >= self.threshold:
            return CriterionResult(False, 'too_bright', stats)
        if scene_dark < self.min_scene_dark_fraction:
            return CriterionResult(False, 'scene_not_dark', stats)
        if noise < self.min_relative_noise:
            return CriterionResult(False, 'too_clean', stats)
        return CriterionResult(True, 'low_light', stats)


#: Criterion name -> class.
LOWLIGHT_CRITERIA = {'brightness': BrightnessCriterion, 'scene': SceneCriterion}


def build_lowlight_criterion(name, **kwargs):
    """Build a criterion by name.

    Args:
        name (str): ``'brightness'`` or ``'scene'``.
        **kwargs: Options of the criterion's class.

    Returns:
        BrightnessCriterion | SceneCriterion: The criterion.
    """
    if name not in LOWLIGHT_CRITERIA:
        raise ValueError(f'Unknown low-light criterion {name!r}; choose one of {sorted(LOWLIGHT_CRITERIA)}')
    return LOWLIGHT_CRITERIA[name](**kwargs)
