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
niqe      no          lower     official MATLAB NIQE (LIVE parameters) on MATLAB rgb2gray, float64 NumPy port
brisque   no          lower     official LIVE BRISQUE (SVR, svm-scale) on MATLAB rgb2gray, float64 NumPy port
grid      no          lower     period-2/4 line energy of the high-passed luma's spectrum over its neighbourhood
chroma    no          lower     mean max(R,G,B) - min(R,G,B) (0-255); on gray inputs the invented colour cast
identity  full        lower     dlib ResNet face-recognition embeddings (128-D) of result and reference, Euclidean
                                distance (same person below 0.6); set level ``identity_rank1`` (higher better)
========  ==========  ========  ===============================================================================

``psnr_gtmean`` / ``ssim_gtmean`` (full reference, higher is better) are NOT part of the protocol: ``psnr`` /
``ssim`` after scaling the prediction to the ground truth's gray mean, the "GT mean" of some papers
(``gtmean_metric.py``); they are listed under their own names, apart from the raw values.

``niqe_pyiqa`` / ``brisque_pyiqa`` (no reference, lower is better) are pyiqa's ports of the same metrics, which
differ from the official MATLAB values on images with flat regions (``niqe_metric.py``, ``brisque_metric.py``);
they are listed under their own names for comparison with papers that report pyiqa's numbers.

``crop_border`` pixels are removed on each side before any metric; images are never resized.

