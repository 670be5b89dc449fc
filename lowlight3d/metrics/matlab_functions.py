"""MATLAB building blocks of the official NIQE and BRISQUE releases, in float64 NumPy.

The official LIVE implementations (``niqe_release.zip``, ``brisque_release.zip``) are MATLAB scripts; these
functions reproduce the MATLAB functions they call, with MATLAB's numerics where it matters for the scores:

* :func:`rgb2gray`: MATLAB ``rgb2gray`` of a uint8 image (its exact weights, the rows of the inverse NTSC
  matrix, rounded back to uint8) and :func:`rgb2ycbcr_y` (the Y of MATLAB ``rgb2ycbcr``, 16-235);
* :func:`imresize`: MATLAB ``imresize(img, scale)`` (bicubic, antialiasing when shrinking, symmetric border
  handling, output size ``ceil(scale * size)``) on a double image, without rounding or clipping, in float64
  (basicsr's and pyiqa's ports compute in float32);
* :func:`fspecial_gaussian` and :func:`imfilter` (2-D window and direct 2-D filtering, ``'replicate'`` border as
  NIQE's ``imfilter`` or ``'zero'`` as BRISQUE's ``filter2(.., 'same')``), :func:`gaussian_kernel_1d` and
  :func:`separable_filter` (the separable path both MATLAB functions take for the Gaussian window) and
  :func:`mscn` (the normalised luminance of both metrics; its docstring explains why the filter's rounding
  matters);
* :func:`colon` (MATLAB's ``a:step:b``), :func:`estimate_ggd_param` and :func:`estimate_aggd_param` (the
  moment-matching table look-ups of ``estimateggdparam.m`` / ``estimateaggdparam.m``), vectorised over blocks;
* :func:`pinv` (MATLAB's default tolerance), :func:`nanmean` and :func:`nancov` (rows with a NaN removed).

Everything works on float64 arrays; nothing here depends on torch or pyiqa.
"""
import math

import numpy as np
from scipy import ndimage
from scipy.special import gamma as gamma_fn

__all__ = [
    'RGB2GRAY_WEIGHTS', 'round_half_away', 'rgb2gray', 'rgb2ycbcr_y', 'luminance', 'cubic', 'resize_contributions',
    'imresize', 'fspecial_gaussian', 'imfilter', 'gaussian_kernel_1d', 'separable_filter', 'mscn', 'colon',
    'estimate_ggd_param', 'estimate_aggd_param', 'pinv', 'nanmean', 'nancov'
]

#: MATLAB ``rgb2gray`` weights for R, G, B: the first row of ``inv([1 .956 .621; 1 -.272 -.647; 1 -1.106 1.703])``
#: (not the rounded 0.299, 0.587, 0.114 of YIQ/OpenCV; the difference flips the rounding of some pixels).
RGB2GRAY_WEIGHTS = (0.298936021293775, 0.587043074451121, 0.114020904255103)


def round_half_away(x):
    """MATLAB ``round``: halves away from zero (NumPy's ``round`` rounds halves to even).

    Args:
        x (np.ndarray): Values.

    Returns:
        np.ndarray: Rounded float64 values.
    """
    x = np.asarray(x, dtype=np.float64)
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def _as_bgr_float(img):
    """uint8-range ``H x W x 3`` BGR array as float64 (B, G, R planes)."""
    img = np.asarray(img, dtype=np.float64)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f'Expected an H x W x 3 BGR image, got shape {img.shape}')
    return img[..., 0], img[..., 1], img[..., 2]


def rgb2gray(img):
    """MATLAB ``rgb2gray`` of a uint8 BGR image: weighted sum with :data:`RGB2GRAY_WEIGHTS`, rounded to uint8.

    Args:
        img (np.ndarray): ``H x W x 3`` BGR image in [0, 255] (uint8 or integer-valued floats).

    Returns:
        np.ndarray: ``H x W`` float64 gray image with integer values in [0, 255] (what ``double(rgb2gray(im))``
        gives in MATLAB).
    """
    b, g, r = _as_bgr_float(img)
    wr, wg, wb = RGB2GRAY_WEIGHTS
    return np.clip(round_half_away(wr * r + wg * g + wb * b), 0, 255)


