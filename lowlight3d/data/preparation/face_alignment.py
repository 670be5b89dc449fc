"""FFHQ-style face alignment for data preparation: re-exported from its home, :mod:`lowlight3d.face.alignment`.

This module keeps the old import path working; new code imports from :mod:`lowlight3d.face.alignment`.
"""
from lowlight3d.face.alignment import (
    FFHQ_TEMPLATE_512,
    HAAR_BOX_LANDMARKS,
    AlignedFace,
    align_face,
    ffhq_quad,
    five_landmarks,
)

__all__ = ['FFHQ_TEMPLATE_512', 'HAAR_BOX_LANDMARKS', 'AlignedFace', 'five_landmarks', 'ffhq_quad', 'align_face']
