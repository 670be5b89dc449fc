"""Gaussian diffusion maths of the tri-plane DDPM (paper eqs. 1, 2, 4, 6): schedule, forward process, samplers.

Indices are 0-based: step ``t = 0 .. T-1`` has ``beta[t]``; the paper's ``t = 1 .. T`` is ``t + 1`` here, and the
network is fed the 0-based index.  Samplers:

* ``paper`` (eq. 4): ``x_{t-1} = (x_t - (1 - a_t) / sqrt(1 - abar_t) * eps) / sqrt(a_t) + sigma_t z`` (``z = 0`` at
  the last step).  With ``S < T`` steps the schedule is respaced: ``abar'_k = abar[tau_k]``,
  ``a'_k = abar[tau_k] / abar[tau_{k-1}]`` (``abar[tau_0] = 1``), and the same update runs with primes.  Variance
  ``variance='beta'`` (default, the paper's eq. 4): ``sigma^2 = beta' = 1 - a'``; ``variance='posterior'``:
  ``sigma^2 = beta~' = (1 - abar'_{k-1}) / (1 - abar'_k) * beta'`` (the variance of ``q(x_{t-1} | x_t, x0)``).  With
  few respaced steps ``beta'`` is large and the paper's choice over-noises the sample; ``posterior`` keeps the
  marginals of an exact noise model on ``q(x_t | x0)``.  ``clip`` (as in DDIM) clamps the ``x0`` implied by ``eps``
  and re-derives ``eps`` from it before the update; without it an imperfect ``eps`` at large ``t`` is amplified by
  ``1 / sqrt(abar_t)`` (the demo's numbers for both settings: ``docs/prior3d.md`` section 4.4).
* ``ddim``: ``x0_hat = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)``;
  ``x_prev = sqrt(abar_prev) x0_hat + sqrt(1 - abar_prev - s^2) eps + s z`` with
  ``s = eta sqrt((1 - abar_prev) / (1 - abar_t)) sqrt(1 - abar_t / abar_prev)`` (``eta = 0``: deterministic).
* ``regression`` (objective ``'regression'``, paper ablation V6: a plain U-Net regressing the tri-planes): one
  network call on ``x = 0`` at ``t = 0``; its output is ``x0`` itself (deterministic, no noise).

Objectives (what the network is trained to output, :meth:`DiffusionSchedule.training_inputs`): ``'noise'`` (eq. 6:
``eps`` at a uniform random ``t``), ``'v'`` (the velocity ``v = sqrt(abar_t) eps - sqrt(1 - abar_t) x0`` at a uniform
random ``t``; Salimans & Ho 2022) or ``'regression'`` (``x0`` from ``x = 0``, ``t = 0``).  Both samplers run on
``eps``: a ``'v'`` output is converted exactly, ``eps = sqrt(1 - abar_t) x_t + sqrt(abar_t) v``
(:meth:`DiffusionSchedule.eps_from_output`).  ``'v'`` suits a briefly trained denoiser: with ``'noise'`` the ``x0``
implied at large ``t`` is ``(x_t - sqrt(1 - abar) eps) / sqrt(abar)``, which multiplies the network's error by
``1 / sqrt(abar_T)`` (157 for the linear T = 1000 schedule), so an undertrained ``eps`` network samples
input-independent noise patterns instead of a face; at large ``t`` ``v`` is ``-x0``, an undertrained ``'v'`` network
predicts a smooth conditional mean there, and the sample stays a face (``docs/prior3d.md`` section 4.2).

Noise is drawn per sample from its own ``torch.Generator`` when ``generators`` are given, so a sample does not
depend on the batch it is in.
"""
import math

import torch

__all__ = ['DiffusionSchedule', 'randn_like_per_sample', 'SAMPLERS', 'VARIANCES', 'OBJECTIVES', 'sampler_for',
           'continuous_noise_levels', 'q_sample_continuous']

SAMPLERS = ('paper', 'ddim', 'regression')
VARIANCES = ('beta', 'posterior')
OBJECTIVES = ('noise', 'v', 'regression')


