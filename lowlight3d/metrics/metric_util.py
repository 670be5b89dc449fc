"""The metric interface of lowlight3d: compute a registered metric from an option block, report failures.

Every metric is a function registered in BasicSR's ``METRIC_REGISTRY`` (so ``val.metrics`` blocks of option
files and BasicSR's own ``calculate_metric`` can use it) with the BasicSR calling convention
``fn(img, img2, **options)``:

* ``img`` is the prediction and ``img2`` the ground truth (``None`` for no-reference metrics), both uint8
  ``H x W x 3`` **BGR** arrays in [0, 255], as produced by ``basicsr.utils.tensor2img``;
* a metric that cannot be computed (missing weights, image too small, no ground truth) raises
  :class:`MetricUnavailable` whose message is the reason.  It is reported as ``n/a (reason)`` by
  :func:`format_metric`, never as a number.

Protocol of the registered metrics (see :func:`describe_protocol`):

========  ==========  ========  ===============================================================================
name      reference   better    protocol
========  ==========  ========  ===============================================================================
psnr      full        higher    basicsr ``calculate_psnr``: uint8 [0, 255], RGB (all 3 channels) or Y of YCbCr
ssim      full        higher    basicsr ``calculate_ssim``: uint8 [0, 255], mean over R, G, B, or Y of YCbCr
lpips     full        lower     LPIPS v0.1, AlexNet, RGB scaled to [-1, 1] (0 = identical)
niqe      no          lower     pyiqa NIQE (official LIVE parameters), luminance of the RGB image
brisque   no          lower     pyiqa BRISQUE (official LIVE SVM), luminance of the RGB image
========  ==========  ========  ===============================================================================

``crop_border`` pixels are removed on each side before any metric; images are never resized.
"""
import copy
import math

__all__ = [
    'MetricUnavailable', 'METRIC_INFO', 'metric_info', 'is_full_reference', 'compute_metric', 'try_compute_metric', 'mean_of_rows',
    'format_metric', 'describe_protocol', 'check_image', 'crop_image'
]


class MetricUnavailable(RuntimeError):
    """A metric that cannot be computed for this input; ``str(err)`` is the reason (one line).

    It is reported as ``n/a (reason)`` and excluded from averages.
    """


#: Properties of the metrics: ``reference`` is ``'full'`` (needs ``img2``) or ``'no'``; ``better`` is the
#: default ``better`` direction of a ``val.metrics`` block.  BasicSR's own registered functions are listed too.
# yapf: disable
METRIC_INFO = {
    'psnr': {'reference': 'full', 'better': 'higher'},
    'ssim': {'reference': 'full', 'better': 'higher'},
    'lpips': {'reference': 'full', 'better': 'lower'},
    'niqe': {'reference': 'no', 'better': 'lower'},
    'brisque': {'reference': 'no', 'better': 'lower'},
    'calculate_psnr': {'reference': 'full', 'better': 'higher'},
    'calculate_ssim': {'reference': 'full', 'better': 'higher'},
    'calculate_niqe': {'reference': 'no', 'better': 'lower'},
}
# yapf: enable

# Option keys of a metric block that are not arguments of the metric function.
_NON_ARGUMENT_KEYS = ('type', 'better')


def metric_info(name):
    """Properties of a metric type.

    Args:
        name (str): Registered metric name.

    Returns:
        dict: ``{'reference': 'full' | 'no', 'better': 'higher' | 'lower'}``; unknown names are assumed
        full-reference and higher-is-better (BasicSR's default).
    """
    return dict(METRIC_INFO.get(name, {'reference': 'full', 'better': 'higher'}))


def is_full_reference(name):
    """Whether the metric ``name`` needs a ground-truth image.

    Args:
        name (str): Registered metric name.

    Returns:
        bool: True for full-reference metrics.
    """
    return metric_info(name)['reference'] == 'full'


def _one_line(text):
    """Collapse whitespace so that a reason fits in one CSV cell / log line."""
    return ' '.join(str(text).split())


def compute_metric(opt, img, img2=None):
    """Compute one registered metric from a BasicSR-style option block.

    Args:
        opt (dict): Metric block, e.g. ``{'type': 'psnr', 'crop_border': 0, 'test_y_channel': False,
            'better': 'higher'}``.  ``type`` selects the metric; ``better`` is dropped; the other keys are
            passed to the metric function.  Not modified.
        img (np.ndarray): Prediction, uint8 ``H x W x 3`` BGR.
        img2 (np.ndarray, optional): Ground truth, same layout; ``None`` when there is none.

    Returns:
        float: The metric value (``inf`` is possible, e.g. PSNR of identical images).

    Raises:
        KeyError: Unknown metric type (the message lists the known names).
        MetricUnavailable: The metric cannot be computed for this input (the message is the reason).
    """
    from lowlight3d import metrics  # noqa: F401  (registers every *_metric.py; lazy to avoid an import cycle)
    from lowlight3d.utils.registry import METRIC_REGISTRY, get_from_registry

    if not isinstance(opt, dict) or 'type' not in opt:
        raise ValueError(f"A metric option block must be a mapping with a 'type' key, got: {opt!r}")
    kwargs = copy.deepcopy(dict(opt))
    name = kwargs['type']
    for key in _NON_ARGUMENT_KEYS:
        kwargs.pop(key, None)
    fn = get_from_registry(METRIC_REGISTRY, name, where='metrics.type')
    if img2 is None and is_full_reference(name):
        raise MetricUnavailable(f'{name} is a full-reference metric and there is no ground-truth image')
    if img is None:
        raise MetricUnavailable(f'{name}: there is no predicted image')
    try:
        value = fn(img=img, img2=img2, **kwargs)
    except MetricUnavailable as err:
        raise MetricUnavailable(_one_line(err)) from err
    if hasattr(value, 'item'):
        value = value.item()
    value = float(value)
    if math.isnan(value):
        raise MetricUnavailable(f'{name} is NaN for this image')
    return value


