"""Training of the conditional tri-plane DDPM (paper Sec. 3.1.1, eqs. 1-6).

Data: :class:`~lowlight3d.data.face_depth_dataset.FaceDepthDataset` with ``lowlight: true`` (``lq`` synthesised by
the same degradation and draws as ``PairedLowLightFaceDataset``; ``gt``, ``camera``).  Targets: the frozen trained
generator (``network_generator``, weights ``path.pretrain_network_generator``) encodes ``gt`` to tri-planes on the
fly; ``x0 = [planes | camera broadcast]``, standardised per channel with statistics set from the first training
batch and stored in the denoiser's buffers (so in every checkpoint).  Loss (eq. 6): ``train.noise_opt`` (e.g.
``MSELoss``) between predicted and true noise at uniform random ``t``.  EMA copy ``net_g_ema`` for sampling.

External tri-planes (``docs/prior3d.md`` section 2): when a batch carries ``planes`` (dataset option
``triplane_dir``, :mod:`lowlight3d.data.external_triplanes`) they and the batch's ``camera`` are the targets and the
generator is not run.  Then only a renderer is needed: replace ``network_generator`` by ``network_renderer``
(:class:`~lowlight3d.archs.triplane_renderer_arch.TriplaneRenderer` options, ``plane_axes: eg3d`` for EG3D-space
planes), its weights ``path.pretrain_network_renderer`` (toolkit checkpoint or EG3D ``OSGDecoder`` state dict,
:func:`~lowlight3d.models.prior_extractor.load_renderer_weights`) and ``triplane_resolution`` (side ``R`` of the
planes).  The renderer is saved with the checkpoints (``models/net_renderer_<iter>.pth``, toolkit format).

``diffusion.objective: v``: the network predicts the velocity ``sqrt(abar_t) eps - sqrt(1 - abar_t) x0`` instead of
``eps`` (logged as ``l_v``); sampling is unchanged (the output is converted to ``eps``).  Not the paper's eq. 6: the
CPU demo uses it because a briefly trained ``eps`` network samples noise patterns, not faces
(:mod:`lowlight3d.archs.diffusion_schedule`).

``diffusion.objective: regression`` (paper ablation V6, "a plain U-Net regressing the tri-planes directly"): the same
network is fed ``x_t = 0`` and ``t = 0`` and ``train.noise_opt``'s loss compares its output with the standardised
``x0`` (logged as ``l_regression``); sampling is one deterministic forward pass (sampler ``'regression'``).

Validation (``val.sampler`` [``'ddim'``, ``'regression'`` for the regression objective], ``val.sampling_steps``,
``val.eta``, ``val.variance`` [``'beta'``; paper sampler], ``val.clip`` [5], ``val.seed``, ``val.flip_consistent``):
the prior is sampled from ``lq`` with :class:`~lowlight3d.models.prior_extractor.PriorExtractor`; ``result`` = its
render, ``gt`` = the render of the target tri-planes (generator's or external) from the true camera; ``val.metrics``
(PSNR/SSIM) compare them and ``depth_mae`` is the mean absolute difference of the depth guidance maps (``[0, 1]``
units).
"""
import os.path as osp
from collections import OrderedDict

import torch
import torch.nn.functional as F

from lowlight3d.archs.diffusion_schedule import DiffusionSchedule, sampler_for
from lowlight3d.archs.triplane_renderer_arch import depth_guidance
from lowlight3d.models.base_model import BaseModel
from lowlight3d.models.prior_extractor import PriorExtractor, build_renderer, triplane_resolution, triplane_source
from lowlight3d.models.triplane_generator_model import validate_with_depth
from lowlight3d.utils.dist import get_dist_info
from lowlight3d.utils.registry import MODEL_REGISTRY, register

__all__ = ['TriplaneDiffusionModel']


