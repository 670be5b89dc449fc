"""Noise level against signal level of real dark photos, and the Poisson-Gaussian model fitted to it.

The noise of an 8-bit photo is measured blind, from the photo alone (no flat-field frames exist here):

1. The image (one channel at a time, values in ``[0, 1]``) is split into ``block x block`` tiles.  Each tile gives
   its mean ``mu`` (the signal level) and the standard deviation of its high-pass residual
   ``x - mean(4 neighbours)``, divided by ``sqrt(1.25)`` so that white noise of std ``s`` measures ``s``.
2. Scene texture only adds to the residual, so the noise at a signal level is the LOW end of the tiles at that
   level: tiles are binned by ``mu`` and each bin keeps its ``quantile`` (default 0.2) of the residual variance
   (the robust lower envelope of Foi et al., "Practical Poissonian-Gaussian noise modeling", 2008, in spirit).
3. ``var = a * mu + b`` is fitted by least squares to the bins with enough tiles: ``a`` is the shot-noise gain in
   the units of :class:`~lowlight3d.data.lowlight_degradation.LowLightDegradation` (``a = 1 / shot_k`` with its
   noise in ``'srgb'`` space) and ``sqrt(b)`` its read-noise sigma.  ``b`` can come out negative where 8-bit
   quantisation and clipping at 0 hide the darkest noise; it is then clamped to 0.

``python scripts/calibrate_noise.py`` runs this on the real dark frames of the shared data and on our synthetic
degradation, and plots both (``docs/figures/noise_calibration.png``, numbers in ``docs/data_protocol.md``).
"""
import numpy as np

__all__ = ['block_noise_stats', 'noise_curve', 'fit_poisson_gaussian']


def block_noise_stats(img, block=8):
    """Signal level and residual variance of every tile of every channel of an image.

    Args:
        img (np.ndarray): ``H x W`` or ``H x W x C`` image, values in ``[0, 1]``.
        block (int): Tile side in pixels.

    Returns:
        tuple[np.ndarray, np.ndarray]: ``(mu, var)`` float64 arrays, one entry per tile and channel.
    """
    img = np.asarray(img, dtype=np.float64)
    if img.ndim == 2:
        img = img[:, :, None]
    if img.ndim != 3 or min(img.shape[:2]) < block + 2:
        raise ValueError(f'block_noise_stats needs an H x W (x C) image of at least {block + 2} px, got {img.shape}')
    mus, vars_ = [], []
    for c in range(img.shape[2]):
        x = img[:, :, c]
        core = x[1:-1, 1:-1]
        neigh = (x[:-2, 1:-1] + x[2:, 1:-1] + x[1:-1, :-2] + x[1:-1, 2:]) / 4.0
        res = (core - neigh) / np.sqrt(1.25)
        h, w = (core.shape[0] // block) * block, (core.shape[1] // block) * block
        tiles = core[:h, :w].reshape(h // block, block, w // block, block)
        rtiles = res[:h, :w].reshape(h // block, block, w // block, block)
        mus.append(tiles.mean(axis=(1, 3)).ravel())
        vars_.append(rtiles.var(axis=(1, 3)).ravel())
    return np.concatenate(mus), np.concatenate(vars_)


def noise_curve(mu, var, edges=None, quantile=0.2, min_tiles=30):
    """The lower envelope of residual variance against signal level.

    Args:
        mu (np.ndarray): Tile signal levels (:func:`block_noise_stats`).
        var (np.ndarray): Tile residual variances.
        edges (np.ndarray, optional): Bin edges of ``mu``; default 24 log-spaced bins from 1/255 to 1.
        quantile (float): The kept quantile of each bin's variances.
        min_tiles (int): Bins with fewer tiles are dropped.

    Returns:
        tuple[np.ndarray, np.ndarray, np.ndarray]: ``(level, variance, tiles)`` of the kept bins: the bin's median
        ``mu``, its ``quantile`` of ``var`` and its tile count.
    """
    if edges is None:
        edges = np.geomspace(1.0 / 255, 1.0, 25)
    mu, var = np.asarray(mu), np.asarray(var)
    level, variance, count = [], [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (mu >= lo) & (mu < hi)
        if sel.sum() >= min_tiles:
            level.append(float(np.median(mu[sel])))
            variance.append(float(np.quantile(var[sel], quantile)))
            count.append(int(sel.sum()))
    return np.array(level), np.array(variance), np.array(count)


def fit_poisson_gaussian(level, variance, weights=None):
    """Least-squares fit of ``variance = a * level + b`` (``b`` clamped to 0 when negative, ``a`` then refitted).

    Args:
        level (np.ndarray): Signal levels.
        variance (np.ndarray): Noise variances at those levels.
        weights (np.ndarray, optional): Per-point weights (e.g. tile counts).

    Returns:
        dict: ``a`` (shot gain; ``shot_k = 1 / a``), ``b`` (read variance), ``read_sigma`` (``sqrt(b)``), ``shot_k``
        (``inf`` for ``a <= 0``) and ``points`` (number of levels used).
    """
    level, variance = np.asarray(level, dtype=np.float64), np.asarray(variance, dtype=np.float64)
    if level.size < 2:
        raise ValueError(f'fit_poisson_gaussian needs at least 2 signal levels, got {level.size}')
    w = np.ones_like(level) if weights is None else np.sqrt(np.asarray(weights, dtype=np.float64))
    design = np.stack([level, np.ones_like(level)], axis=1) * w[:, None]
    a, b = np.linalg.lstsq(design, variance * w, rcond=None)[0]
    if b < 0:
        b = 0.0
        a = float(np.sum(w * w * level * variance) / np.sum(w * w * level * level))
    a = max(float(a), 0.0)
    return {'a': a, 'b': float(b), 'read_sigma': float(np.sqrt(b)), 'shot_k': (1.0 / a) if a > 0 else float('inf'),
            'points': int(level.size)}
