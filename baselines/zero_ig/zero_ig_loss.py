"""ZERO-IG's zero-shot loss: every term of the original with its weight (``docs/baselines.md`` section 2).

Terms (names of :meth:`ZeroIGLoss.terms`; ``down1``/``down2`` = the pair downsampler, ``k`` = clamp(0.5 / mean
luma(L), 1, 25) per image, ``rho = 0.7^-k / k``):

==================  ======  ========================================================================
illum_target          700   MSE(s, clamp(rho (k L)^k, eps, 1))
illum_ratio          1000   MSE(clamp(L / s, eps, 0.8), clamp(k L, eps, 1))
smooth                  5   edge-aware smoothness of s (24 neighbours, weights from YCbCr of L, sigma 10)
tv                   1600   squared total variation of s
d1_n2n               1000   MSE(down1(x), L_pred2) + MSE(down2(x), L_pred1)          (each term x 1000)
d1_consistency       1000   MSE(L_pred1, down1(L)) + MSE(L_pred2, down2(L))
d2_n2n               1000   MSE(pred1, [H12, s_2]) + MSE(pred2, [H11, s_1])         (targets detached)
d2_consistency       1000   MSE(pred1[:3], down1(H3)) + MSE(pred2[:3], down2(H3))
color               10000   MSE(G * clamp(L / s, 0, 1) (detached), G * H3), G a 21x21 near-box Gaussian
ill_consistency      1000   MSE(s (detached), s3)
texture             10000   sum over the two halves a, b of MSE(H3_i, (1 - m) localmean5(H3_i) + m H3_i)
variance             1000   MSE(localvar5(H2), localvar5(H3 - H2))
==================  ======  ========================================================================

``L``, ``s`` ... detached where the original detaches them.  Three defects of the original are fixed unless
``upstream_quirks: true`` (baselines/README.md): the luma used for ``k`` and the texture mask is computed with
BGR weights on RGB data and 0.144 instead of 0.114; the YCbCr conversion of the smoothness weights reshapes the
``N x 3 x H x W`` tensor to ``(-1, 3)`` (mixing neighbouring pixels of one channel) and has 0.564 instead of 0.504
for G in Y; the texture term's second target uses the first half ``H3_a`` instead of ``H3_b``.
"""
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from baselines.zero_ig.zero_ig_arch import pair_downsample
from lowlight3d.utils.registry import LOSS_REGISTRY, register

__all__ = [
    'DEFAULT_WEIGHTS', 'luma', 'edge_aware_smoothness', 'total_variation', 'near_box_gaussian_kernel', 'gaussian_blur',
    'local_mean', 'local_variance', 'texture_similarity_mask', 'ZeroIGLoss'
]

#: The original's weights of each term.
DEFAULT_WEIGHTS = OrderedDict([
    ('illum_target', 700.0), ('illum_ratio', 1000.0), ('smooth', 5.0), ('tv', 1600.0), ('d1_n2n', 1000.0),
    ('d1_consistency', 1000.0), ('d2_n2n', 1000.0), ('d2_consistency', 1000.0), ('color', 10000.0),
    ('ill_consistency', 1000.0), ('texture', 10000.0), ('variance', 1000.0)
])
_EPS = 1e-9
#: (dy, dx) of the 12 distinct neighbour offsets; the original counts each twice (24 identical-valued terms).
_NEIGHBOURS = [(1, 0), (0, 1), (1, 1), (1, -1), (2, 0), (0, 2), (2, 1), (2, -1), (1, 2), (1, -2), (2, 2), (2, -2)]


def luma(img, upstream=False):
    """``N x 1 x H x W`` luma of RGB ``img``: BT.601 ``0.299 R + 0.587 G + 0.114 B``.

    Args:
        img (Tensor): ``N x 3 x H x W`` RGB.
        upstream (bool): The original's ``0.144 R + 0.587 G + 0.299 B`` (BGR weights and a typo).
    """
    r, g, b = img[:, 0:1], img[:, 1:2], img[:, 2:3]
    if upstream:
        return 0.144 * r + 0.587 * g + 0.299 * b
    return 0.299 * r + 0.587 * g + 0.114 * b


def _ycbcr(img, upstream=False):
    """BT.601 YCbCr (``[0, 1]`` scale with the 16/128 offsets) of RGB ``img``; ``upstream``: the original's bug."""
    mat = torch.tensor([[0.257, -0.148, 0.439], [0.504, -0.291, -0.368], [0.098, 0.439, -0.071]],
                       dtype=img.dtype, device=img.device)
    bias = torch.tensor([16.0, 128.0, 128.0], dtype=img.dtype, device=img.device) / 255.0
    if upstream:
        mat = mat.clone()
        mat[1, 0] = 0.564
        return (img.contiguous().view(-1, 3).mm(mat) + bias).view(img.shape)
    return torch.einsum('nchw,cd->ndhw', img, mat) + bias.view(1, 3, 1, 1)