def sampler_for(objective, sampler=None):
    """Check that ``sampler`` fits a network trained with ``objective``; ``None`` gives the default sampler.

    Args:
        objective (str): ``'noise'``, ``'v'`` or ``'regression'``.
        sampler (str, optional): Requested sampler.

    Returns:
        str: The sampler (``'ddim'`` / ``'regression'`` by default).
    """
    if objective not in OBJECTIVES:
        raise ValueError(f'diffusion.objective must be one of {OBJECTIVES}, got {objective!r}')
    if sampler is None:
        return 'regression' if objective == 'regression' else 'ddim'
    if sampler not in SAMPLERS:
        raise ValueError(f'sampler must be one of {SAMPLERS}, got {sampler!r}')
    if (sampler == 'regression') != (objective == 'regression'):
        raise ValueError(f"sampler {sampler!r} does not fit a network trained with diffusion.objective {objective!r}: "
                         "use sampler 'regression' (prior.sampler / val.sampler) exactly for objective 'regression', "
                         "'ddim' or 'paper' for objectives 'noise' and 'v'")
    return sampler


def randn_like_per_sample(x, generators=None):
    """Standard normal noise shaped like ``x``; sample ``i`` drawn from ``generators[i]`` when given."""
    if generators is None:
        return torch.randn_like(x)
    if len(generators) != x.shape[0]:
        raise ValueError(f'{len(generators)} generators for a batch of {x.shape[0]}')
    return torch.stack([torch.randn(x.shape[1:], generator=g, dtype=x.dtype) for g in generators]).to(x.device)


