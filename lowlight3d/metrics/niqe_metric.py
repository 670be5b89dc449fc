"""NIQE (Mittal et al. 2013): ``niqe`` reproduces the official MATLAB release; ``niqe_pyiqa`` is pyiqa's port.

Both use the official pristine model (``mu_prisparam``/``cov_prisparam`` of ``niqe_release.zip``, basicsr's copy
``niqe_pris_params.npz``), converted at install time by ``python scripts/build_iqa_models.py`` into
``weights_dir()/iqa/niqe_modelparameters.mat`` (:mod:`lowlight3d.metrics.iqa_model_files`).  Lower is better.

``niqe`` (protocol of the official ``computequality.m``, float64 NumPy, CPU):

1. luminance: MATLAB ``rgb2gray`` of the uint8 RGB image (weights 0.298936/0.587043/0.114021, rounded to
   integers; ``convert_to='y'`` takes the Y of MATLAB ``rgb2ycbcr`` instead, basicsr's default), then
   ``crop_border``, then the image is cropped to a multiple of the 96x96 block size;
2. two scales: full size, then MATLAB ``imresize(im, 0.5)`` (bicubic with antialiasing, float64,
   :func:`~lowlight3d.metrics.matlab_functions.imresize`);
3. MSCN coefficients with the 7x7 Gaussian window (sigma 7/6, ``'replicate'`` border), filtered as MATLAB's
   ``imfilter`` does for this separable window: a column pass and a row pass with its 1-D factor
   (:func:`~lowlight3d.metrics.matlab_functions.mscn` explains why the filter's rounding matters);
4. per block (96x96, then 48x48 at half scale): the 18 AGGD features of ``computefeature.m`` (moment matching
   on ``0.2:0.001:10``, ``circshift`` within the block for the 4 orientations);
5. MVG of the 36-D block features with ``nanmean``/``nancov`` (rows with a NaN removed) and the distance
   ``sqrt((mu_p - mu_d) pinv((C_p + C_d)/2) (mu_p - mu_d)')`` with MATLAB's ``pinv`` tolerance.  One deviation:
   with a single block (an image under 192 pixels on a side) MATLAB's ``nanmean``/``nancov`` see a row vector and
   return the scalar mean/variance of its 36 entries, a degenerate result; we use the row as the mean and a zero
   covariance (pyiqa's convention), so such images keep a meaningful score.

On pyiqa's five calibration images (rgb2gray protocol of ``ResultsCalibra.md``) it is within 0.034 of the
official MATLAB values (pyiqa's port: 0.44 on I19), and on basicsr's ``baboon.png`` (Y protocol) within 1e-6 of
MATLAB's 5.72957 (``tests/test_metrics_matlab.py``).  The causes of pyiqa's differences: on I19 (posterised, 30 %
of its 7x7 neighbourhoods flat) the rounding residues of its direct 2-D filter in flat regions, which the AGGD
fits count as negative or positive coefficients (0.4); on I03 its luminance, YIQ's rounded weights 0.299/0.587/
0.114 instead of ``rgb2gray``'s (0.07); float32 Gaussian window and an epsilon in the MSCN (< 0.02).

``niqe_pyiqa``: pyiqa's ``niqe`` with its default options (luminance = Y of YIQ, rounded; torch, float64); it
reproduces pyiqa's published values within 0.002.

Both need at least one 96x96 block (both sides >= 96 after ``crop_border``); smaller images, flat images and a
missing model file raise :class:`~lowlight3d.metrics.metric_util.MetricUnavailable`.
"""
import math

import numpy as np

from lowlight3d.metrics import matlab_functions as mf
from lowlight3d.metrics.iqa_model_files import cached_per_file_version, niqe_model_path
from lowlight3d.metrics.metric_util import MetricUnavailable, check_image, crop_image, register_metric, score_gray_image
from lowlight3d.metrics.pyiqa_util import bgr_to_rgb_tensor, default_device, get_pyiqa_metric, require_model_file

__all__ = ['niqe', 'niqe_pyiqa', 'NIQE_BLOCK_SIZE', 'load_niqe_params', 'niqe_block_features', 'niqe_features',
           'niqe_score']

#: NIQE's block size (official value); both image sides must be at least this long.
NIQE_BLOCK_SIZE = 96

