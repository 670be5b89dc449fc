"""Inter-network consistency of the unsupervised distillation, eqs. (12)-(13) (``docs/method.md`` section 3.2).

The teacher-student feature gap on unpaired images should have the same second-order statistics (Gram matrix)
as the gap on paired images: ``L_inter = sum_l || Gram(Phi_l(I_u^t) - Phi_l(I_u^s)) - Gram(Phi_l(I_p^t) -
Phi_l(I_p^s)) ||_F``.
"""
from torch import nn

from lowlight3d.losses.feature_perceptual_loss import check_feature_lists
from lowlight3d.utils.registry import LOSS_REGISTRY, register

__all__ = ['gram_matrix', 'InterConsistencyLoss']


def gram_matrix(x, normalize=True):
    """``X X^T`` of ``X = x.reshape(B, C, h*w)``, divided by ``C h w`` when ``normalize``.

    Args:
        x (Tensor): ``(B, C, h, w)``. normalize (bool): Divide by ``C h w`` (the usual style-loss scaling).

    Returns:
        Tensor: ``(B, C, C)``.
    """
    b, c, h, w = x.shape
    flat = x.reshape(b, c, h * w)
    gram = flat @ flat.transpose(1, 2)
    return gram / (c * h * w) if normalize else gram


@register(LOSS_REGISTRY)
class InterConsistencyLoss(nn.Module):
    """``loss_weight * sum_l mean_b || Delta_u,l - Delta_p,l ||_F``, ``Delta = Gram(teacher - student)``.

    The teacher's features are detached here.  The Frobenius norm is not squared (eq. 13); it is computed per
    sample and averaged over the batch.  With ``normalize`` the Gram matrices are divided by ``C h w`` so layers of
    different sizes contribute on comparable scales and the value does not depend on the image size; eq. (12)
    leaves the normalisation unstated.  At exactly zero (teacher == student, as at the first EMA step) the value is
    0 and the gradient 0 (torch's norm has a zero subgradient there), never NaN.

    Args:
        loss_weight (float): Multiplier (the paper's ``l1 * l5 = 0.5 * 0.5`` when used in eq. (7)).
        normalize (bool): Normalise the Gram matrices (see above).
    """

    def __init__(self, loss_weight=1.0, normalize=True):
        super().__init__()
        self.loss_weight, self.normalize = float(loss_weight), bool(normalize)

    def forward(self, feats_p_teacher, feats_p_student, feats_u_teacher, feats_u_student):
        """The loss from four VGG feature lists (one tensor ``(B, C, h, w)`` per layer each).

        Args:
            feats_p_teacher (Sequence[Tensor]): ``Phi(I_p^t)``. feats_p_student (Sequence[Tensor]): ``Phi(I_p^s)``.
            feats_u_teacher (Sequence[Tensor]): ``Phi(I_u^t)``. feats_u_student (Sequence[Tensor]): ``Phi(I_u^s)``.

        Returns:
            Tensor: Scalar loss.
        """
        check_feature_lists('InterConsistencyLoss', feats_p_teacher, feats_p_student, feats_u_teacher,
                            feats_u_student)
        total = 0
        for pt, ps, ut, us in zip(feats_p_teacher, feats_p_student, feats_u_teacher, feats_u_student):
            delta_p = gram_matrix(pt.detach() - ps, self.normalize)
            delta_u = gram_matrix(ut.detach() - us, self.normalize)
            total = total + (delta_u - delta_p).flatten(1).norm(dim=1).mean()
        return self.loss_weight * total
