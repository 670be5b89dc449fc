"""The no-op reference of the real-face benchmark: the low-light input itself, registered like any network.

A benchmark row for "do nothing" shows what every metric says about the untouched input (NIQE, BRISQUE and the grid
score of a dark photo; the identity similarity of the dark face to its well-lit reference), so that each learned
method can be read as a change from it.  It has no parameters, therefore needs no training and no weight file
(``test.py`` says so in its log; see
:class:`~lowlight3d.models.supervised_enhancement_model.SupervisedEnhancementModel`).
"""
from torch import nn

from lowlight3d.utils.registry import ARCH_REGISTRY, register

__all__ = ['IdentityEnhancer']


@register(ARCH_REGISTRY)
class IdentityEnhancer(nn.Module):
    """Returns its input unchanged (a copy, so that callers may modify the result in place).

    No parameters, no options.  Inputs of any shape are accepted.
    """

    def forward(self, x):
        """Return a copy of ``x`` (N, C, H, W)."""
        return x.clone()
