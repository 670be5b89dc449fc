"""IC-FSRDENet stage 2 as a toolkit model: DENet trained as SR3 on the stage-1 results, sampled at test time.

Stage 1 (IC-FSRNet) needs no model of its own: it is ``SupervisedEnhancementModel`` with ``ICFSRDENet.ICFSRNet`` and
``pixel_opt: L1Loss`` (the original's only loss).  Stage 2 is :class:`DENetModel`:

* **Data**: batches of ``ICFSRDENet.StageOneResultDataset`` (``cond`` = the stage-1 result written by ``test.py``,
  ``gt``, and the original low-light ``lq``, which is only shown in grids), mapped to ``[-1, 1]``.
* **Training** (``train.noise_opt``, ``L1Loss`` mean = the original's ``sum / numel``): ``x_noisy = gamma x0 +
  sqrt(1 - gamma^2) eps`` at a continuous level ``gamma`` (one step per batch unless
  ``diffusion.per_sample_step``), loss ``|DENet(concat(cond, x_noisy), gamma) - eps|``
  (:mod:`baselines.ic_fsrdenet.sr3_diffusion`).  EMA only when ``train.ema_decay`` is set (the original's EMA block
  is "not used").
* **Testing / validation**: the condition is resized to ``network_g.image_size`` (256; bicubic, antialiased when
  shrinking), ``x0`` is sampled (``val.sampler``: ``ancestral``, SR3's, or ``ddim``; ``val.sampling_steps``, default
  100, the number that reproduces the face paper's 9,332 G; ``val.eta`` [0]; ``val.clip`` [1]), and the result is
  resized back to the input's size.  The starting noise and every ancestral draw come from a generator seeded by
  ``val.seed`` [0] and the image name, so a test is reproducible and independent of the batch.
"""
import torch

from baselines.ic_fsrdenet import sr3_diffusion
from baselines.ic_fsrdenet.denet_arch import DENet
from baselines.ic_fsrdenet.ic_fsrnet_arch import resize_to
from lowlight3d.data.seeding import name_entropy
from lowlight3d.models.supervised_enhancement_model import SupervisedEnhancementModel
from lowlight3d.utils.registry import MODEL_REGISTRY, register

__all__ = ['DENetModel', 'sampling_options']


def sampling_options(val_opt):
    """Checked sampling keys of a ``val`` block: ``{sampler, steps, eta, clip, seed}``."""
    val_opt = val_opt or {}
    out = {'sampler': val_opt.get('sampler', 'ancestral'), 'steps': val_opt.get('sampling_steps', 100),
           'eta': float(val_opt.get('eta', 0.0)), 'clip': val_opt.get('clip', 1.0), 'seed': int(val_opt.get('seed', 0))}
    if out['sampler'] not in sr3_diffusion.SR3_SAMPLERS:
        raise ValueError(f"val.sampler must be one of {sorted(sr3_diffusion.SR3_SAMPLERS)} (ancestral: SR3's "
                         f"posterior sampling; ddim), got {out['sampler']!r}")
    if out['steps'] is not None and (isinstance(out['steps'], bool) or not isinstance(out['steps'], int)
                                     or out['steps'] < 1):
        raise ValueError(f"val.sampling_steps must be a positive integer or null (all T steps), got {out['steps']!r}")
    if out['clip'] is not None:
        out['clip'] = float(out['clip'])
    return out


