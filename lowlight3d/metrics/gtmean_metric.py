"""GT-mean PSNR and SSIM (registered as ``psnr_gtmean`` and ``ssim_gtmean``): NOT part of our protocol.

Several low-light papers (LLFlow, GSAD, HVI-CIDNet's published LOLv1 numbers ...) report PSNR/SSIM after
rescaling the prediction's brightness to the ground truth's.  These two metrics reproduce that correction so that
such numbers can be compared; our tables report the raw ``psnr`` / ``ssim``, and an option file lists these under
their own names so that they are printed as separate rows, never in place of the raw ones.

Exactly (HVI-CIDNet's ``measure.py --use_GT_mean``)::

    m_pred = mean(gray(pred)),  m_gt = mean(gray(gt))       gray = OpenCV's uint8 BGR->GRAY
                                                            (0.299 R + 0.587 G + 0.114 B, rounded per pixel)
    pred'  = clip(pred * m_gt / m_pred, 0, 255)             all three channels, float (not re-quantised)

then ``psnr`` / ``ssim`` of this toolkit (basicsr ``calculate_psnr`` / ``calculate_ssim``, same options:
``crop_border`` and ``test_y_channel``) on ``(pred', gt)``.  The means are taken after ``crop_border``.  An all-black
prediction (``m_pred = 0``) has no GT-mean value (``n/a``).
"""
import numpy as np

from lowlight3d.metrics.metric_util import MetricUnavailable, check_image, crop_image, register_metric
from lowlight3d.metrics.psnr_ssim_metric import psnr, ssim

__all__ = ['gt_mean_rescale', 'psnr_gtmean', 'ssim_gtmean']


def _gray_mean(img):
    """Mean of OpenCV's uint8 gray conversion of a BGR image in [0, 255]."""
    import cv2
    return float(cv2.cvtColor(np.clip(np.rint(img), 0, 255).astype(np.uint8), cv2.COLOR_BGR2GRAY).mean())


def gt_mean_rescale(img, img2, crop_border=0):
    """Crop both images and scale the prediction so that its gray mean equals the ground truth's.

    Args:
        img (np.ndarray): Prediction, ``H x W x 3`` BGR in [0, 255]. img2 (np.ndarray): Ground truth, same size.
        crop_border (int): Pixels removed on each side first.

    Returns:
        tuple[np.ndarray, np.ndarray]: ``(float64 rescaled prediction clipped to [0, 255], ground truth)``.

    Raises:
        MetricUnavailable: The prediction is black (gray mean 0).
    """
    if img2 is None:
        raise ValueError('GT-mean metrics are full-reference: img2 (the ground truth) is required')
    img, img2 = check_image(img, 'img'), check_image(img2, 'img2')
    if img.shape != img2.shape:
        raise ValueError(f'GT-mean metric: prediction {img.shape[1]}x{img.shape[0]} and ground truth '
                         f'{img2.shape[1]}x{img2.shape[0]} differ in size (no resize is done)')
    img, img2 = crop_image(img, crop_border), crop_image(img2, crop_border)
    mean_pred, mean_gt = _gray_mean(img), _gray_mean(img2)
    if mean_pred == 0:
        raise MetricUnavailable('GT-mean undefined: the prediction is black (gray mean 0)')
    return np.clip(img.astype(np.float64) * (mean_gt / mean_pred), 0, 255), img2


@register_metric('psnr_gtmean', reference='full', better='higher')
def psnr_gtmean(img, img2, crop_border=0, test_y_channel=False, **kwargs):
    """PSNR after the GT-mean rescaling of the prediction (see the module docstring); NOT our protocol's PSNR.

    Args:
        img (np.ndarray): Prediction, uint8 ``H x W x 3`` BGR. img2 (np.ndarray): Ground truth, same size.
        crop_border (int): Pixels removed on each side. test_y_channel (bool): PSNR on Y of YCbCr.
        **kwargs: Other option keys (ignored).

    Returns:
        float: PSNR in dB.
    """
    pred, gt = gt_mean_rescale(img, img2, crop_border)
    return psnr(pred, gt, crop_border=0, test_y_channel=test_y_channel)


@register_metric('ssim_gtmean', reference='full', better='higher')
def ssim_gtmean(img, img2, crop_border=0, test_y_channel=False, **kwargs):
    """SSIM after the GT-mean rescaling of the prediction (see the module docstring); NOT our protocol's SSIM.

    Args:
        img (np.ndarray): Prediction, uint8 ``H x W x 3`` BGR. img2 (np.ndarray): Ground truth, same size.
        crop_border (int): Pixels removed on each side. test_y_channel (bool): SSIM on Y of YCbCr.
        **kwargs: Other option keys (ignored).

    Returns:
        float: SSIM.
    """
    pred, gt = gt_mean_rescale(img, img2, crop_border)
    return ssim(pred, gt, crop_border=0, test_y_channel=test_y_channel)
