"""Fusion of a 3D face prior (rendered image ``T``, depth ``D``) into enhancement features.

Two modules with the same call signature ``forward(feat, t, d)``, where ``t`` (B, Ct, H, W) and ``d`` (B, Cd, H, W)
already have the spatial size of ``feat`` (B, C, H, W):

* :class:`PriorFusionModule`: the paper's 3D prior fusion module (Sec. 3.2.1, Fig. 3; ``docs/method.md`` 3.1),
  two units: depth-modulated, channel-attention guided aggregation, then a prior-conditioned pixel-wise affine
  followed by a gated depth-wise feed-forward;
* :class:`ConcatResidualFusion`: ablation V7 of Table 2, a plain residual block on ``concat(F, T, D)``.

Neither contains batch normalisation; the only normalisation is :class:`LayerNorm2d`.
"""
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ['ConcatResidualFusion', 'LayerNorm2d', 'PriorFusionModule']


class LayerNorm2d(nn.Module):
    """Channel LayerNorm of an NCHW tensor: each pixel's C-vector is normalised on its own (NAFNet style).

    ``y = (x - mean_c(x)) / sqrt(var_c(x) + eps) * weight + bias`` with a learned per-channel affine
    (initialised to weight 1, bias 0); the variance is the biased one, as in ``nn.LayerNorm``.

    Args:
        channels (int): Number of channels C.
        eps (float): Added to the variance.
    """

    def __init__(self, channels, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x):
        """Normalise ``x`` (N, C, H, W) over C at every pixel."""
        # one fused layer_norm over the last axis of the channels-last view (faster than the explicit formula)
        y = F.layer_norm(x.permute(0, 2, 3, 1), (self.weight.shape[0], ), self.weight, self.bias, self.eps)
        return y.permute(0, 3, 1, 2)


def _mlp(in_channels, hidden_channels, out_channels):
    """The paper's "MLP": Conv1x1 -> GELU -> Conv1x1."""
    return nn.Sequential(
        nn.Conv2d(in_channels, hidden_channels, 1), nn.GELU(), nn.Conv2d(hidden_channels, out_channels, 1))


def _check_inputs(module, feat, t, d):
    """Raise a clear error when the prior does not match the feature map the module fuses it into."""
    for name, prior, expected in (('t', t, module.prior_image_channels), ('d', d, module.prior_depth_channels)):
        if prior.dim() != 4 or prior.shape[0] != feat.shape[0] or prior.shape[-2:] != feat.shape[-2:] \
                or prior.shape[1] != expected:
            raise ValueError(f'{type(module).__name__}: prior {name} has shape {tuple(prior.shape)}, expected '
                             f'({feat.shape[0]}, {expected}, {feat.shape[-2]}, {feat.shape[-1]}) to match the feature '
                             f'map {tuple(feat.shape)}; resize the prior to the feature size before fusing '
                             '(PriorGuidedEnhancer does this) and check prior_image/depth_channels.')


