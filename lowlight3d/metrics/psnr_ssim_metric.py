"""PSNR and SSIM under BasicSR's protocol (registered as ``psnr`` and ``ssim``).

Both wrap ``basicsr.metrics.calculate_psnr`` / ``calculate_ssim`` unchanged, so numbers are comparable with
BasicSR-based papers:

* inputs are uint8 ``H x W x 3`` BGR images in [0, 255] (computed in float64, no rescaling, no resize);
* ``crop_border`` pixels are removed on each side first;
* ``test_y_channel=False`` (our default): PSNR over all three channels (one MSE over R, G and B), SSIM
  computed per channel and averaged; ``test_y_channel=True``: the Y channel of YCbCr (BT.601, MATLAB
  ``rgb2ycbcr``, 16-235), the usual super-resolution protocol;
* SSIM is Wang et al.'s: 11x11 Gaussian window, sigma 1.5, 'valid' filtering, K1=0.01, K2=0.03, L=255.
  Given a one-channel image it equals the official MATLAB ``ssim.m`` (tested against pyiqa's calibration).

PSNR of identical images is ``inf``.
"""
import numpy as np

from lowlight3d.metrics.metric_util import MetricUnavailable, check_image, crop_image, register_metric

__all__ = ['psnr', 'ssim']


def _prepare_pair(img, img2, crop_border, name):
    """Validate, gray-to-3-channel and crop a prediction/ground-truth pair."""
    if img2 is None:
        raise ValueError(f'{name} is a full-reference metric: img2 (the ground truth) is required')
    img = check_image(img, 'img')
    img2 = check_image(img2, 'img2')
    if img.shape != img2.shape:
        raise ValueError(f'{name}: prediction {img.shape[1]}x{img.shape[0]} and ground truth '
                         f'{img2.shape[1]}x{img2.shape[0]} differ in size (no resize is done)')
    return crop_image(img, crop_border), crop_image(img2, crop_border)


@register_metric('psnr', reference='full', better='higher')
def psnr(img, img2, crop_border=0, test_y_channel=False, **kwargs):
    """Peak signal-to-noise ratio in dB (basicsr ``calculate_psnr``), data range 255.

    Args:
        img (np.ndarray): Prediction, uint8 ``H x W x 3`` BGR (a gray ``H x W`` image is replicated).
        img2 (np.ndarray): Ground truth, same size.
        crop_border (int): Pixels removed on each side before computing.
        test_y_channel (bool): Compute on the Y channel of YCbCr instead of RGB.
        **kwargs: Other option keys (ignored, as in BasicSR).

    Returns:
        float: PSNR (``inf`` for identical images).
    """
    from basicsr.metrics.psnr_ssim import calculate_psnr

    img, img2 = _prepare_pair(img, img2, crop_border, 'psnr')
    return float(calculate_psnr(img, img2, crop_border=0, input_order='HWC', test_y_channel=test_y_channel))


@register_metric('ssim', reference='full', better='higher')
def ssim(img, img2, crop_border=0, test_y_channel=False, **kwargs):
    """Structural similarity (basicsr ``calculate_ssim``), data range 255, mean over RGB channels or on Y.

    Args:
        img (np.ndarray): Prediction, uint8 ``H x W x 3`` BGR (a gray ``H x W`` image is replicated, which
            gives the one-channel SSIM).
        img2 (np.ndarray): Ground truth, same size.
        crop_border (int): Pixels removed on each side before computing.
        test_y_channel (bool): Compute on the Y channel of YCbCr instead of averaging R, G and B.
        **kwargs: Other option keys (ignored, as in BasicSR).

    Returns:
        float: SSIM in [-1, 1] (1 for identical images).
    """
    from basicsr.metrics.psnr_ssim import calculate_ssim

    img, img2 = _prepare_pair(img, img2, crop_border, 'ssim')
    if min(img.shape[:2]) < 11:
        raise MetricUnavailable(f'SSIM needs at least 11x11 pixels (its Gaussian window), got '
                                f'{img.shape[1]}x{img.shape[0]}')
    return float(np.float64(calculate_ssim(img, img2, crop_border=0, input_order='HWC', test_y_channel=test_y_channel)))
