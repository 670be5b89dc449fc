"""Intra-network consistency of the unsupervised distillation, eqs. (10)-(11) (``docs/method.md`` section 3.2).

Inside each network, the per-pixel cosine distance between the VGG features of its paired and unpaired
predictions, ``d = c(Phi(I_p), Phi(I_u))``, is turned into a distribution over pixels by a spatial softmax (with
an optional temperature, 1 = the paper); the student's distribution is pulled towards the teacher's by a
cross-entropy.
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


_NORMALIZE = (None, 'std')


@register(LOSS_REGISTRY)
class IntraConsistencyLoss(nn.Module):
    """``L_intra = sum_l mean_b [ -(1/(h w)) sum_{m,n} S(d_t)[m,n] log S(d_s)[m,n] ]``, times ``loss_weight``.

    ``d_t = c(Phi_l(I_p^t), Phi_l(I_u^t))``, ``d_s = c(Phi_l(I_p^s), Phi_l(I_u^s))`` (:func:`cosine_distance_map`),
    ``S(d) = softmax(n(d) / temperature)`` over the ``h w`` positions of one map (``log S`` by ``log_softmax``).
    The paper's eq. (11) is ``S = softmax(d)``: ``temperature: 1`` and ``normalize: ~`` (the defaults)
    reproduce it exactly.  The teacher's features are detached here: the teacher carries no gradient.  The value is
    a cross-entropy divided by ``h w``: its minimum over the student, reached at ``S(d_s) = S(d_t)``, is the
    teacher distribution's entropy ``/ (h w)``, not 0.

    Why the options: a cosine distance lies in ``[0, 2]``, so ``softmax(d)`` over thousands of positions is
    nearly uniform (probabilities within a factor ``e^2`` of ``1 / (h w)``); the value then stays near
    ``sum_l log(h_l w_l) / (h_l w_l)`` and the gradient, ``(S(d_s) - S(d_t)) / (h w temperature)`` per position,
    is tiny.  A temperature below 1 sharpens both distributions (the maps' contrast is multiplied by
    ``1 / temperature``) and scales the gradient up; ``normalize: std`` divides each map by its own standard
    deviation over the positions first, so the sharpness (in units of that spread) no longer depends on the
    feature network (ImageNet vs random VGG) or the layer.  The student's minimum is unchanged by the temperature
    (``d_s = d_t`` up to a constant); with ``std`` it is ``d_s = a d_t + b`` (``a > 0``).

    Args:
        loss_weight (float): Multiplier (the paper's ``l1 * l4 = 0.5 * 0.5`` when used in eq. (7)).
        eps (float): See :func:`cosine_distance_map`.
        temperature (float): ``tau > 0`` of ``softmax(n(d) / tau)``; 1 = the paper.
        normalize (str | None): ``n``: ``~`` (identity, the paper) or ``'std'`` (``d / (std(d) + 1e-6)`` per map,
            population std over the positions).
    """

    def __init__(self, loss_weight=1.0, eps=1e-8, temperature=1.0, normalize=None):
        super().__init__()
        self.loss_weight, self.eps = float(loss_weight), float(eps)
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0:
            raise ValueError(f'IntraConsistencyLoss: temperature (train.intra_opt.temperature) must be a number '
                             f'> 0 (1 = the paper\'s softmax(d); smaller = sharper), got {temperature!r}')
        if isinstance(normalize, str) and normalize.lower() in ('none', 'null', ''):
            normalize = None
        if normalize not in _NORMALIZE:
            raise ValueError(f'IntraConsistencyLoss: normalize (train.intra_opt.normalize) must be ~ (the paper) '
                             f"or 'std', got {normalize!r}")
        self.temperature, self.normalize = float(temperature), normalize

    def logits(self, d):
        """``n(d) / temperature`` of flattened distance maps ``(B, h w)``: the argument of the spatial softmax."""
        if self.normalize == 'std':
            d = d / (d.std(dim=1, unbiased=False, keepdim=True) + 1e-6)
        return d / self.temperature if self.temperature != 1 else d

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
            d_t = self.logits(cosine_distance_map(pt.detach(), ut.detach(), self.eps).flatten(1))
            d_s = self.logits(cosine_distance_map(ps, us, self.eps).flatten(1))
            cross = -(F.softmax(d_t, dim=1) * F.log_softmax(d_s, dim=1)).sum(1) / d_s.shape[1]
            total = total + cross.mean()
        return self.loss_weight * total
