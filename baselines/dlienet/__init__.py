"""DLIENet (Zhang, Li, Cheng et al., Pattern Recognition) in the lowlight3d toolkit: registry keys ``DLIENet.<Name>``.

``DLIENet.Teacher`` / ``DLIENet.Student`` (archs), ``DLIENet.FeatureMapL1Loss`` (loss), ``DLIENet.TeacherModel``
(stage 1: the teacher, supervised) and ``DLIENet.StudentModel`` (stage 2: the student distilled from the frozen
teacher).  Notes and deviations: ``baselines/README.md``.
"""
from baselines.dlienet import dlienet_arch, dlienet_loss, dlienet_model  # noqa: F401

__all__ = ['dlienet_arch', 'dlienet_loss', 'dlienet_model']
