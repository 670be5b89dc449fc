"""DLIENet (Zhang, Li, Cheng et al., Pattern Recognition): a heavy teacher and a light student for distillation.

Reimplemented from ``docs/baselines.md`` section 4.  Both networks share one skeleton::

    x in [-1, 1], reflect-padded (bottom/right) to a multiple of 8 (and at least 16)
    encoder: 3 x (conv3x3 stride 2 + ReLU), channels C/4, C/2, C  ->  z at 1/8 resolution (+ the 3 skips)
    feat = A(z) * B(z)                  A: attention path, B: bottleneck path (element-wise product)
    decoder: 3 x (add conv1x1(skip), bilinear x2, conv3x3 [+ ReLU but the last]), channels C/2, C/4, 3
    the result is cropped back to the input size

* **Teacher** (``DLIENet.Teacher``, C = 96: 3,460,833 parameters): A = CAM (CAU: depthwise 3x3, depthwise 3x3
  dilation 4, squeeze-excitation; SAU: non-local spatial self-attention on the CAU output), B = 2 x ARB on ``z``
  (``bot1``), then 2 x ARB on ``bot1`` (``bot2``).  The attention outputs are ``att2 = SAU``, ``att1 = CAU``.
* **Student** (``DLIENet.Student``, C = 96: 781,803 parameters): A = two AFU blocks in sequence (``att1``, then
  ``att2``), B = two FFBs whose AdaIN takes its style statistics from the encoder output ``z``.

:meth:`DLIENetBase.distill_outputs` (also ``forward(x, distill=True)``) returns everything distillation needs
(``image, att2, att1, bot2, bot1``) in the network's own ``[-1, 1]`` units; :meth:`DLIENetBase.forward` is inference
in the toolkit's convention: RGB ``[0, 1]`` in, ``(clamp(image, -1, 1) + 1) / 2`` out, same size as the input.

Deviation from the original code: it pads to a multiple of 4, which crashes in the decoder for sizes that are
4 modulo 8 (three stride-2 stages need a multiple of 8), and it never crops the padding back off; both are fixed.
"""
from collections import namedtuple

import torch
import torch.nn.functional as F
from torch import nn

from lowlight3d.utils.registry import ARCH_REGISTRY, register

__all__ = [
    'DLIENetOutputs', 'adain', 'AdaIN', 'Swish', 'ResBlock', 'ARB', 'CAU', 'SAU', 'CAM', 'AFU', 'AFUAttention', 'FFB',
    'DLIENetEncoder', 'DLIENetDecoder', 'DLIENetBase', 'DLIENetTeacher', 'DLIENetStudent', 'PAD_MULTIPLE'
]

#: Spatial sizes are padded to a multiple of this (three stride-2 stages).
PAD_MULTIPLE = 8

#: What :meth:`DLIENetBase.distill_outputs` returns: the image (``[-1, 1]`` units, input size, not clamped), the
#: two attention maps (teacher: SAU, CAU; student: AFU2, AFU1) and the two bottleneck maps, at 1/8 of the padded size.
DLIENetOutputs = namedtuple('DLIENetOutputs', ['image', 'att2', 'att1', 'bot2', 'bot1'])


def adain(content, style, eps=1e-5):
    """Adaptive instance normalisation: ``(content - mu_c) / sigma_c * sigma_s + mu_s`` per sample and channel.

    Statistics over the spatial positions; ``sigma`` is the *unbiased* standard deviation plus ``eps`` (added to
    the standard deviation, not the variance), as in the original student.

    Args:
        content (Tensor): ``N x C x H x W``. style (Tensor): ``N x C x h x w`` (any spatial size, >= 2 positions).
        eps (float): Added to both standard deviations.

    Returns:
        Tensor: Same shape as ``content``.
    """
    if content.shape[:2] != style.shape[:2]:
        raise ValueError(f'adain: content {tuple(content.shape)} and style {tuple(style.shape)} need the same batch '
                         'size and channels')
    c_mean = content.mean(dim=(2, 3), keepdim=True)
    c_std = content.std(dim=(2, 3), keepdim=True) + eps
    s_mean = style.mean(dim=(2, 3), keepdim=True)
    s_std = style.std(dim=(2, 3), keepdim=True) + eps
    return (content - c_mean) / c_std * s_std + s_mean


class AdaIN(nn.Module):
    """Module form of :func:`adain` (no parameters). Args: eps (float): See :func:`adain`."""

    def __init__(self, eps=1e-5):
        super().__init__()
        self.eps = float(eps)

    def forward(self, content, style):
        """``adain(content, style, eps)``."""
        return adain(content, style, self.eps)


