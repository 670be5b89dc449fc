"""HVI-CIDNet training: the toolkit's supervised model with the network's HVI transform passed to the loss.

:class:`CIDNetModel` is :class:`~lowlight3d.models.supervised_enhancement_model.SupervisedEnhancementModel` (paired
``lq -> net_g -> result`` against ``gt``, optional EMA, every ``train.<name>_opt`` block a loss) plus:

* loss blocks of type ``HVICIDNet.CIDLoss`` are called with ``hvit=net_g.hvit`` (the HVI terms use the network's
  current, learnable ``k``) and log each term (``l_cid_rgb_l1``, ``l_cid_hvi_edge`` ...);
* ``train.scheduler: {type: HVICIDNet.WarmupCosine, warmup_iter: N, eta_min: 1e-7}`` (or ``warmup_fraction: f``,
  ``N = round(f * total_iter)``, which follows budget-set iteration counts): linear warm-up over ``N`` iterations,
  then a cosine from the initial rate to ``eta_min`` at ``train.total_iter`` (the original's gradual warm-up +
  ``CosineAnnealingRestartLR``, per iteration instead of per epoch);
* ``train.random_gamma: [0.6, 1.2]`` (optional, off when absent): the input of each training iteration is raised to
  ``gamma ~ U[low, high]`` (one draw per batch, torch's RNG), the original's ``--gamma`` augmentation.

The original's gradient clip (0.01) is called before ``backward()`` and so never acts; it is not reproduced.
"""
import math

import torch

from lowlight3d.models.supervised_enhancement_model import SupervisedEnhancementModel
from lowlight3d.utils.registry import MODEL_REGISTRY, register

__all__ = ['CIDNetModel', 'WarmupCosine']


class WarmupCosine:
    """Learning-rate factor: ``(t + 1) / warmup_iter`` during warm-up, then a cosine to ``eta_min / base_lr``.

    A picklable ``LambdaLR`` rule.  Step ``t`` counts from 0 (the first iteration trains at ``base / warmup_iter``;
    the original's first warm-up epoch had a rate of exactly 0).

    Args:
        warmup_iter (int): Warm-up iterations (0 = none). total_iter (int): Iteration where the cosine ends.
        eta_min_ratio (float): ``eta_min / base_lr``.
    """

    def __init__(self, warmup_iter, total_iter, eta_min_ratio=0.0):
        self.warmup_iter, self.total_iter = int(warmup_iter), int(total_iter)
        self.eta_min_ratio = float(eta_min_ratio)
        if not 0 <= self.warmup_iter < self.total_iter:
            raise ValueError(f'HVICIDNet.WarmupCosine: need 0 <= warmup_iter ({warmup_iter}) < total_iter '
                             f'({total_iter})')

    def __call__(self, step):
        if step < self.warmup_iter:
            return (step + 1) / self.warmup_iter
        progress = min(1.0, (step - self.warmup_iter) / (self.total_iter - self.warmup_iter))
        return self.eta_min_ratio + (1 - self.eta_min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


@register(MODEL_REGISTRY, name='HVICIDNet.CIDNetModel')
class CIDNetModel(SupervisedEnhancementModel):
    """Supervised HVI-CIDNet training (see the module docstring for the option keys it adds)."""

    def __init__(self, opt):
        super().__init__(opt)
        gamma = (opt.get('train') or {}).get('random_gamma') if self.is_train else None
        self.random_gamma = None
        if gamma is not None:
            if not (isinstance(gamma, (list, tuple)) and len(gamma) == 2 and 0 < float(gamma[0]) <= float(gamma[1])):
                raise ValueError(f'train.random_gamma must be [low, high] with 0 < low <= high, got {gamma!r}')
            self.random_gamma = (float(gamma[0]), float(gamma[1]))

    def setup_schedulers(self):
        """BasicSR/torch schedulers, or ``HVICIDNet.WarmupCosine``."""
        sched_opt = self.opt['train'].get('scheduler')
        if sched_opt and sched_opt.get('type') == 'HVICIDNet.WarmupCosine':
            unknown = set(sched_opt) - {'type', 'warmup_iter', 'warmup_fraction', 'eta_min'}
            if unknown:
                raise ValueError(f'HVICIDNet.WarmupCosine: unknown keys {sorted(unknown)} (valid: warmup_iter or '
                                 'warmup_fraction, eta_min)')
            if 'warmup_iter' in sched_opt and 'warmup_fraction' in sched_opt:
                raise ValueError('HVICIDNet.WarmupCosine: give warmup_iter or warmup_fraction, not both')
            total = int(self.opt['train']['total_iter'])
            warmup = sched_opt.get('warmup_iter')
            if warmup is None:
                fraction = float(sched_opt.get('warmup_fraction', 0.0))
                if not 0 <= fraction < 1:
                    raise ValueError(f'HVICIDNet.WarmupCosine: warmup_fraction must be in [0, 1), got {fraction}')
                warmup = min(round(fraction * total), total - 1)
            self.schedulers = []
            for optimizer in self.optimizers.values():
                base = optimizer.param_groups[0]['lr']
                rule = WarmupCosine(warmup, total, float(sched_opt.get('eta_min', 0.0)) / base)
                self.schedulers.append(torch.optim.lr_scheduler.LambdaLR(optimizer, rule))
        else:
            super().setup_schedulers()

    def add_loss_terms(self, terms, name, loss_fn, output, target):
        """``HVICIDNet.CIDLoss`` blocks get the network's ``hvit`` and log every term; other losses as the parent."""
        from baselines.hvi_cidnet.hvi_cidnet_loss import HVICIDNetLoss
        if not isinstance(loss_fn, HVICIDNetLoss):
            return super().add_loss_terms(terms, name, loss_fn, output, target)
        hvit = getattr(self.bare(self.nets['net_g']), 'hvit', None)  # None: CIDLoss then asks for hvi_weight: 0
        for term, value in loss_fn.terms(output, target, hvit).items():
            terms.add(f'{name}_{term}', value)

    def optimize_parameters(self, current_iter):
        """One step (with the optional random-gamma input augmentation)."""
        if self.random_gamma is not None:
            low, high = self.random_gamma
            gamma = float(torch.empty(()).uniform_(low, high))
            self.lq = self.lq.clamp(min=0)**gamma
        super().optimize_parameters(current_iter)