@cached_per_file_version
def load_niqe_params(path):
    """Read the pristine MVG of a NIQE parameter file (cached per path and modification time).

    Args:
        path (str): A ``.mat`` file with ``mu_prisparam``/``cov_prisparam`` (the official release's layout, what
            the install-time builder writes) or basicsr's ``.npz`` with ``mu_pris_param``/``cov_pris_param``.

    Returns:
        tuple[np.ndarray, np.ndarray]: ``mu`` (36,) and ``cov`` (36, 36), float64.

    Raises:
        MetricUnavailable: If the file cannot be read or lacks the parameters.
    """
    try:
        if path.endswith('.npz'):
            with np.load(path) as data:
                mu, cov = data['mu_pris_param'], data['cov_pris_param']
        else:
            import scipy.io
            data = scipy.io.loadmat(path)
            mu, cov = data['mu_prisparam'], data['cov_prisparam']
        mu = np.asarray(mu, dtype=np.float64).ravel()
        cov = np.asarray(cov, dtype=np.float64)
    except Exception as err:  # corrupt or foreign files fail in scipy/numpy with many error types
        raise MetricUnavailable(f'niqe: cannot read the NIQE parameters from {path} ({type(err).__name__}: '
                                f'{err}); rebuild it with `python scripts/build_iqa_models.py --force`') from err
    if mu.shape != (36, ) or cov.shape != (36, 36):
        raise MetricUnavailable(f'niqe: {path} holds parameters of shapes {mu.shape}/{cov.shape}, expected '
                                '(36,)/(36, 36)')
    return mu, cov


def niqe_block_features(blocks):
    """The 18 NSS features of ``computefeature.m`` for a stack of MSCN blocks.

    Features: AGGD ``alpha`` and ``(betal + betar) / 2`` of the coefficients, then for the shifts
    ``[0 1], [1 0], [1 1], [1 -1]`` (``circshift`` within the block) the AGGD ``alpha``, mean
    ``(betar - betal) Gamma(2/alpha) / Gamma(1/alpha)``, ``betal`` and ``betar`` of the pairwise products.

    Args:
        blocks (np.ndarray): ``N x b x b`` MSCN blocks.

    Returns:
        np.ndarray: ``N x 18`` float64 features (NaN where a block has no negative or no positive value).
    """
    from scipy.special import gamma as gamma_fn

    n = blocks.shape[0]
    alpha, _, _, betal, betar = mf.estimate_aggd_param(blocks.reshape(n, -1))
    feats = [alpha, (betal + betar) / 2]
    for shift in ((0, 1), (1, 0), (1, 1), (1, -1)):
        pair = blocks * np.roll(blocks, shift, axis=(1, 2))
        alpha, _, _, betal, betar = mf.estimate_aggd_param(pair.reshape(n, -1))
        feats += [alpha, (betar - betal) * (gamma_fn(2 / alpha) / gamma_fn(1 / alpha)), betal, betar]
    return np.stack(feats, axis=1)


def _blocks(img, size):
    """Non-overlapping ``size x size`` blocks of ``img`` in MATLAB's column-major block order."""
    h, w = img.shape
    nh, nw = h // size, w // size
    return img[:nh * size, :nw * size].reshape(nh, size, nw, size).transpose(2, 0, 1, 3).reshape(-1, size, size)


