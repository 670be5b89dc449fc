"""DLIENet's feature-distillation loss: L1 between the student's and the frozen teacher's intermediate maps.

The student stage (``docs/baselines.md`` section 4, the effective expression of the original code) is::

    1.0 L1(S, gt) + 0.005 L1(S, T) + 0.05 [L1(bot2_S, bot2_T) + L1(bot1_S, bot1_T)]
                                    + 0.1 [L1(att2_S, att2_T) + L1(att1_S, att1_T)]

with images in ``[-1, 1]`` units and every L1 a mean over all elements.  The two image terms are BasicSR's
``L1Loss``; the two feature terms are :class:`DLIENetFeatureMapL1Loss` (one instance per pair of maps, weights 0.05
and 0.1).  The teacher stage's perceptual term reuses the toolkit's ``FeaturePerceptualLoss`` on
``FrozenVGGFeatureExtractor`` features (``lowlight3d/losses/feature_perceptual_loss.py``), which is the same
formula as the original's (MSE per VGG layer, layer weights, a scalar factor).
"""
from torch import nn

from lowlight3d.utils.registry import LOSS_REGISTRY, register

__all__ = ['DLIENetFeatureMapL1Loss']


@register(LOSS_REGISTRY, name='DLIENet.FeatureMapL1Loss')
class DLIENetFeatureMapL1Loss(nn.Module):
    """``loss_weight * sum_i mean(|s_i - t_i|)`` over pairs of student / teacher feature maps.

    Unlike our method's distillation losses (``IntraConsistencyLoss``, ``InterConsistencyLoss``: cosine distances
    of VGG features of the *outputs*), this compares the networks' own intermediate maps directly, so the student
    must have the teacher's width.  The teacher maps are detached here (the teacher is frozen).

    Args:
        loss_weight (float): Multiplier (0.05 for the bottleneck maps, 0.1 for the attention maps).
    """

    def __init__(self, loss_weight=1.0):
        super().__init__()
        self.loss_weight = float(loss_weight)

    def forward(self, student_maps, teacher_maps):
        """The weighted sum of the mean absolute differences of each pair.

        Args:
            student_maps (Sequence[Tensor]): Student maps (gradients flow into them).
            teacher_maps (Sequence[Tensor]): Teacher maps, same number and shapes.

        Returns:
            Tensor: Scalar loss.
        """
        if len(student_maps) != len(teacher_maps) or not student_maps:
            raise ValueError(f'DLIENet.FeatureMapL1Loss: got {len(student_maps)} student and {len(teacher_maps)} '
                             'teacher maps; pass the same non-empty number of each')
        for i, (s, t) in enumerate(zip(student_maps, teacher_maps)):
            if s.shape != t.shape:
                raise ValueError(f'DLIENet.FeatureMapL1Loss: map {i} has shape {tuple(s.shape)} (student) and '
                                 f'{tuple(t.shape)} (teacher); the student needs the teacher\'s num_feat and the same '
                                 'input size')
        total = sum((s - t.detach()).abs().mean() for s, t in zip(student_maps, teacher_maps))
        return self.loss_weight * total