@register(MODEL_REGISTRY)
class TriplaneDiffusionModel(BaseModel):
    """Trains ``network_g`` (:class:`~lowlight3d.archs.triplane_ddpm_arch.TriplaneDDPM`) on frozen tri-plane targets.

    Option keys: ``network_g``; ``network_generator`` + ``path.pretrain_network_generator``, or (external tri-planes)
    ``network_renderer`` + ``triplane_resolution`` + ``path.pretrain_network_renderer``; ``diffusion``
    (``DiffusionSchedule`` arguments, including ``objective``: ``noise``, ``v`` or ``regression``); ``train.optim_g``,
    ``train.scheduler``, ``train.ema_decay``, ``train.noise_opt``; ``val.*`` sampling keys (module docstring);
    ``prior`` (defaults of the extractor).
    """

    NETWORK_INFERENCE = False  # test() is a procedure, not one network call

    LOSS_BLOCKS = ('noise', )

    depth_error_unit = '(depth guidance of sampled vs target render, [0, 1])'

    def __init__(self, opt):
        super().__init__(opt)
        self.source = triplane_source(opt, 'TriplaneDiffusionModel')
        if self.source == 'generator' and not opt['path'].get('pretrain_network_generator'):
            raise ValueError('TriplaneDiffusionModel needs path.pretrain_network_generator: the net_generator_*.pth '
                             'written by the TriplaneGeneratorModel stage (train_TriplaneGenerator_*.yml)')
        if self.source == 'renderer' and not opt['path'].get('pretrain_network_renderer'):
            raise ValueError('TriplaneDiffusionModel with network_renderer needs path.pretrain_network_renderer: the '
                             'decoder weights of the external tri-planes (EG3D: torch.save(G.decoder.state_dict(), '
                             'f)) or a net_renderer_*.pth')
        self.add_network('net_g')
        if self.source == 'generator':
            self.add_network('net_generator', trainable=False)
            self.generator = self.bare(self.nets['net_generator']).eval()
            self.renderer = self.generator.renderer
            plane_res = self.generator.encoder.plane_resolution(self.generator.input_size)
        else:
            self.generator = None
            self.renderer = build_renderer(opt['network_renderer'], opt['path']['pretrain_network_renderer'])
            self.renderer = self.nets['net_renderer'] = self.renderer.to(self.device)
            self.weight_sources['net_renderer'] = opt['path']['pretrain_network_renderer']
            plane_res = triplane_resolution(opt, 'TriplaneDiffusionModel')
        self.plane_resolution = plane_res
        self._check_dataset_axes()
        self.schedule = DiffusionSchedule(**(opt.get('diffusion') or {}))
        train_opt = opt.get('train', {})
        self.ema_decay = float(train_opt.get('ema_decay', 0) or 0)
        if self.ema_decay > 0:
            self.add_ema('net_g_ema', 'net_g')
        denoiser = self.bare(self.nets['net_g'])
        self.cond_size = plane_res * 2**denoiser.image_downsample
        if self.renderer.plane_channels != denoiser.plane_channels:
            raise ValueError(f'network_g.plane_channels ({denoiser.plane_channels}) must equal the plane channels of '
                             f'the {self.source} ({self.renderer.plane_channels})')
        self._depth_errors = None
        if self.is_train:
            self.nets['net_g'].train()
            self.build_losses()  # rejects a block other than noise_opt before building it
            if set(self.losses) != {'noise'}:
                raise KeyError(f'TriplaneDiffusionModel uses exactly one loss block, train.noise_opt (eq. 6; also the '
                               f'loss of objective regression); got '
                               f'{[k + "_opt" for k in self.losses]}')
            self.add_optimizer('optim_g', self.nets['net_g'].parameters(), train_opt['optim_g'])
            self.setup_schedulers()

    def _check_dataset_axes(self):
        """Datasets with ``triplane_dir`` must use the renderer's plane convention."""
        for phase, ds in (self.opt.get('datasets') or {}).items():
            if isinstance(ds, dict) and ds.get('triplane_dir'):
                axes = ds.get('triplane_axes', 'eg3d')
                if axes != self.renderer.plane_axes:
                    raise ValueError(f'datasets.{phase}.triplane_axes ({axes!r}) differs from the plane_axes of the '
                                     f'{self.source}\'s renderer ({self.renderer.plane_axes!r})')

    # ------------------------------------------------------------------ data
    def _resize(self, img, size):
        if img.shape[-1] == size and img.shape[-2] == size:
            return img
        return F.interpolate(img, size=(size, size), mode='bilinear', align_corners=False, antialias=True)

    @torch.no_grad()
    def targets(self, gt, camera):
        """Raw ``x0`` (not standardised) and the generator's tri-planes for normal-light faces."""
        planes = self.generator(gt)
        return self.bare(self.nets['net_g']).make_x0(planes, camera), planes

    def feed_data(self, data):
        """Take ``lq``, ``gt``, ``camera`` and the external ``planes`` when present; else compute the tri-plane
        targets with the frozen generator."""
        self.lq = self._resize(data['lq'].to(self.device), self.cond_size)
        self.gt = data['gt'].to(self.device)
        self.camera = data['camera'].to(self.device).float()
        if 'planes' in data:
            planes = data['planes'].to(self.device).float()
            expected = (3, self.renderer.plane_channels, self.plane_resolution, self.plane_resolution)
            if tuple(planes.shape[1:]) != expected:
                raise ValueError(f'external tri-planes of shape {tuple(planes.shape[1:])} in the batch, expected '
                                 f'{expected} (plane channels of the renderer, triplane_resolution / generator '
                                 'plane resolution)')
            self.target_planes = planes
            self.x0_raw = self.bare(self.nets['net_g']).make_x0(planes, self.camera)
        elif self.generator is None:
            raise ValueError('The batch has no planes, and with network_renderer there is no generator to make them: '
                             'set triplane_dir in every dataset of this option file')
        else:
            self.x0_raw, self.target_planes = self.targets(self.gt, self.camera)
        self.lq_path = data.get('lq_path')

    # ------------------------------------------------------------------ training
    def optimize_parameters(self, current_iter):
        """One eq.-6 step at uniform random ``t`` (or one ``x0`` regression step); statistics from the first batch;
        then the EMA update."""
        denoiser = self.bare(self.nets['net_g'])
        if not bool(denoiser.stats_ready):
            denoiser.set_statistics(self.x0_raw)
        x0 = denoiser.standardize(self.x0_raw)
        x_t, t, target = self.schedule.training_inputs(x0)
        optimizer = self.optimizers['optim_g']
        optimizer.zero_grad(set_to_none=True)
        pred = self.nets['net_g'](x_t, t, self.lq)
        loss = self.losses['noise'](pred, target)
        self.backward(loss)
        self.optimizer_step(optimizer)
        name = {'regression': 'l_regression', 'v': 'l_v'}.get(self.schedule.objective, 'l_noise')
        self.log_dict = self.reduce_loss_dict(OrderedDict([(name, loss.detach())]))
        if 'net_g_ema' in self.nets:
            self.update_ema('net_g_ema', self.ema_decay)

    # ------------------------------------------------------------------ sampling / validation
    def test_network(self):
        """The denoiser used for sampling (EMA copy when there is one)."""
        return self.bare(self.nets.get('net_g_ema', self.nets['net_g']))

    def prior_extractor(self, **overrides):
        """A :class:`PriorExtractor` on the current (EMA) denoiser with the ``val`` sampling settings."""
        val = self.opt.get('val') or {}
        kwargs = {
            'steps': val.get('sampling_steps', 20),
            'sampler': val.get('sampler', sampler_for(self.schedule.objective)),
            'eta': val.get('eta', 0.0),
            'variance': val.get('variance', 'beta'),
            'clip': val.get('clip', 5.0),
            'flip_consistent': val.get('flip_consistent', False),
            'device': self.device,
            **overrides
        }
        return PriorExtractor.from_renderer(self.test_network(), self.renderer, self.plane_resolution,
                                            self.opt.get('diffusion'), **kwargs)

    def prior_record(self):
        """The self-contained prior record (:mod:`lowlight3d.models.prior_file`) of the current (EMA) denoiser with
        the sampling defaults of the option file's ``prior`` block (``steps``, ``sampler``, ``eta``, ``clip``,
        ``variance``, ``flip_consistent``, ``seed``)."""
        from lowlight3d.models.prior_file import prior_record_from_extractor, renderer_options
        defaults = dict(self.opt.get('prior') or {})
        seed = int(defaults.pop('seed', 0) or 0)
        settings = {k: defaults[k] for k in ('steps', 'sampler', 'eta', 'clip', 'variance', 'flip_consistent')
                    if k in defaults}
        source = {'options': self.opt.get('opt_path', ''), 'experiment': self.opt['path'].get('experiments_root', '')}
        return prior_record_from_extractor(self.prior_extractor(**settings), self.opt['network_g'],
                                           renderer_options(self.opt), self.opt.get('diffusion'), seed, source)

    def save_networks(self, current_iter):
        """The checkpoints of :class:`BaseModel` plus ``models/prior_<iter>.pth``: the one file a later stage needs
        (``prior: {file: .../prior_latest.pth}``)."""
        super().save_networks(current_iter)
        if get_dist_info()[0] != 0:
            return
        from lowlight3d.models.prior_file import save_prior_file
        save_prior_file(osp.join(self.opt['path']['models'], f'prior_{current_iter}.pth'), self.prior_record())

    @torch.no_grad()
    def test(self):
        """Sample the prior of the fed ``lq`` and render the target tri-planes from the true camera."""
        net = self.test_network()
        was_training = net.training
        prior = self.prior_extractor().extract(self.lq, seed=int((self.opt.get('val') or {}).get('seed', 0)))
        net.train(was_training)
        self.output, self.output_depth = prior['render'], prior['depth']
        target = self.renderer(self.target_planes, self.camera, deterministic=True)
        self.target = target['image'].cpu()
        self.target_depth = depth_guidance(target['depth'], target['opacity'], self.renderer.ray_start,
                                           self.renderer.ray_end).cpu()
        if self._depth_errors is not None:
            self._depth_errors.extend((self.output_depth - self.target_depth).abs().mean((1, 2, 3)).tolist())

    def get_current_visuals(self):
        """``lq``, ``result`` = sampled prior render, ``gt`` = render of the target tri-planes."""
        return OrderedDict(lq=self.lq.detach().cpu(), result=self.output.clamp(0, 1), gt=self.target)

    def validation(self, dataloader, current_iter, tb_logger=None, save_img=False):
        """``val.metrics`` on the sampled render against the target render, plus ``depth_mae`` of the guidance."""
        return validate_with_depth(self, dataloader, current_iter, tb_logger, save_img)
