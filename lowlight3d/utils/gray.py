"""Grayscale stays grayscale: detect gray inputs and make a network's result for them gray.

A network trained on colour faces may invent a colour cast on a grayscale photo (equal R, G, B): the Yale B faces
come out brown (``docs/experiments.md`` section 2).  :func:`keep_gray` replaces the result of every gray input by
its luma, replicated to the three channels, so the output of a gray input is gray exactly (the brightness the
network produced is kept).
"""
import torch

from lowlight3d.utils.luma import LUMA_WEIGHTS

__all__ = ['GRAY_MODES', 'GRAY_CHOICES', 'is_gray', 'keep_gray']

#: ``'keep'``: a gray input gives a gray result; ``'colour'``: the network's result as it is (``test.py --gray``,
#: ``val.gray``).
GRAY_MODES = ('keep', 'colour')
#: ``inference_lowlight3d.py --gray``: the modes plus ``'auto'`` = ``keep`` (and a 1-channel input file is written
#: as a 1-channel file).
GRAY_CHOICES = ('auto', ) + GRAY_MODES


def is_gray(img, tol=0.5 / 255):
    """Per image of a batch: whether its channels are equal (within ``tol``, default half an 8-bit level).

    Args:
        img (Tensor): (B, C, H, W) images in [0, 1]; a 1-channel image is gray.
        tol (float): Largest channel difference still called equal.

    Returns:
        Tensor: (B,) bool.
    """
    if img.dim() != 4:
        raise ValueError(f'is_gray expects a (B, C, H, W) tensor, got shape {tuple(img.shape)}')
    if img.shape[1] == 1:
        return torch.ones(img.shape[0], dtype=torch.bool, device=img.device)
    spread = (img.amax(dim=1) - img.amin(dim=1)).flatten(1).amax(dim=1)
    return spread <= tol


def keep_gray(lq, result, mode='keep'):
    """The result with gray inputs' results made gray (``mode='keep'``), or unchanged (``mode='colour'``).

    Args:
        lq (Tensor): (B, C, H, W) network inputs in [0, 1].
        result (Tensor): (B, 3, H, W) results.
        mode (str): One of :data:`GRAY_MODES`.

    Returns:
        Tensor: ``result`` where every gray input's result is replaced by its BT.601 luma on all channels.
    """
    if mode not in GRAY_MODES:
        raise ValueError(f"gray mode must be one of {GRAY_MODES}, got {mode!r} (option val.gray or --gray)")
    if mode == 'colour' or result.shape[1] != 3:
        return result
    gray = is_gray(lq)
    if not bool(gray.any()):
        return result
    weights = result.new_tensor(LUMA_WEIGHTS).view(1, 3, 1, 1)
    luma = (result * weights).sum(dim=1, keepdim=True).expand_as(result)
    return torch.where(gray.view(-1, 1, 1, 1), luma, result)