def rgb2ycbcr_y(img):
    """Y channel of MATLAB ``rgb2ycbcr`` of a uint8 BGR image (range 16-235), rounded to uint8.

    This is the luminance basicsr's ``calculate_niqe`` uses by default (``convert_to='y'``) and the one with
    which basicsr obtained its MATLAB NIQE reference of ``baboon.png`` (5.7296).

    Args:
        img (np.ndarray): ``H x W x 3`` BGR image in [0, 255].

    Returns:
        np.ndarray: ``H x W`` float64 image with integer values in [16, 235].
    """
    b, g, r = _as_bgr_float(img)
    y = (65.481 * r + 128.553 * g + 24.966 * b) / 255.0 + 16.0
    return np.clip(round_half_away(y), 0, 255)


def luminance(img, convert_to='gray'):
    """The integer luminance plane the official scripts work on.

    Args:
        img (np.ndarray): ``H x W x 3`` BGR or ``H x W`` gray image in [0, 255].
        convert_to (str): ``'gray'`` (MATLAB ``rgb2gray``, what the official NIQE/BRISQUE code applies to colour
            input) or ``'y'`` (Y of MATLAB ``rgb2ycbcr``, basicsr's NIQE default).

    Returns:
        np.ndarray: ``H x W`` float64 plane with integer values.

    Raises:
        ValueError: Unknown ``convert_to`` or unsupported shape.
    """
    img = np.asarray(img)
    if img.ndim == 2:
        return round_half_away(img)
    if img.ndim == 3 and img.shape[2] == 1:
        return round_half_away(img[..., 0])
    if convert_to == 'gray':
        return rgb2gray(img)
    if convert_to == 'y':
        return rgb2ycbcr_y(img)
    raise ValueError(f"convert_to must be 'gray' or 'y', got {convert_to!r}")


def cubic(x):
    """MATLAB ``imresize``'s bicubic kernel (Keys, a = -0.5).

    Args:
        x (np.ndarray): Distances.

    Returns:
        np.ndarray: Kernel values.
    """
    ax = np.abs(x)
    ax2 = ax * ax
    ax3 = ax2 * ax
    return ((1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1) + (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2)))


def resize_contributions(in_length, out_length, scale, antialiasing=True, kernel_width=4.0):
    """Weights and 0-based source indices of one resized dimension (MATLAB ``imresize>contributions``).

    Args:
        in_length (int): Input length.
        out_length (int): Output length.
        scale (float): Scale factor (the one given to ``imresize``, not ``out/in``).
        antialiasing (bool): Widen the kernel by ``1/scale`` when shrinking (MATLAB's default).
        kernel_width (float): Support of the kernel (4 for bicubic).

    Returns:
        tuple[np.ndarray, np.ndarray]: ``weights`` (out_length x P, rows sum to 1) and ``indices`` (same shape,
        in ``[0, in_length)``, borders mirrored symmetrically as MATLAB does).
    """
    if scale < 1 and antialiasing:
        kernel = lambda d: scale * cubic(scale * d)  # noqa: E731
        kernel_width = kernel_width / scale
    else:
        kernel = cubic
    x = np.arange(1, out_length + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - kernel_width / 2)
    num = int(math.ceil(kernel_width)) + 2
    indices = left[:, None] + np.arange(num)[None, :]  # 1-based, as in MATLAB
    weights = kernel(u[:, None] - indices)
    weights = weights / weights.sum(axis=1, keepdims=True)
    aux = np.concatenate([np.arange(1, in_length + 1), np.arange(in_length, 0, -1)])
    indices = aux[np.mod(indices.astype(np.int64) - 1, len(aux))]
    keep = np.any(weights != 0, axis=0)
    return weights[:, keep], indices[:, keep] - 1


def imresize(img, scale, antialiasing=True):
    """MATLAB ``imresize(img, scale)`` (bicubic) of a double image, in float64, neither rounded nor clipped.

    Rows are resized first, then columns (MATLAB's order for equal scales).

    Args:
        img (np.ndarray): ``H x W`` (or ``H x W x C``) float image.
        scale (float): Scale factor; the output is ``ceil(scale * H) x ceil(scale * W)``.
        antialiasing (bool): MATLAB's ``'Antialiasing'`` option (default true).

    Returns:
        np.ndarray: The resized float64 image.
    """
    out = np.asarray(img, dtype=np.float64)
    for axis in (0, 1):
        in_length = out.shape[axis]
        out_length = int(math.ceil(scale * in_length))
        weights, indices = resize_contributions(in_length, out_length, scale, antialiasing)
        moved = np.moveaxis(out, axis, 0)  # (in_length, ...)
        gathered = moved[indices]  # (out_length, P, ...)
        w = weights.reshape(weights.shape + (1, ) * (moved.ndim - 1))
        out = np.moveaxis((gathered * w).sum(axis=1), 0, axis)
    return out


