"""EnlightenGAN (Jiang et al., TIP 2021) in the lowlight3d toolkit: registry keys ``EnlightenGAN.<Name>``.

``EnlightenGAN.Generator`` / ``EnlightenGAN.Discriminator`` (archs), ``EnlightenGAN.RelativisticLSGANLoss`` /
``EnlightenGAN.LSGANLoss`` / ``EnlightenGAN.SelfFeaturePreservingLoss`` (losses) and
``EnlightenGAN.EnlightenGANModel`` (model).  Notes and deviations: ``baselines/README.md``.
"""
from baselines.enlightengan import enlightengan_arch, enlightengan_loss, enlightengan_model  # noqa: F401

__all__ = ['enlightengan_arch', 'enlightengan_loss', 'enlightengan_model']