class PriorFusionModule(nn.Module):
    """The paper's 3D prior fusion module (``docs/method.md`` 3.1), with every open point decided here.

    Unit 1 (prior-guided aggregation)::

        F'  = Conv3x3(Swish(LN(F)))                                        # step 1
        F'  = F' * (1 + S(D)) + B(D)                                       # step 2, "adjusted by D"
        Tc  = Conv3x3(T)                                                   # T projected to C channels
        A   = Sigmoid(Conv1x1(ReLU(Conv1x1(GAP(Tc)))))                     # step 3, (B, C, 1, 1)
        F1, F2 = A * F', A * Tc                                            # step 4
        Fm  = F + MLP(concat(F1, F2))                                      # step 5

    Unit 2 (prior-conditioned affine and gated feed-forward)::

        G   = LN(Fm)                                                       # step 6
        gamma, beta = split(Conv3x3(SiLU(Conv3x3(concat(T, D)))))
        R   = (1 + gamma) * G + beta                                       # pixel-wise affine
        F3  = DWConv3x3(Conv1x1(R)); F4 = GELU(DWConv3x3(Conv1x1(R)))      # step 7
        out = Fm + MLP(F3 * F4)                                            # step 8

    Decisions where the paper is silent:

    * LN is :class:`LayerNorm2d` (per-pixel LayerNorm over channels, learned affine), Swish is SiLU.
    * Step 2: ``S`` and ``B`` are per-pixel, per-channel scale and shift maps predicted from ``D`` by a small
      conv net (Conv3x3(D -> prior_hidden) - SiLU, then one Conv3x3 each for scale and shift). Their last convs
      are **zero-initialised**, so at initialisation step 2 is the identity.
    * Step 3/4: ``T`` is projected to C channels by a Conv3x3 before anything else; the channel attention is
      computed on that projection (squeeze ratio ``attn_reduction``) and the same ``A`` weighs ``F'`` and ``Tc``.
    * Step 6: ``gamma``/``beta`` come from a two-conv net on ``concat(T, D)`` (hidden ``prior_hidden`` channels);
      the ``(1 + gamma)`` parameterisation with a **zero-initialised** last conv makes the affine the identity
      at initialisation (``R = G``).
    * Step 7: both branches keep C channels (Conv1x1 C -> C, depth-wise Conv3x3).
    * Both MLPs are Conv1x1 -> GELU -> Conv1x1 with ``mlp_ratio * C`` hidden channels; they are NOT
      zero-initialised, so the module is not the identity at init (its prior inputs get gradients through
      ``Tc``/``A`` from the first step).

    Consequence of the two zero-initialisations: at initialisation the output does not depend on ``D`` at all
    and ``D`` receives zero gradient; the zero-initialised convs get non-zero gradients, so after the first
    optimiser step ``D`` takes part (tests check both).

    Args:
        channels (int): Channels C of the feature map ``F``.
        prior_image_channels (int): Channels of ``T`` (3 for an RGB render).
        prior_depth_channels (int): Channels of ``D`` (1 for a depth map).
        mlp_ratio (float): Hidden width of both MLPs as a multiple of C.
        attn_reduction (int): Squeeze ratio of the channel attention (hidden = max(C // attn_reduction, 4)).
        prior_hidden (int): Hidden channels of the small convs that read ``D`` (step 2) and ``concat(T, D)``
            (step 6).
    """

    def __init__(self, channels, prior_image_channels=3, prior_depth_channels=1, mlp_ratio=2.0, attn_reduction=4,
                 prior_hidden=32):
        super().__init__()
        self.channels = channels
        self.prior_image_channels = prior_image_channels
        self.prior_depth_channels = prior_depth_channels
        hidden = max(round(channels * mlp_ratio), 1)
        # unit 1
        self.norm1 = LayerNorm2d(channels)
        self.act1 = nn.SiLU()
        self.conv1 = nn.Conv2d(channels, channels, 3, 1, 1)
        self.depth_body = nn.Sequential(nn.Conv2d(prior_depth_channels, prior_hidden, 3, 1, 1), nn.SiLU())
        self.depth_scale = nn.Conv2d(prior_hidden, channels, 3, 1, 1)
        self.depth_shift = nn.Conv2d(prior_hidden, channels, 3, 1, 1)
        self.image_proj = nn.Conv2d(prior_image_channels, channels, 3, 1, 1)
        squeeze = max(channels // attn_reduction, 4)
        self.channel_attention = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, squeeze, 1), nn.ReLU(inplace=True),
            nn.Conv2d(squeeze, channels, 1), nn.Sigmoid())
        self.mlp1 = _mlp(2 * channels, hidden, channels)
        # unit 2
        self.norm2 = LayerNorm2d(channels)
        self.affine = nn.Sequential(
            nn.Conv2d(prior_image_channels + prior_depth_channels, prior_hidden, 3, 1, 1), nn.SiLU(),
            nn.Conv2d(prior_hidden, 2 * channels, 3, 1, 1))
        self.branch3 = nn.Sequential(
            nn.Conv2d(channels, channels, 1), nn.Conv2d(channels, channels, 3, 1, 1, groups=channels))
        self.branch4 = nn.Sequential(
            nn.Conv2d(channels, channels, 1), nn.Conv2d(channels, channels, 3, 1, 1, groups=channels), nn.GELU())
        self.mlp2 = _mlp(channels, hidden, channels)
        for conv in (self.depth_scale, self.depth_shift, self.affine[-1]):
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)

    def depth_modulation(self, d):
        """Per-pixel ``(scale, shift)`` of step 2, each (B, C, H, W); both are zero at initialisation."""
        h = self.depth_body(d)
        return self.depth_scale(h), self.depth_shift(h)

    def prior_affine(self, t, d):
        """``(gamma, beta)`` of step 6, each (B, C, H, W); both are zero at initialisation (identity affine)."""
        return self.affine(torch.cat([t, d], dim=1)).chunk(2, dim=1)

    def forward(self, feat, t, d):
        """Fuse ``t`` (B, Ct, H, W) and ``d`` (B, Cd, H, W) into ``feat`` (B, C, H, W); returns (B, C, H, W)."""
        _check_inputs(self, feat, t, d)
        # unit 1
        f = self.conv1(self.act1(self.norm1(feat)))
        scale, shift = self.depth_modulation(d)
        f = f * (1 + scale) + shift
        tc = self.image_proj(t)
        attn = self.channel_attention(tc)
        fm = feat + self.mlp1(torch.cat([attn * f, attn * tc], dim=1))
        # unit 2
        gamma, beta = self.prior_affine(t, d)
        r = (1 + gamma) * self.norm2(fm) + beta
        return fm + self.mlp2(self.branch3(r) * self.branch4(r))


class ConcatResidualFusion(nn.Module):
    """Ablation V7: a plain residual block on the concatenated prior, ``F + Conv3x3(act(Conv3x3(cat(F, T, D))))``.

    The first Conv3x3 projects the ``C + Ct + Cd`` concatenated channels to C, the activation is LeakyReLU(0.2)
    (as the toolkit's other residual blocks), the second Conv3x3 maps C -> C. Default PyTorch initialisation
    (no zero-init), so the prior takes part from the first step.

    Args:
        channels (int): Channels C of the feature map ``F``.
        prior_image_channels (int): Channels of ``T``.
        prior_depth_channels (int): Channels of ``D``.
    """

    def __init__(self, channels, prior_image_channels=3, prior_depth_channels=1):
        super().__init__()
        self.channels = channels
        self.prior_image_channels = prior_image_channels
        self.prior_depth_channels = prior_depth_channels
        self.body = nn.Sequential(
            nn.Conv2d(channels + prior_image_channels + prior_depth_channels, channels, 3, 1, 1),
            nn.LeakyReLU(0.2, inplace=True), nn.Conv2d(channels, channels, 3, 1, 1))

    def forward(self, feat, t, d):
        """Fuse ``t`` and ``d`` (same spatial size as ``feat``) into ``feat`` (B, C, H, W); returns (B, C, H, W)."""
        _check_inputs(self, feat, t, d)
        return feat + self.body(torch.cat([feat, t, d], dim=1))