def fspecial_gaussian(size=7, sigma=7.0 / 6.0):
    """MATLAB ``fspecial('gaussian', size, sigma)``, then divided by its sum (as both official scripts do).

    Args:
        size (int): Odd side length.
        sigma (float): Standard deviation.

    Returns:
        np.ndarray: ``size x size`` float64 window summing to 1.
    """
    half = (size - 1) / 2.0
    y, x = np.meshgrid(np.arange(-half, half + 1), np.arange(-half, half + 1), indexing='ij')
    h = np.exp(-(x * x + y * y) / (2.0 * sigma * sigma))
    h[h < np.finfo(np.float64).eps * h.max()] = 0
    h = h / h.sum()
    return h / h.sum()


def imfilter(img, window, border='replicate'):
    """MATLAB correlation filtering of a 2-D double image with the output the size of the input.

    Args:
        img (np.ndarray): ``H x W`` float image.
        window (np.ndarray): Filter (correlation, not convolution, as MATLAB ``imfilter``/``filter2``).
        border (str): ``'replicate'`` (``imfilter(.., 'replicate')``, NIQE) or ``'zero'`` (``imfilter`` default
            and ``filter2(.., 'same')``, BRISQUE).

    Returns:
        np.ndarray: Filtered float64 image.

    Raises:
        ValueError: Unknown border.
    """
    modes = {'replicate': 'nearest', 'zero': 'constant'}
    if border not in modes:
        raise ValueError(f"border must be 'replicate' or 'zero', got {border!r}")
    return ndimage.correlate(np.asarray(img, dtype=np.float64), window, mode=modes[border], cval=0.0)


def gaussian_kernel_1d(size=7, sigma=7.0 / 6.0):
    """The 1-D factor of the normalised Gaussian window: ``g / sum(g)``, ``g = exp(-x^2 / (2 sigma^2))``.

    ``fspecial_gaussian(size, sigma)`` equals ``outer(k, k)`` up to rounding; ``k`` is what MATLAB's separable
    filtering (see :func:`mscn`) convolves with, up to the last bits of MATLAB's SVD.  For the 7-tap,
    sigma-7/6 kernel the taps sum to exactly 1 in float64.

    Args:
        size (int): Odd length.
        sigma (float): Standard deviation.

    Returns:
        np.ndarray: ``size`` float64 taps.
    """
    half = (size - 1) / 2.0
    x = np.arange(-half, half + 1)
    g = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return g / g.sum()


def separable_filter(img, kernel, border='replicate'):
    """Correlate a 2-D image with ``outer(kernel, kernel)`` as two 1-D passes: columns, then rows.

    This is MATLAB's ``conv2(hcol, hrow, I, 'same')`` order (what ``filter2`` and ``imfilter`` run for a
    separable window); each output sums its taps in increasing order.

    Args:
        img (np.ndarray): ``H x W`` float image.
        kernel (np.ndarray): Odd-length symmetric 1-D kernel.
        border (str): ``'replicate'`` (``imfilter(.., 'replicate')``) or ``'zero'`` (``filter2(.., 'same')``).

    Returns:
        np.ndarray: Filtered float64 image.

    Raises:
        ValueError: Unknown border or even-length kernel.
    """
    if border not in ('replicate', 'zero'):
        raise ValueError(f"border must be 'replicate' or 'zero', got {border!r}")
    kernel = np.asarray(kernel, dtype=np.float64).ravel()
    if kernel.size % 2 == 0:
        raise ValueError(f'The kernel must have an odd length, got {kernel.size}')
    half = kernel.size // 2
    out = np.asarray(img, dtype=np.float64)
    for axis in (0, 1):
        n = out.shape[axis]
        pad = [(0, 0), (0, 0)]
        pad[axis] = (half, half)
        padded = np.pad(out, pad, mode='edge' if border == 'replicate' else 'constant')
        acc = np.zeros_like(out)
        for k, tap in enumerate(kernel):
            window = padded[k:k + n, :] if axis == 0 else padded[:, k:k + n]
            acc += tap * window
        out = acc
    return out


