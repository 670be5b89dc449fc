"""SR3's conditional diffusion (used by DENet) on top of the toolkit's :class:`DiffusionSchedule`.

What is reused and what differs from the tri-plane DDPM (``lowlight3d/archs/diffusion_schedule.py``):

* **Same**: the linear beta schedule and ``abar`` (``DiffusionSchedule(T, beta_start, beta_end, 'linear')``, here
  T = 2000, 1e-6 .. 1e-2), the respaced timesteps (:meth:`DiffusionSchedule.timesteps`) and both reverse samplers
  (:meth:`DiffusionSchedule.sample`).  SR3's ancestral step, ``x0`` clipped to ``[-1, 1]``, then the mean and the
  variance of ``q(x_{t-1} | x_t, x0)``, is the schedule's ``'paper'`` sampler with ``variance='posterior'`` and
  ``clip=1`` (its update ``(x_t - beta / sqrt(1 - abar) eps) / sqrt(alpha)`` with the ``eps`` re-derived from the
  clipped ``x0`` *is* the posterior mean); with ``steps < T`` both samplers run on the respaced schedule.
* **Different, explicitly**: the network is conditioned on the continuous noise level ``gamma = sqrt(abar)``, not on
  a step index.  Training draws ``gamma`` uniformly between two adjacent levels
  (:func:`~lowlight3d.archs.diffusion_schedule.continuous_noise_levels`, one step per batch as SR3) and noises
  ``x0`` at exactly that level (:func:`~lowlight3d.archs.diffusion_schedule.q_sample_continuous`); sampling feeds
  the network ``sqrt(abar[t])`` of the step it is at (:func:`noise_level_fn`), so any respacing is valid.
* Images are in ``[-1, 1]``; the condition is concatenated in front of ``x_t`` (6 channels).
"""
import torch

from lowlight3d.archs.diffusion_schedule import DiffusionSchedule, continuous_noise_levels, q_sample_continuous

__all__ = ['SR3_SAMPLERS', 'build_schedule', 'noise_level_fn', 'training_batch', 'sample']

#: ``name -> (DiffusionSchedule sampler, variance)``: SR3's ancestral sampling and deterministic DDIM.
SR3_SAMPLERS = {'ancestral': ('paper', 'posterior'), 'ddim': ('ddim', 'beta')}


def build_schedule(opt=None):
    """``DiffusionSchedule`` from a ``diffusion`` option block (``num_steps`` [2000], ``beta_start`` [1e-6],
    ``beta_end`` [1e-2], ``schedule`` ['linear']); other keys are errors."""
    opt = dict(opt or {})
    known = {'num_steps': 2000, 'beta_start': 1e-6, 'beta_end': 1e-2, 'schedule': 'linear'}
    unknown = sorted(set(opt) - set(known) - {'per_sample_step'})
    if unknown:
        raise ValueError(f'diffusion: unknown key(s) {unknown}; DENet knows {sorted(known)} and per_sample_step')
    args = {k: opt.get(k, v) for k, v in known.items()}
    return DiffusionSchedule(int(args['num_steps']), float(args['beta_start']), float(args['beta_end']),
                             args['schedule'], objective='noise')


def noise_level_fn(schedule):
    """``t -> gamma``: the continuous level ``sqrt(abar[t])`` of 0-based steps ``t`` (a ``(B,)`` long tensor)."""
    levels = schedule.alphas_cumprod.sqrt().float()

    def level(t):
        return levels.to(t.device)[t]

    return level


def training_batch(schedule, x0, per_sample_step=False, generator=None):
    """One SR3 training input: ``(x_noisy, gamma, noise)`` for ``x0`` ``B x C x H x W`` in ``[-1, 1]``."""
    gamma, _ = continuous_noise_levels(schedule.alphas_cumprod, x0.shape[0], per_sample_step, generator)
    gamma = gamma.to(x0.device)
    noise = torch.randn_like(x0)
    return q_sample_continuous(x0, gamma, noise), gamma, noise


@torch.no_grad()
def sample(net, cond, schedule, steps=None, sampler='ancestral', eta=0.0, clip=1.0, generators=None, x_T=None):
    """Sample ``x0`` given the condition with a noise predictor ``net(concat(cond, x_t), gamma)``.

    Args:
        net (callable): DENet (or any ``(x, gamma) -> eps``).
        cond (torch.Tensor): ``B x 3 x H x W`` condition in ``[-1, 1]``.
        schedule (DiffusionSchedule): The training schedule.
        steps (int, optional): Respaced steps (default all ``T``).
        sampler (str): ``'ancestral'`` (SR3) or ``'ddim'`` (``eta`` 0: deterministic).
        eta (float): DDIM stochasticity. clip (float | None): Clamp of the predicted ``x0`` (1: SR3's).
        generators (list[torch.Generator], optional): One per sample (seeded sampling).
        x_T (torch.Tensor, optional): Starting noise.

    Returns:
        torch.Tensor: ``B x 3 x H x W`` in about ``[-1, 1]``.
    """
    if sampler not in SR3_SAMPLERS:
        raise ValueError(f'DENet sampler must be one of {sorted(SR3_SAMPLERS)}, got {sampler!r}')
    base_sampler, variance = SR3_SAMPLERS[sampler]
    level = noise_level_fn(schedule)

    def model_fn(x_t, t):
        return net(torch.cat([cond, x_t], dim=1), level(t))

    return schedule.sample(model_fn, tuple(cond.shape), steps=steps, sampler=base_sampler, eta=eta,
                           generators=generators, device=cond.device, clip=clip, x_T=x_T, variance=variance)
