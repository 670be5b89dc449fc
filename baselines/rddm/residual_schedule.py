"""RDDM's residual + noise diffusion: coefficient schedules, forward process, deterministic sampler.

Data in ``[-1, 1]``; ``I_in`` the (equalised) degraded image, ``I_0`` the target, residual ``I_res = I_in - I_0``.
Step ``t = 0 .. T-1`` (0-based) adds ``alpha_t I_res + beta_t eps_t``, so (closed form)::

    I_t = I_0 + abar_t I_res + bbar_t eps,   abar_t = sum_{i<=t} alpha_i (-> 1),   bbar_t^2 = sum_{i<=t} beta_i^2

with ``bbar_{T-1}^2 = sum_scale``: ``I_T = I_in + sqrt(sum_scale) eps``, the degraded image plus a little noise, is
where sampling starts (not pure noise).  This differs from the Gaussian DDPM of
:mod:`lowlight3d.archs.diffusion_schedule` (``sqrt(abar) x0 + sqrt(1 - abar) eps``: a shrinking signal and cumulative
*products*): the residual moves the mean toward ``I_in`` while the noise grows on its own, with two independent
cumulative *sums*.  One schedule is shared: ``'ddpm'`` (the ``convert_to_ddim`` branch of the released exp-3 code)
is the toolkit's linear DDPM schedule mapped to ``abar = 1 - sqrt(abar_ddpm)``, ``bbar^2 = 1 - abar_ddpm``, and is
built from :class:`~lowlight3d.archs.diffusion_schedule.DiffusionSchedule` (same numbers).

Coefficient schedules (``alpha_schedule`` / ``beta2_schedule``), over ``x = linspace(0, 1, T)``:

* ``'average'``: ``1 / T`` each (the exp-3 ``alpha``);
* ``'increased'``: ``x ** power`` normalised to sum 1 (exp-3 ``beta^2`` with ``power`` 3, exp-2 with 1);
* ``'decreased'``: the flipped ``'increased'`` (exp-2 ``alpha``);
* ``'ddpm'``: see above (``alpha`` and ``beta^2`` together; ``sum_scale`` must be 1).

``beta^2`` is scaled to sum to ``sum_scale`` (0.01: the maintainer's value for restoration,
``docs/baselines.md`` section 7).

Sampler (deterministic, ``eta = 0``, the original's ``ddim_sample``): the steps are the pairs of
``int(linspace(-1, T-1, S+1))`` from the top, e.g. ``S = 2``, ``T = 1000``: ``(999, 499), (499, -1)``.  (The tri-plane
DDPM's :meth:`~lowlight3d.archs.diffusion_schedule.DiffusionSchedule.timesteps` spaces ``S`` steps over
``[0, T-1]`` and calls the network at ``t = 0``; RDDM's last call is at ``T/S - 1`` and jumps to ``x0`` from
there, so the spacing is not shared.)  At each pair ``(t, t')`` the network gives ``res`` and/or ``eps``; the
missing one follows from ``I_t``::

    eps = (I_t - I_in - (abar_t - 1) res) / bbar_t            (residual only, 'res')
    I_0 = (I_t - abar_t I_in - bbar_t eps) / (1 - abar_t)     (noise only, 'noise'; res = I_in - I_0)
    I_0 = I_t - abar_t res - bbar_t eps                        (both, 'res_noise')
    I_t' = I_t - (abar_t - abar_t') res - (bbar_t - bbar_t') eps,    and at t' = -1: the prediction of I_0

``clip`` clamps ``res`` and ``I_0`` to ``[-1, 1]`` as the original does (``res`` lies in ``[-2, 2]``, so this is an
upstream limitation; kept by default).
"""
import itertools

import torch

from lowlight3d.archs.diffusion_schedule import DiffusionSchedule, randn_like_per_sample

__all__ = ['COEFFICIENT_SCHEDULES', 'SAMPLING_MODES', 'coefficient_schedule', 'ResidualSchedule']

COEFFICIENT_SCHEDULES = ('average', 'increased', 'decreased', 'ddpm')
#: What the network predicts at sampling time: the residual, the noise, or both.
SAMPLING_MODES = ('res', 'noise', 'res_noise')


def coefficient_schedule(kind, num_steps, power=1.0):
    """Per-step coefficients summing to 1 (``'average'``, ``'increased'``, ``'decreased'``; float64).

    Args:
        kind (str): Schedule name (not ``'ddpm'``, which is defined by its cumulative sums).
        num_steps (int): ``T``. power (float): Exponent of ``'increased'`` / ``'decreased'``.

    Returns:
        Tensor: ``(T,)`` coefficients.
    """
    if kind == 'average':
        return torch.full((num_steps, ), 1.0 / num_steps, dtype=torch.float64)
    if kind in ('increased', 'decreased'):
        if num_steps < 2:
            raise ValueError(f"schedule {kind!r} needs at least 2 steps, got {num_steps}")
        y = torch.linspace(0, 1, num_steps, dtype=torch.float64)**float(power)
        y = y / y.sum()
        return y.flip(0) if kind == 'decreased' else y
    raise ValueError(f'coefficient schedule must be one of {COEFFICIENT_SCHEDULES[:3]} here, got {kind!r}')


