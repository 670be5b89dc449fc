"""Which loss term drives training: per-term gradient norms with respect to the network's outputs.

For every weighted loss term ``L_k`` (as it enters the total), ``g_k = dL_k / d(outputs)`` is taken with
``torch.autograd.grad`` on the output tensors (not on the weights): the backward pass stops at the outputs, so it
runs only through the loss heads (e.g. the VGG of a perceptual loss), never through the network that produced
them.  Several outputs (the semi-supervised model's paired and unpaired predictions) count as one vector: the
norm is taken over the concatenation of their gradients.

Logged scalars (``logger.grad_norm_freq`` sets how often; see :func:`parse_grad_norm_freq`):

* ``grad_<name>`` = ``||g_k||_2``;
* ``share_<name>`` = ``||g_k|| / sum_j ||g_j||``: the term's share of the summed norms (the shares sum to 1;
  a term whose share stays near 0 does no measurable work);
* ``grad_total`` = ``||sum_k g_k||``, the norm of the gradient that the optimiser actually backpropagates into
  the network (``<= sum_k ||g_k||``; much smaller means the terms pull against each other).

The training pipeline averages each logged key over the iterations in which it was logged (``(sum, count)`` per
key), so values logged every ``grad_norm_freq`` iterations are never averaged with zeros.
"""
from collections import OrderedDict

import torch

__all__ = ['loss_term_grad_norms', 'parse_grad_norm_freq']


def parse_grad_norm_freq(opt):
    """``logger.grad_norm_freq`` of a training option dict: every how many iterations to log gradient norms.

    Absent: ``logger.print_freq`` (one measurement per printed log line).  ``0`` or ``~`` (null): off.

    Args:
        opt (dict): Resolved options.

    Returns:
        int: The frequency (0 = off).

    Raises:
        ValueError: When the value is not a non-negative integer.
    """
    logger = opt.get('logger') or {}
    if 'grad_norm_freq' in logger:
        value, key = logger['grad_norm_freq'], 'logger.grad_norm_freq'
    else:
        value, key = logger.get('print_freq', 100), 'logger.print_freq (the default of logger.grad_norm_freq)'
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f'{key} must be a non-negative integer (iterations between two gradient-norm '
                         f'measurements; 0 or ~ switches them off), got {value!r}')
    return value


def loss_term_grad_norms(terms, outputs):
    """Norms and shares of the gradients of each loss term with respect to ``outputs``.

    Call it *before* the total's ``backward()`` (the graph is kept with ``retain_graph=True``); it leaves every
    ``.grad`` untouched.

    Args:
        terms (Mapping[str, Tensor]): ``{name: scalar loss term}``, weighted as in the total.
        outputs (Sequence[Tensor]): The network outputs the terms depend on (``None`` entries are skipped).

    Returns:
        OrderedDict: ``grad_<name>``, ``share_<name>`` per term, then ``grad_total`` (floats; see module docstring).
    """
    outputs = [o for o in outputs if o is not None and o.requires_grad]
    norms, summed = OrderedDict(), [None] * len(outputs)
    for name, term in terms.items():
        sq = 0.0
        if outputs and torch.is_tensor(term) and term.requires_grad:
            grads = torch.autograd.grad(term, outputs, retain_graph=True, allow_unused=True)
            for i, g in enumerate(grads):
                if g is None:
                    continue
                sq += float(g.detach().double().pow(2).sum())
                summed[i] = g.detach() if summed[i] is None else summed[i] + g.detach()
        norms[name] = sq ** 0.5
    denom = sum(norms.values())
    out = OrderedDict()
    for name, norm in norms.items():
        out[f'grad_{name}'] = norm
    for name, norm in norms.items():
        out[f'share_{name}'] = norm / denom if denom > 0 else 0.0
    out['grad_total'] = sum(float(g.double().pow(2).sum()) for g in summed if g is not None) ** 0.5
    return out
