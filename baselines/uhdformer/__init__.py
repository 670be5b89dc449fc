"""UHDformer (Wang et al., AAAI 2024) in the lowlight3d toolkit: registry keys ``UHDformer.<Name>``.

``UHDformer.Network`` (arch), ``UHDformer.FFTLoss`` (loss, with BasicSR's ``L1Loss``) and
``UHDformer.UHDformerModel`` (the toolkit's supervised model plus the ``UHDformer.CosineAnnealingRestartCyclicLR``
schedule).  Notes and deviations: ``baselines/README.md``.
"""
from baselines.uhdformer import uhdformer_arch, uhdformer_loss, uhdformer_model  # noqa: F401

__all__ = ['uhdformer_arch', 'uhdformer_loss', 'uhdformer_model']