class ResidualSchedule:
    """The residual + noise process of RDDM (module docstring): coefficients, closed form, sampler.

    Args:
        num_steps (int): ``T`` (1000).
        sum_scale (float): ``bbar_{T-1}^2`` (0.01).
        alpha_schedule (str): Residual coefficients (``'average'``, exp 3).
        beta2_schedule (str): Noise-variance coefficients (``'increased'``, exp 3).
        alpha_power (float): Exponent of an increased/decreased ``alpha`` (1).
        beta2_power (float): Exponent of an increased/decreased ``beta^2`` (3, exp 3).
    """

    def __init__(self, num_steps=1000, sum_scale=0.01, alpha_schedule='average', beta2_schedule='increased',
                 alpha_power=1.0, beta2_power=3.0):
        self.num_steps = int(num_steps)
        if self.num_steps < 1:
            raise ValueError(f'num_steps must be positive, got {num_steps}')
        self.sum_scale = float(sum_scale)
        if not self.sum_scale > 0:
            raise ValueError(f'sum_scale must be positive, got {sum_scale}')
        for name, kind in (('alpha_schedule', alpha_schedule), ('beta2_schedule', beta2_schedule)):
            if kind not in COEFFICIENT_SCHEDULES:
                raise ValueError(f'{name} must be one of {COEFFICIENT_SCHEDULES}, got {kind!r}')
        if (alpha_schedule == 'ddpm') != (beta2_schedule == 'ddpm'):
            raise ValueError("alpha_schedule 'ddpm' and beta2_schedule 'ddpm' go together (both cumulative sums come "
                             'from one DDPM schedule)')
        if alpha_schedule == 'ddpm':
            if self.sum_scale != 1.0:
                raise ValueError(f"schedule 'ddpm' ends at bbar^2 = 1 - abar_ddpm ~ 1: set sum_scale: 1 (got "
                                 f'{sum_scale})')
            abar_ddpm = DiffusionSchedule(self.num_steps, schedule='linear').alphas_cumprod
            self.alphas_cumsum = 1 - abar_ddpm.sqrt()
            self.betas2_cumsum = 1 - abar_ddpm
        else:
            # cumulative sums divided by their last value: they end at exactly 1 and sum_scale (I_T = I_in + ...)
            alphas_cumsum = coefficient_schedule(alpha_schedule, self.num_steps, alpha_power).cumsum(0)
            betas2_cumsum = coefficient_schedule(beta2_schedule, self.num_steps, beta2_power).cumsum(0)
            self.alphas_cumsum = alphas_cumsum / alphas_cumsum[-1]
            self.betas2_cumsum = betas2_cumsum / betas2_cumsum[-1] * self.sum_scale
        self.alphas = torch.diff(self.alphas_cumsum, prepend=torch.zeros(1, dtype=torch.float64))
        self.betas2 = torch.diff(self.betas2_cumsum, prepend=torch.zeros(1, dtype=torch.float64)).clamp(min=0)
        self.betas_cumsum = self.betas2_cumsum.sqrt()

    # ------------------------------------------------------------------ coefficients
    def _at(self, values, t, x):
        """``values[t]`` as ``(B, 1, 1, 1)`` in ``x``'s dtype/device (``t`` a ``(B,)`` long tensor or an int)."""
        if not torch.is_tensor(t):
            t = torch.full((x.shape[0], ), int(t), dtype=torch.long)
        return values[t.cpu()].to(device=x.device, dtype=x.dtype).reshape(-1, *([1] * (x.ndim - 1)))

    # ------------------------------------------------------------------ forward process
    def q_sample(self, x0, res, t, noise):
        """Closed form ``I_t = I_0 + abar_t I_res + bbar_t eps`` (0-based ``t``, ``(B,)``)."""
        return x0 + self._at(self.alphas_cumsum, t, x0) * res + self._at(self.betas_cumsum, t, x0) * noise

    def q_step(self, x_prev, res, t, noise):
        """One forward step ``I_t = I_{t-1} + alpha_t I_res + beta_t eps_t`` (``I_{-1} = I_0``)."""
        return x_prev + self._at(self.alphas, t, x_prev) * res + self._at(self.betas2, t, x_prev).sqrt() * noise

    def training_inputs(self, x0, x_in, generator=None):
        """``(I_t, t, I_res, eps)`` of one training step at uniform random 0-based ``t`` (global RNG by default)."""
        b = x0.shape[0]
        t = torch.randint(0, self.num_steps, (b, ), generator=generator).to(x0.device)
        noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
        res = x_in - x0
        return self.q_sample(x0, res, t, noise), t, res, noise

    # ------------------------------------------------------------------ predictions
    def noise_from_res(self, x_t, t, x_in, res):
        """``eps = (I_t - I_in - (abar_t - 1) res) / bbar_t`` (undefined where ``bbar_t = 0``)."""
        return (x_t - x_in - (self._at(self.alphas_cumsum, t, x_t) - 1) * res) / self._at(self.betas_cumsum, t, x_t)

    def x0_from_noise(self, x_t, t, x_in, noise):
        """``I_0 = (I_t - abar_t I_in - bbar_t eps) / (1 - abar_t)`` (``1 - abar`` floored at 1e-6 as the original)."""
        abar = self._at(self.alphas_cumsum, t, x_t)
        return (x_t - abar * x_in - self._at(self.betas_cumsum, t, x_t) * noise) / (1 - abar).clamp(min=1e-6)

    def x0_from_res_noise(self, x_t, t, res, noise):
        """``I_0 = I_t - abar_t res - bbar_t eps``."""
        return x_t - self._at(self.alphas_cumsum, t, x_t) * res - self._at(self.betas_cumsum, t, x_t) * noise

    def complete(self, x_t, t, x_in, res=None, noise=None, clip=True):
        """``(res, eps, I_0)`` from what the network predicted (``res``, ``noise`` or both; see module docstring)."""
        clamp = (lambda v: v.clamp(-1, 1)) if clip else (lambda v: v)
        if res is not None and noise is not None:
            res = clamp(res)
            x0 = clamp(self.x0_from_res_noise(x_t, t, res, noise))
        elif res is not None:
            res = clamp(res)
            noise = self.noise_from_res(x_t, t, x_in, res)
            x0 = clamp(x_in - res)
        elif noise is not None:
            x0 = clamp(self.x0_from_noise(x_t, t, x_in, noise))
            res = clamp(x_in - x0)
        else:
            raise ValueError('complete() needs the predicted residual, the predicted noise, or both')
        return res, noise, x0

    # ------------------------------------------------------------------ sampling
    def time_pairs(self, steps):
        """``[(t, t_next), ...]`` of a deterministic ``steps``-step sampling (``t_next = -1``: the last jump)."""
        steps = int(steps)
        if not 1 <= steps <= self.num_steps:
            raise ValueError(f'sampling steps must be in [1, {self.num_steps}], got {steps}')
        times = torch.linspace(-1, self.num_steps - 1, steps + 1).int().tolist()[::-1]
        return list(itertools.pairwise(times))

    def step(self, x_t, t, t_next, res, noise):
        """``I_t' = I_t - (abar_t - abar_t') res - (bbar_t - bbar_t') eps`` (``eta = 0``)."""
        alpha = self._at(self.alphas_cumsum, t, x_t) - self._at(self.alphas_cumsum, t_next, x_t)
        beta = self._at(self.betas_cumsum, t, x_t) - self._at(self.betas_cumsum, t_next, x_t)
        return x_t - alpha * res - beta * noise

    def start(self, x_in, noise=None, generators=None):
        """``I_T = I_in + sqrt(sum_scale) eps`` (``eps`` per sample from ``generators`` when given)."""
        if noise is None:
            noise = randn_like_per_sample(x_in, generators)
        return x_in + self.sum_scale**0.5 * noise

    @torch.no_grad()
    def sample(self, model_fn, x_in, steps=2, mode='res', clip=True, noise=None, generators=None):
        """Deterministic sampling from ``I_T = I_in + sqrt(sum_scale) eps`` to the prediction of ``I_0``.

        Args:
            model_fn (callable): ``model_fn(x_t, t) -> {'res': Tensor, 'noise': Tensor}`` (the keys ``mode``
                needs), ``t`` a ``(B,)`` long tensor of 0-based steps.
            x_in (Tensor): ``(B, C, H, W)`` degraded image in ``[-1, 1]`` (the condition).
            steps (int): Sampling steps ``S`` (network calls: ``S``, or ``2 S`` with two networks in ``'res_noise'``).
            mode (str): ``'res'``, ``'noise'`` or ``'res_noise'``.
            clip (bool): Clamp the residual and ``I_0`` to ``[-1, 1]`` (the original).
            noise (Tensor, optional): The starting ``eps``; else drawn (``generators``: one per sample).

        Returns:
            Tensor: The predicted ``I_0`` in ``[-1, 1]`` (when ``clip``).
        """
        if mode not in SAMPLING_MODES:
            raise ValueError(f'sampling mode must be one of {SAMPLING_MODES}, got {mode!r}')
        x = self.start(x_in, noise, generators)
        b = x.shape[0]
        for t, t_next in self.time_pairs(steps):
            tt = torch.full((b, ), t, dtype=torch.long, device=x.device)
            pred = model_fn(x, tt)
            res, eps, x0 = self.complete(x, tt, x_in, pred.get('res') if mode != 'noise' else None,
                                         pred.get('noise') if mode != 'res' else None, clip)
            if t_next < 0:
                return x0
            x = self.step(x, t, t_next, res, eps)
        return x