def _shifted(x, dy, dx):
    """The two overlapping views of ``x`` offset by ``(dy, dx)`` (``dy >= 0``)."""
    h, w = x.shape[-2:]
    if dx >= 0:
        return x[..., dy:, dx:], x[..., :h - dy, :w - dx]
    return x[..., dy:, :w + dx], x[..., :h - dy, -dx:]


def edge_aware_smoothness(guide, illum, sigma=10.0, upstream=False):
    """ZERO-IG's (SCI's) 24-neighbour edge-aware L1 smoothness of ``illum`` guided by the YCbCr of ``guide``.

    ``sum over 12 offsets d of 2 * mean(exp(-|Y(p) - Y(p+d)|^2 / (2 sigma^2)) * |illum(p) - illum(p+d)|_1)``
    (the original lists each offset twice, in both directions, with identical values).

    Args:
        guide (Tensor): ``N x 3 x H x W`` image giving the edge weights. illum (Tensor): ``N x C x H x W``.
        sigma (float): Colour scale (10 in the original: on [0, 1] data the weights are almost 1).
        upstream (bool): Reproduce the original's YCbCr conversion bug.
    """
    ycc = _ycbcr(guide, upstream)
    total = 0
    for dy, dx in _NEIGHBOURS:
        ya, yb = _shifted(ycc, dy, dx)
        sa, sb = _shifted(illum, dy, dx)
        weight = torch.exp(-((ya - yb)**2).sum(1, keepdim=True) / (2 * sigma * sigma))
        total = total + 2 * (weight * (sa - sb).abs().sum(1, keepdim=True)).mean()
    return total


def total_variation(x):
    """``2 (sum dy^2 / count_h + sum dx^2 / count_w) / N`` (the original's squared TV; sums over channels)."""
    n, _, h, w = x.shape
    h_tv = ((x[..., 1:, :] - x[..., :-1, :])**2).sum()
    w_tv = ((x[..., :, 1:] - x[..., :, :-1])**2).sum()
    return 2 * (h_tv / ((h - 1) * w) + w_tv / (h * (w - 1))) / n


def near_box_gaussian_kernel(size=21, nsig=1.0):
    """The original colour-loss window: ``sqrt(outer(k, k))`` normalised, ``k`` = Gaussian mass of ``size`` bins
    spanning ``+-(nsig + half a bin)`` standard deviations (with ``nsig = 1`` almost a box filter).

    Returns:
        Tensor: ``size x size`` float64 kernel summing to 1.
    """
    interval = (2 * nsig + 1.0) / size
    edges = torch.linspace(-nsig - interval / 2, nsig + interval / 2, size + 1, dtype=torch.float64)
    cdf = 0.5 * (1 + torch.erf(edges / 2**0.5))
    k1d = cdf[1:] - cdf[:-1]
    kernel = torch.sqrt(torch.outer(k1d, k1d))
    return kernel / kernel.sum()


