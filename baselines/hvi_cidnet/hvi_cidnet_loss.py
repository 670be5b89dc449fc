"""HVI-CIDNet's training loss: the same four terms on the RGB output and on its HVI map.

Formulas from ``docs/baselines.md`` section 8::

    L = T(out, gt) + hvi_weight * T(HVIT(out), HVIT(gt))
    T(a, b) = l1_weight * mean|a - b| + ssim_weight * (1 - SSIM(a, b)) + edge_weight * Edge(a, b)
              + perceptual_weight * Perc(a, b)

with the original's defaults ``hvi_weight = 1``, ``l1_weight = 1``, ``ssim_weight = 0.5``, ``edge_weight = 50``,
``perceptual_weight = 0.01``:

* SSIM (:func:`ssim_index`): 11x11 Gaussian window (sigma 1.5) per channel, zero padding of 5 ('same' size),
  ``C1 = 0.01^2``, ``C2 = 0.03^2`` (data range 1, also on the HVI maps), mean of the SSIM map;
* Edge (:func:`edge_loss`): MSE between one-level Laplacian-pyramid residuals ``x - G(up(down(G(x))))`` with the
  separable 5-tap kernel ``[.05, .25, .4, .25, .05]`` (replicate padding), ``down`` = every second pixel,
  ``up`` = zero insertion times 4;
* Perc: sum over VGG19 ``conv1_2, conv2_2, conv3_4, conv4_4`` (before ReLU) of the feature MSE, targets
  detached; inputs normalised with the ImageNet mean/std after ``(x + 1) / 2`` when ``range_norm`` is on (the
  original's setting, meant for ``[-1, 1]`` data; its RGB inputs are in ``[0, 1]``, so they are squeezed into
  ``[0.5, 1]``).

The HVI maps use the network's *current* ``k`` (the model passes :meth:`CIDNet.hvit`), so the HVI terms also send
gradient to ``k``, through the output's and the ground truth's maps alike, as in the original.

VGG19 weights are torchvision's ``vgg19-dcbb9e9d.pth`` through
:func:`lowlight3d.archs.vgg_feature_extractor_arch.load_vgg_features` (and
:func:`lowlight3d.utils.weights.resolve_weights`);
missing offline, building the loss fails with ``WeightsNotFoundError``.  ``vgg_weights: random_for_tests`` builds a
random VGG19 (fixed seed, a ``RandomVGGWarning``): tests and labelled demo runs only.
"""
import math
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from lowlight3d.archs.vgg_feature_extractor_arch import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    RANDOM_VGG,
    VGG_WEIGHT_FILES,
    load_vgg_features,
    vgg_layer_names,
)
from lowlight3d.utils.registry import LOSS_REGISTRY, register
from lowlight3d.utils.weights import resolve_weights

__all__ = [
    'gaussian_window', 'ssim_index', 'laplacian_residual', 'edge_loss', 'HVICIDNetPerceptual', 'HVICIDNetLoss',
    'DEFAULT_LAYERS'
]

VGG19_FILENAME, VGG19_URL = VGG_WEIGHT_FILES['vgg19']
#: The original's perceptual layers (BasicSR names: convolution outputs before their ReLU), each weight 1.
DEFAULT_LAYERS = ('conv1_2', 'conv2_2', 'conv3_4', 'conv4_4')
_EDGE_TAPS = (0.05, 0.25, 0.4, 0.25, 0.05)


def gaussian_window(size=11, sigma=1.5):
    """Normalised ``size x size`` Gaussian window (outer product of the normalised 1-D Gaussian)."""
    centre = size // 2
    g = torch.tensor([math.exp(-(x - centre)**2 / (2 * sigma**2)) for x in range(size)])
    g = g / g.sum()
    return g[:, None] @ g[None, :]