def mscn(img, kernel=None, border='replicate', c=1.0):
    """Mean-subtracted contrast-normalised coefficients ``(I - mu) / (sigma + c)`` of the official scripts.

    MATLAB: ``mu = imfilter(I, w, 'replicate')`` (NIQE) or ``filter2(w, I, 'same')`` (BRISQUE),
    ``sigma = sqrt(abs(filter(I.^2) - mu.^2))``, with ``w`` the normalised 7x7 Gaussian (sigma 7/6); no epsilon
    (pyiqa adds one).  Both MATLAB functions check ``w`` for separability (rank 1, via ``svd``) and then filter
    with its 1-D factors, column pass then row pass; we do the same with the exact 1-D factor
    (:func:`gaussian_kernel_1d`).

    Why the filter's arithmetic matters: in a flat neighbourhood of value ``v`` the exact result is ``mu = v``
    and a coefficient of 0, but a floating-point filter leaves ``v - mu`` = 0 or +-1 ulp depending on ``v`` and the
    filter's summation.  The AGGD fits count negative and positive coefficients, so on posterised or saturated
    content these +-1e-14 values move the scores: on pyiqa's calibration image I19 (30 % flat 7x7
    neighbourhoods) a direct 2-D filter gives NIQE +0.45 and BRISQUE -8.2 from the official values, exact zeros
    +0.03 and +2.1, and the separable filtering with the exact 1-D factor +0.03 and -0.6 (the closest; the exact
    MATLAB value depends on the last bits of its SVD factors).

    Args:
        img (np.ndarray): ``H x W`` float image in [0, 255].
        kernel (np.ndarray, optional): 1-D factor of the window; default ``gaussian_kernel_1d(7, 7/6)``.
        border (str): ``'replicate'`` (NIQE's ``imfilter``) or ``'zero'`` (BRISQUE's ``filter2``).
        c (float): Stabilising constant (1 in both releases).

    Returns:
        tuple[np.ndarray, np.ndarray]: MSCN coefficients and the local ``sigma`` (float64, ``H x W``).

    Raises:
        ValueError: Unknown border.
    """
    kernel = gaussian_kernel_1d() if kernel is None else kernel
    img = np.asarray(img, dtype=np.float64)
    mu = separable_filter(img, kernel, border)
    sigma = np.sqrt(np.abs(separable_filter(img * img, kernel, border) - mu * mu))
    return (img - mu) / (sigma + c), sigma


def colon(start, step, stop):
    """MATLAB's ``start:step:stop`` (its symmetric construction: the second half counts back from ``stop``).

    Args:
        start (float): First value.
        step (float): Increment (> 0).
        stop (float): Last value (reached up to rounding).

    Returns:
        np.ndarray: The float64 vector.
    """
    n = int(math.floor((stop - start) / step + 1e-10))
    k = np.arange(n + 1, dtype=np.float64)
    out = start + k * step
    half = (n + 1) // 2
    out[half:] = (start + n * step) - (n - k[half:]) * step
    if abs(start + n * step - stop) < step * 1e-10:
        out[half:] = stop - (n - k[half:]) * step
    return out


_GAM = colon(0.2, 0.001, 10.0)
_R_GGD = gamma_fn(1.0 / _GAM) * gamma_fn(3.0 / _GAM) / gamma_fn(2.0 / _GAM)**2
_R_AGGD = gamma_fn(2.0 / _GAM)**2 / (gamma_fn(1.0 / _GAM) * gamma_fn(3.0 / _GAM))


def _first_argmin(distance, table, values, chunk=512):
    """Index of the first minimum of ``distance(table - v)`` for each ``v`` (MATLAB ``[~, i] = min(..)``).

    A NaN ``v`` gives index 0, as MATLAB's ``min`` of an all-NaN vector returns index 1.
    """
    values = np.asarray(values, dtype=np.float64)
    out = np.zeros(values.shape[0], dtype=np.int64)
    valid = np.isfinite(values)
    for start in range(0, values.shape[0], chunk):
        v = np.where(valid[start:start + chunk], values[start:start + chunk], 0.0)
        out[start:start + chunk] = np.argmin(distance(table[None, :] - v[:, None]), axis=1)
    out[~valid] = 0
    return out


def estimate_ggd_param(vec):
    """Generalised Gaussian fit by moment matching (``estimateggdparam.m`` of BRISQUE), one per row.

    ``rho = mean(x^2) / mean(|x|)^2`` is matched against ``Gamma(1/a)Gamma(3/a)/Gamma(2/a)^2`` on
    ``a = 0.2:0.001:10`` with ``min(abs(.))`` (first minimum; ``alpha = 0.2`` when ``rho`` is NaN).

    Args:
        vec (np.ndarray): ``N x M`` samples (one fit per row) or a 1-D vector.

    Returns:
        tuple[np.ndarray, np.ndarray]: Shape ``alpha`` and ``sigma`` (root mean square), length N (or scalars
        for a 1-D input).
    """
    x = np.atleast_2d(np.asarray(vec, dtype=np.float64))
    sigma_sq = np.mean(x * x, axis=1)
    with np.errstate(invalid='ignore', divide='ignore'):
        rho = sigma_sq / np.mean(np.abs(x), axis=1)**2
    alpha, sigma = _GAM[_first_argmin(np.abs, _R_GGD, rho)], np.sqrt(sigma_sq)
    return (alpha[0], sigma[0]) if np.ndim(vec) == 1 else (alpha, sigma)


