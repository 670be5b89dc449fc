"""Blind noise measurement and the Poisson-Gaussian fit (lowlight3d.data.noise_calibration), on images whose noise
is known."""
import numpy as np
import pytest

from lowlight3d.data.noise_calibration import block_noise_stats, fit_poisson_gaussian, noise_curve


def test_flat_image_with_white_noise_measures_its_sigma():
    rng = np.random.default_rng(0)
    sigma = 0.01
    img = 0.3 + sigma * rng.standard_normal((128, 128))
    mu, var = block_noise_stats(img, block=8)
    assert mu.shape == var.shape == (15 * 15, )
    np.testing.assert_allclose(mu, 0.3, atol=0.005)
    # the residual is scaled so that white noise of std s measures s (mean over tiles within 5 %)
    assert abs(np.sqrt(var.mean()) / sigma - 1) < 0.05


def test_fit_recovers_poisson_gaussian_parameters_of_a_ramp():
    """A smooth ramp with var = a * mu + b noise: the lower-envelope curve (median quantile) and the fit give back a
    and b (texture-free, so the 0.5 quantile is the noise itself, minus chi-square skew)."""
    rng = np.random.default_rng(1)
    a, b = 4e-4, 2e-5
    ramp = np.tile(np.linspace(0.01, 0.9, 512)[None, :], (256, 1))
    img = ramp + np.sqrt(a * ramp + b) * rng.standard_normal(ramp.shape)
    mu, var = block_noise_stats(img, block=8)
    level, variance, count = noise_curve(mu, var, quantile=0.5, min_tiles=10)
    fit = fit_poisson_gaussian(level, variance, count)
    assert fit['a'] == pytest.approx(a, rel=0.15)
    assert fit['read_sigma'] == pytest.approx(np.sqrt(b), rel=0.35)
    assert fit['shot_k'] == pytest.approx(1 / fit['a'])


def test_negative_read_variance_is_clamped_and_slope_refitted():
    level = np.array([0.1, 0.2, 0.4])
    fit = fit_poisson_gaussian(level, 1e-3 * level - 1e-5)
    assert fit['b'] == 0.0 and fit['a'] > 0
    with pytest.raises(ValueError, match='at least 2'):
        fit_poisson_gaussian([0.1], [1e-4])
    with pytest.raises(ValueError, match='at least'):
        block_noise_stats(np.zeros((5, 5)))
