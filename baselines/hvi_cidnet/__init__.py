"""HVI-CIDNet (Yan, Feng, Zhang et al., CVPR 2025) in the lowlight3d toolkit: registry keys ``HVICIDNet.<Name>``.

``HVICIDNet.CIDNet`` (arch, with the HVI transform), ``HVICIDNet.CIDLoss`` (loss) and ``HVICIDNet.CIDNetModel``
(model: supervised training with the warm-up + cosine schedule).  Notes and deviations: ``baselines/README.md``.
"""
from baselines.hvi_cidnet import hvi_cidnet_arch, hvi_cidnet_loss, hvi_cidnet_model  # noqa: F401

__all__ = ['hvi_cidnet_arch', 'hvi_cidnet_loss', 'hvi_cidnet_model']
