"""The background of face mode: the whole photo, enhanced at full resolution by the user's choice (``--bg_model``).

* ``gamma`` (default): one gamma curve per photo, ``x ** g``, with ``g`` solved on a 256-px copy so that the mean
  luma reaches ``target`` (:class:`~lowlight3d.archs.gamma_curve_enhancer_arch.GammaCurveEnhancer`'s solver), then
  applied pixel by pixel at full resolution.  Why the default: the face models are trained on aligned faces and,
  on whole scenes, invent colour casts and face-like texture (and our method's prior is a face prior); a gamma
  curve keeps hues, keeps gray photos gray, has no seams at any size, and a 1920x1080 photo takes about 0.15 s on
  one CPU thread (solving ``g`` on a 256-px copy changes it by ~0.01 against the full photo), leaving the time
  budget to the faces.  Its cost: no denoising and no local contrast in the background (choose a learned model
  for that), and noise in deep shadows is lifted with them.
* ``none``: the photo as it is (only faces are enhanced).
* ``face``: the face model itself on the whole photo, tiled.
* a model file (``*.pth`` from ``scripts/export_model.py``): that method on the whole photo, tiled.
"""
import cv2
import numpy as np
import torch

__all__ = ['GammaBackground', 'NoBackground', 'build_background', 'BG_CHOICES']

#: Named background choices (besides a model file path).
BG_CHOICES = ('gamma', 'none', 'face')


class GammaBackground:
    """Per-photo gamma curve to a target mean luma, solved on a small copy (see the module docstring).

    Args:
        target (float): Mean luma of the result. solve_side (int): Longer side of the copy ``g`` is solved on.
    """

    name = 'gamma'

    def __init__(self, target=0.45, solve_side=256):
        from lowlight3d.archs.gamma_curve_enhancer_arch import GammaCurveEnhancer
        self.curve = GammaCurveEnhancer(target_mean=target)
        self.solve_side = int(solve_side)

    def describe(self):
        """str: One line."""
        return f'per-photo gamma curve to mean luma {self.curve.target_mean:g} (non-learned)'

    def gamma(self, img):
        """The gamma of an ``H x W x 3`` photo."""
        scale = min(1.0, self.solve_side / max(img.shape[:2]))
        small = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else img
        x = torch.from_numpy(np.ascontiguousarray(small, dtype=np.float32).transpose(2, 0, 1))[None]
        return float(self.curve.solve_gamma(x)[0])

    def enhance(self, img, name='image'):
        """Enhance an ``H x W x 3`` float32 photo."""
        return np.power(np.clip(img, 0.0, 1.0), np.float32(self.gamma(img))).astype(np.float32)


class NoBackground:
    """The photo as it is (``--bg_model none``)."""

    name = 'none'

    def describe(self):
        """str: One line."""
        return 'none (the photo as it is)'

    def enhance(self, img, name='image'):
        """Return a copy of ``img``."""
        return np.array(img, dtype=np.float32, copy=True)


def build_background(choice, face_model=None, device='cpu', tile=0, tile_pad=32, gray='auto', prior_steps=None,
                     prior_flip=None):
    """The background enhancer for ``--bg_model``.

    Args:
        choice (str): ``gamma``, ``none``, ``face`` or a model file.
        face_model (ImageEnhancer): The face method, for ``face``.
        device, tile, tile_pad, gray, prior_steps, prior_flip: Settings of a model-file background.
    """
    import os.path as osp
    if choice in (None, '', 'gamma'):
        return GammaBackground()
    if choice == 'none':
        return NoBackground()
    if choice == 'face':
        if face_model is None:
            raise ValueError("--bg_model face needs the face model (--model or -opt)")
        return face_model
    if not osp.isfile(choice):
        raise FileNotFoundError(f'--bg_model {choice!r}: not one of {BG_CHOICES} and not a model file; export one '
                                'with python scripts/export_model.py -opt <option file> --out bg.pth')
    from lowlight3d.inference.image_enhancer import ImageEnhancer
    from lowlight3d.inference.loaded_model import load_model
    return ImageEnhancer(load_model(choice, device=device, prior_steps=prior_steps, prior_flip=prior_flip), tile,
                         tile_pad, gray)