def estimate_aggd_param(vec):
    """Asymmetric generalised Gaussian fit by moment matching (``estimateaggdparam.m``), one per row.

    ``leftstd``/``rightstd`` are the RMS of the negative/positive samples; ``rhatnorm`` is matched against
    ``Gamma(2/a)^2/(Gamma(1/a)Gamma(3/a))`` on ``a = 0.2:0.001:10`` with ``min((.)^2)`` (first minimum).  A row
    without negative (or positive) samples gives NaN standard deviations (MATLAB's ``mean`` of an empty vector)
    and ``alpha = 0.2`` (MATLAB's ``min`` of an all-NaN vector returns the first index).

    Args:
        vec (np.ndarray): ``N x M`` samples (one fit per row) or a 1-D vector.

    Returns:
        tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]: ``alpha``, ``leftstd``, ``rightstd``
        (the RMS values, BRISQUE's features) and ``betal``, ``betar`` (the AGGD scales, NIQE's features).
    """
    x = np.atleast_2d(np.asarray(vec, dtype=np.float64))
    sq = x * x
    neg, pos = x < 0, x > 0
    with np.errstate(invalid='ignore', divide='ignore'):
        left_std = np.sqrt((sq * neg).sum(axis=1) / neg.sum(axis=1))
        right_std = np.sqrt((sq * pos).sum(axis=1) / pos.sum(axis=1))
        gammahat = left_std / right_std
        rhat = np.mean(np.abs(x), axis=1)**2 / np.mean(sq, axis=1)
        rhatnorm = rhat * (gammahat**3 + 1) * (gammahat + 1) / (gammahat**2 + 1)**2
    alpha = _GAM[_first_argmin(np.square, _R_AGGD, rhatnorm)]
    with np.errstate(invalid='ignore'):
        ratio = np.sqrt(gamma_fn(1.0 / alpha) / gamma_fn(3.0 / alpha))
    out = (alpha, left_std, right_std, left_std * ratio, right_std * ratio)
    return tuple(v[0] for v in out) if np.ndim(vec) == 1 else out


def pinv(a):
    """Moore-Penrose pseudo-inverse with MATLAB's default tolerance ``max(size(A)) * norm(A) * eps``.

    Args:
        a (np.ndarray): 2-D float matrix.

    Returns:
        np.ndarray: The pseudo-inverse.
    """
    u, s, vt = np.linalg.svd(a, full_matrices=False)
    tol = max(a.shape) * (s[0] if s.size else 0.0) * np.finfo(np.float64).eps
    keep = s > tol
    return (vt[keep].T / s[keep]) @ u[:, keep].T


def nanmean(x):
    """Column means ignoring NaNs (MATLAB ``nanmean`` of a matrix; also for a single row, unlike MATLAB, whose
    ``nanmean`` of a 1 x D row is the scalar mean of the row).

    Args:
        x (np.ndarray): ``N x D`` matrix.

    Returns:
        np.ndarray: Length-D means (NaN for an all-NaN column).
    """
    x = np.asarray(x, dtype=np.float64)
    ok = ~np.isnan(x)
    with np.errstate(invalid='ignore', divide='ignore'):
        return np.where(ok, x, 0.0).sum(axis=0) / ok.sum(axis=0)


def nancov(x):
    """Covariance (normalised by N-1) of the rows without NaN (MATLAB ``nancov``, ``'complete'`` rows).

    With a single complete row MATLAB treats the row as one vector and returns the scalar variance of its D
    entries (a degenerate "covariance", e.g. for a NIQE image with one block); we return the zero matrix instead
    (one observation has no spread; pyiqa's convention).

    Args:
        x (np.ndarray): ``N x D`` matrix.

    Returns:
        np.ndarray: ``D x D`` covariance (zeros for one complete row, NaN for none).
    """
    x = np.asarray(x, dtype=np.float64)
    rows = x[~np.isnan(x).any(axis=1)]
    if rows.shape[0] == 1:
        return np.zeros((x.shape[1], x.shape[1]))
    if rows.shape[0] == 0:
        return np.full((x.shape[1], x.shape[1]), np.nan)
    centred = rows - rows.mean(axis=0, keepdims=True)
    return centred.T @ centred / (rows.shape[0] - 1)
