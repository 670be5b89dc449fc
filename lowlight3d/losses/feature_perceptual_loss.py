"""Perceptual loss on precomputed VGG features: the ``||Phi(I_p^s) - Phi(I_p^gt)||_2^2`` term of eq. (8).

The model computes the features once per image with :class:`~lowlight3d.archs.vgg_feature_extractor_arch.
VGGFeatureExtractor` and passes the lists here, so this loss owns no VGG (``docs/method.md`` section 3.3).
"""
from torch import nn

from lowlight3d.utils.registry import LOSS_REGISTRY, register

__all__ = ['FeaturePerceptualLoss', 'check_feature_lists']


def check_feature_lists(where, *lists):
    """Raise a clear error unless every argument is a non-empty list of tensors of matching shapes.

    Args:
        where (str): Name of the caller, for the message.
        *lists (Sequence[Tensor]): Feature lists (one tensor per VGG layer).
    """
    n = len(lists[0])
    if n == 0:
        raise ValueError(f'{where}: got an empty feature list; pass the VGGFeatureExtractor outputs.')
    for k, feats in enumerate(lists):
        if len(feats) != n:
            raise ValueError(f'{where}: feature list {k} has {len(feats)} layers, list 0 has {n}; all arguments must '
                             'come from the same VGGFeatureExtractor.')
        for layer, (a, b) in enumerate(zip(lists[0], feats)):
            if a.shape != b.shape:
                raise ValueError(f'{where}: layer {layer} of feature list {k} has shape {tuple(b.shape)}, list 0 has '
                                 f'{tuple(a.shape)}.')


@register(LOSS_REGISTRY)
class FeaturePerceptualLoss(nn.Module):
    """``loss_weight * sum_l w_l * mean((a_l - b_l)^2)`` over VGG layers ``l``.

    Normalisation: eq. (8)'s squared L2 norm is taken as the *mean* squared error over batch, channels and pixels
    of each layer (BasicSR's ``PerceptualLoss`` with ``criterion: l2`` does the same), so a layer's term does not
    grow with its size and the paper's weight ``l3 = 0.1`` acts on values of order one.

    Args:
        loss_weight (float): Multiplier (the paper's ``l3 = 0.1`` when used as eq. (8)'s second term).
        layer_weights (Sequence[float], optional): ``w_l``, one per layer of the feature lists; ``None`` = all 1.
    """

    def __init__(self, loss_weight=1.0, layer_weights=None):
        super().__init__()
        self.loss_weight = float(loss_weight)
        self.layer_weights = None if layer_weights is None else [float(w) for w in layer_weights]

    def forward(self, feats_pred, feats_target):
        """The loss between two feature lists (``VGGFeatureExtractor`` outputs).

        Args:
            feats_pred (Sequence[Tensor]): Features of the prediction (gradients flow into them).
            feats_target (Sequence[Tensor]): Features of the target, same layers and shapes (not detached here:
                the caller computes them under ``no_grad`` when they are constants).

        Returns:
            Tensor: Scalar loss.
        """
        check_feature_lists('FeaturePerceptualLoss', feats_pred, feats_target)
        weights = self.layer_weights or [1.0] * len(feats_pred)
        if len(weights) != len(feats_pred):
            raise ValueError(f'FeaturePerceptualLoss: layer_weights has {len(weights)} entries but the feature lists '
                             f'have {len(feats_pred)} layers; give one weight per VGGFeatureExtractor layer.')
        total = sum(w * ((a - b)**2).mean() for w, a, b in zip(weights, feats_pred, feats_target))
        return self.loss_weight * total
