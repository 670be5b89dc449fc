"""RDDM (Liu et al., CVPR 2024) in the lowlight3d toolkit: registry keys ``RDDM.<Name>``.

``RDDM.UNet`` (the conditional U-Net, one network evaluation), ``RDDM.Network`` (the whole method: histogram-
equalised condition, 256 x 256 processing, residual + noise sampling) and ``RDDM.RDDMModel`` (training).  The
diffusion itself is :mod:`baselines.rddm.residual_schedule`.  Notes and deviations: ``baselines/README.md``.
"""
from baselines.rddm import rddm_arch, rddm_model, rddm_unet_arch  # noqa: F401

__all__ = ['rddm_arch', 'rddm_model', 'rddm_unet_arch']