def try_compute_metric(opt, img, img2=None):
    """:func:`compute_metric`, returning the :class:`MetricUnavailable` instead of raising it.

    Args:
        opt (dict): Metric block (see :func:`compute_metric`).
        img (np.ndarray): Prediction, uint8 BGR.
        img2 (np.ndarray, optional): Ground truth, uint8 BGR.

    Returns:
        float | MetricUnavailable: The value, or the reason it is unavailable.
    """
    try:
        return compute_metric(opt, img, img2)
    except MetricUnavailable as err:
        return err


def mean_of_rows(rows, metric_names):
    """Per metric, the mean over the rows that have a value; unavailable values are left out.

    Args:
        rows (list[dict]): Rows whose metric values are floats or :class:`MetricUnavailable`.
        metric_names (Sequence[str]): Metric columns.

    Returns:
        OrderedDict: ``{name: float}``, or a :class:`MetricUnavailable` (the common reason, or
        ``no image has a value``) where no row has a value.  ``inf`` (PSNR of identical images) propagates.
    """
    from collections import OrderedDict
    means = OrderedDict()
    for name in metric_names:
        values = [r[name] for r in rows if name in r and not isinstance(r[name], BaseException)]
        if values:
            means[name] = float(sum(values) / len(values))
        else:
            reasons = {str(r[name]) for r in rows if name in r}
            means[name] = MetricUnavailable(reasons.pop() if len(reasons) == 1 else 'no image has a value')
    return means


def format_metric(value, precision=4):
    """Text of a metric value for logs, tables and CSV files.

    Args:
        value (float | MetricUnavailable | None): A value, or the reason it is unavailable.
        precision (int): Decimals of finite values.

    Returns:
        str: ``'21.1136'``, ``'inf'``, or ``'n/a (reason)'`` (``'n/a'`` for ``None``).
    """
    if value is None:
        return 'n/a'
    if isinstance(value, BaseException):
        return f'n/a ({_one_line(value)})'
    value = float(value)
    if math.isinf(value):
        return 'inf' if value > 0 else '-inf'
    if math.isnan(value):
        return 'n/a (NaN)'
    return f'{value:.{precision}f}'


def describe_protocol(crop_border=0, test_y_channel=False):
    """One paragraph stating exactly how the metrics are computed (printed by ``scripts/evaluate.py``).

    Args:
        crop_border (int): Pixels removed on each side before computing.
        test_y_channel (bool): Whether PSNR/SSIM use the Y channel.

    Returns:
        str: The protocol description.
    """
    channels = ('Y channel of YCbCr (BT.601, MATLAB rgb2ycbcr, range 16-235)'
                if test_y_channel else 'RGB, all 3 channels (SSIM averaged over channels)')
    return (f'Protocol: images read as 8-bit (uint8, range [0, 255]); no resize; crop_border={crop_border} pixels '
            f'removed on each side. PSNR/SSIM (basicsr calculate_psnr/calculate_ssim, 11x11 Gaussian window '
            f'sigma 1.5): {channels}. LPIPS: v0.1 AlexNet, RGB scaled to [-1, 1]. NIQE/BRISQUE: pyiqa '
            f'implementations with the official LIVE parameters, on the luminance (YIQ Y, rounded) of the RGB '
            f'image; NIQE uses 96x96 blocks (images need at least 96x96 pixels after cropping). '
            'Unavailable values are written n/a (reason) and left out of the means.')


def check_image(img, name='img'):
    """Validate an image of the metric interface.

    Args:
        img (np.ndarray): ``H x W x 3`` (or ``H x W`` / ``H x W x 1``) array in [0, 255].
        name (str): Argument name for error messages.

    Returns:
        np.ndarray: ``H x W x 3`` array (a gray image is replicated to 3 channels).

    Raises:
        ValueError: If the array does not look like an image.
    """
    import numpy as np

    img = np.asarray(img)
    if img.ndim == 2:
        img = img[..., None]
    if img.ndim != 3 or img.shape[2] not in (1, 3):
        raise ValueError(f'{name} must be an H x W x 3 (BGR) image, got shape {img.shape}')
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    if img.dtype != np.uint8:
        if not np.issubdtype(img.dtype, np.floating) or img.size and (img.min() < 0 or img.max() > 255):
            raise ValueError(f'{name} must be uint8 in [0, 255] (or float in [0, 255]), got {img.dtype} '
                             f'with range [{img.min()}, {img.max()}]')
    return img


def crop_image(img, crop_border):
    """Remove ``crop_border`` pixels on each side.

    Args:
        img (np.ndarray): ``H x W x C`` image.
        crop_border (int): Pixels to remove per side (0 keeps the image).

    Returns:
        np.ndarray: The cropped view.

    Raises:
        MetricUnavailable: If nothing is left after cropping.
    """
    crop_border = int(crop_border or 0)
    if crop_border < 0:
        raise ValueError(f'crop_border must be >= 0, got {crop_border}')
    if crop_border == 0:
        return img
    h, w = img.shape[:2]
    if h <= 2 * crop_border or w <= 2 * crop_border:
        raise MetricUnavailable(f'image {w}x{h} is too small for crop_border={crop_border}')
    return img[crop_border:-crop_border, crop_border:-crop_border, ...]
