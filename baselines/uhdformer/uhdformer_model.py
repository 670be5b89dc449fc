"""UHDformer training: the toolkit's supervised model plus the author's cyclic cosine learning-rate schedule.

``UHDformer.UHDformerModel`` is :class:`~lowlight3d.models.supervised_enhancement_model.SupervisedEnhancementModel`
(``lq -> net_g -> result`` against ``gt``, losses ``train.pixel_opt`` = L1 and ``train.fft_opt`` =
``UHDformer.FFTLoss``) whose ``train.scheduler`` may also be ``UHDformer.CosineAnnealingRestartCyclicLR``: BasicSR
1.4.2 (the toolkit's pin) lacks the ``CosineAnnealingRestartCyclicLR`` of later BasicSR forks that the official
code uses, so it lives here.  Any BasicSR/torch scheduler still works.

The schedule: consecutive cosine periods; in period ``i`` (starting at iteration ``s_i``, length ``T_i``) the rate is
``eta_min_i + w_i * (base - eta_min_i) * (1 + cos(pi * (t - s_i) / T_i)) / 2``.  The author's low-light setting
(upstream issue #8): ``periods: [100, 100000]``, ``restart_weights: [1, 1]``, ``eta_mins: [5e-4, 1e-7]`` with base 5e-4,
i.e. 100 iterations at 5e-4, then a cosine decay to 1e-7; ``total_iter: 102000``.  A ``null`` last period means
"the rest of ``train.total_iter``" (used by the demo files, so budgeted runs end the decay where they end).
Beyond the last period the rate stays at the last ``eta_min`` (the official scheduler raises a ``TypeError``
there, see ``baselines/README.md``).
"""
import math

import torch

from lowlight3d.models.supervised_enhancement_model import SupervisedEnhancementModel
from lowlight3d.utils.registry import MODEL_REGISTRY, register

__all__ = ['CosineAnnealingRestartCyclicLR', 'resolve_periods', 'UHDformerModel']

SCHEDULER_TYPE = 'UHDformer.CosineAnnealingRestartCyclicLR'


def resolve_periods(periods, total_iter=None):
    """Period lengths as positive ints; a ``None`` last entry becomes ``total_iter`` minus the others (at least 1).

    Args:
        periods (list): Period lengths (the last may be ``None``). total_iter (int, optional): Training length.

    Returns:
        list[int]: The periods.

    Raises:
        ValueError: On an empty list, a non-positive period, or a ``None`` that cannot be resolved.
    """
    if not isinstance(periods, (list, tuple)) or not periods:
        raise ValueError(f'{SCHEDULER_TYPE}: periods must be a non-empty list, got {periods!r}')
    periods = list(periods)
    if any(p is None for p in periods[:-1]):
        raise ValueError(f'{SCHEDULER_TYPE}: only the last period may be null (= the rest of train.total_iter), '
                         f'got {periods}')
    if periods[-1] is None:
        if total_iter is None:
            raise ValueError(f'{SCHEDULER_TYPE}: a null last period needs train.total_iter')
        # at least one iteration: a run shorter than the first periods (a benchmark probe) stays in them
        periods[-1] = max(1, int(total_iter) - sum(int(p) for p in periods[:-1]))
    if any(int(p) != p or p < 1 for p in periods):
        raise ValueError(f'{SCHEDULER_TYPE}: every period must be a positive integer, got {periods}')
    return [int(p) for p in periods]


class CosineAnnealingRestartCyclicLR(torch.optim.lr_scheduler.LRScheduler):
    """Cosine periods, each with its own restart weight and minimum (BasicSR-fork ``CosineAnnealingRestartCyclicLR``).

    Args:
        optimizer (torch.optim.Optimizer): The optimiser.
        periods (list[int]): Period lengths in scheduler steps (iterations).
        restart_weights (list[float]): Weight of each period's cosine (the official code ignores this argument
            and always uses ``[1, 1]``; we honour it).  Default: all 1.
        eta_mins (list[float]): Minimum rate of each period.  Default: all 0.
        last_epoch (int): As torch's schedulers.
    """

    def __init__(self, optimizer, periods, restart_weights=None, eta_mins=None, last_epoch=-1):
        self.periods = resolve_periods(periods)
        n = len(self.periods)
        self.restart_weights = [float(w) for w in (restart_weights if restart_weights is not None else [1.0] * n)]
        self.eta_mins = [float(e) for e in (eta_mins if eta_mins is not None else [0.0] * n)]
        if len(self.restart_weights) != n or len(self.eta_mins) != n:
            raise ValueError(f'{SCHEDULER_TYPE}: periods ({n}), restart_weights ({len(self.restart_weights)}) and '
                             f'eta_mins ({len(self.eta_mins)}) must have the same length')
        self.cumulative = [sum(self.periods[:i + 1]) for i in range(n)]
        super().__init__(optimizer, last_epoch)

    def rate(self, base_lr, step):
        """The learning rate at scheduler step ``step`` for a group whose initial rate is ``base_lr``."""
        if step > self.cumulative[-1]:
            return self.eta_mins[-1]
        idx = next(i for i, end in enumerate(self.cumulative) if step <= end)
        start = self.cumulative[idx - 1] if idx else 0
        eta_min, weight = self.eta_mins[idx], self.restart_weights[idx]
        return eta_min + weight * 0.5 * (base_lr - eta_min) * (1 + math.cos(math.pi * (step - start) /
                                                                           self.periods[idx]))

    def get_lr(self):
        """Rates of every parameter group at the current step."""
        return [self.rate(base_lr, self.last_epoch) for base_lr in self.base_lrs]


@register(MODEL_REGISTRY, name='UHDformer.UHDformerModel')
class UHDformerModel(SupervisedEnhancementModel):
    """Supervised training of ``UHDformer.Network`` (L1 + FFT loss) with the cyclic cosine schedule.

    Option keys: those of ``SupervisedEnhancementModel``; ``train.scheduler`` may be
    ``{type: UHDformer.CosineAnnealingRestartCyclicLR, periods, restart_weights, eta_mins}`` (a null last period
    is resolved against ``train.total_iter``).  Inference is the plain full-image forward (the network pads to a
    multiple of 8 and crops back).

    Args:
        opt (dict): Resolved options.
    """

    #: The loss blocks this model uses (``train.pixel_opt``: L1, ``train.fft_opt``: ``UHDformer.FFTLoss``).
    LOSS_BLOCKS = ('pixel', 'fft')

    def setup_schedulers(self):
        """The cyclic cosine schedule when asked for, else BasicSR/torch schedulers by name."""
        sched_opt = self.opt['train'].get('scheduler')
        if sched_opt and sched_opt.get('type') == SCHEDULER_TYPE:
            args = {k: v for k, v in sched_opt.items() if k != 'type'}
            unknown = set(args) - {'periods', 'restart_weights', 'eta_mins'}
            if unknown:
                raise ValueError(f'train.scheduler ({SCHEDULER_TYPE}): unknown key(s) {sorted(unknown)}; known: '
                                 'periods, restart_weights, eta_mins')
            if 'periods' not in args:
                raise ValueError(f'train.scheduler ({SCHEDULER_TYPE}) needs periods, e.g. [100, 100000]')
            args['periods'] = resolve_periods(args['periods'], self.opt['train'].get('total_iter'))
            self.schedulers = [CosineAnnealingRestartCyclicLR(o, **args) for o in self.optimizers.values()]
        else:
            super().setup_schedulers()
