"""On-the-fly low-light synthesis from a normal-light face image.

**This is our proposal, not FRR-Net's recipe.**  The face paper synthesises its paired FFHQ set with the degradation
of FRR-Net (Pouyanfar et al., CVPRW 2023), whose parameters are unknown.  :class:`LowLightDegradation` implements
the documented stand-in pipeline of ``docs/baselines.md`` section 10, with the exposure, lighting, colour and blur
steps done in **linear light** (sRGB decoded with the exact IEC 61966-2-1 curve, re-encoded at the end):

1. ``lighting`` (p = 0.5): a smooth gain map, either a linear ramp in a random direction (``'ramp'``) or the
   Lambertian shading of a sphere lit from a random direction (``'lambert'``, a first-order spherical-harmonic
   light), spanning ``[g_min, 1]`` with ``g_min ~ U(gain_range)``.
2. ``exposure``: ``y = s * x ** gamma`` (in linear light), ``s ~ U(scale_range)``, ``gamma ~ U(gamma_range)``.
   Then, if ``mean_range`` is set, the linear intensities are rescaled so that the mean sRGB brightness (the mean
   of R, G and B in ``[0, 1]``, measured after the lighting, exposure and colour steps) lies in ``mean_range``
   (``[0.02, 0.2]``; the section-10 target and the paper's "mean brightness < 0.2" rule for real low-light frames).
   ``mean_sampling`` says how: ``'clip'`` (default) moves only a mean outside the range to its nearer end;
   ``'log_uniform'`` draws a target mean from a log-uniform distribution over the range for every image, so that
   each decade of darkness gets the same share (the real-face options: ``[0.002, 0.2]``, as dark as the darkest
   real Yale B frames; ``docs/data_protocol.md`` "Darkness and noise of real photos").
3. ``color``: white-balance cast, per-channel gains ``~ U(gain_range)`` in linear light.
4. ``blur``: Gaussian kernel, isotropic with probability ``isotropic_prob`` else anisotropic with a random
   rotation; ``sigma ~ U(sigma_range)`` per axis (GFPGAN's family, milder sigma, in linear light).
5. ``noise``: Poisson shot noise ``Poisson(y * k) / k`` with ``k ~ U(shot_k_range)``, plus Gaussian read noise
   ``sigma ~ U(read_sigma_range)``.  Applied in ``space`` ``'srgb'`` by default, i.e. on the darkened display
   values, which is the domain the section-10 ranges are written in; ``'linear'`` applies them before the sRGB
   encoding (physically closer, but then the same ranges are far noisier in the shadows).
6. ``jpeg``: quality ``~ U{quality_range}`` (integer, OpenCV).  Without JPEG the output is rounded to 8-bit
   levels when ``quantize`` is true, as a real low-light photo would be.

Every step draws from its own random stream (seeded from the generator passed in), so switching one step off or
changing its range does not change the parameters drawn by the others.  No global random state is used.
"""
import copy
import json

import cv2
import numpy as np

__all__ = ['DEFAULT_DEGRADATION', 'DEGRADATION_PRESETS', 'LIGHTING_FALLOFFS', 'MEAN_SAMPLINGS', 'LowLightDegradation',
           'srgb_to_linear', 'linear_to_srgb', 'mean_brightness']

#: The default ranges (our stand-in for FRR-Net; see the module docstring).  ``None`` for a block disables it.
DEFAULT_DEGRADATION = {
    'lighting': {
        'prob': 0.5,
        'kinds': ['ramp', 'lambert'],
        'gain_range': [0.3, 1.0],
        'falloff': 'linear',
        'max_light_angle': 80.0,
    },
    'exposure': {
        'prob': 1.0,
        'scale_range': [0.1, 0.5],
        'gamma_range': [1.5, 3.0],
        'mean_range': [0.02, 0.2],
        'mean_sampling': 'clip',
    },
    'color': {
        'prob': 1.0,
        'gain_range': [0.8, 1.2],
    },
    'blur': {
        'prob': 1.0,
        'kernel_size': 21,
        'sigma_range': [0.1, 3.0],
        'isotropic_prob': 0.5,
    },
    'noise': {
        'prob': 1.0,
        'space': 'srgb',
        'shot_k_range': [50.0, 500.0],
        'read_sigma_range': [1.0 / 255, 10.0 / 255],
    },
    'jpeg': {
        'prob': 1.0,
        'quality_range': [60, 100],
    },
}

