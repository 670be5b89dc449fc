"""Low-FaceNet's image losses, each with the original's weight as its default ``loss_weight``.

Formulas from ``docs/baselines.md`` section 5 (``a`` = enhanced, ``p`` / ``n`` = unpaired positives
(normal-light) / negatives (low-light) of the same batch size, ``x`` = low-light input, ``i`` = illumination,
``mu(.)`` = the mean over the three channels):

==========================  ======  =========================================================================
``FeatureContrastLoss``       0.62  sum_l w_l L1(phi_l(a), phi_l(p)) / (L1(phi_l(a), phi_l(n)) + 1e-7), VGG16
                                    relu1_2 / relu2_2 / relu3_3, w = 1/32, 1/16, 1/8 (targets detached)
``BrightnessContrastLoss``    0.22  mean|mu(a) - mu(p)| / (mean|mu(a) - mu(n)| + 1e-7)
``PerceptualLoss``            1     MSE(phi_relu4_3(x), phi_relu4_3(a))
``ColorLoss``                 0.05  MSE(B(a), B(p)), B = 21 x 21 Gaussian (+-3 sigma window) as a *dense* 3 -> 3
                                    convolution (every output channel blurs the sum of the three), zero padding
``SmoothnessLoss``            0.65  24-neighbour weighted L1 of ``i`` guided by ``x`` (see the class)
``SemanticBrightnessLoss``    1     sum over the 11 parsing classes of the variance of mu(a) inside the class
==========================  ======  =========================================================================

The VGG features are computed once per step by the model (one frozen VGG16, ``train.feature_extractor``, not
ImageNet-normalised as in the original) and passed in as ``{layer name: tensor}``.  The face-recognition term is in
:mod:`baselines.lowfacenet.lowfacenet_face_loss`.

``upstream_quirks`` (default ``false`` = fixed; ``true`` reproduces the released code):

* smoothness: the weight exponent is ``-1.0 / 2 * sigma * sigma = -0.005`` (operator precedence; meant
  ``-1 / (2 sigma^2) = -50``), so all weights are about 1 and the term is a plain total variation; the RGB->YCbCr
  conversion of the guide is computed and then overwritten by the RGB input; and each weight map multiplies a
  *scalar* ``mean |d i|`` (``mean(w) * mean|d i|``) instead of weighting pixel by pixel.  Fixed: exponent
  ``-1 / (2 sigma^2)`` on the BT.601 YCbCr of the input, per-pixel ``mean(w * mean_c |d i|)``.
* semantic brightness: the released formula ``sum_c mean((m_c - d_c)^2)`` with ``m_c = where(y == c, mu(a), 0)``,
  ``d_c = mean(m_c)`` over *all* pixels, zeros of ``m_c`` replaced by ``d_c``, and the ``N x H x W`` mask broadcast
  against the ``N x 1 x H x W`` image (every image paired with every mask, ``N x N x H x W``).  Fixed: per image and
  class, the population variance of ``mu(a)`` over the class pixels, summed over classes, averaged over images.
"""
import torch
import torch.nn.functional as F
from torch import nn

from baselines.zero_ig.zero_ig_loss import near_box_gaussian_kernel
from lowlight3d.utils.registry import LOSS_REGISTRY, register

__all__ = [
    'NUM_PARSING_CLASSES', 'NEIGHBOURS_24', 'ycbcr_bt601', 'FeatureContrastLoss', 'BrightnessContrastLoss',
    'PerceptualLoss', 'ColorLoss', 'SmoothnessLoss', 'SemanticBrightnessLoss'
]

NUM_PARSING_CLASSES = 11
#: The 24 (dy, dx) offsets of the original, in pairs of opposite directions (each distinct offset twice).
NEIGHBOURS_24 = [(dy, dx) for a, b in [(1, 0), (0, 1), (1, 1), (1, -1), (2, 0), (0, 2), (2, 1), (2, -1), (1, 2),
                                       (1, -2), (2, 2), (2, -2)] for dy, dx in ((a, b), (-a, -b))]


