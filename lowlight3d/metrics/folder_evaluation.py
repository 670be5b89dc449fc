"""Score a folder of images (ours or another repository's outputs) under the toolkit's exact metric protocol.

Used by ``scripts/evaluate.py`` and reusable from Python (e.g. by the test pipeline)::

    rows = evaluate_folders('results/x', 'datasets/gt', ['psnr', 'ssim', 'niqe'])
    write_metrics_csv(rows, 'scores.csv')

Rules:

* predictions and ground truths are paired by **file stem** (``a.png`` pairs with ``a.jpg``); names present
  on one side only are an error listing them (``allow_unmatched=True`` skips them with a warning);
* a prediction whose size differs from its ground truth is an error naming the file (no resizing);
* images are read as 8-bit BGR (``cv2.IMREAD_COLOR``: gray is replicated, alpha dropped, 16-bit reduced to
  8-bit), i.e. exactly what :func:`lowlight3d.metrics.metric_util.compute_metric` expects;
* one row per image plus a ``mean`` row; an unavailable value is kept as the
  :class:`~lowlight3d.metrics.metric_util.MetricUnavailable` (written ``n/a (reason)``) and left out of the mean;
* set-level metrics (``identity_rank1`` of ``identity``: rank-1 identification among the distinct ground-truth
  images of the folder) appear in the ``mean`` row only.
"""
import os
import os.path as osp
import warnings
from collections import OrderedDict

import numpy as np

from lowlight3d.metrics.metric_util import (
    MetricUnavailable,
    build_set_level_metrics,
    describe_protocol,
    finish_set_level,
    is_full_reference,
    mean_of_rows,
    try_compute_metric,
)
from lowlight3d.utils import results_table
from lowlight3d.utils.img_io import IMAGE_EXTENSIONS
from lowlight3d.utils.results_table import write_rows_csv

__all__ = [
    'IMAGE_EXTENSIONS', 'PairingError', 'ImageSizeError', 'list_images', 'pair_images', 'read_image',
    'evaluate_folders', 'mean_row', 'write_metrics_csv', 'format_table', 'describe_protocol'
]

#: Name of the summary row.
MEAN_ROW_NAME = 'mean'
#: Columns that are not metrics.
NAME_COLUMNS = ('name', 'pred', 'gt')


class PairingError(ValueError):
    """Predictions and ground truths cannot be paired (unmatched or duplicate names)."""


class ImageSizeError(ValueError):
    """A prediction and its ground truth differ in size."""


def list_images(folder):
    """Images directly inside ``folder``, by file stem.

    Args:
        folder (str): Folder to list (not recursive; hidden files are ignored).

    Returns:
        OrderedDict[str, str]: ``{stem: path}`` sorted by stem.

    Raises:
        FileNotFoundError: If ``folder`` is not a folder.
        PairingError: If two files share a stem (e.g. ``a.png`` and ``a.jpg``).
    """
    if not osp.isdir(folder):
        raise FileNotFoundError(f'Image folder {folder!r} does not exist.')
    found, clashes = {}, []
    for fname in sorted(os.listdir(folder)):
        stem, ext = osp.splitext(fname)
        if fname.startswith('.') or ext.lower() not in IMAGE_EXTENSIONS or not osp.isfile(osp.join(folder, fname)):
            continue
        if stem in found:
            clashes.append(f'{osp.basename(found[stem])} / {fname}')
            continue
        found[stem] = osp.join(folder, fname)
    if clashes:
        raise PairingError(f'{folder}: several images share a name (pairing is by file name without extension): ' +
                           ', '.join(clashes))
    return OrderedDict(sorted(found.items()))


def _preview(names, limit=20):
    """Comma-separated names, at most ``limit`` of them."""
    names = sorted(names)
    text = ', '.join(names[:limit])
    return text + (f', ... ({len(names) - limit} more)' if len(names) > limit else '')