#: How the lighting gain map goes from its darkest value to 1 (``lighting.falloff``; :meth:`_lighting_map`).
LIGHTING_FALLOFFS = ('linear', 'log')

#: Ways of bringing the mean brightness into ``exposure.mean_range`` (module docstring, step 2).
MEAN_SAMPLINGS = ('clip', 'log_uniform')

#: Named degradation settings (``degradation: <name>`` or ``degradation: {preset: <name>, <step>: ...}`` in a
#: dataset option).  ``real_dark``: the darkness and noise of the real dark photos of the shared data, measured by
#: ``scripts/calibrate_noise.py`` (``docs/data_protocol.md``, "Darkness and noise of real photos"): mean brightness
#: log-uniform in ``[0.002, 0.2]`` (the darkest real Yale B frames are at 0.002), shot noise ``k`` in
#: ``[1000, 10000]`` and read noise 0.3-2 levels (real dark frames: 0.35-1.3 levels of noise at low signal, where
#: the default ranges give 1.1-3), JPEG on half of the images.  ``real_dark_hard_light`` [ours]: ``real_dark`` whose
#: lighting step gives the dynamic range of real side and back light: on 70 % of the faces (none on the others) a
#: Lambertian light up to 100 degrees off the camera axis (Yale B's light from 110 degrees azimuth and 65 degrees
#: elevation is 98 degrees off it) whose gain falls in stops (``falloff: log``) to 2^-7.6..2^-4.3 on the shadow
#: side.  Measured (``docs/data_protocol.md``, "Dynamic range of real dark faces"): the lit dark Yale B frames of
#: the training subjects hold their brightest 2 % of face pixels 6.9 stops (median; 90th percentile 8.3) above the
#: median pixel, ``real_dark`` inputs 1.7 (3.1), ``real_dark_hard_light`` inputs 3.7 (6.2).
DEGRADATION_PRESETS = {
    'real_dark': {
        'exposure': {'mean_range': [0.002, 0.2], 'mean_sampling': 'log_uniform'},
        'noise': {'shot_k_range': [1000.0, 10000.0], 'read_sigma_range': [0.3 / 255, 2.0 / 255]},
        'jpeg': {'prob': 0.5, 'quality_range': [70, 100]},
    },
    'real_dark_hard_light': {
        'lighting': {'prob': 0.7, 'kinds': ['lambert'], 'gain_range': [0.005, 0.05], 'falloff': 'log',
                     'max_light_angle': 100.0},
        'exposure': {'mean_range': [0.002, 0.2], 'mean_sampling': 'log_uniform'},
        'noise': {'shot_k_range': [1000.0, 10000.0], 'read_sigma_range': [0.3 / 255, 2.0 / 255]},
        'jpeg': {'prob': 0.5, 'quality_range': [70, 100]},
    },
}

_STEPS = ('lighting', 'exposure', 'color', 'blur', 'noise', 'jpeg')
_DEFAULT = object()


def srgb_to_linear(img):
    """Decode sRGB values in ``[0, 1]`` to linear light (IEC 61966-2-1).

    Args:
        img (np.ndarray): sRGB values, any shape.

    Returns:
        np.ndarray: float32 linear values in ``[0, 1]``.
    """
    img = np.clip(np.asarray(img, dtype=np.float32), 0.0, 1.0)
    return np.where(img <= 0.04045, img / 12.92, ((img + 0.055) / 1.055)**2.4).astype(np.float32)


def linear_to_srgb(img):
    """Encode linear light in ``[0, 1]`` to sRGB (IEC 61966-2-1).

    Args:
        img (np.ndarray): Linear values, any shape (clipped to ``[0, 1]``).

    Returns:
        np.ndarray: float32 sRGB values in ``[0, 1]``.
    """
    img = np.clip(np.asarray(img, dtype=np.float32), 0.0, 1.0)
    return np.where(img <= 0.0031308, img * 12.92, 1.055 * np.power(img, 1.0 / 2.4) - 0.055).astype(np.float32)