def niqe_features(gray, block_size=NIQE_BLOCK_SIZE):
    """36-D features of every block at two scales (``computequality.m`` before the MVG fit).

    Args:
        gray (np.ndarray): ``H x W`` luminance in [0, 255] (integer values, as MATLAB's ``double(uint8)``).
        block_size (int): Block side at full scale (96 in the release; half of it at the second scale).

    Returns:
        np.ndarray: ``N x 36`` float64 features, N = number of blocks.

    Raises:
        ValueError: If the image holds no complete block.
    """
    img = np.asarray(gray, dtype=np.float64)
    h, w = img.shape
    nh, nw = h // block_size, w // block_size
    if nh == 0 or nw == 0:
        raise ValueError(f'NIQE needs at least one {block_size}x{block_size} block, got {w}x{h}')
    img = img[:nh * block_size, :nw * block_size]
    kernel = mf.gaussian_kernel_1d(7, 7.0 / 6.0)
    feats = []
    for scale in (1, 2):
        coeffs, _ = mf.mscn(img, kernel, border='replicate')
        feats.append(niqe_block_features(_blocks(coeffs, block_size // scale)))
        if scale == 1:
            img = mf.imresize(img, 0.5)
    return np.concatenate(feats, axis=1)


def niqe_score(gray, mu_pris, cov_pris, block_size=NIQE_BLOCK_SIZE):
    """NIQE of a luminance image against a pristine MVG (the official ``computequality.m``).

    Args:
        gray (np.ndarray): ``H x W`` luminance in [0, 255].
        mu_pris (np.ndarray): Pristine mean (36,).
        cov_pris (np.ndarray): Pristine covariance (36, 36).
        block_size (int): Block side (96).

    Returns:
        float: The score (NaN when the features are degenerate, e.g. a flat image).
    """
    feats = niqe_features(gray, block_size)
    mu_d = mf.nanmean(feats)
    cov_d = mf.nancov(feats)
    diff = (np.ravel(mu_pris) - mu_d)[None, :]
    if not (np.isfinite(diff).all() and np.isfinite(cov_d).all()):
        return math.nan
    quality = (diff @ mf.pinv((cov_pris + cov_d) / 2) @ diff.T)[0, 0]
    return float(np.sqrt(quality)) if quality >= 0 else math.nan


def _check_size(img, crop_border):
    """Raise MetricUnavailable when ``img`` has no complete NIQE block."""
    h, w = img.shape[:2]
    if h < NIQE_BLOCK_SIZE or w < NIQE_BLOCK_SIZE:
        raise MetricUnavailable(f'NIQE needs an image of at least {NIQE_BLOCK_SIZE}x{NIQE_BLOCK_SIZE} pixels '
                                f'(one block) after crop_border={crop_border}, got {w}x{h}')


@register_metric('niqe', reference='no', better='lower')
def niqe(img, img2=None, crop_border=0, convert_to='gray', model_path=None, **kwargs):
    """Natural Image Quality Evaluator as the official MATLAB release computes it (no reference; lower is better).

    See the module docstring for the protocol.

    Args:
        img (np.ndarray): Image, uint8 ``H x W x 3`` BGR or ``H x W`` gray.
        img2 (np.ndarray, optional): Ignored (no-reference metric; accepted for BasicSR's calling convention).
        crop_border (int): Pixels removed on each side before computing.
        convert_to (str): Luminance of a colour image: ``'gray'`` (MATLAB ``rgb2gray``, the official code's
            conversion; default) or ``'y'`` (Y of MATLAB ``rgb2ycbcr``, basicsr's ``calculate_niqe`` default).
        model_path (str, optional): NIQE ``.mat`` (or basicsr ``.npz``) file; defaults to
            ``weights_dir()/iqa/niqe_modelparameters.mat``.
        **kwargs: Other option keys (ignored, e.g. ``device`` or ``test_y_channel``: NIQE always uses the
            luminance and runs on the CPU).

    Returns:
        float: The NIQE score.

    Raises:
        MetricUnavailable: Model file missing, image smaller than one 96x96 block, or degenerate (flat) content.
        ValueError: Unknown ``convert_to``.
    """
    if convert_to not in ('gray', 'y'):
        raise ValueError(f"niqe: convert_to must be 'gray' or 'y', got {convert_to!r}")
    img = crop_image(check_image(img, 'img'), crop_border)
    _check_size(img, crop_border)
    h, w = img.shape[:2]
    mu, cov = load_niqe_params(require_model_file(model_path or niqe_model_path(), 'niqe', 'NIQE parameter'))
    return score_gray_image('NIQE', mf.luminance(img, convert_to), lambda gray: niqe_score(gray, mu, cov))


@register_metric('niqe_pyiqa', reference='no', better='lower')
def niqe_pyiqa(img, img2=None, crop_border=0, model_path=None, device=None, **kwargs):
    """pyiqa's NIQE (its default options) with the official parameters, offline (no reference; lower is better).

    Not MATLAB-equal on images with flat regions (see the module docstring); kept for comparison with papers that
    report pyiqa's numbers.

    Args:
        img (np.ndarray): Image, uint8 ``H x W x 3`` BGR (gray is replicated).
        img2 (np.ndarray, optional): Ignored (no-reference metric; accepted for BasicSR's calling convention).
        crop_border (int): Pixels removed on each side before computing.
        model_path (str, optional): NIQE ``.mat`` file; defaults to ``weights_dir()/iqa/niqe_modelparameters.mat``.
        device (str, optional): Torch device (default: cuda if available, else cpu).
        **kwargs: Other option keys (ignored, e.g. ``test_y_channel``: NIQE always uses the luminance).

    Returns:
        float: The NIQE score.

    Raises:
        MetricUnavailable: Model file missing, image smaller than one 96x96 block, or degenerate (flat) content.
    """
    img = crop_image(check_image(img, 'img'), crop_border)
    _check_size(img, crop_border)
    h, w = img.shape[:2]
    path = require_model_file(model_path or niqe_model_path(), 'niqe_pyiqa', 'NIQE parameter')
    device = device or default_device()
    metric = get_pyiqa_metric('niqe', path, device)
    try:
        value = float(metric(bgr_to_rgb_tensor(img, device)).item())
    except (RuntimeError, ValueError, IndexError, AssertionError) as err:  # LinAlgError on flat images
        raise MetricUnavailable(f'NIQE cannot be computed on this {w}x{h} image (flat or degenerate content; '
                                f'{type(err).__name__}: {" ".join(str(err).split())[:200]})') from err
    if not math.isfinite(value):
        raise MetricUnavailable(f'NIQE is not finite on this {w}x{h} image (e.g. a constant image)')
    return value
