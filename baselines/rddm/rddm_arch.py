"""RDDM (Liu et al., CVPR 2024) as one network: pre-processing, the U-Net(s), the residual sampler.

``RDDM.Network`` (:class:`RDDMNetwork`) has two call forms:

* ``net(lq)``: the whole method on a low-light batch in ``[0, 1]``: per-channel histogram equalisation of the
  condition (``equalize_hist``, the low-light recipe), bicubic resize to ``image_size`` x ``image_size`` (256, as
  the original for training and testing), ``[-1, 1]``, deterministic sampling with ``sampling_steps`` steps
  (:class:`~baselines.rddm.residual_schedule.ResidualSchedule`), then ``[0, 1]`` and a bicubic resize back to the
  input size.  ``image_size: ~`` processes at the input size instead (reflect-padded to a multiple of 8 and
  cropped back; demo scale).  This is what ``test.py`` runs and what the complexity tools measure (the whole
  sampling: ``sampling_steps`` x the U-Net evaluations per step).
* ``net(x_t, t, x_in)``: one network evaluation in model space, returning ``{'res': ..., 'noise': ...}`` (the keys
  of :attr:`RDDMNetwork.targets`); the training step calls this form (through DDP when distributed).

Objectives (what the U-Nets are trained to predict): ``'pred_res'`` (one U-Net, the residual; the low-light
recipe), ``'pred_noise'`` (one U-Net, the noise), ``'pred_res_noise'`` (two U-Nets ``unet0`` / ``unet1``: residual
and noise; exp 2).  ``sampling`` picks what is used at test time (``'res'`` = SM-Res, ``'noise'``, ``'res_noise'``);
with ``'pred_res_noise'`` and ``sampling: res`` only ``unet0`` is evaluated.  Sub-module names are the original's
``UnetRes`` (``unet0``, ``unet1``).
"""
import copy

import torch
from torch import nn

from baselines.rddm.histogram_equalization import equalize_hist
from baselines.rddm.rddm_unet_arch import RDDMUNet
from baselines.rddm.residual_schedule import SAMPLING_MODES, ResidualSchedule
from lowlight3d.archs.arch_util import interpolate_any_precision, pad_to_multiple
from lowlight3d.utils.registry import ARCH_REGISTRY, register

__all__ = ['OBJECTIVES', 'RDDMNetwork', 'sampling_cost']

#: Training objectives and the predictions each one trains.
OBJECTIVES = {'pred_res': ('res', ), 'pred_noise': ('noise', ), 'pred_res_noise': ('res', 'noise')}
_DEFAULT_SAMPLING = {'pred_res': 'res', 'pred_noise': 'noise', 'pred_res_noise': 'res_noise'}


