"""``niqe`` and ``brisque`` equal the official MATLAB releases; their MATLAB building blocks.

Reference values: the official rows of pyiqa's calibration table (``NIQE_OFFICIAL``, ``BRISQUE_OFFICIAL`` of
``tests/test_metrics.py``; MATLAB release code fed ``rgb2gray`` images, ``ResultsCalibra/ResultsCalibra.md`` of
chaofengc/IQA-PyTorch) and basicsr's MATLAB R2021a NIQE of its test image ``baboon.png``: 5.72957338 (docstring of
``basicsr.metrics.niqe.calculate_niqe``; computed on the Y of YCbCr, as basicsr's test does).  ``baboon.png``
(492x480 RGB, SHA-256 below) is BasicSR's ``tests/data/baboon.png``; the wheel does not ship it, so the test looks
for ``tests/data/baboon.png`` or ``$LOWLIGHT3D_BABOON`` and skips without it.

Measured |ours - official| (tolerances below add a small margin):

=======  =======  =======  =======  =======  =======  ========
metric   I03      I04      I06      I08      I19      baboon
=======  =======  =======  =======  =======  =======  ========
NIQE     0.0333   0.0000   0.0001   0.0315   0.0327   5e-7 (Y)
BRISQUE  0.0034   0.0000   0.0031   0.2357   0.5893
=======  =======  =======  =======  =======  =======  ========

pyiqa's ports (published ``(ours)`` rows) differ by 0.10/0.00/0.00/0.01/0.44 (NIQE) and 0.00/0.00/0.08/0.22/5.42
(BRISQUE).  What remains on I03/I08/I19 comes from the floating-point residues of MATLAB's filtering in flat
regions, which depend on the last bits of MATLAB's own SVD factors of the window
(:func:`lowlight3d.metrics.matlab_functions.mscn`).
"""
import hashlib
import math
import os
import os.path as osp

import cv2
import numpy as np
import pytest
from test_metrics import (  # noqa: F401
    BRISQUE_OFFICIAL,
    BRISQUE_PYIQA,
    NAMES,
    NIQE_OFFICIAL,
    NIQE_PYIQA,
    _rgb2gray,  # (calibration, iqa_files: fixtures)
    calibration,
    iqa_files,
)

from lowlight3d.metrics import matlab_functions as mf
from lowlight3d.metrics.brisque_metric import BRISQUE_SVR_GAMMA, BRISQUE_SVR_RHO, brisque_features
from lowlight3d.metrics.metric_util import compute_metric
from lowlight3d.metrics.niqe_metric import niqe_block_features, niqe_features

NIQE_TOL = [0.035, 0.001, 0.001, 0.033, 0.035]
BRISQUE_TOL = [0.005, 0.001, 0.005, 0.24, 0.6]
BABOON_MATLAB_NIQE = 5.72957338  # MATLAB R2021a, official NIQE, Y of YCbCr (basicsr calculate_niqe docstring)
BABOON_SHA256 = '275a75fd08d0a7899cbdaa8820ff15869e33bc1d6d07dbc79133374683fe411c'


def _brisque_file(iqa_files):  # noqa: F811
    """The BRISQUE file of the fixture, or skip with the reason it could not be built."""
    if 'brisque' not in iqa_files:
        pytest.skip(f"BRISQUE model could not be built: {iqa_files['brisque_error']}")
    return iqa_files['brisque']


# ----------------------------------------------------------------------------------------------- official values
def test_niqe_equals_official_matlab(calibration, iqa_files):  # noqa: F811
    """``niqe`` is within 0.035 of the official MATLAB NIQE on all five calibration images (pyiqa: 0.44)."""
    opt = {'type': 'niqe', 'model_path': iqa_files['niqe']}
    ours = [compute_metric(opt, calibration[n][0]) for n in NAMES]
    for name, value, official, tol in zip(NAMES, ours, NIQE_OFFICIAL, NIQE_TOL):
        assert abs(value - official) <= tol, (name, value, official)
    assert abs(ours[-1] - NIQE_OFFICIAL[-1]) < abs(NIQE_PYIQA[-1] - NIQE_OFFICIAL[-1]) - 0.35
    # a gray input (the rgb2gray image the calibration fed MATLAB) gives the same value
    assert compute_metric(opt, _rgb2gray(calibration['I19'][0])) == pytest.approx(ours[-1], abs=1e-12)


def test_niqe_equals_matlab_on_basicsr_baboon(iqa_files):  # noqa: F811
    """basicsr's baboon.png: MATLAB 5.72957338 (Y of YCbCr); ours within 1e-4 (basicsr's float32 port: 1e-5)."""
    path = os.environ.get('LOWLIGHT3D_BABOON') or osp.join(osp.dirname(__file__), 'data', 'baboon.png')
    if not osp.isfile(path):
        pytest.skip(f'{path} not found (BasicSR tests/data/baboon.png; not shipped in the basicsr wheel)')
    with open(path, 'rb') as f:
        assert hashlib.sha256(f.read()).hexdigest() == BABOON_SHA256
    img = cv2.imread(path)
    value = compute_metric({'type': 'niqe', 'convert_to': 'y', 'model_path': iqa_files['niqe']}, img)
    assert value == pytest.approx(BABOON_MATLAB_NIQE, abs=1e-4)
    gray = compute_metric({'type': 'niqe', 'model_path': iqa_files['niqe']}, img)  # rgb2gray protocol
    assert abs(gray - BABOON_MATLAB_NIQE) < 0.03