Set-level metrics: a metric type registered with :func:`register_set_level` also has values over a whole set
(e.g. ``identity_rank1``: rank-1 identification among all references of the set).  Scoring loops
(:func:`lowlight3d.models.validation.evaluate_loader`, :func:`lowlight3d.metrics.folder_evaluation.evaluate_folders`)
build one :class:`SetLevelMetric` per such block with :func:`build_set_level_metrics`, let it compute the per-image
value (so whatever it computes per image is computed once), and return a :class:`MetricRows` whose
``set_values`` :func:`mean_of_rows` appends to the per-set means.
"""
import copy
import math

__all__ = [
    'MetricUnavailable', 'METRIC_INFO', 'declare_metric', 'register_metric', 'metric_info', 'is_full_reference',
    'metrics_of_set',
    'compute_metric', 'try_compute_metric', 'mean_of_rows',
    'format_metric', 'describe_protocol', 'check_image', 'bgr_luma', 'crop_image', 'SetLevelMetric',
    'SET_LEVEL_METRICS',
    'register_set_level', 'build_set_level_metrics', 'finish_set_level', 'MetricRows'
]


class MetricUnavailable(RuntimeError):
    """A metric that cannot be computed for this input; ``str(err)`` is the reason (one line).

    It is reported as ``n/a (reason)`` and excluded from averages.
    """


#: Properties of the registered metrics, filled by :func:`register_metric` where each metric is registered:
#: ``reference`` is ``'full'`` (needs ``img2``) or ``'no'``; ``better`` is the default ``better`` direction of a
#: ``val.metrics`` block.  Set-level values (``identity_rank1``) come from their :class:`SetLevelMetric`.
METRIC_INFO = {}

_REFERENCES = ('full', 'no')
_DIRECTIONS = ('higher', 'lower')


def declare_metric(name, reference, better):
    """Record the properties of the metric registered as ``name`` in :data:`METRIC_INFO`.

    Args:
        name (str): Registry key.
        reference (str): ``'full'`` (the metric compares with a reference image) or ``'no'``.
        better (str): ``'higher'`` or ``'lower'``.

    Raises:
        ValueError: A property outside its vocabulary, or other properties already declared for ``name``.
    """
    if reference not in _REFERENCES or better not in _DIRECTIONS:
        raise ValueError(f'metric {name!r}: reference must be one of {_REFERENCES} and better one of {_DIRECTIONS}, '
                         f'got reference={reference!r}, better={better!r}')
    info = {'reference': reference, 'better': better}
    if METRIC_INFO.get(name, info) != info:
        raise ValueError(f'metric {name!r} is already declared with {METRIC_INFO[name]}, not {info}')
    METRIC_INFO[name] = info


def register_metric(name, reference, better):
    """Decorator: register a per-image metric function in ``METRIC_REGISTRY`` with its properties.

    Args:
        name (str): Registry key (the ``type`` of a ``val.metrics`` block).
        reference (str): ``'full'`` or ``'no'`` (see :func:`declare_metric`).
        better (str): ``'higher'`` or ``'lower'``.

    Returns:
        callable: The decorator; it returns the function unchanged.
    """
    from lowlight3d.utils.registry import METRIC_REGISTRY, register
    declare_metric(name, reference, better)
    return register(METRIC_REGISTRY, name=name)


# BasicSR registers these functions itself; their properties are declared here.
declare_metric('calculate_psnr', 'full', 'higher')
declare_metric('calculate_ssim', 'full', 'higher')
declare_metric('calculate_niqe', 'no', 'lower')

# Option keys of a metric block that are not arguments of the metric function.
_NON_ARGUMENT_KEYS = ('type', 'better')


def metric_info(name):
    """Properties of a metric type or of a set-level value.

    Args:
        name (str): Registered metric name, or ``<metric>_<suffix>`` of a set-level value (``identity_rank1``).

    Returns:
        dict: ``{'reference': 'full' | 'no', 'better': 'higher' | 'lower'}``; unknown names are assumed
        full-reference and higher-is-better (BasicSR's default).
    """
    if name in METRIC_INFO:
        return dict(METRIC_INFO[name])
    for metric_type, cls in SET_LEVEL_METRICS.items():
        for suffix, better in cls.outputs.items():
            if name == f'{metric_type}_{suffix}':
                return {'reference': 'full' if cls.full_reference else 'no', 'better': better}
    return {'reference': 'full', 'better': 'higher'}


def metrics_of_set(metrics_opt, dataset_opt, where='datasets.test'):
    """The ``val.metrics`` blocks scored on one test set: those its ``metrics`` list names, else all.

    A test set may restrict the metrics to the ones that make sense for it, e.g. ``metrics: [psnr, ssim]`` on
    synthetic pairs and ``metrics: [niqe, brisque, identity]`` on real photos whose reference is another photo.

    Args:
        metrics_opt (dict): ``val.metrics``. dataset_opt (dict): The set's option block.
        where (str): Option path of the set, for errors.

    Returns:
        dict: ``{name: block}`` in the order of ``val.metrics``.

    Raises:
        ValueError: The list names a metric that ``val.metrics`` does not define.
    """
    wanted = dataset_opt.get('metrics')
    if wanted is None:
        return dict(metrics_opt or {})
    if isinstance(wanted, str):
        wanted = [wanted]
    unknown = [m for m in wanted if m not in (metrics_opt or {})]
    if unknown:
        raise ValueError(f'{where}.metrics names {unknown}, which val.metrics does not define (defined: '
                         f'{list(metrics_opt or {})}); add a block for it to val.metrics or remove it from the list')
    return {k: v for k, v in metrics_opt.items() if k in wanted}


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
        When ``rows`` is a :class:`MetricRows`, its set-level values (e.g. ``identity_rank1``) follow the means.
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
    means.update(getattr(rows, 'set_values', None) or {})
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
            f'sigma 1.5): {channels}. LPIPS: v0.1 AlexNet, RGB scaled to [-1, 1]. NIQE/BRISQUE: the '
            f'official MATLAB algorithms (LIVE parameters/SVR) on the MATLAB rgb2gray luminance (rounded), '
            f'float64; NIQE uses 96x96 blocks (images need at least 96x96 pixels after cropping). '
            'identity: Euclidean distance of dlib ResNet face embeddings (HOG face box, whole frame when no face is '
            'found; same person below 0.6), identity_rank1: share of results nearest to their own reference among '
            'the distinct references of the set. '
            'Unavailable values are written n/a (reason) and left out of the means.')


def score_gray_image(name, gray, score_fn):
    """``score_fn(gray)`` for a no-reference metric on a 2-D luminance map, or :class:`MetricUnavailable`.

    A constant map is refused (only rounding residues would be left to fit, and MATLAB's value is meaningless), and
    a non-finite score (too small, flat or degenerate content) is reported as unavailable, never returned.
    """
    h, w = gray.shape[:2]
    if gray.min() == gray.max():
        raise MetricUnavailable(f'{name} cannot be computed on this {w}x{h} image (flat: constant luminance)')
    import numpy as np
    with np.errstate(invalid='ignore', divide='ignore', over='ignore'):
        value = score_fn(gray)
    if not math.isfinite(value):
        raise MetricUnavailable(f'{name} is not finite on this {w}x{h} image (too small, flat or degenerate content)')
    return value


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


def bgr_luma(img):
    """BT.601 luma ``0.299 R + 0.587 G + 0.114 B`` in [0, 1] (float64, ``H x W``) of an ``H x W x 3`` BGR image in
    [0, 255] (:func:`check_image` makes one of any image)."""
    img = img.astype('float64') / 255.0
    from lowlight3d.utils.luma import luma_weights
    return img @ luma_weights('bgr', 'float64')


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


class MetricRows(list):
    """The per-image metric rows of one set, plus the values computed over the whole set.

    It is a plain ``list`` of row dicts for every caller; :func:`mean_of_rows` appends ``set_values`` to the
    means, so per-set summaries (``metrics.json``, tables, CSV mean rows) show them without special cases.

    Args:
        rows (Iterable[dict]): Per-image rows.
        set_values (dict, optional): ``{name: float | MetricUnavailable}``, e.g. ``{'identity_rank1': 0.9}``.
        set_better (dict, optional): ``{name: 'higher' | 'lower'}``: direction of each set-level value.
    """

    def __init__(self, rows=(), set_values=None, set_better=None):
        super().__init__(rows)
        from collections import OrderedDict
        self.set_values = OrderedDict(set_values or {})
        self.set_better = dict(set_better or {})


#: Metric type -> :class:`SetLevelMetric` subclass computing its per-image and set-level values.
SET_LEVEL_METRICS = {}


def register_set_level(metric_type):
    """Class decorator: declare the :class:`SetLevelMetric` of the registered metric ``metric_type``.

    Args:
        metric_type (str): A name of ``METRIC_REGISTRY`` (the per-image function of the same metric).

    Returns:
        callable: The decorator; it returns the class unchanged.

    Raises:
        TypeError: The class is not a :class:`SetLevelMetric`.
        KeyError: Another class is already declared for ``metric_type``.
    """

    def deco(cls):
        if not (isinstance(cls, type) and issubclass(cls, SetLevelMetric)):
            raise TypeError(f'register_set_level({metric_type!r}) decorates a SetLevelMetric subclass, got {cls!r}')
        existing = SET_LEVEL_METRICS.get(metric_type)
        if existing is not None and (existing.__module__, existing.__qualname__) != (cls.__module__, cls.__qualname__):
            raise KeyError(f'Metric {metric_type!r} already has the set-level class '
                           f'{existing.__module__}.{existing.__qualname__}; {cls.__qualname__} cannot replace it.')
        cls.metric_type = metric_type
        SET_LEVEL_METRICS[metric_type] = cls
        return cls

    return deco


class SetLevelMetric:
    """A metric with a value per image and values over the whole set (e.g. rank-1 identification).

    One instance scores one set.  Subclasses define:

    * ``outputs``: ``{suffix: 'higher' | 'lower'}``; the set-level values are reported as
      ``<metric block name>_<suffix>`` (block ``identity`` -> ``identity_rank1``);
    * ``__init__(**options)``: the metric block less ``type`` and ``better`` (same options as the registered
      per-image function);
    * :meth:`update`: the per-image value, equal to what the registered function returns for the same images and
      options, while keeping what :meth:`summary` needs (so nothing is computed twice);
    * :meth:`summary`: the set-level values.
    """

    #: ``{suffix: better}`` of the set-level values.
    outputs = {}
    #: Whether :meth:`update` needs the reference image (``img2``).
    full_reference = True
    #: The registered metric type (set by :func:`register_set_level`).
    metric_type = 'set-level metric'

    def update(self, img, img2=None):
        """Score one image and remember what the set-level values need.

        Args:
            img (np.ndarray): Result, uint8 ``H x W x 3`` BGR.
            img2 (np.ndarray, optional): Reference, same layout.

        Returns:
            float: The per-image value.

        Raises:
            MetricUnavailable: The value cannot be computed for this image (it then takes no part in the set).
        """
        raise NotImplementedError(f'{type(self).__name__} must implement update(img, img2)')

    def summary(self):
        """The set-level values after the last :meth:`update`.

        Returns:
            dict: ``{suffix: float | MetricUnavailable}`` for each suffix of ``outputs``.
        """
        raise NotImplementedError(f'{type(self).__name__} must implement summary()')

    def try_update(self, img, img2=None):
        """:meth:`update` with the checks of :func:`compute_metric`, returning a :class:`MetricUnavailable`.

        Args:
            img (np.ndarray | None): Result, uint8 BGR.
            img2 (np.ndarray | None): Reference, uint8 BGR.

        Returns:
            float | MetricUnavailable: The value, or the reason it is unavailable.
        """
        name = self.metric_type
        try:
            if img is None:
                raise MetricUnavailable(f'{name}: there is no predicted image')
            if img2 is None and self.full_reference:
                raise MetricUnavailable(f'{name} is a full-reference metric and there is no ground-truth image')
            value = float(self.update(img, img2))
            if math.isnan(value):
                raise MetricUnavailable(f'{name} is NaN for this image')
            return value
        except MetricUnavailable as err:
            return MetricUnavailable(_one_line(err))


def build_set_level_metrics(metrics_opt):
    """One fresh :class:`SetLevelMetric` per block of ``metrics_opt`` whose type has one.

    Args:
        metrics_opt (dict): ``{block name: metric block}`` (``val.metrics``); may be empty or None.

    Returns:
        OrderedDict: ``{block name: SetLevelMetric}``; blocks of plain per-image metrics are absent.
    """
    from collections import OrderedDict

    from lowlight3d import metrics  # noqa: F401  (registers every *_metric.py; lazy to avoid an import cycle)
    built = OrderedDict()
    for name, block in (metrics_opt or {}).items():
        cls = SET_LEVEL_METRICS.get((block or {}).get('type', name))
        if cls is not None:
            kwargs = {k: v for k, v in copy.deepcopy(dict(block)).items() if k not in _NON_ARGUMENT_KEYS}
            built[name] = cls(**kwargs)
    return built


def finish_set_level(rows, set_metrics):
    """Attach the set-level values of ``set_metrics`` to ``rows``.

    Args:
        rows (list[dict]): Per-image rows of the set.
        set_metrics (dict): ``{block name: SetLevelMetric}`` from :func:`build_set_level_metrics`, updated on
            every row.

    Returns:
        MetricRows: ``rows`` with ``set_values`` ``{'<block>_<suffix>': value}`` (a :class:`MetricUnavailable`
        where the summary cannot be computed) and ``set_better``.
    """
    from collections import OrderedDict
    values, better = OrderedDict(), {}
    for name, metric in (set_metrics or {}).items():
        try:
            summary = metric.summary()
        except MetricUnavailable as err:
            summary = {suffix: MetricUnavailable(_one_line(err)) for suffix in metric.outputs}
        for suffix, direction in metric.outputs.items():
            key = f'{name}_{suffix}'
            values[key] = summary.get(suffix, MetricUnavailable(f'{key} was not computed'))
            better[key] = direction
    return MetricRows(rows, values, better)
