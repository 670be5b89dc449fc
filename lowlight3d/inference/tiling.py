"""Seamless tiled inference for any model and any image size.

The image is cut into ``tile x tile`` cores; each core is enhanced with ``tile_pad`` pixels of real context around
it (clipped at the image border) and only the core of the result is kept.  When ``tile_pad`` covers the network's
receptive field the result equals the untiled one; in practice a pad of a few dozen pixels brings the difference
below 1/255 for convolutional encoder-decoders (tested).  Tile and pad are rounded up to a multiple of ``align``
(16) so every tile starts on the down-sampling grid of the network (3 stride-2 stages need multiples of 8), which
keeps each tile's padding and pooling identical to the untiled run.

Global operations (a per-image gamma, ZERO-IG's per-image optimisation, a prior sampled on the whole image) are not
local: :class:`~lowlight3d.inference.loaded_model.LoadedModel` computes them once on the whole image and hands each
tile its part (``context``), or refuses tiling.
"""
import math

__all__ = ['tile_boxes', 'tiled_apply']


def _round_up(value, multiple):
    return int(math.ceil(value / multiple) * multiple)


def tile_boxes(height, width, tile, pad, align=16):
    """The tiles of an image: ``[(core, padded)]`` boxes ``(y0, y1, x0, x1)``.

    Args:
        height, width (int): Image size. tile (int): Core side (rounded up to ``align``).
        pad (int): Context around each core (rounded up to ``align``). align (int): Grid of tile starts.
    """
    if tile <= 0:
        raise ValueError(f'tile must be positive, got {tile}')
    tile, pad = _round_up(tile, align), _round_up(max(0, pad), align)
    boxes = []
    for y0 in range(0, height, tile):
        for x0 in range(0, width, tile):
            core = (y0, min(height, y0 + tile), x0, min(width, x0 + tile))
            padded = (max(0, y0 - pad), min(height, core[1] + pad), max(0, x0 - pad), min(width, core[3] + pad))
            boxes.append((core, padded))
    return boxes


def tiled_apply(x, fn, tile, pad, align=16, out_channels=None):
    """Apply ``fn(region, padded_box) -> result`` tile by tile to ``x`` ``(1, C, H, W)`` and stitch the cores.

    Args:
        x (torch.Tensor): Image batch of one. fn (callable): Enhances a region (same spatial size out).
        tile (int): Core side; ``0`` runs ``fn`` once on the whole image. pad (int): Context.
        align (int): Grid of tile starts. out_channels (int, optional): Channels of the result (default: ``x``'s).

    Returns:
        torch.Tensor: ``(1, out_channels, H, W)`` on ``x``'s device.
    """
    h, w = x.shape[-2:]
    if not tile or (tile >= h and tile >= w):
        return fn(x, (0, h, 0, w))
    out = None
    for (cy0, cy1, cx0, cx1), (py0, py1, px0, px1) in tile_boxes(h, w, tile, pad, align):
        result = fn(x[..., py0:py1, px0:px1], (py0, py1, px0, px1))
        if out is None:
            out = x.new_zeros((x.shape[0], out_channels or result.shape[1], h, w), dtype=result.dtype)
        out[..., cy0:cy1, cx0:cx1] = result[..., cy0 - py0:cy1 - py0, cx0 - px0:cx1 - px0].to(out.device)
    return out
