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


def test_set_report_holds_the_dynamic_range_of_the_lit_images():
    """The calibration report gives, over the images of mean luma >= 0.02 only, the median / 90th percentile of
    their stops and their mean highlight share (a dark, flat image is left out)."""
    from lowlight3d.data.lowlight_degradation import linear_to_srgb
    from lowlight3d.pipeline.noise_calibration_report import set_report
    rng = np.random.default_rng(0)
    lit = np.full((48, 48), 0.01, np.float32)
    lit[8:40, 8:12] = 0.64  # a lit stripe in the centre: 4 of the 32 centre columns
    lit = linear_to_srgb(np.clip(lit + rng.normal(0, 1e-4, lit.shape), 0, 1))
    dark = np.full((48, 48), 0.005, np.float32) + rng.normal(0, 1e-3, (48, 48)).astype(np.float32)
    rep = set_report([np.repeat(lit[:, :, None], 3, 2), np.repeat(np.clip(dark, 0, 1)[:, :, None], 3, 2)])
    dr = rep['dynamic_range']
    assert dr['images'] == 1
    assert dr['stops_median'] == pytest.approx(np.log2(0.6401 / 0.0101), abs=0.05)
    assert dr['highlights'] == pytest.approx(4 / 32, abs=1e-6)