def mean_brightness(img_srgb):
    """Mean brightness of an sRGB image: the mean of all R, G, B values in ``[0, 1]``.

    Args:
        img_srgb (np.ndarray): ``H x W x 3`` sRGB image in ``[0, 1]``.

    Returns:
        float: The mean.
    """
    return float(np.mean(img_srgb, dtype=np.float64))


def _check_range(block, key, lo_bound=None, hi_bound=None):
    """Validate a ``[lo, hi]`` pair in ``block[key]`` and return it as floats."""
    value = block[key]
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ValueError(f"degradation option '{key}' must be a [low, high] pair, got {value!r}")
    lo, hi = float(value[0]), float(value[1])
    if lo > hi:
        raise ValueError(f"degradation option '{key}': low {lo} > high {hi}")
    if (lo_bound is not None and lo < lo_bound) or (hi_bound is not None and hi > hi_bound):
        raise ValueError(f"degradation option '{key}' = {value!r} is outside [{lo_bound}, {hi_bound}]")
    return [lo, hi]


def _uniform(rng, pair):
    """One float from ``U(pair[0], pair[1])`` (the low value itself when the range is empty)."""
    lo, hi = pair
    return float(lo) if hi <= lo else float(rng.uniform(lo, hi))


def _gaussian_kernel(size, sigma_x, sigma_y, theta):
    """A normalised, possibly rotated anisotropic Gaussian kernel of odd ``size``."""
    radius = size // 2
    ax = np.arange(-radius, radius + 1, dtype=np.float64)
    xx, yy = np.meshgrid(ax, ax)
    cos_t, sin_t = np.cos(theta), np.sin(theta)
    rot = np.array([[cos_t, -sin_t], [sin_t, cos_t]])
    cov = rot @ np.diag([sigma_x**2, sigma_y**2]) @ rot.T
    inv = np.linalg.inv(cov)
    quad = inv[0, 0] * xx * xx + (inv[0, 1] + inv[1, 0]) * xx * yy + inv[1, 1] * yy * yy
    kernel = np.exp(-0.5 * quad)
    return (kernel / kernel.sum()).astype(np.float32)