@register(ARCH_REGISTRY, name='RDDM.Network')
class RDDMNetwork(nn.Module):
    """RDDM: residual + noise diffusion with a conditional U-Net (see the module docstring).

    Args:
        unet (dict, optional): :class:`~baselines.rddm.rddm_unet_arch.RDDMUNet` arguments (default ``dim: 64``,
            ``dim_mults: [1, 2, 4, 8]``: 36,261,187 parameters per U-Net).
        objective (str): ``'pred_res'`` (default), ``'pred_noise'`` or ``'pred_res_noise'`` (two U-Nets).
        sampling (str, optional): ``'res'``, ``'noise'`` or ``'res_noise'``; default: what the objective predicts.
        sampling_steps (int): Deterministic sampling steps (2, the authors' low-light results).
        num_steps (int): ``T`` (1000).
        sum_scale (float): Final noise variance ``bbar_T^2`` (0.01).
        alpha_schedule, beta2_schedule (str): Coefficient schedules (exp 3: ``'average'``, ``'increased'``).
        alpha_power, beta2_power (float): Their exponents (exp 3: 1, 3).
        image_size (int | None): Processing size (256); ``None``: the input size (padded to a multiple of 8).
        equalize_hist (bool): Histogram-equalise the condition per channel (True: the low-light recipe).
        clip (bool): Clamp the residual and ``I_0`` to ``[-1, 1]`` while sampling (True, the original).
    """

    def __init__(self, unet=None, objective='pred_res', sampling=None, sampling_steps=2, num_steps=1000,
                 sum_scale=0.01, alpha_schedule='average', beta2_schedule='increased', alpha_power=1.0,
                 beta2_power=3.0, image_size=256, equalize_hist=True, clip=True):
        super().__init__()
        if objective not in OBJECTIVES:
            raise ValueError(f'RDDM.Network: objective must be one of {sorted(OBJECTIVES)}, got {objective!r}')
        sampling = sampling or _DEFAULT_SAMPLING[objective]
        if sampling not in SAMPLING_MODES:
            raise ValueError(f'RDDM.Network: sampling must be one of {SAMPLING_MODES}, got {sampling!r}')
        needed = {'res': {'res'}, 'noise': {'noise'}, 'res_noise': {'res', 'noise'}}[sampling]
        if not needed <= set(OBJECTIVES[objective]):
            raise ValueError(f'RDDM.Network: sampling {sampling!r} needs the predictions {sorted(needed)}, but '
                             f'objective {objective!r} trains only {list(OBJECTIVES[objective])}')
        self.objective, self.sampling = objective, sampling
        self.targets = OBJECTIVES[objective]
        self.schedule = ResidualSchedule(num_steps, sum_scale, alpha_schedule, beta2_schedule, alpha_power,
                                         beta2_power)
        self.sampling_steps = int(sampling_steps)
        self.schedule.time_pairs(self.sampling_steps)  # validates the number of steps
        if image_size is not None and (int(image_size) <= 0):
            raise ValueError(f'RDDM.Network: image_size must be positive or null, got {image_size!r}')
        self.image_size = None if image_size is None else int(image_size)
        self.equalize_hist, self.clip = bool(equalize_hist), bool(clip)
        unet_opt = copy.deepcopy(unet or {})
        self.unet0 = RDDMUNet(**unet_opt)
        self.unet1 = RDDMUNet(**unet_opt) if objective == 'pred_res_noise' else None
        if self.image_size is not None and self.image_size % self.unet0.downscale:
            raise ValueError(f'RDDM.Network: image_size ({self.image_size}) must be a multiple of '
                             f'{self.unet0.downscale} (2 ** (levels - 1))')

    # ------------------------------------------------------------------ image <-> model space
    def _geometry(self, img):
        return tuple(img.shape[-2:])

    def to_model_space(self, img):
        """``[0, 1]`` image -> ``[-1, 1]`` at the processing size (resized to ``image_size`` or padded)."""
        if self.image_size is None:
            img = pad_to_multiple(img, self.unet0.downscale)[0]
        elif self._geometry(img) != (self.image_size, self.image_size):
            img = interpolate_any_precision(img, size=(self.image_size, self.image_size), mode='bicubic',
                                            align_corners=False, antialias=True).clamp(0, 1)
        return img * 2 - 1

    def from_model_space(self, x, size):
        """``[-1, 1]`` model-space image -> ``[0, 1]`` at ``size`` ``(H, W)`` (resized back or cropped)."""
        img = ((x + 1) / 2).clamp(0, 1)
        if self.image_size is None:
            return img[..., :size[0], :size[1]]
        if self._geometry(img) != tuple(size):
            img = interpolate_any_precision(img, size=tuple(size), mode='bicubic', align_corners=False, antialias=True)
        return img.clamp(0, 1)

    def condition(self, lq):
        """The model-space condition ``I_in`` of a low-light batch in ``[0, 1]`` (equalised, resized, ``[-1, 1]``)."""
        if lq.dim() != 4 or lq.shape[1] != self.unet0.channels:
            raise ValueError(f'RDDM.Network expects (B, {self.unet0.channels}, H, W) images, got {tuple(lq.shape)}')
        return self.to_model_space(equalize_hist(lq) if self.equalize_hist else lq)

    # ------------------------------------------------------------------ network evaluations
    def predict(self, x_t, t, x_in, keys=None):
        """``{'res': unet0(...), 'noise': ...}`` for the requested ``keys`` (default: :attr:`targets`)."""
        keys = self.targets if keys is None else keys
        out = {}
        if self.objective == 'pred_noise':
            if 'noise' in keys:
                out['noise'] = self.unet0(x_t, t, x_in)
            return out
        if 'res' in keys:
            out['res'] = self.unet0(x_t, t, x_in)
        if 'noise' in keys and self.unet1 is not None:
            out['noise'] = self.unet1(x_t, t, x_in)
        return out

    def evaluations_per_step(self):
        """U-Net evaluations per sampling step (2 only for two U-Nets sampled with ``'res_noise'``)."""
        return 2 if (self.unet1 is not None and self.sampling == 'res_noise') else 1

    @torch.no_grad()
    def enhance(self, lq, noise=None, generators=None, steps=None):
        """The whole method on ``lq`` ``(B, 3, H, W)`` in ``[0, 1]``; returns ``(B, 3, H, W)`` in ``[0, 1]``.

        Args:
            noise (Tensor, optional): Starting ``eps`` in model space. generators (list, optional): One
                ``torch.Generator`` per sample for the starting noise. steps (int, optional): Overrides
                ``sampling_steps``.
        """
        size = self._geometry(lq)
        x_in = self.condition(lq)
        keys = {'res': ('res', ), 'noise': ('noise', ), 'res_noise': ('res', 'noise')}[self.sampling]
        x0 = self.schedule.sample(lambda x, t: self.predict(x, t, x_in, keys), x_in, steps or self.sampling_steps,
                                  self.sampling, self.clip, noise, generators)
        return self.from_model_space(x0, size)

    def forward(self, x, t=None, x_in=None, **kwargs):
        """``net(lq)``: :meth:`enhance`; ``net(x_t, t, x_in)``: :meth:`predict` (one training evaluation)."""
        if t is None:
            return self.enhance(x, **kwargs)
        if x_in is None:
            raise ValueError('RDDM.Network(x_t, t, x_in): the condition x_in is missing')
        return self.predict(x, t, x_in)


@torch.no_grad()
def sampling_cost(net, size=256):
    """Parameters and GMACs of one U-Net evaluation and of the whole sampling of ``net`` at ``size``.

    Counted with the toolkit's FLOP counter (:func:`lowlight3d.pipeline.complexity.count_flops`; convolutions,
    linear layers and attention products).  The whole-sampling number is measured by running :meth:`enhance`
    (resizes and histogram equalisation are element-wise and not counted).

    Returns:
        dict: ``params_M``, ``nfe`` (U-Net evaluations), ``GMACs_per_nfe``, ``GMACs_sampling``.
    """
    from lowlight3d.pipeline.complexity import count_flops, count_parameters
    net = net.eval()
    unet = net.unet0
    per_nfe = count_flops(unet, unet.example_inputs(net.image_size or size)) / 2e9
    total = count_flops(net, (torch.rand(1, 3, size, size), )) / 2e9
    return {
        'params_M': count_parameters(net) / 1e6,
        'nfe': net.sampling_steps * net.evaluations_per_step(),
        'GMACs_per_nfe': per_nfe,
        'GMACs_sampling': total,
    }
