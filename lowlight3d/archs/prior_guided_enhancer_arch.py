"""The paper's enhancement network (Sec. 3.2, ``docs/method.md`` 3): a 3-level encoder-decoder guided by a 3D prior.

Teacher and student of the semi-supervised training share this architecture; it knows nothing of either.
"""
import torch
import torch.nn.functional as F
from torch import nn

from lowlight3d.archs.arch_util import (
    PADDING_MODES,
    Downsample2x,
    Upsample2x,
    pad_to_multiple,
    residual_blocks,
    set_padding_mode,
)
from lowlight3d.archs.checkpoint_upgrade import UpgradableCheckpoint
from lowlight3d.archs.gamma_curve_enhancer_arch import GammaCurveEnhancer
from lowlight3d.archs.prior_fusion_arch import ConcatResidualFusion, PriorFusionModule
from lowlight3d.archs.prior_maps import PRIOR_LEVELS
from lowlight3d.utils.registry import ARCH_REGISTRY, register

__all__ = ['PriorGuidedEnhancer']

NUM_LEVELS = PRIOR_LEVELS  # one encoder level per prior level
FUSIONS = {'prior3d': PriorFusionModule, 'concat': ConcatResidualFusion}
FUSION_POSITIONS = ('decoder', 'encoder')




@register(ARCH_REGISTRY)
class PriorGuidedEnhancer(UpgradableCheckpoint, nn.Module):
    """3-level encoder-decoder with one 3D prior fusion module per level (the paper's teacher/student network).

    Layout (level k works at 1/2^(k-1) of the input resolution with ``base_channels * 2^(k-1)`` channels)::

        head Conv3x3(in -> C1)
        level 1 enc: blocks [+ fusion(T1, D1) if fusion_position='encoder'] -> skip1 -> Conv3x3 stride 2 (C1 -> C2)
        level 2 enc: blocks [+ fusion(T2, D2) if fusion_position='encoder'] -> skip2 -> Conv3x3 stride 2 (C2 -> C3)
        level 3 (bottleneck): blocks -> fusion(T3, D3) -> blocks
        level 2 dec: Conv1x1(C3 -> C2) + bilinear 2x -> Conv1x1(concat(up, skip2)) -> [fusion(T2, D2)] -> blocks
        level 1 dec: Conv1x1(C2 -> C1) + bilinear 2x -> Conv1x1(concat(up, skip1)) -> [fusion(T1, D1)] -> blocks
        tail Conv3x3(C1 -> out); output = input + tail when ``residual``

    ``blocks`` are ``blocks_per_level`` plain residual blocks (conv3x3-LeakyReLU-conv3x3); no batch normalisation
    anywhere (the fusion module's LayerNorm is per pixel). Skip connections: concatenation followed by a Conv1x1
    back to the level's channels. Upsampling: Conv1x1 + bilinear 2x (``upsample``; Conv1x1 + pixel shuffle, the
    alternative, stamps a period-2 grid on every output through its four untied sub-pixel filters: see
    ``docs/experiments.md`` section 2 for the ablation). One fusion module per level: with the default
    ``fusion_position='decoder'`` levels 1 and 2 fuse on the decoder side, right after the skip merge (where the
    decoder reconstructs the image, the prior guides the reconstruction); with ``'encoder'`` they fuse at the end of
    the encoder stage, so the skip features already carry the prior. Level 3 always fuses in the middle of the
    bottleneck (it is both the encoder's and the decoder's level 3).

    Prior: ``{'T': [T1, T2, T3], 'D': [D1, D2, D3]}`` of (B, Ct, h_k, w_k) / (B, Cd, h_k, w_k) tensors of any spatial
    size (the paper: a 128x128 render and its two 2x downsamplings). Inside the network ``T_k``/``D_k`` are
    resized (bilinear, ``align_corners=False``) to the size level k has for the *unpadded* input and then padded the
    way the input was (reflect at bottom/right), so prior and image stay aligned for sizes that are not multiples
    of 4. ``prior=None`` means "no 3D prior" (ablation V5): every fusion module receives all-zero ``T``/``D`` of the
    right size; the parameters are the same, only the prior information is missing (so ``prior=None`` equals an
    all-zero prior exactly).

    Any input size works: the input is reflect-padded to a multiple of 4 and the output cropped back.
    With ``residual=True`` the network predicts a residual and returns ``input + residual`` (not clamped).

    Args:
        in_channels (int): Input image channels.
        out_channels (int): Output image channels (``residual`` needs ``out_channels == in_channels``).
        base_channels (int): Channels C1 of level 1 (levels 2 and 3 have 2 C1 and 4 C1). The defaults (60 channels,
            2 blocks per level) give 7.99 M parameters (8.10 M with ``upsample='pixel_shuffle'``), close to the
            paper's 9.29 M for the whole method minus ~1.05 M for the 3D prior network.
        fusion (str): ``'prior3d'`` (:class:`PriorFusionModule`, the paper) or ``'concat'``
            (:class:`ConcatResidualFusion`, ablation V7).
        fusion_position (str): ``'decoder'`` (default) or ``'encoder'``: where levels 1-2 fuse the prior.
        prior_image_channels (int): Channels of each ``T_k``.
        prior_depth_channels (int): Channels of each ``D_k``.
        blocks_per_level (int): Plain residual blocks on each side of every level (the bottleneck has two groups).
        residual (bool): Return ``input + prediction``.
        fusion_kwargs (dict, optional): Extra keyword arguments of the fusion module (e.g. ``mlp_ratio``).
        upsample (str): Decoder up-sampling, a mode of :class:`~lowlight3d.archs.arch_util.Upsample2x`:
            ``'bilinear'`` (default: Conv1x1 + bilinear 2x), ``'pixel_shuffle'`` (Conv1x1 + PixelShuffle: it
            stamps a period-2 grid; for checkpoints trained with it) or ``'pixel_shuffle_icnr'``.
        downsample (str): Encoder down-sampling, a mode of :class:`~lowlight3d.archs.arch_util.Downsample2x`:
            ``'strided_conv'`` (Conv3x3 stride 2) or ``'avgpool_conv'`` (2x2 average pool + Conv3x3).
        padding_mode (str): Border handling of every 3x3 convolution (:func:`~lowlight3d.archs.arch_util.
            set_padding_mode`): ``'zeros'`` (PyTorch's default; a checkpoint without ``padding_mode_code`` has
            it) or ``'replicate'`` (the option files' choice: zero padding brightens a band along the border of dark
            inputs, an inset frame, ``docs/experiments.md`` section 2) or ``'reflect'``.
        input_curve (float, optional): Ours, off by default (``None``; the paper has none): the network enhances
            the input brightened by the per-image gamma curve that gives it this mean luma
            (:class:`~lowlight3d.archs.gamma_curve_enhancer_arch.GammaCurveEnhancer`, no parameters), so with
            ``residual`` it learns a correction of the gamma curve's result instead of the whole brightening.
    """

    def __init__(self, in_channels=3, out_channels=3, base_channels=60, fusion='prior3d', fusion_position='decoder',
                 prior_image_channels=3, prior_depth_channels=1, blocks_per_level=2, residual=True,
                 fusion_kwargs=None, upsample='bilinear', downsample='strided_conv', padding_mode='zeros',
                 input_curve=None):
        super().__init__()
        if fusion not in FUSIONS:
            raise ValueError(f"PriorGuidedEnhancer: fusion must be one of {sorted(FUSIONS)}, got '{fusion}'.")
        if fusion_position not in FUSION_POSITIONS:
            raise ValueError(f'PriorGuidedEnhancer: fusion_position must be one of {FUSION_POSITIONS}, '
                             f"got '{fusion_position}'.")
        if residual and in_channels != out_channels:
            raise ValueError(f'PriorGuidedEnhancer: residual=True needs in_channels == out_channels, got '
                             f'{in_channels} and {out_channels}; set residual: false or equal channels.')
        if blocks_per_level < 0 or base_channels < 1:
            raise ValueError(f'PriorGuidedEnhancer: need base_channels >= 1 and blocks_per_level >= 0, got '
                             f'{base_channels} and {blocks_per_level}.')
        if fusion == 'concat' and fusion_kwargs:
            raise ValueError(f"PriorGuidedEnhancer: fusion='concat' takes no fusion_kwargs, got {fusion_kwargs}.")
        if input_curve is not None and (isinstance(input_curve, bool) or not 0 < float(input_curve) < 1):
            raise ValueError(f'PriorGuidedEnhancer: input_curve (network_g.input_curve, the mean luma the input is '
                             f'brought to) must be in (0, 1) or null, got {input_curve!r}.')
        self.fusion_type = fusion
        self.fusion_position = fusion_position
        self.prior_image_channels = prior_image_channels
        self.prior_depth_channels = prior_depth_channels
        self.residual = residual
        # no parameters and no buffers: checkpoints are the same with and without it
        self.input_curve = None if input_curve is None else GammaCurveEnhancer(target_mean=input_curve)
        chans = [base_channels * 2**k for k in range(NUM_LEVELS)]
        self.channels = chans
        fusion_cls = FUSIONS[fusion]
        self.head = nn.Conv2d(in_channels, chans[0], 3, 1, 1)
        self.encoders = nn.ModuleList(residual_blocks(chans[k], blocks_per_level) for k in range(NUM_LEVELS - 1))
        self.downs = nn.ModuleList(Downsample2x(chans[k], chans[k + 1], downsample) for k in range(NUM_LEVELS - 1))
        self.bottleneck_in = residual_blocks(chans[-1], blocks_per_level)
        self.bottleneck_out = residual_blocks(chans[-1], blocks_per_level)
        self.ups = nn.ModuleList(Upsample2x(chans[k + 1], chans[k], upsample) for k in range(NUM_LEVELS - 1))
        self.skip_merges = nn.ModuleList(nn.Conv2d(chans[k] * 2, chans[k], 1) for k in range(NUM_LEVELS - 1))
        self.decoders = nn.ModuleList(residual_blocks(chans[k], blocks_per_level) for k in range(NUM_LEVELS - 1))
        self.fusions = nn.ModuleList(
            fusion_cls(c, prior_image_channels, prior_depth_channels, **(fusion_kwargs or {})) for c in chans)
        self.tail = nn.Conv2d(chans[0], out_channels, 3, 1, 1)
        set_padding_mode(self, padding_mode)
        self.padding_mode = padding_mode
        # The padding is part of what a checkpoint learned: it travels with the weights, and a checkpoint
        # is refused by a network built with another padding (see upgrade_state_dict).
        self.register_buffer('padding_mode_code', torch.tensor(PADDING_MODES.index(padding_mode)))

    def upgrade_state_dict(self, state_dict, prefix=''):
        """Bring a checkpoint's state dict to this layout, in place, and check its padding.

        Renames the keys of :meth:`legacy_renames`. A checkpoint without ``padding_mode_code`` predates the
        ``padding_mode`` option and was trained with zero padding. A network built with another padding than its
        checkpoint's would compute something the weights were not trained for (a border band on dark inputs), so
        that raises, naming the option to set.

        Raises:
            ValueError: The checkpoint's padding differs from this network's.
        """
        super().upgrade_state_dict(state_dict, prefix)
        key = prefix + 'padding_mode_code'
        theirs = state_dict.get(key)
        code = 0 if theirs is None else int(theirs)
        if code != int(self.padding_mode_code):
            name = PADDING_MODES[code] if 0 <= code < len(PADDING_MODES) else f'code {code}'
            older = ' (it predates the option, so it was trained with zero padding)' if theirs is None else ''
            raise ValueError(f"PriorGuidedEnhancer: the checkpoint was trained with padding_mode '{name}'{older}, but "
                             f"the network is built with padding_mode '{self.padding_mode}'. Set "
                             f'network_g.padding_mode: {name} (e.g. --cfg-options network_g.padding_mode={name}) to '
                             'use it as trained.')
        state_dict[key] = self.padding_mode_code.detach().clone()

    @staticmethod
    def legacy_renames():
        """``(old, new)`` key prefixes of checkpoints written before the sampler options (``downs.k.weight``,
        ``ups.k.0.weight``); applied by ``load_state_dict`` and by
        :func:`lowlight3d.archs.checkpoint_upgrade.load_weights_checked` before it compares keys."""
        renames = [(f'downs.{k}.{p}', f'downs.{k}.conv.{p}') for k in range(NUM_LEVELS - 1) for p in ('weight', 'bias')]
        return renames + [(f'ups.{k}.0.', f'ups.{k}.conv.') for k in range(NUM_LEVELS - 1)]

    # ------------------------------------------------------------------ prior handling
    def _prior_levels(self, prior, x):
        """Validate ``prior`` and return ``[(T_k, D_k)]`` as given (``None`` -> ``None`` entries)."""
        if prior is None:
            return [(None, None)] * NUM_LEVELS
        if not isinstance(prior, dict) or set(prior) != {'T', 'D'}:
            got = sorted(prior) if isinstance(prior, dict) else type(prior).__name__
            raise ValueError(f"PriorGuidedEnhancer: prior must be None or a dict {{'T': [T1, T2, T3], 'D': "
                             f"[D1, D2, D3]}}, got {got}.")
        for key, channels in (('T', self.prior_image_channels), ('D', self.prior_depth_channels)):
            maps = prior[key]
            if len(maps) != NUM_LEVELS:
                raise ValueError(f"PriorGuidedEnhancer: prior['{key}'] must hold {NUM_LEVELS} maps (one per level), "
                                 f'got {len(maps)}.')
            for k, m in enumerate(maps):
                if not torch.is_tensor(m) or m.dim() != 4 or m.shape[0] != x.shape[0] or m.shape[1] != channels:
                    shape = tuple(m.shape) if torch.is_tensor(m) else type(m).__name__
                    raise ValueError(f"PriorGuidedEnhancer: prior['{key}'][{k}] must be a ({x.shape[0]}, {channels}, "
                                     f'h, w) tensor (batch of the input, prior_{"image" if key == "T" else "depth"}'
                                     f'_channels={channels}), got {shape}.')
        return list(zip(prior['T'], prior['D']))

    @staticmethod
    def _fit(prior_map, content_hw, level_hw):
        """Resize a prior map to the level's unpadded content size, then pad it like the input to ``level_hw``."""
        if tuple(prior_map.shape[-2:]) != content_hw:
            prior_map = F.interpolate(prior_map, size=content_hw, mode='bilinear', align_corners=False)
        pad_h, pad_w = level_hw[0] - content_hw[0], level_hw[1] - content_hw[1]
        if pad_h or pad_w:
            mode = 'reflect' if pad_h < content_hw[0] and pad_w < content_hw[1] else 'replicate'
            prior_map = F.pad(prior_map, (0, pad_w, 0, pad_h), mode=mode)
        return prior_map

    def _fuse(self, k, feat, levels, hw):
        """Apply level k's fusion module with its prior fitted to ``feat``."""
        t, d = levels[k]
        b, _, fh, fw = feat.shape
        if t is None:
            t = feat.new_zeros(b, self.prior_image_channels, fh, fw)
            d = feat.new_zeros(b, self.prior_depth_channels, fh, fw)
        else:
            scale = 2**k
            content = (min(-(-hw[0] // scale), fh), min(-(-hw[1] // scale), fw))  # ceil(h / 2^k)
            t, d = self._fit(t, content, (fh, fw)), self._fit(d, content, (fh, fw))
        return self.fusions[k](feat, t.to(feat.dtype), d.to(feat.dtype))

    # ------------------------------------------------------------------ forward
    def forward(self, x, prior=None, *flat_prior):
        """Enhance ``x`` (B, C, H, W) in [0, 1] guided by ``prior``; returns (B, out_channels, H, W).

        Args:
            x (Tensor): Low-light images.
            prior (dict | None): ``{'T': [T1, T2, T3], 'D': [D1, D2, D3]}`` (any spatial sizes), or None for no
                3D prior. Tools that pass tensors only (``lowlight3d.pipeline.complexity``) may give the pyramid
                flat instead: ``forward(x, T1, T2, T3, D1, D2, D3)`` (what :meth:`example_inputs` returns).
        """
        if torch.is_tensor(prior):
            prior = self.unflatten_prior((prior, ) + flat_prior)
        elif flat_prior:
            raise TypeError(f'PriorGuidedEnhancer.forward takes (x, prior) or (x, T1, T2, T3, D1, D2, D3); got '
                            f'{2 + len(flat_prior)} arguments with a {type(prior).__name__} prior.')
        levels = self._prior_levels(prior, x)
        if self.input_curve is not None:
            x = self.input_curve(x.float()).to(x.dtype)
        inp, hw = pad_to_multiple(x, 2**(NUM_LEVELS - 1))
        encoder_side = self.fusion_position == 'encoder'
        feat = self.head(inp)
        skips = []
        for k in range(NUM_LEVELS - 1):
            feat = self.encoders[k](feat)
            if encoder_side:
                feat = self._fuse(k, feat, levels, hw)
            skips.append(feat)
            feat = self.downs[k](feat)
        feat = self.bottleneck_in(feat)
        feat = self._fuse(NUM_LEVELS - 1, feat, levels, hw)
        feat = self.bottleneck_out(feat)
        for k in reversed(range(NUM_LEVELS - 1)):
            feat = self.skip_merges[k](torch.cat([self.ups[k](feat), skips[k]], dim=1))
            if not encoder_side:
                feat = self._fuse(k, feat, levels, hw)
            feat = self.decoders[k](feat)
        out = self.tail(feat)
        if self.residual:
            out = out + inp
        return out[..., :hw[0], :hw[1]]

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def unflatten_prior(maps):
        """``(T1, T2, T3, D1, D2, D3)`` -> ``{'T': [T1, T2, T3], 'D': [D1, D2, D3]}``."""
        if len(maps) != 2 * NUM_LEVELS:
            raise TypeError(f'PriorGuidedEnhancer: a flat prior is (T1, T2, T3, D1, D2, D3), got {len(maps)} tensors.')
        return {'T': list(maps[:NUM_LEVELS]), 'D': list(maps[NUM_LEVELS:])}

    def example_inputs(self, size):
        """``(x, T1, T2, T3, D1, D2, D3)`` for complexity measurements: x is (1, 3, size, size), T1/D1 are size // 2.

        At 256 this is the paper's setting (a 128x128 render pyramid 128/64/32). The prior is returned flat, not as
        a dict, because ``lowlight3d.pipeline.complexity`` moves and sizes each input as a tensor; ``forward``
        accepts the flat form.
        """
        sizes = [max(size // 2**(k + 1), 1) for k in range(NUM_LEVELS)]
        t = [torch.rand(1, self.prior_image_channels, s, s) for s in sizes]
        d = [torch.rand(1, self.prior_depth_channels, s, s) for s in sizes]
        return (torch.rand(1, self.head.in_channels, size, size), *t, *d)
