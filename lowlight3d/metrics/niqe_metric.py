"""NIQE (Mittal et al. 2013), registered as ``niqe``: pyiqa's port with the official LIVE parameters, offline.

The parameters (pristine MVG ``mu_prisparam``/``cov_prisparam``) are basicsr's copy of the official NIQE
release, converted at install time by ``python scripts/build_iqa_models.py`` into
``weights_dir()/iqa/niqe_modelparameters.mat`` (:mod:`lowlight3d.metrics.iqa_model_files`).

Protocol: the RGB image goes to pyiqa's ``niqe`` (its default options): luminance = Y of YIQ (MATLAB
``rgb2gray``), rounded to integers, 96x96 blocks at full and half scale.  Lower is better.  On pyiqa's
calibration images it reproduces pyiqa's published NIQE to 0.002 (see ``tests/test_metrics.py``).
The image needs at least one 96x96 block (both sides >= 96 after ``crop_border``); smaller images raise
:class:`~lowlight3d.metrics.metric_util.MetricUnavailable`.
"""
import math

from lowlight3d.metrics.iqa_model_files import niqe_model_path
from lowlight3d.metrics.metric_util import MetricUnavailable, check_image, crop_image
from lowlight3d.metrics.pyiqa_util import bgr_to_rgb_tensor, default_device, get_pyiqa_metric, require_model_file
from lowlight3d.utils.registry import METRIC_REGISTRY, register

__all__ = ['niqe', 'NIQE_BLOCK_SIZE']

#: NIQE's block size (official value); both image sides must be at least this long.
NIQE_BLOCK_SIZE = 96


@register(METRIC_REGISTRY, name='niqe')
def niqe(img, img2=None, crop_border=0, model_path=None, device=None, **kwargs):
    """Natural Image Quality Evaluator (no reference; lower is better).

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
    h, w = img.shape[:2]
    if h < NIQE_BLOCK_SIZE or w < NIQE_BLOCK_SIZE:
        raise MetricUnavailable(f'NIQE needs an image of at least {NIQE_BLOCK_SIZE}x{NIQE_BLOCK_SIZE} pixels '
                                f'(one block) after crop_border={crop_border}, got {w}x{h}')
    path = require_model_file(model_path or niqe_model_path(), 'niqe', 'NIQE parameter')
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