def ssim_index(img1, img2, window_size=11, sigma=1.5):
    """Mean SSIM of two ``N x C x H x W`` tensors (data range 1), as the original's training SSIM.

    Per channel, Gaussian window with zero padding ``window_size // 2`` (output keeps the size), ``C1 = 0.01^2``,
    ``C2 = 0.03^2``; the mean over the whole map, channels and batch.

    Args:
        img1, img2 (Tensor): Same shape. window_size (int): Window side. sigma (float): Window sigma.

    Returns:
        Tensor: Scalar SSIM.
    """
    if img1.shape != img2.shape:
        raise ValueError(f'ssim_index: shapes differ, {tuple(img1.shape)} vs {tuple(img2.shape)}')
    c = img1.shape[1]
    window = gaussian_window(window_size, sigma).to(img1).expand(c, 1, window_size, window_size).contiguous()
    pad = window_size // 2

    def filt(x):
        return F.conv2d(x, window, padding=pad, groups=c)

    mu1, mu2 = filt(img1), filt(img2)
    mu1_sq, mu2_sq, mu12 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    sigma1_sq = filt(img1 * img1) - mu1_sq
    sigma2_sq = filt(img2 * img2) - mu2_sq
    sigma12 = filt(img1 * img2) - mu12
    c1, c2 = 0.01**2, 0.03**2
    ssim_map = ((2 * mu12 + c1) * (2 * sigma12 + c2)) / ((mu1_sq + mu2_sq + c1) * (sigma1_sq + sigma2_sq + c2))
    return ssim_map.mean()


def _edge_blur(x):
    """Per-channel 5x5 blur with the outer product of ``[.05, .25, .4, .25, .05]``, replicate padding."""
    taps = torch.tensor(_EDGE_TAPS, dtype=x.dtype, device=x.device)
    kernel = (taps[:, None] @ taps[None, :]).expand(x.shape[1], 1, 5, 5).contiguous()
    return F.conv2d(F.pad(x, (2, 2, 2, 2), mode='replicate'), kernel, groups=x.shape[1])


def laplacian_residual(x):
    """One Laplacian-pyramid level: ``x - blur(4 * zero_insert(blur(x)[::2, ::2]))``."""
    filtered = _edge_blur(x)
    upsampled = torch.zeros_like(filtered)
    upsampled[:, :, ::2, ::2] = filtered[:, :, ::2, ::2] * 4
    return x - _edge_blur(upsampled)


def edge_loss(x, y):
    """MSE between the Laplacian residuals of ``x`` and ``y`` (unweighted)."""
    return F.mse_loss(laplacian_residual(x), laplacian_residual(y))