def _check_same(name, *tensors):
    shapes = [tuple(t.shape) for t in tensors]
    if len(set(shapes)) != 1:
        raise ValueError(f'LowFaceNet.{name}: the images must have the same shape (positives/negatives are '
                         f'resized to the training size, one per item), got {shapes}')


def _weight_of(loss_weight):
    value = float(loss_weight)
    if value < 0:
        raise ValueError(f'loss_weight must be >= 0, got {loss_weight}')
    return value


@register(LOSS_REGISTRY, name='LowFaceNet.FeatureContrastLoss')
class FeatureContrastLoss(nn.Module):
    """Contrastive VGG-feature loss: closer to the positives than to the negatives, layer by layer.

    Args:
        loss_weight (float): 0.62 in the original.
        layers (Sequence[str]): VGG16 layers (relu1_2, relu2_2, relu3_3).
        layer_weights (Sequence[float]): One per layer (1/32, 1/16, 1/8).
        eps (float): Added to the denominator (1e-7).
    """

    def __init__(self, loss_weight=0.62, layers=('relu1_2', 'relu2_2', 'relu3_3'),
                 layer_weights=(1 / 32, 1 / 16, 1 / 8), eps=1e-7):
        super().__init__()
        if len(layers) != len(layer_weights):
            raise ValueError(f'LowFaceNet.FeatureContrastLoss: {len(layers)} layers but {len(layer_weights)} '
                             'layer_weights')
        self.loss_weight = _weight_of(loss_weight)
        self.layers, self.layer_weights, self.eps = tuple(layers), tuple(float(w) for w in layer_weights), float(eps)

    def forward(self, feats_a, feats_p, feats_n):
        """Loss from ``{layer: features}`` of the enhanced images, positives and negatives."""
        total = 0
        for name, w in zip(self.layers, self.layer_weights):
            fa = feats_a[name]
            d_ap = F.l1_loss(fa, feats_p[name].detach())
            d_an = F.l1_loss(fa, feats_n[name].detach())
            total = total + w * d_ap / (d_an + self.eps)
        return self.loss_weight * total


@register(LOSS_REGISTRY, name='LowFaceNet.BrightnessContrastLoss')
class BrightnessContrastLoss(nn.Module):
    """Brightness contrast: ``mean|mu(a) - mu(p)| / (mean|mu(a) - mu(n)| + eps)``, means over the whole batch.

    Args:
        loss_weight (float): 0.22 in the original. eps (float): 1e-7.
    """

    def __init__(self, loss_weight=0.22, eps=1e-7):
        super().__init__()
        self.loss_weight, self.eps = _weight_of(loss_weight), float(eps)

    def forward(self, a, p, n):
        """Loss of enhanced ``a`` against positives ``p`` and negatives ``n`` (same shape, ``N x 3 x H x W``)."""
        _check_same('BrightnessContrastLoss', a, p, n)
        ma, mp, mn = a.mean(1, keepdim=True), p.mean(1, keepdim=True), n.mean(1, keepdim=True)
        return self.loss_weight * (ma - mp).abs().mean() / ((ma - mn).abs().mean() + self.eps)


@register(LOSS_REGISTRY, name='LowFaceNet.PerceptualLoss')
class PerceptualLoss(nn.Module):
    """``MSE(phi(x), phi(a))`` on one VGG16 layer (relu4_3): the enhanced image keeps the input's content.

    Args:
        loss_weight (float): 1 in the original. layer (str): The VGG16 layer.
    """

    def __init__(self, loss_weight=1.0, layer='relu4_3'):
        super().__init__()
        self.loss_weight, self.layer = _weight_of(loss_weight), str(layer)
        self.layers = (self.layer, )

    def forward(self, feats_input, feats_a):
        """Loss from ``{layer: features}`` of the input and of the enhanced images."""
        return self.loss_weight * F.mse_loss(feats_input[self.layer].detach(), feats_a[self.layer])