def pair_images(pred_dir, gt_dir=None, allow_unmatched=False):
    """Pair predictions with ground truths by file stem.

    Args:
        pred_dir (str): Folder of predictions.
        gt_dir (str, optional): Folder of ground truths; ``None`` for no-reference scoring.
        allow_unmatched (bool): Skip unmatched names with a warning instead of raising.

    Returns:
        list[tuple[str, str, str | None]]: ``(stem, pred_path, gt_path)`` sorted by stem.

    Raises:
        PairingError: If a folder has no image, or names are unmatched and ``allow_unmatched`` is False.
    """
    preds = list_images(pred_dir)
    if not preds:
        raise PairingError(f'No images ({", ".join(IMAGE_EXTENSIONS)}) in {pred_dir}.')
    if gt_dir is None:
        return [(stem, path, None) for stem, path in preds.items()]
    gts = list_images(gt_dir)
    if not gts:
        raise PairingError(f'No images ({", ".join(IMAGE_EXTENSIONS)}) in {gt_dir}.')
    only_pred = set(preds) - set(gts)
    only_gt = set(gts) - set(preds)
    if only_pred or only_gt:
        parts = []
        if only_pred:
            parts.append(f'{len(only_pred)} prediction(s) without ground truth in {gt_dir}: {_preview(only_pred)}')
        if only_gt:
            parts.append(f'{len(only_gt)} ground truth(s) without prediction in {pred_dir}: {_preview(only_gt)}')
        message = 'Unmatched image names (pairing is by file name without extension): ' + '; '.join(parts)
        if not allow_unmatched:
            raise PairingError(message + '. Rename the files, or pass --allow-unmatched to skip them.')
        warnings.warn(message + '. They are skipped.', stacklevel=2)
    pairs = [(stem, preds[stem], gts[stem]) for stem in preds if stem in gts]
    if not pairs:
        raise PairingError(f'No image name of {pred_dir} matches one of {gt_dir}.')
    return pairs


def read_image(path):
    """Read an image as uint8 ``H x W x 3`` BGR (the metric interface's convention).

    Args:
        path (str): Image file.

    Returns:
        np.ndarray: The image.

    Raises:
        ValueError: If the file cannot be decoded.
    """
    import cv2

    data = np.fromfile(path, dtype=np.uint8)  # also works for non-ASCII paths, unlike cv2.imread
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if img is None:
        raise ValueError(f'Cannot read image {path} (not an image OpenCV can decode).')
    return img


def _metric_blocks(metric_names, crop_border, test_y_channel, metric_opts):
    """``{name: option block}`` for each requested metric."""
    blocks = OrderedDict()
    for name in metric_names:
        block = {'type': name, 'crop_border': crop_border}
        if name in ('psnr', 'ssim', 'calculate_psnr', 'calculate_ssim'):
            block['test_y_channel'] = test_y_channel
        block.update((metric_opts or {}).get(name, {}))
        blocks[name] = block
    return blocks


