"""Scoring a model over a data loader: per-image metric rows, means, best-metric tracking.

Used by validation during training (means, best values, optional images) and by ``test.py`` (per-image rows,
saved results).  Metrics come from the metric registry through
:func:`lowlight3d.metrics.metric_util.compute_metric`; a metric that cannot be computed is recorded as
its :class:`~lowlight3d.metrics.metric_util.MetricUnavailable` (written ``n/a (reason)``) and left out of the
mean, never replaced by a number.  Set-level metrics (e.g. ``identity_rank1`` of an ``identity`` block, see
:func:`lowlight3d.metrics.metric_util.build_set_level_metrics`) compute the per-image value of their block and
their values over the whole set, which :func:`mean_of_rows` reports with the means.
"""
import os.path as osp
from collections import OrderedDict

from basicsr.utils import get_root_logger, imwrite, tensor2img

from lowlight3d.metrics.metric_util import (
    build_set_level_metrics,
    finish_set_level,
    format_metric,
    mean_of_rows,
    metric_info,
    metrics_of_set,
    try_compute_metric,
)
from lowlight3d.utils.gray import keep_gray

__all__ = ['evaluate_loader', 'validate', 'metric_better']


def metric_better(name, metric_opt):
    """``'higher'`` or ``'lower'``: the option's ``better`` key, else the metric's known direction."""
    if metric_opt.get('better'):
        return metric_opt['better']
    return metric_info(metric_opt.get('type', name))['better']


def _stem(path):
    return osp.splitext(osp.basename(path))[0]


def evaluate_loader(model, dataloader, metrics_opt, save_path_fn=None, pbar=False, grid_fn=None, gray='colour'):
    """Run ``model.test()`` on every item and score it.

    Args:
        model: A model with ``feed_data``, ``test`` and ``get_current_visuals``.
        dataloader: Yields BasicSR-style dicts (``lq``, optional ``gt``, ``lq_path``).
        metrics_opt (dict): ``{metric_name: metric_block}`` (``val.metrics``); may be empty.
        save_path_fn (callable, optional): ``name -> file path`` where the result image is written.
        pbar (bool): Show a tqdm progress bar.
        grid_fn (callable, optional): ``grid_fn(name, lq, result, gt)`` with uint8 BGR images (``gt`` may be
            None), e.g. to write comparison grids.
        gray (str): ``'keep'``: the result of a grayscale input (equal channels) is made gray (its luma on all
            channels, :func:`lowlight3d.utils.gray.keep_gray`) before it is scored and saved; ``'colour'``: the
            network's result as it is.

    Returns:
        MetricRows: A list with one row per image: ``image`` plus each metric (a float, or the
        :class:`~lowlight3d.metrics.metric_util.MetricUnavailable` saying why not); its ``set_values`` hold the
        set-level metrics (e.g. ``identity_rank1``), which :func:`mean_of_rows` appends to the means.
    """
    rows = []
    set_metrics = build_set_level_metrics(metrics_opt)
    iterator = dataloader
    if pbar:
        from tqdm import tqdm
        iterator = tqdm(dataloader, total=len(dataloader), unit='batch', desc='test')
    seen = {}
    for data in iterator:
        for path in data['lq_path']:  # results and rows are keyed by file name: one would be lost
            name = _stem(path)
            if name in seen:
                raise ValueError(f'{seen[name]} and {path} share the file name {name!r} in one set: results and '
                                 'metric rows are keyed by file name, so one would be lost. Rename one, or list '
                                 'each image once in the meta_info file.')
            seen[name] = path
        model.feed_data(data)
        model.test()
        visuals = model.get_current_visuals()
        visuals['result'] = keep_gray(visuals['lq'], visuals['result'], gray)
        for b in range(visuals['result'].shape[0]):
            name = _stem(data['lq_path'][b])
            result = tensor2img(visuals['result'][b])
            gt = tensor2img(visuals['gt'][b]) if 'gt' in visuals else None
            row = OrderedDict(image=name)
            for metric_name, metric_opt in (metrics_opt or {}).items():
                set_metric = set_metrics.get(metric_name)
                row[metric_name] = (set_metric.try_update(result, gt) if set_metric is not None else
                                    try_compute_metric(metric_opt, result, gt))
            if save_path_fn is not None:
                imwrite(result, save_path_fn(name))
            if grid_fn is not None:
                grid_fn(name, tensor2img(visuals['lq'][b]), result, gt)
            rows.append(row)
    return finish_set_level(rows, set_metrics)


def validate(model, dataloader, current_iter, tb_logger=None, save_img=False):
    """Validation during training: means of ``val.metrics``, best-value tracking, logging.

    As in ``test.py``, a set's own ``metrics:`` list restricts the metrics scored on it
    (:func:`~lowlight3d.metrics.metric_util.metrics_of_set`) and ``val.gray`` applies (``'keep'``: grayscale inputs
    give grayscale results; default ``'colour'``).

    Args:
        model: The training model (uses ``model.best_metric_results``).
        dataloader: Validation loader; its dataset's ``opt['name']`` names the set.
        current_iter (int): Iteration, for logs and image names.
        tb_logger: Optional tensorboard ``SummaryWriter``.
        save_img (bool): Write ``visualization/<img>/<img>_<iter>.png``.

    Returns:
        tuple[OrderedDict, set]: ``(means, improved)`` with ``improved`` the metric names whose best value
        was reached at this iteration.
    """
    dataset_name = dataloader.dataset.opt['name']
    val_opt = model.opt.get('val') or {}
    metrics_opt = metrics_of_set(val_opt.get('metrics') or {}, dataloader.dataset.opt,
                                 f'datasets ({dataset_name})')
    save_fn = None
    if save_img:
        vis = model.opt['path']['visualization']
        save_fn = lambda name: osp.join(vis, name, f'{name}_{current_iter}.png')  # noqa: E731
    rows = evaluate_loader(model, dataloader, metrics_opt, save_fn, pbar=val_opt.get('pbar', False),
                           gray=val_opt.get('gray', 'colour'))
    means = mean_of_rows(rows, list(metrics_opt))
    best = model.best_metric_results.setdefault(dataset_name, {})
    improved = set()
    lines = [f'Validation {dataset_name} @ iter {current_iter}']
    for name, value in means.items():
        better = getattr(rows, 'set_better', {}).get(name) or metric_better(name, metrics_opt[name])
        record = best.setdefault(name, {'better': better, 'val': None, 'iter': -1})
        if isinstance(value, float):
            if record['val'] is None or (value > record['val'] if better == 'higher' else value < record['val']):
                record.update(val=value, iter=current_iter)
                improved.add(name)
            lines.append(f"\t # {name}: {value:.4f}\tBest: {record['val']:.4f} @ {record['iter']} iter")
            if tb_logger is not None:
                tb_logger.add_scalar(f'metrics/{dataset_name}/{name}', value, current_iter)
        else:
            lines.append(f'\t # {name}: {format_metric(value)}')
    get_root_logger().info('\n'.join(lines))
    return means, improved