class HVICIDNetPerceptual(nn.Module):
    """Sum over layers of the MSE between frozen VGG19 features (targets detached), the original's perceptual term.

    Args:
        layers (Sequence[str]): VGG19 layer names (:func:`vgg_layer_names`), each weight 1.
        vgg_weights (str | None): ``None`` = find ``vgg19-dcbb9e9d.pth``; a path; or ``'random_for_tests'``.
        download (bool): Whether the file may be downloaded when missing.
        range_norm (bool): Map inputs through ``(x + 1) / 2`` before the ImageNet normalisation (the original's
            setting; True by default).
    """

    def __init__(self, layers=DEFAULT_LAYERS, vgg_weights=None, download=True, range_norm=True):
        super().__init__()
        names = vgg_layer_names('vgg19')
        unknown = [name for name in layers if name not in names]
        if unknown or not layers:
            raise ValueError(f'HVICIDNet perceptual layers {list(layers)}: unknown {unknown}; valid: conv1_1 ... '
                             'pool5 (VGG19)')
        self.layers = list(layers)
        self.indices = {names.index(name): name for name in self.layers}
        self.range_norm = bool(range_norm)
        self.uses_random_vgg = vgg_weights == RANDOM_VGG
        if not self.uses_random_vgg:  # resolved here so the error names this loss
            vgg_weights = resolve_weights(VGG19_FILENAME, url=VGG19_URL, local_path=vgg_weights, download=download,
                                          purpose='VGG19 of the HVI-CIDNet perceptual loss; set vgg_weights: <path> '
                                          'in the loss block, vgg_weights: random_for_tests for a labelled random '
                                          'stand-in, or perceptual_weight: 0')
        self.vgg = load_vgg_features(
            'vgg19', vgg_weights, download, num_layers=max(self.indices) + 1,
            random_message=('HVI-CIDNet perceptual loss uses a RANDOM VGG19 (vgg_weights: random_for_tests); '
                            'results are not those of HVI-CIDNet')).eval()
        for p in self.vgg.parameters():
            p.requires_grad_(False)
        self.register_buffer('mean', torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer('std', torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode=True):
        """The VGG stays in eval mode whatever the caller asks."""
        super().train(mode)
        self.vgg.eval()
        return self

    def features(self, x):
        """``{layer: feature}`` of a 3-channel batch."""
        if self.range_norm:
            x = (x + 1) / 2
        x = (x - self.mean) / self.std
        out = {}
        for idx, layer in enumerate(self.vgg):
            x = layer(x)
            if idx in self.indices:
                out[self.indices[idx]] = x
        return out

    def forward(self, x, target):
        """``sum_layers mse(phi(x), phi(target))`` with ``target`` detached."""
        fx = self.features(x)
        with torch.no_grad():
            ft = self.features(target.detach())
        return sum(F.mse_loss(fx[name], ft[name]) for name in self.layers)


@register(LOSS_REGISTRY, name='HVICIDNet.CIDLoss')
class HVICIDNetLoss(nn.Module):
    """HVI-CIDNet's loss: L1 + SSIM + edge + perceptual on RGB, plus ``hvi_weight`` times the same on HVI maps.

    Called by :class:`baselines.hvi_cidnet.hvi_cidnet_model.CIDNetModel` as ``loss(out, gt, hvit=net.hvit)``;
    :meth:`terms` gives the weighted terms by name (``rgb_l1``, ``rgb_ssim``, ``rgb_edge``, ``rgb_percep``,
    ``hvi_l1`` ...; a term with weight 0 is left out).

    Args:
        loss_weight (float): Multiplier of everything.
        hvi_weight (float): Weight of the HVI-space terms (1.0; 0 = RGB terms only).
        l1_weight, ssim_weight, edge_weight, perceptual_weight (float): Term weights (1.0, 0.5, 50, 0.01).
        layers (Sequence[str]): VGG19 layers of the perceptual term.
        vgg_weights (str | None): See :class:`HVICIDNetPerceptual` (not loaded when ``perceptual_weight`` is 0).
        download (bool): Whether the VGG19 file may be downloaded.
        range_norm (bool): The original's ``(x + 1) / 2`` before the VGG (True = as the original).
    """

    def __init__(self, loss_weight=1.0, hvi_weight=1.0, l1_weight=1.0, ssim_weight=0.5, edge_weight=50.0,
                 perceptual_weight=0.01, layers=DEFAULT_LAYERS, vgg_weights=None, download=True, range_norm=True):
        super().__init__()
        self.loss_weight = float(loss_weight)
        self.hvi_weight = float(hvi_weight)
        self.weights = OrderedDict(l1=float(l1_weight), ssim=float(ssim_weight), edge=float(edge_weight),
                                   percep=float(perceptual_weight))
        negative = {k: v for k, v in self.weights.items() if v < 0}
        if negative or self.hvi_weight < 0:
            raise ValueError(f'HVICIDNet.CIDLoss: weights must be >= 0, got {negative or {"hvi_weight": hvi_weight}}')
        if not any(self.weights.values()):
            raise ValueError('HVICIDNet.CIDLoss: every term weight is 0')
        self.perceptual = None
        if self.weights['percep'] > 0:
            self.perceptual = HVICIDNetPerceptual(layers, vgg_weights, download, range_norm)
        self.uses_random_vgg = bool(self.perceptual is not None and self.perceptual.uses_random_vgg)

    def _space_terms(self, out, gt, prefix, scale):
        terms = OrderedDict()
        functions = {'l1': F.l1_loss, 'ssim': lambda a, b: 1 - ssim_index(a, b), 'edge': edge_loss,
                     'percep': self.perceptual}
        for name, weight in self.weights.items():
            if weight > 0:
                terms[f'{prefix}_{name}'] = self.loss_weight * scale * weight * functions[name](out, gt)
        return terms

    def terms(self, out, gt, hvit=None):
        """The weighted terms.

        Args:
            out (Tensor): RGB output ``N x 3 x H x W``. gt (Tensor): RGB ground truth.
            hvit (callable, optional): RGB -> HVI (the network's :meth:`CIDNet.hvit`); required when
                ``hvi_weight > 0``.

        Returns:
            OrderedDict[str, Tensor]: ``{'rgb_l1': ..., 'hvi_percep': ...}``.
        """
        terms = self._space_terms(out, gt, 'rgb', 1.0)
        if self.hvi_weight > 0:
            if hvit is None:
                raise ValueError('HVICIDNet.CIDLoss: the HVI terms need the network\'s transform (hvit=net.hvit); '
                                 'use model_type HVICIDNet.CIDNetModel, or set hvi_weight: 0')
            terms.update(self._space_terms(hvit(out), hvit(gt), 'hvi', self.hvi_weight))
        return terms

    def forward(self, out, gt, hvit=None):
        """Sum of :meth:`terms`."""
        return sum(self.terms(out, gt, hvit).values())