class DiffusionSchedule:
    """Variance schedule with the forward process and two samplers.

    Args:
        num_steps (int): ``T`` (paper 1000).
        beta_start (float): First beta (linear schedule, 1e-4).
        beta_end (float): Last beta (linear schedule, 0.02).
        schedule (str): ``'linear'``, ``'scaled_linear'`` (linear with both ends times ``1000 / T``, for small test
            ``T``) or ``'cosine'``.
        objective (str): ``'noise'`` (eq. 6, default), ``'v'`` (velocity, see the module docstring) or
            ``'regression'`` (direct ``x0`` regression, ablation V6).
    """

    def __init__(self, num_steps=1000, beta_start=1e-4, beta_end=0.02, schedule='linear', objective='noise'):
        sampler_for(objective)
        self.objective = objective
        self.num_steps = int(num_steps)
        if self.num_steps < 1:
            raise ValueError(f'num_steps must be positive, got {num_steps}')
        if schedule == 'linear':
            betas = torch.linspace(beta_start, beta_end, self.num_steps, dtype=torch.float64)
        elif schedule == 'scaled_linear':
            scale = 1000.0 / self.num_steps
            betas = torch.linspace(beta_start * scale, min(beta_end * scale, 0.999), self.num_steps,
                                   dtype=torch.float64)
        elif schedule == 'cosine':
            s = torch.arange(self.num_steps + 1, dtype=torch.float64) / self.num_steps
            f = torch.cos((s + 0.008) / 1.008 * math.pi / 2)**2
            betas = (1 - f[1:] / f[:-1]).clamp(max=0.999)
        else:
            raise ValueError(f"schedule must be 'linear', 'scaled_linear' or 'cosine', got {schedule!r}")
        self.betas = betas
        self.alphas = 1 - betas
        self.alphas_cumprod = torch.cumprod(self.alphas, 0)

    def _at(self, values, t, x):
        return values.to(x.device)[t].to(x.dtype).reshape(-1, *([1] * (x.ndim - 1)))

    def q_sample(self, x0, t, noise):
        """Closed form (eq. 2): ``sqrt(abar_t) x0 + sqrt(1 - abar_t) noise`` for 0-based ``t`` of shape ``(B,)``."""
        abar = self._at(self.alphas_cumprod, t, x0)
        return abar.sqrt() * x0 + (1 - abar).sqrt() * noise

    def q_step(self, x_prev, t, noise):
        """One forward step (eq. 1): ``sqrt(1 - beta_t) x_{t-1} + sqrt(beta_t) noise``."""
        beta = self._at(self.betas, t, x_prev)
        return (1 - beta).sqrt() * x_prev + beta.sqrt() * noise

    def training_inputs(self, x0):
        """Network input, 0-based steps and regression target of one training step for the schedule's objective.

        Args:
            x0 (torch.Tensor): ``(B, ...)`` standardised targets.

        Returns:
            tuple: ``(x_t, t, target)``: ``'noise'``: ``q_sample(x0, t, eps)`` at uniform random ``t`` and ``eps``
            (global RNG); ``'v'``: the same ``x_t`` with target ``sqrt(abar_t) eps - sqrt(1 - abar_t) x0``;
            ``'regression'``: zeros, ``t = 0`` and ``x0``.
        """
        b = x0.shape[0]
        if self.objective == 'regression':
            return torch.zeros_like(x0), torch.zeros(b, dtype=torch.long, device=x0.device), x0
        t = torch.randint(0, self.num_steps, (b, ), device=x0.device)
        noise = torch.randn_like(x0)
        x_t = self.q_sample(x0, t, noise)
        if self.objective == 'v':
            abar = self._at(self.alphas_cumprod, t, x0)
            return x_t, t, abar.sqrt() * noise - (1 - abar).sqrt() * x0
        return x_t, t, noise

    def eps_from_output(self, out, x_t, abar):
        """The noise ``eps`` of ``x_t`` implied by a network output: ``out`` itself for objective ``'noise'``,
        ``sqrt(1 - abar) x_t + sqrt(abar) v`` for ``'v'`` (``abar``: a float or a tensor broadcastable to ``x_t``)."""
        if self.objective == 'noise':
            return out
        if self.objective == 'v':
            abar = torch.as_tensor(abar, dtype=x_t.dtype, device=x_t.device)
            return (1 - abar).sqrt() * x_t + abar.sqrt() * out
        raise ValueError(f'objective {self.objective!r} has no noise prediction (use the regression sampler)')

    def posterior_variance(self, abar, abar_prev):
        """``beta~ = (1 - abar_prev) / (1 - abar) * (1 - abar / abar_prev)`` of a (respaced) step."""
        return (1 - abar_prev) / (1 - abar) * (1 - abar / abar_prev)

    def timesteps(self, steps):
        """``steps`` increasing 0-based indices ``tau_1 < ... < tau_S = T - 1`` (uniform spacing)."""
        steps = int(steps)
        if not 1 <= steps <= self.num_steps:
            raise ValueError(f'sampling steps must be in [1, {self.num_steps}], got {steps}')
        if steps == 1:  # one step starts from pure noise, as every schedule does (linspace would give [0])
            return torch.tensor([self.num_steps - 1])
        tau = torch.linspace(0, self.num_steps - 1, steps, dtype=torch.float64).round().long()
        if steps > 1 and tau.unique().numel() != steps:
            raise ValueError(f'{steps} steps do not give distinct timesteps for T={self.num_steps}')
        return tau

    @torch.no_grad()
    def sample(self, model_fn, shape, steps=None, sampler='ddim', eta=0.0, generators=None, device='cpu',
               clip=None, x_T=None, variance='beta'):
        """Reverse process from ``x_T ~ N(0, I)``.

        Args:
            model_fn (callable): ``model_fn(x_t, t) -> eps`` (``v`` for objective ``'v'``) with ``t`` a ``(B,)``
                long tensor of 0-based steps.
            shape (tuple): ``(B, C, H, W)``.
            steps (int, optional): Number of sampling steps ``S`` (default ``T``).
            sampler (str): ``'paper'`` (eq. 4, respaced), ``'ddim'`` or ``'regression'`` (one call on zeros at
                ``t = 0``; ``steps``, ``eta``, ``generators``, ``clip``, ``x_T`` and ``variance`` are not used).
            eta (float): DDIM stochasticity.
            generators (list[torch.Generator], optional): One per sample (seeded sampling); else the global RNG.
            device: Device of ``x``.
            clip (float, optional): Clamp the predicted ``x0 = (x_t - sqrt(1 - abar) eps) / sqrt(abar)`` to
                ``[-clip, clip]`` and use the ``eps`` implied by the clamped ``x0`` (both samplers; ``None``: the
                unclamped update, for ``'paper'`` eq. 4 exactly).
            x_T (torch.Tensor, optional): Starting noise (overrides the draw).
            variance (str): Paper sampler only: ``'beta'`` (eq. 4, ``beta'``) or ``'posterior'`` (``beta~'``).

        Returns:
            torch.Tensor: The sample ``x_0``.
        """
        if sampler not in SAMPLERS:
            raise ValueError(f'sampler must be one of {SAMPLERS}, got {sampler!r}')
        if variance not in VARIANCES:
            raise ValueError(f'variance must be one of {VARIANCES}, got {variance!r}')
        sampler_for(self.objective, sampler)
        if sampler == 'regression':
            return model_fn(torch.zeros(shape, device=device), torch.zeros(shape[0], dtype=torch.long, device=device))
        tau = self.timesteps(steps or self.num_steps)
        abar_all = self.alphas_cumprod
        x = x_T if x_T is not None else randn_like_per_sample(torch.empty(shape, device=device), generators)
        b = shape[0]
        for k in range(len(tau) - 1, -1, -1):
            t = int(tau[k])
            abar = float(abar_all[t])
            abar_prev = float(abar_all[int(tau[k - 1])]) if k > 0 else 1.0
            eps = self.eps_from_output(model_fn(x, torch.full((b, ), t, dtype=torch.long, device=x.device)), x, abar)
            if sampler == 'paper':
                if clip is not None:
                    x0 = ((x - math.sqrt(1 - abar) * eps) / math.sqrt(abar)).clamp(-clip, clip)
                    eps = (x - math.sqrt(abar) * x0) / math.sqrt(1 - abar)
                alpha = abar / abar_prev
                x = (x - (1 - alpha) / math.sqrt(1 - abar) * eps) / math.sqrt(alpha)
                if k > 0:
                    var = 1 - alpha if variance == 'beta' else self.posterior_variance(abar, abar_prev)
                    x = x + math.sqrt(var) * randn_like_per_sample(x, generators)
            else:
                x0 = (x - math.sqrt(1 - abar) * eps) / math.sqrt(abar)
                if clip is not None:
                    x0 = x0.clamp(-clip, clip)
                    eps = (x - math.sqrt(abar) * x0) / math.sqrt(1 - abar)
                if k == 0:
                    x = x0
                    continue
                sigma = eta * math.sqrt((1 - abar_prev) / (1 - abar)) * math.sqrt(1 - abar / abar_prev)
                x = math.sqrt(abar_prev) * x0 + math.sqrt(max(1 - abar_prev - sigma**2, 0.0)) * eps
                if sigma > 0:
                    x = x + sigma * randn_like_per_sample(x, generators)
        return x


