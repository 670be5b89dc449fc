"""RDDM training: the residual + noise forward process at a random step and L1 on each predicted target.

:class:`RDDMModel` is :class:`~lowlight3d.models.supervised_enhancement_model.SupervisedEnhancementModel` (paired
``lq`` / ``gt`` batches, EMA copy for testing, checkpoints) with its own training step:

1. ``I_in`` = the network's condition of ``lq`` (histogram-equalised, resized to ``network_g.image_size``,
   ``[-1, 1]``), ``I_0`` = ``gt`` in the same space, ``I_res = I_in - I_0``;
2. ``t ~ U{0 .. T-1}``, ``eps ~ N(0, I)``, ``I_t = I_0 + abar_t I_res + bbar_t eps``
   (:meth:`~baselines.rddm.residual_schedule.ResidualSchedule.training_inputs`);
3. loss blocks ``train.res_opt`` (on the predicted residual) and ``train.noise_opt`` (on the predicted noise), each
   present exactly when the objective predicts that target (the original: ``L1Loss``, mean over pixels);
4. optional gradient-norm clipping over all parameters (``train.grad_clip``, the original's 1.0), the optimiser
   step, and the EMA update every ``train.ema_every`` iterations (10 in the original; before
   ``train.ema_start`` iterations the EMA copies the weights).

Testing: ``net_g_ema`` (or ``net_g``) runs the whole sampling; the starting noise of each image comes from a
generator seeded by ``(val.seed, image name)`` (SHA-256), so results do not depend on the batch or the order.
"""
import hashlib
import os.path as osp
from collections import OrderedDict

import torch

from lowlight3d.models.loss_sum import LossSum
from lowlight3d.models.supervised_enhancement_model import SupervisedEnhancementModel
from lowlight3d.utils.registry import MODEL_REGISTRY, register

__all__ = ['RDDMModel', 'image_generator']


def image_generator(seed, name):
    """A ``torch.Generator`` seeded from a base seed and an image name (SHA-256; stable across runs)."""
    digest = hashlib.sha256(f'{int(seed)}:{name}'.encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], 'little') & (2**63 - 1))


@register(MODEL_REGISTRY, name='RDDM.RDDMModel')
class RDDMModel(SupervisedEnhancementModel):
    """Trains ``network_g`` = ``RDDM.Network`` (see the module docstring for the option keys).

    Option keys added to the supervised model's: ``train.res_opt`` / ``train.noise_opt`` (loss blocks),
    ``train.grad_clip`` (max gradient norm, off when absent), ``train.ema_every`` (1), ``train.ema_start`` (0),
    ``val.seed`` (0; seeds the starting noise per image).
    """

    NETWORK_INFERENCE = False  # test() is a procedure, not one network call

    LOSS_BLOCKS = ('res', 'noise')

    def __init__(self, opt):
        super().__init__(opt)
        net = self.bare(self.nets['net_g'])
        if not hasattr(net, 'schedule') or not hasattr(net, 'targets'):
            raise TypeError(f'RDDM.RDDMModel trains RDDM.Network, got network_g.type {opt["network_g"].get("type")!r}')
        train_opt = opt.get('train') or {}
        if self.is_train:
            wanted = set(net.targets)
            if set(self.losses) != wanted:
                raise ValueError(f'RDDM.RDDMModel: objective {net.objective!r} trains {sorted(wanted)}, so the loss '
                                 f'blocks must be exactly {sorted(k + "_opt" for k in wanted)}; got '
                                 f'{sorted(k + "_opt" for k in self.losses)}')
        self.grad_clip = self.grad_clip_option(train_opt)
        self.ema_every = int(train_opt.get('ema_every', 1) or 1)
        self.ema_start = int(train_opt.get('ema_start', 0) or 0)
        if self.ema_every < 1 or self.ema_start < 0:
            raise ValueError(f'train.ema_every must be >= 1 and train.ema_start >= 0, got {self.ema_every}, '
                             f'{self.ema_start}')
        self.seed = int((opt.get('val') or {}).get('seed', 0) or 0)

    def feed_data(self, data):
        """``lq``, ``gt`` (when present) and the image names (seeds of the starting noise)."""
        super().feed_data(data)
        self.lq_path = data.get('lq_path')

    def optimize_parameters(self, current_iter):
        """One step on the residual (and/or noise) targets at a uniform random step; then the EMA update."""
        net = self.bare(self.nets['net_g'])
        with torch.no_grad():
            x_in = net.condition(self.lq)
            x0 = net.to_model_space(self.gt)
        x_t, t, res, noise = net.schedule.training_inputs(x0, x_in)
        optimizer = self.optimizers['optim_g']
        optimizer.zero_grad(set_to_none=True)
        pred = self.nets['net_g'](x_t, t, x_in)
        targets = {'res': res, 'noise': noise}
        terms = LossSum()
        for name, loss_fn in self.losses.items():
            terms.add(name, loss_fn(pred[name], targets[name]))
        self.backward(terms.total)
        extra = OrderedDict()
        if self.grad_clip is not None:
            extra['grad_norm'] = self.clip_gradients(optimizer, self.nets['net_g'].parameters(), self.grad_clip)
        self.optimizer_step(optimizer)
        self.log_dict = self.reduce_loss_dict(terms.logs(**extra))
        if 'net_g_ema' in self.nets:
            if current_iter <= self.ema_start:
                self.update_ema('net_g_ema', 0.0)
            elif current_iter % self.ema_every == 0:
                self.update_ema('net_g_ema', self.ema_decay)

    def _generators(self):
        """One seeded generator per image of the batch (by name), or ``None`` without names."""
        names = self.lq_path
        if not names:
            return None
        if isinstance(names, str):
            names = [names]
        return [image_generator(self.seed, osp.splitext(osp.basename(n))[0]) for n in names]

    @torch.no_grad()
    def test(self):
        """Enhance the fed ``lq`` with the whole sampling (per-image seeded starting noise)."""
        net = self.test_network()
        was_training = net.training
        net.eval()
        self.output = net(self.lq, generators=self._generators())
        net.train(was_training)