class LowLightDegradation:
    """Synthesise a low-light image from a normal-light one (our stand-in for FRR-Net's unknown recipe).

    The steps, their order and the default ranges are described in the module docstring and in
    :data:`DEFAULT_DEGRADATION`.  Each keyword argument is one step's option block: leave it out to use the
    default, give a dict to override some of its keys (the others keep their defaults), or ``None`` to disable the
    step (``prob: 0`` also disables it).

    Args:
        lighting (dict | None): ``prob``, ``kinds`` (subset of ``['ramp', 'lambert']``), ``gain_range``,
            ``falloff`` (``'linear'`` | ``'log'``), ``max_light_angle`` (degrees, ``'lambert'`` only).
        exposure (dict | None): ``prob``, ``scale_range``, ``gamma_range``, ``mean_range`` (``None`` = no
            brightness correction), ``mean_sampling`` (``'clip'`` | ``'log_uniform'``).
        color (dict | None): ``prob``, ``gain_range``.
        blur (dict | None): ``prob``, ``kernel_size`` (odd), ``sigma_range``, ``isotropic_prob``.
        noise (dict | None): ``prob``, ``space`` (``'srgb'`` | ``'linear'``), ``shot_k_range`` (``None`` = no
            shot noise), ``read_sigma_range`` (``None`` = no read noise).
        jpeg (dict | None): ``prob``, ``quality_range`` (integers in 1..100).
        quantize (bool): Round the result to 8-bit levels when no JPEG step ran. Default True.

    Example:
        >>> deg = LowLightDegradation(noise={'space': 'linear'}, jpeg=None)
        >>> lq, params = deg(gt_rgb_float01, np.random.default_rng(0))
    """

    def __init__(self,
                 lighting=_DEFAULT,
                 exposure=_DEFAULT,
                 color=_DEFAULT,
                 blur=_DEFAULT,
                 noise=_DEFAULT,
                 jpeg=_DEFAULT,
                 quantize=True):
        given = dict(lighting=lighting, exposure=exposure, color=color, blur=blur, noise=noise, jpeg=jpeg)
        self.cfg = {}
        for step in _STEPS:
            self.cfg[step] = self._resolve_block(step, given[step])
        self.quantize = bool(quantize)

    @classmethod
    def from_opt(cls, opt):
        """Build from a dataset option's ``degradation`` block.

        Args:
            opt (dict | str | None): Block with any of the step names and ``quantize``; ``None`` means every
                default; a name of :data:`DEGRADATION_PRESETS`, or a block with ``preset: <name>`` whose step
                blocks override the preset's.  Unknown keys raise ``ValueError``.

        Returns:
            LowLightDegradation: The pipeline.
        """
        if opt is None:
            return cls()
        if isinstance(opt, str):
            opt = {'preset': opt}
        if not isinstance(opt, dict):
            raise ValueError(f"'degradation' must be a mapping of steps or a preset name, got {opt!r}")
        unknown = set(opt) - set(_STEPS) - {'quantize', 'type', 'preset'}
        if unknown:
            raise ValueError(f'Unknown degradation step(s) {sorted(unknown)}; known: {list(_STEPS)}, quantize and '
                             'preset')
        kwargs = {k: v for k, v in opt.items() if k not in ('type', 'preset')}
        if opt.get('preset') is not None:
            if opt['preset'] not in DEGRADATION_PRESETS:
                raise ValueError(f"Unknown degradation preset {opt['preset']!r}; known: {sorted(DEGRADATION_PRESETS)}")
            merged = copy.deepcopy(DEGRADATION_PRESETS[opt['preset']])
            for step, block in kwargs.items():
                if isinstance(block, dict) and isinstance(merged.get(step), dict):
                    merged[step].update(block)
                else:
                    merged[step] = block
            kwargs = merged
        return cls(**kwargs)

    @staticmethod
    def _resolve_block(step, value):
        """Merge a user block over the defaults of ``step`` and validate it; ``None`` stays ``None``."""
        if value is None:
            return None
        block = copy.deepcopy(DEFAULT_DEGRADATION[step])
        if value is not _DEFAULT:
            if not isinstance(value, dict):
                raise ValueError(f"degradation step '{step}' must be a mapping or null, got {value!r}")
            unknown = set(value) - set(block)
            if unknown:
                raise ValueError(f"Unknown option(s) {sorted(unknown)} in degradation step '{step}'; "
                                 f'known: {sorted(block)}')
            block.update(copy.deepcopy(value))
        prob = float(block['prob'])
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"degradation '{step}.prob' must be in [0, 1], got {block['prob']!r}")
        block['prob'] = prob
        if step == 'lighting':
            kinds = list(block['kinds'])
            if not kinds or set(kinds) - {'ramp', 'lambert'}:
                raise ValueError(f"degradation 'lighting.kinds' must be a non-empty subset of ['ramp', 'lambert'], "
                                 f'got {block["kinds"]!r}')
            block['kinds'] = kinds
            block['gain_range'] = _check_range(block, 'gain_range', 0.0, 1.0)
            if block['falloff'] not in LIGHTING_FALLOFFS:
                raise ValueError(f"degradation 'lighting.falloff' must be one of {list(LIGHTING_FALLOFFS)}, got "
                                 f"{block['falloff']!r}")
            block['max_light_angle'] = float(block['max_light_angle'])
            if not 0.0 <= block['max_light_angle'] < 180.0:
                raise ValueError("degradation 'lighting.max_light_angle' must be in [0, 180) degrees from the "
                                 f"camera axis, got {block['max_light_angle']!r}")
            if block['falloff'] == 'log' and block['gain_range'][0] <= 0.0:
                raise ValueError("degradation 'lighting.gain_range' must start above 0 with falloff 'log' (the "
                                 f"darkest gain is reached in stops), got {block['gain_range']!r}")
        elif step == 'exposure':
            block['scale_range'] = _check_range(block, 'scale_range', 0.0)
            block['gamma_range'] = _check_range(block, 'gamma_range', 1e-3)
            if block['mean_range'] is not None:
                block['mean_range'] = _check_range(block, 'mean_range', 1e-4, 1.0)
            if block['mean_sampling'] not in MEAN_SAMPLINGS:
                raise ValueError(f"degradation 'exposure.mean_sampling' must be one of {list(MEAN_SAMPLINGS)}, got "
                                 f"{block['mean_sampling']!r}")
        elif step == 'color':
            block['gain_range'] = _check_range(block, 'gain_range', 0.0)
        elif step == 'blur':
            size = int(block['kernel_size'])
            if size < 3 or size % 2 == 0:
                raise ValueError(f"degradation 'blur.kernel_size' must be odd and >= 3, got {block['kernel_size']!r}")
            block['kernel_size'] = size
            block['sigma_range'] = _check_range(block, 'sigma_range', 1e-3)
            block['isotropic_prob'] = float(block['isotropic_prob'])
        elif step == 'noise':
            if block['space'] not in ('srgb', 'linear'):
                raise ValueError(f"degradation 'noise.space' must be 'srgb' or 'linear', got {block['space']!r}")
            if block['shot_k_range'] is not None:
                block['shot_k_range'] = _check_range(block, 'shot_k_range', 1e-6)
            if block['read_sigma_range'] is not None:
                block['read_sigma_range'] = _check_range(block, 'read_sigma_range', 0.0)
        elif step == 'jpeg':
            lo, hi = _check_range(block, 'quality_range', 1, 100)
            block['quality_range'] = [int(round(lo)), int(round(hi))]
        return block

    @property
    def config(self):
        """dict: The resolved options of every step (``None`` = disabled) plus ``quantize``; JSON-serialisable."""
        out = copy.deepcopy(self.cfg)
        out['quantize'] = self.quantize
        return out

    def __repr__(self):
        return f'{type(self).__name__}({json.dumps(self.config, sort_keys=True)})'

    # ------------------------------------------------------------------ steps
    @staticmethod
    def _lighting_map(h, w, kind, g_min, rng, falloff='linear', max_light_angle=80.0):
        """A smooth gain map in ``[g_min, 1]`` and the parameters that made it.

        ``falloff`` ``'linear'``: the gain is linear in the shading ``t`` in ``[0, 1]`` (most of the map stays
        within a stop of 1); ``'log'``: ``g_min ** (1 - t)``, the stops spread evenly from the lit to the dark side,
        as under a hard side or back light.  ``max_light_angle``: the largest angle (degrees) between the
        ``'lambert'`` light and the camera axis; above 90 the light comes from behind the face's side and the
        terminator crosses the face.
        """
        scale = float(max(h, w))
        ys = (np.arange(h, dtype=np.float32) - (h - 1) / 2.0) / (scale / 2.0)
        xs = (np.arange(w, dtype=np.float32) - (w - 1) / 2.0) / (scale / 2.0)
        xx, yy = np.meshgrid(xs, ys)
        if kind == 'ramp':
            angle = float(rng.uniform(0.0, 2.0 * np.pi))
            t = xx * np.cos(angle) + yy * np.sin(angle)
            params = {'kind': 'ramp', 'angle': angle}
        else:
            azimuth = float(rng.uniform(0.0, 2.0 * np.pi))
            polar = float(rng.uniform(0.0, np.deg2rad(max_light_angle)))
            light = np.array([np.sin(polar) * np.cos(azimuth), np.sin(polar) * np.sin(azimuth), np.cos(polar)])
            r2 = xx * xx + yy * yy
            norm = np.sqrt(np.maximum(r2, 1.0))  # outside the unit disk: the silhouette normal
            nx, ny = xx / norm, yy / norm
            nz = np.sqrt(np.clip(1.0 - nx * nx - ny * ny, 0.0, 1.0))
            t = np.maximum(nx * light[0] + ny * light[1] + nz * light[2], 0.0)
            params = {'kind': 'lambert', 'azimuth': azimuth, 'polar': polar}
        t_min, t_max = float(t.min()), float(t.max())
        t = (t - t_min) / (t_max - t_min) if t_max > t_min else np.ones_like(t)
        if falloff == 'log':
            gain = np.power(np.float32(g_min), 1.0 - t).astype(np.float32)
        else:
            gain = (g_min + (1.0 - g_min) * t).astype(np.float32)
        params['g_min'] = float(g_min)
        return gain, params

    @staticmethod
    def _brightness_factor(lin, target_lo, target_hi, target=None):
        """Multiplier bringing the mean sRGB brightness of ``lin`` to ``target``, or without one into
        ``[target_lo, target_hi]`` (1 if inside)."""
        sample = lin[::2, ::2] if lin.shape[0] >= 64 and lin.shape[1] >= 64 else lin
        mean = mean_brightness(linear_to_srgb(sample))
        if mean <= 0.0 or (target is None and target_lo <= mean <= target_hi):
            return 1.0, mean
        target = min(max(mean, target_lo), target_hi) if target is None else target

        def mean_at(log_f):
            return mean_brightness(linear_to_srgb(sample * np.float32(np.exp(log_f))))

        # The mean brightness rises monotonically with the factor; near black sRGB is linear and higher up close to
        # a 1/2.2 power, so no fixed exponent converges everywhere: bracket in log space, then bisect.
        lo_f, hi_f = (0.0, 0.0)
        step = 1.0 if mean < target else -1.0
        while True:
            nxt = (hi_f if step > 0 else lo_f) + step
            if abs(nxt) > 40.0:
                break
            if step > 0:
                lo_f, hi_f = hi_f, nxt
                if mean_at(hi_f) >= target:
                    break
            else:
                hi_f, lo_f = lo_f, nxt
                if mean_at(lo_f) <= target:
                    break
        for _ in range(40):
            mid = 0.5 * (lo_f + hi_f)
            current = mean_at(mid)
            if abs(current - target) <= 1e-4 * target:
                lo_f = hi_f = mid
                break
            if current < target:
                lo_f = mid
            else:
                hi_f = mid
        return float(np.exp(0.5 * (lo_f + hi_f))), mean

    def __call__(self, img, rng):
        """Degrade one image.

        Args:
            img (np.ndarray): Normal-light ``H x W x 3`` RGB float image in ``[0, 1]`` (sRGB).
            rng (np.random.Generator | int): Source of all randomness (an int is used as a seed).

        Returns:
            tuple[np.ndarray, dict]: The low-light image (float32 ``H x W x 3`` RGB in ``[0, 1]``) and the exact
            parameters drawn, one entry per step (``None`` when the step did not run); JSON-serialisable.
        """
        if not isinstance(rng, np.random.Generator):
            rng = np.random.default_rng(rng)
        img = np.asarray(img, dtype=np.float32)
        if img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f'LowLightDegradation expects an H x W x 3 RGB image, got shape {img.shape}')
        # one independent stream per step, drawn in a fixed order
        step_rngs = {step: np.random.default_rng(int(s)) for step, s in zip(_STEPS, rng.integers(0, 2**63, 6))}
        params = {step: None for step in _STEPS}
        h, w = img.shape[:2]
        lin = srgb_to_linear(img)

        cfg = self.cfg['lighting']
        r = step_rngs['lighting']
        if cfg is not None and r.random() < cfg['prob']:
            kind = cfg['kinds'][int(r.integers(len(cfg['kinds'])))]
            gain, params['lighting'] = self._lighting_map(h, w, kind, _uniform(r, cfg['gain_range']), r,
                                                          cfg['falloff'], cfg['max_light_angle'])
            lin = lin * gain[:, :, None]

        cfg = self.cfg['exposure']
        r = step_rngs['exposure']
        exposure_on = cfg is not None and r.random() < cfg['prob']
        target_mean = None
        if exposure_on:
            scale, gamma = _uniform(r, cfg['scale_range']), _uniform(r, cfg['gamma_range'])
            lin = scale * np.power(lin, gamma)
            params['exposure'] = {'scale': scale, 'gamma': gamma}
            if cfg['mean_range'] is not None and cfg['mean_sampling'] == 'log_uniform':
                target_mean = float(np.exp(_uniform(r, np.log(cfg['mean_range']))))
                params['exposure']['target_mean'] = target_mean

        cfg = self.cfg['color']
        r = step_rngs['color']
        if cfg is not None and r.random() < cfg['prob']:
            gains = [_uniform(r, cfg['gain_range']) for _ in range(3)]
            lin = lin * np.asarray(gains, dtype=np.float32)[None, None, :]
            params['color'] = {'gains_rgb': gains}

        if exposure_on and self.cfg['exposure']['mean_range'] is not None:
            lo, hi = self.cfg['exposure']['mean_range']
            factor, mean_before = self._brightness_factor(lin, lo, hi, target_mean)
            lin = lin * factor
            params['exposure'].update({'mean_before_correction': mean_before, 'correction': factor})
        lin = np.clip(lin, 0.0, 1.0).astype(np.float32)

        cfg = self.cfg['blur']
        r = step_rngs['blur']
        if cfg is not None and r.random() < cfg['prob']:
            if r.random() < cfg['isotropic_prob']:
                sigma_x = sigma_y = _uniform(r, cfg['sigma_range'])
                theta = 0.0
            else:
                sigma_x, sigma_y = _uniform(r, cfg['sigma_range']), _uniform(r, cfg['sigma_range'])
                theta = float(r.uniform(-np.pi, np.pi))
            kernel = _gaussian_kernel(cfg['kernel_size'], sigma_x, sigma_y, theta)
            lin = cv2.filter2D(lin, -1, kernel, borderType=cv2.BORDER_REFLECT_101)
            params['blur'] = {'sigma_x': sigma_x, 'sigma_y': sigma_y, 'theta': theta, 'kernel_size': cfg['kernel_size']}

        cfg = self.cfg['noise']
        r = step_rngs['noise']
        noise_on = cfg is not None and r.random() < cfg['prob']
        if noise_on:
            k = _uniform(r, cfg['shot_k_range']) if cfg['shot_k_range'] is not None else None
            sigma = _uniform(r, cfg['read_sigma_range']) if cfg['read_sigma_range'] is not None else None
            params['noise'] = {'space': cfg['space'], 'shot_k': k, 'read_sigma': sigma}
        if noise_on and cfg['space'] == 'linear':
            lin = self._add_noise(lin, params['noise'], r)
        out = linear_to_srgb(lin)
        if noise_on and cfg['space'] == 'srgb':
            out = self._add_noise(out, params['noise'], r)

        cfg = self.cfg['jpeg']
        r = step_rngs['jpeg']
        if cfg is not None and r.random() < cfg['prob']:
            quality = int(r.integers(cfg['quality_range'][0], cfg['quality_range'][1] + 1))
            out_u8 = np.round(np.clip(out, 0.0, 1.0) * 255.0).astype(np.uint8)
            ok, buf = cv2.imencode('.jpg', out_u8[:, :, ::-1], [int(cv2.IMWRITE_JPEG_QUALITY), quality])
            if not ok:
                raise RuntimeError(f'JPEG encoding failed (quality {quality})')
            out = cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1].astype(np.float32) / 255.0
            params['jpeg'] = {'quality': quality}
        elif self.quantize:
            out = np.round(np.clip(out, 0.0, 1.0) * 255.0) / 255.0
        return np.ascontiguousarray(np.clip(out, 0.0, 1.0), dtype=np.float32), params

    @staticmethod
    def _add_noise(img, noise_params, rng):
        """Poisson shot noise then Gaussian read noise, both from ``rng``; result clipped to ``[0, 1]``."""
        k, sigma = noise_params['shot_k'], noise_params['read_sigma']
        out = img
        if k is not None:
            out = (rng.poisson(np.clip(out, 0.0, 1.0).astype(np.float64) * k) / k).astype(np.float32)
        if sigma is not None and sigma > 0:
            out = out + rng.standard_normal(out.shape, dtype=np.float32) * np.float32(sigma)
        return np.clip(out, 0.0, 1.0).astype(np.float32)