def evaluate_folders(pred_dir,
                     gt_dir=None,
                     metric_names=('psnr', 'ssim'),
                     crop_border=0,
                     test_y_channel=False,
                     allow_unmatched=False,
                     metric_opts=None,
                     progress=None):
    """Score every prediction of a folder; one row per image plus a ``mean`` row.

    Args:
        pred_dir (str): Folder of predictions.
        gt_dir (str, optional): Folder of ground truths (needed for full-reference metrics).
        metric_names (Sequence[str] | str): Registered metric names, e.g. ``['psnr', 'ssim', 'lpips', 'niqe']``
            or ``'psnr,ssim'``.
        crop_border (int): Pixels removed on each side before every metric.
        test_y_channel (bool): PSNR/SSIM on the Y channel instead of RGB.
        allow_unmatched (bool): Skip unmatched names (with a warning) instead of raising.
        metric_opts (dict, optional): Extra options per metric, e.g. ``{'lpips': {'alexnet_path': ...}}``.
        progress (callable, optional): Called as ``progress(index, total, name)`` after each image.

    Returns:
        list[OrderedDict]: Rows with keys ``name``, ``pred``, ``gt`` (file names) and one key per metric whose
        value is a float or a :class:`MetricUnavailable`.  The last row is the mean (``name == 'mean'``,
        ``pred`` = number of images), computed over the available values of each metric, followed by the
        set-level values (e.g. ``identity_rank1``).

    Raises:
        ValueError: Empty or unknown metric list, a full-reference metric without ``gt_dir``.
        PairingError: Unmatched names (see :func:`pair_images`).
        ImageSizeError: A prediction whose size differs from its ground truth.
    """
    from lowlight3d import metrics  # noqa: F401  (registrations)
    from lowlight3d.utils.registry import METRIC_REGISTRY, get_from_registry

    if isinstance(metric_names, str):
        metric_names = metric_names.split(',')
    metric_names = [m.strip() for m in metric_names if m and m.strip()]
    if not metric_names:
        raise ValueError('No metric requested.')
    for name in metric_names:
        get_from_registry(METRIC_REGISTRY, name, where='--metrics')
    if len(set(metric_names)) != len(metric_names):
        raise ValueError(f'A metric is requested twice: {metric_names}')
    full_ref = [m for m in metric_names if is_full_reference(m)]
    if full_ref and gt_dir is None:
        raise ValueError(f'Full-reference metric(s) {", ".join(full_ref)} need ground-truth images (--gt DIR); '
                         'without them only no-reference metrics (niqe, brisque) can be computed.')
    blocks = _metric_blocks(metric_names, crop_border, test_y_channel, metric_opts)
    pairs = pair_images(pred_dir, gt_dir, allow_unmatched=allow_unmatched)

    rows = []
    set_metrics = build_set_level_metrics(blocks)
    for index, (stem, pred_path, gt_path) in enumerate(pairs):
        img = read_image(pred_path)
        gt = read_image(gt_path) if gt_path else None
        if gt is not None and img.shape != gt.shape:
            raise ImageSizeError(f'{osp.basename(pred_path)}: prediction is {img.shape[1]}x{img.shape[0]} but the '
                                 f'ground truth {osp.basename(gt_path)} is {gt.shape[1]}x{gt.shape[0]} (no resizing '
                                 'is done; crop or resize the outputs to the ground-truth size first).')
        row = OrderedDict(name=stem, pred=osp.basename(pred_path), gt=osp.basename(gt_path) if gt_path else '')
        for name, block in blocks.items():
            set_metric = set_metrics.get(name)
            row[name] = set_metric.try_update(img, gt) if set_metric is not None else try_compute_metric(block, img, gt)
        rows.append(row)
        if progress:
            progress(index + 1, len(pairs), stem)
    rows.append(mean_row(finish_set_level(rows, set_metrics), metric_names))
    return rows


def mean_row(rows, metric_names):
    """The ``mean`` row: per metric, the mean of the available (non-``MetricUnavailable``) values.

    Args:
        rows (list[dict]): Per-image rows (a :class:`~lowlight3d.metrics.metric_util.MetricRows` adds its
            set-level values after the means).
        metric_names (Sequence[str]): Metric columns.

    Returns:
        OrderedDict: ``name='mean'``, ``pred`` = number of images, ``gt=''`` and each metric's mean (a
        :class:`MetricUnavailable` when no image has a value).
    """
    return OrderedDict(name=MEAN_ROW_NAME, pred=f'{len(rows)} images', gt='', **mean_of_rows(rows, metric_names))


def write_metrics_csv(rows, path, precision=6):
    """Write rows from :func:`evaluate_folders` to a CSV file (unavailable values as ``n/a (reason)``).

    Args:
        rows (list[dict]): Rows (the last is normally the mean row).
        path (str): Output ``.csv`` file (its folder is created).
        precision (int): Decimals of the values.

    Returns:
        str: ``path``.
    """
    if not rows:
        raise ValueError('No rows to write.')
    return write_rows_csv(rows, path, digits=precision)


def format_table(rows, precision=4):
    """Markdown table of the rows; unavailable cells read ``n/a [k]`` with reason ``k`` listed below.

    Args:
        rows (list[dict]): Rows from :func:`evaluate_folders`.
        precision (int): Decimals shown.

    Returns:
        str: The table.
    """
    if not rows:
        return ''
    named = []
    for row in rows:
        named.append(OrderedDict((k, v if k in NAME_COLUMNS or not isinstance(v, BaseException) else
                                  MetricUnavailable(_reason_with_metric(k, v))) for k, v in row.items()))
    return results_table.format_table(named, digits=precision)


def _reason_with_metric(metric, err):
    """Prefix the reason with the metric name unless it already starts with it."""
    return str(err) if str(err).lower().startswith(metric.lower()) else f'{metric}: {err}'