def gaussian_blur(x, kernel):
    """Depthwise convolution of ``x`` with a 2-D ``kernel`` after reflect padding (same size out).

    Always in float32, outside autocast: a loss term, and oneDNN's bf16 depth-wise convolution with a 21 x 21
    kernel is hundreds of times slower than the float32 one on CPU (measured under ``train.amp: bf16``).
    """
    k = kernel.shape[-1]
    with torch.autocast(x.device.type, enabled=False):
        x = x.float()
        weight = kernel.to(x).view(1, 1, k, k).repeat(x.shape[1], 1, 1, 1)
        return F.conv2d(F.pad(x, [k // 2] * 4, mode='reflect'), weight, groups=x.shape[1])


def local_mean(x, size=5):
    """Mean over ``size x size`` windows with reflect padding."""
    return F.avg_pool2d(F.pad(x, [size // 2] * 4, mode='reflect'), size, 1)


def local_variance(x, size=5):
    """The original's ``calculate_local_variance``: ``boxmean((x - boxmean(x))^2)`` with zero padding (both)."""
    mean = F.avg_pool2d(x, size, 1, size // 2, count_include_pad=True)
    return F.avg_pool2d((x - mean)**2, size, 1, size // 2, count_include_pad=True)


def texture_similarity_mask(a, b, size=5, threshold=0.975, constant=1e-5, upstream=False):
    """1 where the local standard deviations of the lumas of ``a`` and ``b`` agree (SSIM-like ratio > threshold).

    ``ratio = 2 std_a std_b / (std_a^2 + std_b^2 + constant)``, stds over ``size x size`` reflect-padded windows.
    """

    def local_std(img):
        y = luma(img, upstream)
        mean = local_mean(y, size)
        var = local_mean(y * y, size) - mean * mean
        return torch.sqrt(var.clamp_min(0) + 1e-9)

    sa, sb = local_std(a), local_std(b)
    ratio = 2 * sa * sb / (sa**2 + sb**2 + constant)
    return (ratio > threshold).to(a.dtype)


@register(LOSS_REGISTRY, name='ZeroIG.ZeroIGLoss')
class ZeroIGLoss(nn.Module):
    """Sum of ZERO-IG's weighted terms on the outputs of :meth:`ZeroIGNetwork.decompose`.

    Args:
        loss_weight (float): Multiplier of the total.
        weights (dict, optional): Overrides of :data:`DEFAULT_WEIGHTS` by term name (0 switches a term off).
        upstream_quirks (bool): Reproduce the original's three defects (see the module docstring).
    """

    def __init__(self, loss_weight=1.0, weights=None, upstream_quirks=False):
        super().__init__()
        unknown = set(weights or {}) - set(DEFAULT_WEIGHTS)
        if unknown:
            raise ValueError(f'ZeroIG.ZeroIGLoss: unknown term(s) {sorted(unknown)} in weights; known: '
                             f'{list(DEFAULT_WEIGHTS)}')
        self.loss_weight = float(loss_weight)
        self.weights = OrderedDict((k, float((weights or {}).get(k, v))) for k, v in DEFAULT_WEIGHTS.items())
        self.upstream = bool(upstream_quirks)
        self.register_buffer('blur_kernel', near_box_gaussian_kernel().float(), persistent=False)

    def terms(self, out, x):
        """Weighted value of every term (times ``loss_weight``), as an ordered dict.

        Args:
            out (dict): :meth:`ZeroIGNetwork.decompose` of ``x``. x (Tensor): The low-light input in ``[0, 1]``.
        """
        if min(x.shape[-2:]) < 22:
            raise ValueError(f'ZERO-IG loss: images must be at least 22x22 pixels (the colour term reflect-pads a '
                             f'21x21 window), got {tuple(x.shape[-2:])}; raise gt_size')
        w, q = self.weights, self.upstream
        L, s = out['L'].detach(), out['s']
        k = (0.5 / (luma(L, q).mean(dim=(1, 2, 3), keepdim=True) + _EPS)).clamp(1, 25)
        rho = torch.pow(torch.full_like(k, 0.7), -k) / k
        t = OrderedDict()
        t['illum_target'] = F.mse_loss(s, torch.clamp(torch.pow(L * k, k) * rho, _EPS, 1))
        t['illum_ratio'] = F.mse_loss(torch.clamp(L / s, _EPS, 0.8), torch.clamp(L * k, _EPS, 1))
        t['smooth'] = edge_aware_smoothness(L, s, upstream=q)
        t['tv'] = total_variation(s)
        x1, x2 = pair_downsample(x + _EPS)
        t['d1_n2n'] = F.mse_loss(x1, out['L_pred2']) + F.mse_loss(x2, out['L_pred1'])
        l1, l2 = pair_downsample(out['L'])
        t['d1_consistency'] = F.mse_loss(out['L_pred1'], l1) + F.mse_loss(out['L_pred2'], l2)
        pred1, pred2 = out['pred1'], out['pred2']
        t['d2_n2n'] = (F.mse_loss(pred1, torch.cat([out['H12'], out['s_2']], 1).detach()) +
                       F.mse_loss(pred2, torch.cat([out['H11'], out['s_1']], 1).detach()))
        h3a, h3b = pair_downsample(out['H3'])
        t['d2_consistency'] = F.mse_loss(pred1[:, :3], h3a) + F.mse_loss(pred2[:, :3], h3b)
        t['color'] = F.mse_loss(gaussian_blur(out['H3'], self.blur_kernel),
                                gaussian_blur(out['H1'], self.blur_kernel).detach())
        t['ill_consistency'] = F.mse_loss(out['s3'], s.detach())
        mask = texture_similarity_mask(h3a, h3b, upstream=q)
        target_a = (1 - mask) * local_mean(h3a) + h3a * mask
        target_b = (1 - mask) * local_mean(h3b) + (h3a if q else h3b) * mask
        t['texture'] = F.mse_loss(h3a, target_a) + F.mse_loss(h3b, target_b)
        t['variance'] = F.mse_loss(local_variance(out['H2']), local_variance(out['H3'] - out['H2']))
        return OrderedDict((name, self.loss_weight * w[name] * value) for name, value in t.items() if w[name] != 0)

    def forward(self, out, x):
        """Total loss (see :meth:`terms`)."""
        return sum(self.terms(out, x).values())