class Swish(nn.Module):
    """``x * sigmoid(x)`` (SiLU)."""

    def forward(self, x):
        """Swish of ``x``."""
        return F.silu(x)


class ResBlock(nn.Module):
    """``x + [GN(groups) -> Swish -> conv3x3(dilation)] x 2`` (the teacher's residual block).

    Args:
        channels (int): Channels (divisible by ``groups``). groups (int): GroupNorm groups (12).
        dilation (int): Dilation of both convolutions.
    """

    def __init__(self, channels, groups=12, dilation=1):
        super().__init__()
        layers = []
        for _ in range(2):
            layers += [nn.GroupNorm(groups, channels), Swish(),
                       nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation)]
        self.body = nn.Sequential(*layers)

    def forward(self, x):
        """Residual output."""
        return x + self.body(x)


class ARB(nn.Module):
    """Attention residual block of the teacher's bottleneck.

    ``u = Swish(conv(x)); v = ResBlock_d7(ResBlock(u)) + u; w = Swish(dc3(Swish(dc5(Swish(conv(v)))))) + x;
    out = Swish(ResBlock(w))`` (dc5 / dc3: conv3x3 with dilation 5 / 3).

    Args:
        channels (int): Channels. groups (int): GroupNorm groups of the ResBlocks.
    """

    def __init__(self, channels, groups=12):
        super().__init__()
        self.act = Swish()
        self.conv_in = nn.Conv2d(channels, channels, 3, padding=1)
        self.res1 = ResBlock(channels, groups)
        self.res_d7 = ResBlock(channels, groups, dilation=7)
        self.conv_mid = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv_d5 = nn.Conv2d(channels, channels, 3, padding=5, dilation=5)
        self.conv_d3 = nn.Conv2d(channels, channels, 3, padding=3, dilation=3)
        self.res_out = ResBlock(channels, groups)

    def forward(self, x):
        """ARB output (same shape as ``x``)."""
        inner = self.act(self.conv_in(x))
        out = self.res_d7(self.res1(inner)) + inner
        out = self.act(self.conv_d3(self.act(self.conv_d5(self.act(self.conv_mid(out))))))
        return self.act(self.res_out(out + x))


