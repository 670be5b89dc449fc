"""ZERO-IG (Shi et al., CVPR 2024) in the lowlight3d toolkit: registry keys ``ZeroIG.<Name>``.

``ZeroIG.Network`` (arch), ``ZeroIG.ZeroIGLoss`` (loss) and ``ZeroIG.ZeroIGModel`` (model: folder training through
train.py, per-image zero-shot optimisation in test.py).  Notes and deviations: ``baselines/README.md``.
"""
from baselines.zero_ig import zero_ig_arch, zero_ig_loss, zero_ig_model  # noqa: F401

__all__ = ['zero_ig_arch', 'zero_ig_loss', 'zero_ig_model']