@register(LOSS_REGISTRY, name='LowFaceNet.ColorLoss')
class ColorLoss(nn.Module):
    """MSE between Gaussian blurs of the enhanced images and of the (unpaired) positives.

    Args:
        loss_weight (float): 0.05 in the original.
        size (int): Window side (21). nsig (float): Window half-width in standard deviations (3; the
            discretised, square-rooted kernel has an effective std of about 4.3 px).
        dense (bool): The original's dense 3 -> 3 kernel (each output channel = blur of the channel sum);
            ``false``: a per-channel (depthwise) blur.
    """

    def __init__(self, loss_weight=0.05, size=21, nsig=3.0, dense=True):
        super().__init__()
        if size < 1 or size % 2 == 0:
            raise ValueError(f'LowFaceNet.ColorLoss: size must be odd and positive, got {size}')
        self.loss_weight, self.dense = _weight_of(loss_weight), bool(dense)
        kernel = near_box_gaussian_kernel(size, nsig).float()
        self.register_buffer('kernel', kernel, persistent=False)

    def blur(self, x):
        """The blur ``B(x)`` (zero padding, same size)."""
        k = self.kernel.shape[-1]
        c = x.shape[1]
        if self.dense:
            weight = self.kernel.to(x).view(1, 1, k, k).expand(c, c, k, k)
            return F.conv2d(x, weight, padding=k // 2)
        weight = self.kernel.to(x).view(1, 1, k, k).expand(c, 1, k, k)
        return F.conv2d(x, weight, padding=k // 2, groups=c)

    def forward(self, a, p):
        """Loss of enhanced ``a`` against positives ``p`` (same shape)."""
        _check_same('ColorLoss', a, p)
        return self.loss_weight * F.mse_loss(self.blur(a), self.blur(p))


def ycbcr_bt601(img):
    """Per-pixel BT.601 YCbCr (``[0, 1]`` scale, offsets 16/255 and 128/255) of ``N x 3 x H x W`` RGB."""
    mat = torch.tensor([[0.257, 0.504, 0.098], [-0.148, -0.291, 0.439], [0.439, -0.368, -0.071]],
                       dtype=img.dtype, device=img.device)
    bias = torch.tensor([16.0, 128.0, 128.0], dtype=img.dtype, device=img.device).view(1, 3, 1, 1) / 255.0
    return torch.einsum('dc,nchw->ndhw', mat, img) + bias


def _pair(x, dy, dx):
    """The views ``x(p + d)`` and ``x(p)`` over the pixels where both exist."""
    h, w = x.shape[-2:]
    ys, yd = (slice(dy, h), slice(0, h - dy)) if dy >= 0 else (slice(0, h + dy), slice(-dy, h))
    xs, xd = (slice(dx, w), slice(0, w - dx)) if dx >= 0 else (slice(0, w + dx), slice(-dx, w))
    return x[..., ys, xs], x[..., yd, xd]


@register(LOSS_REGISTRY, name='LowFaceNet.SmoothnessLoss')
class SmoothnessLoss(nn.Module):
    """Edge-aware smoothness of the illumination ``i`` guided by the low-light input ``x`` (SCI/RUAS style).

    Over the 24 neighbour offsets ``d`` of :data:`NEIGHBOURS_24`, with ``w_d(p) = exp(c * sum_ch (g(p + d) -
    g(p))^2)``:

    * fixed (default): ``g`` = BT.601 YCbCr of ``x``, ``c = -1 / (2 sigma^2)``, term ``mean_p(w_d(p) *
      mean_ch |i(p + d) - i(p)|)``;
    * ``upstream_quirks: true``: ``g`` = the RGB input, ``c = -1.0 / 2 * sigma * sigma`` (= -0.005), term
      ``mean_p(w_d(p)) * mean_{p, ch} |i(p + d) - i(p)|``.

    With all weights 1 the two agree.  The total is the sum of the 24 terms.

    Args:
        loss_weight (float): 0.65 in the original. sigma (float): 0.1. upstream_quirks (bool): See above.
    """

    def __init__(self, loss_weight=0.65, sigma=0.1, upstream_quirks=False):
        super().__init__()
        self.loss_weight, self.sigma, self.upstream = _weight_of(loss_weight), float(sigma), bool(upstream_quirks)

    def coefficient(self):
        """The exponent factor ``c`` of the weights (see the class docstring)."""
        if self.upstream:
            return -1.0 / 2 * self.sigma * self.sigma
        return -1.0 / (2 * self.sigma * self.sigma)

    def forward(self, inp, illum):
        """Loss of illumination ``illum`` (``N x C x H x W``) guided by the input ``inp`` (``N x 3 x H x W``)."""
        if inp.shape[-2:] != illum.shape[-2:] or min(inp.shape[-2:]) < 3:
            raise ValueError(f'LowFaceNet.SmoothnessLoss: input {tuple(inp.shape)} and illumination '
                             f'{tuple(illum.shape)} must share a size of at least 3 x 3')
        guide = inp if self.upstream else ycbcr_bt601(inp)
        c = self.coefficient()
        total = 0
        for dy, dx in NEIGHBOURS_24:
            ga, gb = _pair(guide, dy, dx)
            ia, ib = _pair(illum, dy, dx)
            weight = torch.exp(c * ((ga - gb)**2).sum(1, keepdim=True))
            diff = (ia - ib).abs()
            if self.upstream:
                total = total + weight.mean() * diff.mean()
            else:
                total = total + (weight * diff.mean(1, keepdim=True)).mean()
        return self.loss_weight * total


@register(LOSS_REGISTRY, name='LowFaceNet.SemanticBrightnessLoss')
class SemanticBrightnessLoss(nn.Module):
    """Brightness consistency inside each face-parsing region (LaPa's 11 classes).

    Fixed (default): ``mean_n sum_c Var_{p in class c of image n}(mu(a)(p))`` (population variance; absent classes
    add 0).  ``upstream_quirks: true``: the released formula (module docstring).  Mask values outside
    ``[0, num_classes)`` (e.g. 255 = ignore) belong to no class.

    Args:
        loss_weight (float): 1 in the original. num_classes (int): 11. upstream_quirks (bool): See above.
    """

    def __init__(self, loss_weight=1.0, num_classes=NUM_PARSING_CLASSES, upstream_quirks=False):
        super().__init__()
        self.loss_weight, self.num_classes, self.upstream = _weight_of(loss_weight), int(num_classes), bool(
            upstream_quirks)

    def forward(self, a, mask):
        """Loss of enhanced ``a`` (``N x 3 x H x W``) with integer parsing masks ``mask`` (``N x H x W``)."""
        if mask.dim() == 4 and mask.shape[1] == 1:
            mask = mask[:, 0]
        if mask.dim() != 3 or mask.shape[0] != a.shape[0] or mask.shape[-2:] != a.shape[-2:]:
            raise ValueError(f'LowFaceNet.SemanticBrightnessLoss: masks must be N x H x W matching the images '
                             f'{tuple(a.shape)}, got {tuple(mask.shape)}')
        y = a.mean(1)  # N x H x W
        if self.upstream:
            x = y.unsqueeze(1)  # N x 1 x H x W against the N x H x W mask: broadcast to N x N x H x W
            total = 0
            for c in range(self.num_classes):
                m = torch.where(mask == c, x, torch.zeros_like(x))
                d = m.mean()
                m = torch.where(m == 0, d, m)
                total = total + ((m - d)**2).mean()
            return self.loss_weight * total
        total = y.new_zeros(())
        for c in range(self.num_classes):
            sel = (mask == c).to(y.dtype)
            count = sel.sum((1, 2))
            present = count > 0
            if not bool(present.any()):
                continue
            safe = count.clamp_min(1)
            mean = (y * sel).sum((1, 2)) / safe
            var = (((y - mean.view(-1, 1, 1))**2) * sel).sum((1, 2)) / safe
            total = total + torch.where(present, var, torch.zeros_like(var)).sum()
        return self.loss_weight * total / a.shape[0]