def test_brisque_equals_official_live_values(calibration, iqa_files):  # noqa: F811
    """``brisque`` is within 0.005 of the official values on I03/I04/I06, 0.24 on I08, 0.6 on I19 (pyiqa: 5.42)."""
    opt = {'type': 'brisque', 'model_path': _brisque_file(iqa_files)}
    ours = [compute_metric(opt, calibration[n][0]) for n in NAMES]
    for name, value, official, tol in zip(NAMES, ours, BRISQUE_OFFICIAL, BRISQUE_TOL):
        assert abs(value - official) <= tol, (name, value, official)
    assert abs(ours[-1] - BRISQUE_OFFICIAL[-1]) < abs(BRISQUE_PYIQA[-1] - BRISQUE_OFFICIAL[-1]) - 4.5


def test_brisque_svr_constants_match_the_builder():
    """The SVR constants used for prediction are those the model builder checks in the LIBSVM file."""
    from lowlight3d.metrics import iqa_model_files as imf
    assert BRISQUE_SVR_GAMMA == imf._BRISQUE_GAMMA and BRISQUE_SVR_RHO == imf._BRISQUE_RHO


def test_niqe_convert_to_is_checked(iqa_files):  # noqa: F811
    """Only MATLAB rgb2gray ('gray') and rgb2ycbcr Y ('y') are accepted."""
    img = np.random.default_rng(0).integers(0, 256, (96, 96, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match='convert_to'):
        compute_metric({'type': 'niqe', 'convert_to': 'yiq', 'model_path': iqa_files['niqe']}, img)


# ----------------------------------------------------------------------------------------------- building blocks
def test_rgb2gray_and_ycbcr_use_matlab_weights():
    """rgb2gray: the inverse-NTSC weights, rounded half away from zero; Y: BT.601 16-235."""
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (17, 19, 3), dtype=np.uint8)
    np.testing.assert_array_equal(mf.rgb2gray(img), _rgb2gray(img).astype(np.float64))
    b, g, r = (img[..., i].astype(np.float64) for i in range(3))
    expected = np.floor(16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255 + 0.5)
    np.testing.assert_array_equal(mf.rgb2ycbcr_y(img), expected)
    assert mf.rgb2ycbcr_y(np.zeros((1, 1, 3)))[0, 0] == 16 and mf.rgb2ycbcr_y(np.full((1, 1, 3), 255))[0, 0] == 235
    np.testing.assert_array_equal(mf.round_half_away(np.array([0.5, 1.5, 2.5, -0.5])), [1, 2, 3, -1])
    gray = img[..., 0]
    np.testing.assert_array_equal(mf.luminance(gray), gray)
    with pytest.raises(ValueError, match='convert_to'):
        mf.luminance(img, 'yiq')


def test_imresize_matches_basicsr_matlab_port():
    """Our float64 MATLAB imresize equals basicsr's float32 port to float32 precision (sizes odd and even)."""
    from basicsr.utils.matlab_functions import imresize as basicsr_imresize

    rng = np.random.default_rng(2)
    for h, w in [(96, 96), (37, 50), (5, 8)]:
        img = rng.uniform(0, 1, (h, w))
        ours = mf.imresize(img, 0.5)
        assert ours.shape == (math.ceil(h / 2), math.ceil(w / 2))
        np.testing.assert_allclose(ours, basicsr_imresize(img, 0.5), atol=2e-6)
    flat = np.full((20, 30), 77.0)
    np.testing.assert_array_equal(mf.imresize(flat, 0.5), np.full((10, 15), 77.0))
    weights, indices = mf.resize_contributions(8, 4, 0.5)
    np.testing.assert_allclose(weights.sum(axis=1), 1)
    assert indices.min() >= 0 and indices.max() <= 7 and weights.shape[1] == 8  # antialiased: 4 / 0.5 taps + 2 - 2


