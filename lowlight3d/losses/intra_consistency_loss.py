"""Intra-network consistency of the unsupervised distillation, eqs. (10)-(11) (``docs/method.md`` section 3.2).

Inside each network, the per-pixel cosine distance between the VGG features of its paired and unpaired
predictions, ``d = c(Phi(I_p), Phi(I_u))``, is turned into a distribution over pixels by a spatial softmax; the
student's distribution is pulled towards the teacher's by a cross-entropy.
"""
import torch
import torch.nn.functional as F
from torch import nn

from lowlight3d.losses.feature_perceptual_loss import check_feature_lists
from lowlight3d.utils.registry import LOSS_REGISTRY, register

__all__ = ['cosine_distance_map', 'IntraConsistencyLoss']


def cosine_distance_map(a, b, eps=1e-8):
    """``1 - cos(a[:, :, m, n], b[:, :, m, n])`` over channels at every pixel.

    Where ``||a|| * ||b|| <= eps`` (a zero feature vector, common after a ReLU) the cosine is taken as 0
    (distance 1) with zero gradient, instead of the huge ``1 / eps`` gradient of a clamped denominator.

    Args:
        a (Tensor): ``(B, C, h, w)``. b (Tensor): Same shape.
        eps (float): Threshold on the product of the norms.

    Returns:
        Tensor: ``(B, h, w)`` in ``[0, 2]``.
    """
    dot = (a * b).sum(1)
    norms = a.norm(dim=1) * b.norm(dim=1)
    valid = norms > eps
    cos = torch.where(valid, dot / torch.where(valid, norms, torch.ones_like(norms)), torch.zeros_like(dot))
    return 1 - cos


@register(LOSS_REGISTRY)
class IntraConsistencyLoss(nn.Module):
    """``L_intra = sum_l mean_b [ -(1/(h w)) sum_{m,n} S(d_t)[m,n] log S(d_s)[m,n] ]``, times ``loss_weight``.

    ``d_t = c(Phi_l(I_p^t), Phi_l(I_u^t))``, ``d_s = c(Phi_l(I_p^s), Phi_l(I_u^s))`` (:func:`cosine_distance_map`),
    ``S`` = softmax over the ``h w`` positions of one map (``log S`` by ``log_softmax``).  The teacher's features
    are detached here: the teacher carries no gradient.  The value is a cross-entropy divided by ``h w``: its
    minimum over the student, reached at ``d_s = d_t`` (up to a constant), is the teacher distribution's entropy
    ``/ (h w)``, not 0.

    Args:
        loss_weight (float): Multiplier (the paper's ``l1 * l4 = 0.5 * 0.5`` when used in eq. (7)).
        eps (float): See :func:`cosine_distance_map`.
    """

    def __init__(self, loss_weight=1.0, eps=1e-8):
        super().__init__()
        self.loss_weight, self.eps = float(loss_weight), float(eps)

    def forward(self, feats_p_teacher, feats_u_teacher, feats_p_student, feats_u_student):
        """The loss from four VGG feature lists (one tensor ``(B, C, h, w)`` per layer each).

        Args:
            feats_p_teacher (Sequence[Tensor]): ``Phi(I_p^t)``, teacher on the paired low-light images.
            feats_u_teacher (Sequence[Tensor]): ``Phi(I_u^t)``, teacher on the unpaired images.
            feats_p_student (Sequence[Tensor]): ``Phi(I_p^s)``. feats_u_student (Sequence[Tensor]): ``Phi(I_u^s)``.

        Returns:
            Tensor: Scalar loss.
        """
        check_feature_lists('IntraConsistencyLoss', feats_p_teacher, feats_u_teacher, feats_p_student,
                            feats_u_student)
        total = 0
        for pt, ut, ps, us in zip(feats_p_teacher, feats_u_teacher, feats_p_student, feats_u_student):
            d_t = cosine_distance_map(pt.detach(), ut.detach(), self.eps).flatten(1)
            d_s = cosine_distance_map(ps, us, self.eps).flatten(1)
            cross = -(F.softmax(d_t, dim=1) * F.log_softmax(d_s, dim=1)).sum(1) / d_s.shape[1]
            total = total + cross.mean()
        return self.loss_weight * total