class CAU(nn.Module):
    """Channel attention unit: depthwise 3x3, depthwise 3x3 (dilation 4), squeeze-excitation reweighting.

    Args:
        channels (int): Channels. reduction (int): Squeeze ratio of the SE bottleneck (16).
    """

    def __init__(self, channels, reduction=16):
        super().__init__()
        if channels // reduction < 1:
            raise ValueError(f'CAU: channels ({channels}) must be >= reduction ({reduction})')
        self.dw1 = nn.Conv2d(channels, channels, 3, padding=1, groups=channels)
        self.dw2 = nn.Conv2d(channels, channels, 3, padding=4, dilation=4, groups=channels)
        self.fc1 = nn.Linear(channels, channels // reduction)
        self.fc2 = nn.Linear(channels // reduction, channels)

    def forward(self, x):
        """The depthwise features scaled by their SE channel weights."""
        c = self.dw2(self.dw1(x))
        w = torch.sigmoid(self.fc2(F.relu(self.fc1(c.mean(dim=(2, 3))))))
        return c * w[:, :, None, None]


class SAU(nn.Module):
    """Spatial attention unit: non-local self-attention over all ``H W`` positions.

    ``q, k = conv1x1(x)`` to ``C / reduction`` channels, ``v = conv1x1(x)`` to ``C``; ``A = softmax_j(q_i . k_j /
    sqrt(C / reduction))``; ``out_i = sum_j A_ij v_j``.  Memory grows as ``(H W)^2`` (``H, W`` at 1/8 of the image).

    Args:
        channels (int): Channels. reduction (int): Query/key reduction (4).
    """

    def __init__(self, channels, reduction=4):
        super().__init__()
        inner = channels // reduction
        if inner < 1:
            raise ValueError(f'SAU: channels ({channels}) must be >= reduction ({reduction})')
        self.q = nn.Conv2d(channels, inner, 1)
        self.k = nn.Conv2d(channels, inner, 1)
        self.v = nn.Conv2d(channels, channels, 1)

    def forward(self, x):
        """Attended features, same shape as ``x``."""
        n, c, h, w = x.shape
        q = self.q(x).flatten(2).transpose(1, 2)  # N x HW x C'
        k = self.k(x).flatten(2)  # N x C' x HW
        v = self.v(x).flatten(2)  # N x C x HW
        attn = torch.softmax(torch.bmm(q, k) / (k.shape[1]**0.5), dim=-1)  # rows: queries
        return torch.bmm(v, attn.transpose(1, 2)).view(n, c, h, w)


class CAM(nn.Module):
    """The teacher's attention path: CAU, then SAU on its output; returns ``(sau, cau)``.

    Args:
        channels (int): Channels. reduction (int): SE reduction of the CAU.
    """

    def __init__(self, channels, reduction=16):
        super().__init__()
        self.cau = CAU(channels, reduction)
        self.sau = SAU(channels)

    def forward(self, x):
        """``(SAU(CAU(x)), CAU(x))``."""
        cau = self.cau(x)
        return self.sau(cau), cau


class AFU(nn.Module):
    """Student attention substitute: conv3x3 -> InstanceNorm (affine) -> ReLU -> conv3x3 -> ReLU (no conv biases).

    Args:
        channels (int): Channels.
    """

    def __init__(self, channels):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.InstanceNorm2d(channels, affine=True),
            nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.ReLU())

    def forward(self, x):
        """AFU output (same shape)."""
        return self.body(x)


class AFUAttention(nn.Module):
    """The student's attention path (the original's ``CAM_AFU``): two AFUs in sequence; returns ``(afu2, afu1)``.

    Args:
        channels (int): Channels.
    """

    def __init__(self, channels):
        super().__init__()
        self.afu1 = AFU(channels)
        self.afu2 = AFU(channels)

    def forward(self, x):
        """``(AFU2(AFU1(x)), AFU1(x))``."""
        first = self.afu1(x)
        return self.afu2(first), first


class FFB(nn.Module):
    """Feature fusion block of the student: ``ReLU(x + IN(conv(ReLU(AdaIN(conv(x), style)))))`` (no conv biases).

    Args:
        channels (int): Channels. eps (float): AdaIN epsilon.
    """

    def __init__(self, channels, eps=1e-5):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.adain = AdaIN(eps)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.norm = nn.InstanceNorm2d(channels, affine=True)

    def forward(self, x, style):
        """FFB output; ``style`` (the encoder output) supplies the AdaIN statistics."""
        out = F.relu(self.adain(self.conv1(x), style))
        return F.relu(x + self.norm(self.conv2(out)))


class DLIENetEncoder(nn.Module):
    """Three stride-2 conv3x3 + ReLU layers (channels C/4, C/2, C); returns ``(z, [skip1, skip2, skip3])``.

    Args:
        channels (int): ``C`` (divisible by 4).
    """

    def __init__(self, channels):
        super().__init__()
        widths = [3, channels // 4, channels // 2, channels]
        self.convs = nn.ModuleList(nn.Conv2d(widths[i], widths[i + 1], 3, stride=2, padding=1) for i in range(3))

    def forward(self, x):
        """Encoder output at 1/8 resolution and the three features (the last one is the output itself)."""
        skips = []
        for conv in self.convs:
            x = F.relu(conv(x))
            skips.append(x)
        return x, skips


class DLIENetDecoder(nn.Module):
    """Three stages of ``x + conv1x1(skip)``, bilinear x2, conv3x3 (+ ReLU except the last); C -> C/2 -> C/4 -> 3.

    Args:
        channels (int): ``C`` (divisible by 4).
    """

    def __init__(self, channels):
        super().__init__()
        widths = [channels, channels // 2, channels // 4]
        self.skip_convs = nn.ModuleList(nn.Conv2d(c, c, 1) for c in widths)
        outs = [channels // 2, channels // 4, 3]
        self.up_convs = nn.ModuleList(nn.Conv2d(c, o, 3, padding=1) for c, o in zip(widths, outs))

    def forward(self, x, skips):
        """Image-sized 3-channel output from the fused features and the encoder skips (deepest first)."""
        for i, (skip_conv, up_conv) in enumerate(zip(self.skip_convs, self.up_convs)):
            x = x + skip_conv(skips[-1 - i])
            x = up_conv(F.interpolate(x, scale_factor=2, mode='bilinear', align_corners=False))
            if i < 2:
                x = F.relu(x)
        return x


class DLIENetBase(nn.Module):
    """Shared skeleton of the teacher and the student (see the module docstring).

    Subclasses build ``self.attention`` (returns ``(att2, att1)``) and implement :meth:`bottleneck` (returns
    ``(bot2, bot1)``).

    Args:
        num_feat (int): ``C``, channels at 1/8 resolution (divisible by 4).
    """

    def __init__(self, num_feat):
        super().__init__()
        if num_feat < 4 or num_feat % 4:
            raise ValueError(f'{type(self).__name__}: num_feat must be a positive multiple of 4, got {num_feat}')
        self.num_feat = int(num_feat)
        self.encoder = DLIENetEncoder(num_feat)
        self.decoder = DLIENetDecoder(num_feat)

    def bottleneck(self, z):
        """``(bot2, bot1)`` of the encoder output ``z``."""
        raise NotImplementedError

    @staticmethod
    def pad(x, multiple=PAD_MULTIPLE):
        """Pad bottom/right to a multiple of ``multiple`` and at least ``2 * multiple`` (so the 1/8 maps have
        2 x 2 positions or more: instance statistics need 2); reflect, replicate where the image is too small."""
        h, w = x.shape[-2:]
        ph = max(2 * multiple, -(-h // multiple) * multiple) - h
        pw = max(2 * multiple, -(-w // multiple) * multiple) - w
        if not ph and not pw:
            return x
        mode = 'reflect' if ph < h and pw < w else 'replicate'
        return F.pad(x, (0, pw, 0, ph), mode=mode)

    def distill_outputs(self, x):
        """All outputs used by the DLIENet losses, in ``[-1, 1]`` units.

        Args:
            x (Tensor): ``N x 3 x H x W`` in ``[-1, 1]``, any ``H, W``.

        Returns:
            DLIENetOutputs: ``image`` (``N x 3 x H x W``, not clamped: the padding is cropped off), ``att2``,
            ``att1``, ``bot2``, ``bot1`` (``N x C x max(2, ceil(H/8)) x max(2, ceil(W/8))``).
        """
        h, w = x.shape[-2:]
        z, skips = self.encoder(self.pad(x))
        att2, att1 = self.attention(z)
        bot2, bot1 = self.bottleneck(z)
        image = self.decoder(att2 * bot2, skips)[..., :h, :w]
        return DLIENetOutputs(image, att2, att1, bot2, bot1)

    def forward(self, x, distill=False):
        """Inference, or every output for training.

        Args:
            x (Tensor): ``N x 3 x H x W``: RGB ``[0, 1]`` (inference) or ``[-1, 1]`` (``distill=True``).
            distill (bool): Return :meth:`distill_outputs` of ``x`` (``[-1, 1]`` units) instead of the image.  The
                training models call the network this way, so that a DDP wrapper sees the forward pass.

        Returns:
            Tensor | DLIENetOutputs: ``(clamp(image, -1, 1) + 1) / 2`` in ``[0, 1]``, same size as the input; or
            the :class:`DLIENetOutputs`.
        """
        if distill:
            return self.distill_outputs(x)
        image = self.distill_outputs(x * 2 - 1).image
        return (image.clamp(-1, 1) + 1) / 2


@register(ARCH_REGISTRY, name='DLIENet.Teacher')
class DLIENetTeacher(DLIENetBase):
    """DLIENet teacher: CAM attention (CAU + SAU) and 2 + 2 ARB bottlenecks (3,460,833 parameters at C = 96).

    Args:
        num_feat (int): ``C`` (96 in the original); divisible by ``groups`` and by 4, at least ``reduction``.
        groups (int): GroupNorm groups in the ARBs (12). reduction (int): SE reduction of the CAU (16).
    """

    def __init__(self, num_feat=96, groups=12, reduction=16):
        super().__init__(num_feat)
        if num_feat % groups:
            raise ValueError(f'DLIENet.Teacher: num_feat ({num_feat}) must be divisible by groups ({groups}) '
                             '(GroupNorm)')
        self.attention = CAM(num_feat, reduction)
        self.bottleneck1 = nn.Sequential(ARB(num_feat, groups), ARB(num_feat, groups))
        self.bottleneck2 = nn.Sequential(ARB(num_feat, groups), ARB(num_feat, groups))

    def bottleneck(self, z):
        """``bot1 = ARB(ARB(z))``, ``bot2 = ARB(ARB(bot1))``; returns ``(bot2, bot1)``."""
        bot1 = self.bottleneck1(z)
        return self.bottleneck2(bot1), bot1


@register(ARCH_REGISTRY, name='DLIENet.Student')
class DLIENetStudent(DLIENetBase):
    """DLIENet student: two AFUs and two AdaIN feature-fusion blocks (781,803 parameters at C = 96).

    Args:
        num_feat (int): ``C``; must equal the teacher's for feature distillation (96, ``docs/baselines.md`` section 4).
        eps (float): AdaIN epsilon.
    """

    def __init__(self, num_feat=96, eps=1e-5):
        super().__init__(num_feat)
        self.attention = AFUAttention(num_feat)
        self.bottleneck1 = FFB(num_feat, eps)
        self.bottleneck2 = FFB(num_feat, eps)

    def bottleneck(self, z):
        """``bot1 = FFB(z; style z)``, ``bot2 = FFB(bot1; style z)``; returns ``(bot2, bot1)``."""
        bot1 = self.bottleneck1(z, z)
        return self.bottleneck2(bot1, z), bot1