def test_mscn_is_matlabs_separable_filtering_of_the_gaussian_window():
    """MSCN = MATLAB's formula with the 7x7 Gaussian, filtered as two 1-D passes of its exact factor."""
    rng = np.random.default_rng(3)
    window = mf.fspecial_gaussian()
    kernel = mf.gaussian_kernel_1d()
    assert window.shape == (7, 7) and window.sum() == pytest.approx(1, abs=1e-15)
    assert window[3, 3] == window.max() and np.allclose(window, window.T)
    assert kernel.sum() == 1.0  # exactly, for 7 taps and sigma 7/6
    np.testing.assert_allclose(np.outer(kernel, kernel), window, rtol=1e-14, atol=1e-18)
    img = rng.integers(0, 256, (40, 50)).astype(np.float64)
    img[10:30, 10:30] = 153.0  # a flat region
    for border in ('replicate', 'zero'):
        np.testing.assert_allclose(mf.separable_filter(img, kernel, border), mf.imfilter(img, window, border),
                                   rtol=1e-13, atol=1e-11)
        ours, sigma = mf.mscn(img, border=border)
        mu = mf.imfilter(img, window, border)
        plain = (img - mu) / (np.sqrt(np.abs(mf.imfilter(img * img, window, border) - mu * mu)) + 1)
        np.testing.assert_allclose(ours, plain, atol=1e-6)
        flat = ours[14:26, 14:26]
        assert np.abs(flat).max() < 1e-12 and np.abs(sigma[14:26, 14:26]).max() < 1e-5
    with pytest.raises(ValueError, match='border'):
        mf.mscn(img, kernel, 'symmetric')
    with pytest.raises(ValueError, match='odd'):
        mf.separable_filter(img, np.ones(4) / 4)


def test_moment_matching_matches_basicsr_and_matlab_conventions():
    """AGGD/GGD fits: the 0.2:0.001:10 grid, basicsr's values, NaN rows give alpha 0.2 as MATLAB's min."""
    from basicsr.metrics.niqe import estimate_aggd_param as basicsr_aggd

    grid = mf.colon(0.2, 0.001, 10)
    assert len(grid) == 9801 and grid[0] == 0.2 and grid[-1] == 10.0
    np.testing.assert_allclose(grid, np.arange(0.2, 10.0005, 0.001), atol=1e-12)
    rng = np.random.default_rng(4)
    data = rng.laplace(size=(3, 2000)) * np.array([[1.0], [2.0], [0.5]]) + 0.1
    alpha, left, right, betal, betar = mf.estimate_aggd_param(data)
    for i in range(3):
        ref = basicsr_aggd(data[i])
        assert alpha[i] == pytest.approx(ref[0], abs=1e-12)
        assert betal[i] == pytest.approx(ref[1]) and betar[i] == pytest.approx(ref[2])
    assert left[0] == pytest.approx(np.sqrt(np.mean(data[0][data[0] < 0]**2)))
    a, s = mf.estimate_ggd_param(rng.normal(size=20000))
    assert a == pytest.approx(2.0, abs=0.1) and s == pytest.approx(1.0, abs=0.02)  # a Gaussian is GGD alpha 2
    a, left, *_ = mf.estimate_aggd_param(np.abs(data[0]))  # no negative value
    assert a == 0.2 and math.isnan(left)
    assert mf.estimate_ggd_param(np.zeros(10))[0] == 0.2


def test_nan_statistics_and_pinv_follow_matlab():
    """nanmean per column, nancov over complete rows (N-1), pinv with MATLAB's tolerance."""
    x = np.array([[1.0, 2.0], [3.0, np.nan], [5.0, 6.0], [7.0, 10.0]])
    np.testing.assert_allclose(mf.nanmean(x), [4.0, 6.0])
    np.testing.assert_allclose(mf.nancov(x), np.cov(x[[0, 2, 3]], rowvar=False))
    np.testing.assert_array_equal(mf.nancov(x[:2]), np.zeros((2, 2)))  # one complete row: no spread
    assert np.isnan(mf.nancov(x[1:2])).all()
    a = np.array([[2.0, 0.0], [0.0, 1e-20]])
    np.testing.assert_allclose(mf.pinv(a), [[0.5, 0.0], [0.0, 0.0]])
    m = np.random.default_rng(5).normal(size=(5, 5))
    np.testing.assert_allclose(mf.pinv(m), np.linalg.inv(m), rtol=1e-8, atol=1e-10)


def test_niqe_features_match_basicsr_compute_feature(calibration):  # noqa: F811
    """Block features equal basicsr's MATLAB port on the same MSCN blocks (column-major block order)."""
    from basicsr.metrics.niqe import compute_feature

    gray = mf.rgb2gray(calibration['I08'][0])
    coeffs, _ = mf.mscn(gray[:96, :192], border='replicate')
    blocks = np.stack([coeffs[:, :96], coeffs[:, 96:]])
    np.testing.assert_allclose(niqe_block_features(blocks), [compute_feature(b) for b in blocks], rtol=1e-10)
    feats = niqe_features(gray)
    assert feats.shape == (4 * 5, 36)
    with pytest.raises(ValueError, match='block'):
        niqe_features(gray[:95])


def test_brisque_features_are_36_finite_values(calibration):  # noqa: F811
    """Two scales of 18 features; the GGD shape of a natural image is in the release's range."""
    feats = brisque_features(mf.rgb2gray(calibration['I04'][0]))
    assert feats.shape == (36, ) and np.isfinite(feats).all()
    assert 0.338 <= feats[0] <= 10 and 0.471 <= feats[18] <= 3.264