@register(MODEL_REGISTRY, name='ICFSRDENet.DENetModel')
class DENetModel(SupervisedEnhancementModel):
    """Stage 2 of IC-FSRDENet (see the module docstring).

    Option keys: ``network_g`` (``ICFSRDENet.DENet``), ``diffusion`` (``num_steps`` [2000], ``beta_start`` [1e-6],
    ``beta_end`` [1e-2], ``schedule`` [linear], ``per_sample_step`` [false]), ``train.optim_g``,
    ``train.scheduler``, ``train.ema_decay``, ``train.noise_opt``, ``val.sampler``, ``val.sampling_steps``,
    ``val.eta``, ``val.clip``, ``val.seed``.
    """

    NETWORK_INFERENCE = False  # test() is a procedure, not one network call

    LOSS_BLOCKS = ('noise', )

    def __init__(self, opt):
        super().__init__(opt)
        net = self.bare(self.nets['net_g'])
        if not isinstance(net, DENet):
            raise TypeError(f'ICFSRDENet.DENetModel: network_g must be ICFSRDENet.DENet, got {type(net).__name__}')
        if net.in_channels != 6:
            raise ValueError(f'ICFSRDENet.DENetModel: network_g.in_channels must be 6 (condition + x_t), got '
                             f'{net.in_channels}')
        diffusion = dict(opt.get('diffusion') or {})
        self.per_sample_step = bool(diffusion.get('per_sample_step', False))
        self.schedule = sr3_diffusion.build_schedule(diffusion)
        self.sampling = sampling_options(opt.get('val'))
        if self.sampling['steps'] is not None and self.sampling['steps'] > self.schedule.num_steps:
            raise ValueError(f"val.sampling_steps ({self.sampling['steps']}) exceeds diffusion.num_steps "
                             f'({self.schedule.num_steps})')
        if self.is_train and 'noise' not in self.losses:
            raise ValueError('ICFSRDENet.DENetModel needs train.noise_opt (the original: L1Loss, reduction mean)')
        self.cond, self.names = None, None

    def feed_data(self, data):
        """``cond`` (stage-1 result), ``lq`` (low-light input, for grids), ``gt`` when present, image names."""
        if 'cond' not in data:
            raise KeyError("ICFSRDENet.DENetModel needs batches with 'cond' (the stage-1 results): use the dataset "
                           'type ICFSRDENet.StageOneResultDataset')
        super().feed_data(data)
        self.cond = data['cond'].to(self.device)
        self.names = list(data.get('lq_path') or [])

    def optimize_parameters(self, current_iter):
        """One SR3 step: L1 between DENet's noise prediction at a continuous level and the true noise."""
        if self.gt is None:
            raise KeyError('ICFSRDENet.DENetModel needs paired batches (cond and gt)')
        optimizer = self.optimizers['optim_g']
        optimizer.zero_grad(set_to_none=True)
        x0, cond = self.gt * 2 - 1, self.cond * 2 - 1
        x_noisy, gamma, noise = sr3_diffusion.training_batch(self.schedule, x0, self.per_sample_step)
        pred = self.nets['net_g'](torch.cat([cond, x_noisy], dim=1), gamma)
        loss = self.losses['noise'](pred, noise)
        self.backward(loss)
        self.optimizer_step(optimizer)
        self.output = self.cond  # no image is produced by a training step
        self.log_dict = self.reduce_loss_dict({'l_noise': loss.detach()})
        if 'net_g_ema' in self.nets:
            self.update_ema('net_g_ema', self.ema_decay)

    def _generators(self, batch):
        """One generator per sample, seeded by ``val.seed`` and the image name (or the position in the batch)."""
        gens = []
        for b in range(batch):
            name = self.names[b] if b < len(self.names) else f'#{b}'
            words = name_entropy(f"{self.sampling['seed']}:{name}")
            gens.append(torch.Generator().manual_seed(words[0] | (words[1] << 32)))
        return gens

    @torch.no_grad()
    def test(self):
        """Sample the enhanced image of the fed ``cond`` at ``image_size`` and resize it back (``self.output``)."""
        net = self.test_network()
        was_training = net.training
        net.eval()
        size = tuple(self.cond.shape[-2:])
        cond = resize_to(self.cond * 2 - 1, (net.image_size, net.image_size))
        s = self.sampling
        x0 = sr3_diffusion.sample(net, cond, self.schedule, s['steps'], s['sampler'], s['eta'], s['clip'],
                                  self._generators(cond.shape[0]))
        self.output = resize_to((x0 + 1) / 2, size)
        net.train(was_training)