def continuous_noise_levels(alphas_cumprod, batch_size, per_sample_step=False, generator=None):
    """Continuous training noise levels ``gamma = sqrt(abar)`` of SR3 / WaveGrad (Chen et al. 2021).

    A 1-based step ``k`` is drawn uniformly from ``1 .. T`` (one for the whole batch, as SR3, or one per sample) and
    ``gamma`` uniformly between the levels of its two ends, ``sqrt(abar_k) <= gamma <= sqrt(abar_{k-1})``
    (``abar_0 = 1``).  The network is then conditioned on ``gamma`` itself, not on a step index (so it can be
    sampled with any schedule whose levels lie in the trained range).

    Args:
        alphas_cumprod (torch.Tensor): ``abar`` of a schedule, ``(T,)`` (e.g. ``DiffusionSchedule.alphas_cumprod``).
        batch_size (int): Number of levels.
        per_sample_step (bool): Draw ``k`` per sample (default: one ``k`` for the batch, as SR3).
        generator (torch.Generator, optional): RNG (default: the global one).

    Returns:
        tuple: ``(gamma, t)``: float32 ``(B,)`` levels and the 0-based steps ``k - 1`` (long ``(B,)``), on the CPU.
    """
    abar = torch.as_tensor(alphas_cumprod, dtype=torch.float64).cpu()
    levels = torch.cat([torch.ones(1, dtype=torch.float64), abar.sqrt()])
    draws = batch_size if per_sample_step else 1
    k = torch.randint(1, abar.numel() + 1, (draws, ), generator=generator).expand(batch_size)
    u = torch.rand(batch_size, generator=generator, dtype=torch.float64)
    gamma = levels[k] + (levels[k - 1] - levels[k]) * u
    return gamma.float(), (k - 1).clone()


def q_sample_continuous(x0, gamma, noise):
    """Forward process at a continuous level: ``gamma x0 + sqrt(1 - gamma^2) noise`` (``gamma`` ``(B,)``).

    With ``gamma = sqrt(abar_t)`` this is :meth:`DiffusionSchedule.q_sample` at step ``t``.
    """
    gamma = gamma.to(x0).reshape(-1, *([1] * (x0.ndim - 1)))
    return gamma * x0 + (1 - gamma**2).clamp(min=0).sqrt() * noise
