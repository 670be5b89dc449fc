"""IC-FSRDENet (Wang, Jiang, Jiang, Liu, AAAI 2024) in the lowlight3d toolkit: registry keys ``ICFSRDENet.<Name>``.

Stage 1: ``ICFSRDENet.ICFSRNet`` (arch), trained by the toolkit's ``SupervisedEnhancementModel`` with L1.  Stage 2:
``ICFSRDENet.DENet`` (the SR3-style conditional U-Net), trained and sampled by ``ICFSRDENet.DENetModel`` on the
stage-1 results that ``test.py`` wrote (``ICFSRDENet.StageOneResultDataset``); the SR3 diffusion on top of the
toolkit's schedule is :mod:`baselines.ic_fsrdenet.sr3_diffusion`.  Notes and deviations: ``baselines/README.md``.
"""
from baselines.ic_fsrdenet import denet_arch, denet_model, ic_fsrnet_arch, sr3_diffusion, stage1_result_dataset  # noqa: F401

__all__ = ['denet_arch', 'denet_model', 'ic_fsrnet_arch', 'sr3_diffusion', 'stage1_result_dataset']
