"""Whole-image enhancement with any loaded method: tiling, device, precision and grayscale handling.

:class:`ImageEnhancer` is the inference counterpart of a training model for whole pictures (as Real-ESRGAN's
``RealESRGANer``): ``enhance(img) -> img`` on ``H x W x 3`` float32 RGB arrays in ``[0, 1]``, any size.

* Tiling (``tile > 0``): :func:`~lowlight3d.inference.tiling.tiled_apply`; the global part of a method (our 3D
  prior) is computed once on the whole image (:meth:`LoadedModel.context`).  Per-image optimisation (ZERO-IG) is
  never tiled (its optimisation needs the whole image); a message says so once.
* ``gray``: ``'auto'`` and ``'keep'``: a grayscale input (equal channels) gives a grayscale result
  (:func:`lowlight3d.utils.gray.keep_gray`); ``'colour'``: the network's result as it is.
"""
import numpy as np
import torch

from lowlight3d.archs.prior_maps import uniform_prior
from lowlight3d.inference.tiling import tiled_apply
from lowlight3d.utils.gray import GRAY_CHOICES, keep_gray

__all__ = ['ImageEnhancer', 'GRAY_CHOICES', 'to_tensor', 'to_array', 'auto_tile_side', 'activation_bytes_per_pixel']


def activation_bytes_per_pixel(model, size=64):
    """Bytes of all intermediate outputs of ``model``'s network per input pixel (an upper bound of its peak memory
    per pixel at inference: no intermediate outlives ``no_grad`` for long), by hooks on a ``size`` x ``size`` probe.
    """
    net, total = model.network, [0]

    def hook(_module, _inputs, output):
        for t in (output if isinstance(output, (list, tuple)) else [output]):
            if torch.is_tensor(t):
                total[0] += t.numel() * t.element_size()
    handles = [m.register_forward_hook(hook) for m in net.modules() if not list(m.children())]
    try:
        x = torch.rand(1, 3, size, size, device=model.device) * 0.2
        with torch.no_grad():
            if model.uses_prior:
                t = torch.zeros(1, 3, size, size, device=model.device)
                d = torch.zeros(1, 1, size, size, device=model.device)
                net(x, uniform_prior(t, d))
            else:
                net(x)
    finally:
        for h in handles:
            h.remove()
    return max(total[0] / (size * size), 1.0)


def auto_tile_side(model, memory_budget=None):
    """``(tile side, note)``: the side of the tiles a photo is cut into when it would not fit the memory budget in
    one piece (``--tile 0``). Budget: ``memory_budget`` bytes, default a third of the memory available now (at most
    8 GiB); the model's cost per pixel from :func:`activation_bytes_per_pixel`; side in [256, 2048], a multiple of
    64."""
    import psutil
    available = psutil.virtual_memory().available
    budget = int(memory_budget or min(available // 3, 8 * 2**30))
    per_pixel = activation_bytes_per_pixel(model)
    side = int(min(2048, max(256, (budget / per_pixel) ** 0.5 // 64 * 64)))
    note = (f'automatic tiling: photos above {side} x {side} px are enhanced in tiles of {side} (+ pad) to stay '
            f'within {budget / 2**30:.1f} GiB ({per_pixel / 1024:.1f} KiB of activations per pixel, '
            f'{available / 2**30:.1f} GiB available); --tile N sets the tiles yourself')
    return side, note


def to_tensor(img, device='cpu'):
    """``H x W x 3`` float array -> ``(1, 3, H, W)`` float32 tensor."""
    return torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32).transpose(2, 0, 1))[None].to(device)


def to_array(tensor):
    """``(1, 3, H, W)`` tensor -> ``H x W x 3`` float32 array."""
    return tensor[0].detach().float().cpu().numpy().transpose(1, 2, 0)


class ImageEnhancer:
    """Enhance whole images with a :class:`~lowlight3d.inference.loaded_model.LoadedModel`.

    Args:
        model (LoadedModel): The method.
        tile (int): Tile side (0 = whole image at once).
        tile_pad (int): Context around each tile.
        gray (str): One of :data:`GRAY_CHOICES`.
    """

    def __init__(self, model, tile=0, tile_pad=32, gray='auto', memory_budget=None):
        if gray not in GRAY_CHOICES:
            raise ValueError(f'--gray must be one of {GRAY_CHOICES}, got {gray!r}')
        self.model, self.tile, self.tile_pad, self.gray = model, int(tile or 0), int(tile_pad), gray
        self.notes = []
        self.auto_tile = 0
        if not self.tile and model.tileable:
            self.auto_tile, note = auto_tile_side(model, memory_budget)
            self.notes.append(note)
        if self.tile and not model.tileable:
            self.notes.append(f'{model.name}: per-image optimisation needs the whole image, --tile is not used')
        elif self.tile:
            error = self.tiling_error()
            if error > 1.0 / 255:
                self.notes.append(f'{model.name}: tiles differ from the whole image by up to {error:.3f} on a test '
                                  'picture (the network has global operations); --tile 0 avoids seams')

    @property
    def gray_mode(self):
        """The :mod:`lowlight3d.utils.gray` mode of :attr:`gray`."""
        return 'colour' if self.gray == 'colour' else 'keep'

    def describe(self):
        """str: The method and the tiling."""
        tiling = f'tiles {self.tile} + pad {self.tile_pad}' if self.tile and self.model.tileable else 'whole image'
        return f'{self.model.describe()}, {tiling}'

    @torch.no_grad()
    def tiling_error(self, height=96, width=128, tile=32):
        """Largest ``|tiled - untiled|`` on a smooth test picture (tiles of ``tile`` with this ``tile_pad``)."""
        gen = torch.Generator().manual_seed(0)
        x = torch.nn.functional.interpolate(torch.rand(1, 3, height // 8, width // 8, generator=gen), (height, width),
                                            mode='bilinear', align_corners=False) * 0.3
        x = x.to(self.model.device)
        return float((self.enhance_tensor(x, tile=0) - self.enhance_tensor(x, tile=tile)).abs().max())

    @torch.no_grad()
    def enhance_tensor(self, x, name='image', tile=None):
        """Enhance ``(1, 3, H, W)`` in ``[0, 1]``; returns the result on the model's device (float32).

        ``tile`` overrides :attr:`tile` for this call.
        """
        model = self.model
        tile = self.tile if tile is None else tile
        if not tile and self.auto_tile and x.shape[-2] * x.shape[-1] > self.auto_tile ** 2:
            tile = self.auto_tile  # a photo too large for the memory budget in one piece
        if not model.tileable:
            out = model.enhance(x, [name])
        elif model.uses_prior:
            context = model.context(x)
            out = tiled_apply(x, lambda t, box: model.enhance_region(t, context, box), tile, self.tile_pad)
        else:
            out = tiled_apply(x, lambda t, box: model.enhance(t, [name]), tile, self.tile_pad)
        return keep_gray(x.to(out.device), out, self.gray_mode)

    def enhance(self, img, name='image'):
        """Enhance an ``H x W x 3`` float32 RGB array in ``[0, 1]``; returns the same kind of array."""
        return to_array(self.enhance_tensor(to_tensor(img, self.model.device), name))
