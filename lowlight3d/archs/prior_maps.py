"""The 3D prior as a prior-guided network takes it: ``{'T': [T1, T2, T3], 'D': [D1, D2, D3]}``.

``T_k`` are rendered-image maps (B, Ct, h_k, w_k) and ``D_k`` depth maps (B, Cd, h_k, w_k), one pair per level of the
network's encoder (full, 1/2 and 1/4 resolution).  The network resizes each map to its level, so any size is valid;
these helpers make the dict in the ways the toolkit needs it:

* :func:`prior_pyramid`: the extractor's maps, by 2x2 average pooling (training, testing);
* :func:`uniform_prior`: one full-resolution pair at every level (a tile cut from a whole image's prior; example
  inputs);
* :func:`prior_maps`: from the six maps (ONNX inputs), checked;
* :func:`prior_on`: the ``T``/``D`` entries of an extractor's output, on a device.
"""
import torch.nn.functional as F

__all__ = ['PRIOR_LEVELS', 'prior_maps', 'prior_pyramid', 'uniform_prior', 'prior_on']

#: Levels of the prior (and of the prior-guided encoder).
PRIOR_LEVELS = 3


def prior_maps(ts, ds):
    """``{'T': ts, 'D': ds}`` from :data:`PRIOR_LEVELS` image maps and as many depth maps.

    Raises:
        ValueError: Another number of maps.
    """
    ts, ds = list(ts), list(ds)
    if len(ts) != PRIOR_LEVELS or len(ds) != PRIOR_LEVELS:
        raise ValueError(f'a 3D prior has {PRIOR_LEVELS} image maps and {PRIOR_LEVELS} depth maps, got {len(ts)} '
                         f'and {len(ds)}')
    return {'T': ts, 'D': ds}


def prior_pyramid(render, depth):
    """The prior of a full-resolution render and depth: 2x2 average pooling between levels."""
    ts, ds = [render], [depth]
    for _ in range(PRIOR_LEVELS - 1):
        ts.append(F.avg_pool2d(ts[-1], 2))
        ds.append(F.avg_pool2d(ds[-1], 2))
    return prior_maps(ts, ds)


def uniform_prior(render, depth):
    """The same full-resolution maps at every level (the network resizes each to its level)."""
    return prior_maps([render] * PRIOR_LEVELS, [depth] * PRIOR_LEVELS)


def prior_on(extracted, device):
    """The ``T``/``D`` maps of an extractor's output (which holds more: render, depth, opacity) on ``device``."""
    return prior_maps([t.to(device) for t in extracted['T']], [d.to(device) for d in extracted['D']])
