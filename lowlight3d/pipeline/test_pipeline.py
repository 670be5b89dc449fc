"""Testing and benchmarking behind ``python lowlight3d/test.py -opt X.yml``.

For every ``datasets.test*`` block (``val*`` blocks when there is none; ``train*`` blocks are ignored, so a
test option file may inherit the training file): enhance each image with the model, write it to
``results/<name>/visualization/<dataset>/<image>.png``, score it with ``val.metrics`` (full-reference
metrics are ``n/a (no ground truth)`` on sets without ground truth), then write
``results/<name>/metrics.csv`` (one row per image and a mean row per set), ``results/<name>/metrics.json``
(means, image counts and the metric protocol) and print a table.
"""
import argparse
import json
import os
import os.path as osp
import time

from lowlight3d.models import build_model
from lowlight3d.metrics.metric_util import format_metric, mean_of_rows
from lowlight3d.models.validation import evaluate_loader
from lowlight3d.pipeline.data_loading import build_eval_loader
from lowlight3d.pipeline.option_loading import load_options
from lowlight3d.utils.logger import environment_info, setup_logger
from lowlight3d.utils.options import dump_options
from lowlight3d.utils.results_table import format_table, write_rows_csv

__all__ = ['parse_test_args', 'test_pipeline', 'metric_protocol']


def parse_test_args(argv=None):
    """Command-line arguments of ``test.py``."""
    parser = argparse.ArgumentParser(description='Test a lowlight3d model and write metrics and images.')
    parser.add_argument('-opt', '--opt', required=True, help='Path to the test option YAML file.')
    parser.add_argument('--cfg-options', '--force_yml', nargs='+', default=[], metavar='KEY=VALUE',
                        help='Override options, e.g. path.pretrain_network_g=experiments/x/models/net_g_best.pth')
    parser.add_argument('--root', default='.', help='Folder holding results/ (default: cwd).')
    parser.add_argument('--launcher', choices=['none'], default='none', help='Testing runs in one process.')
    return parser.parse_args(argv)


def metric_protocol(metrics_opt):
    """Human-readable protocol of each metric (what is compared, on which channels, with which crop)."""
    protocol = {}
    for name, block in (metrics_opt or {}).items():
        entry = {k: v for k, v in block.items() if k != 'better'}
        entry['input'] = 'uint8 [0, 255], results clamped to [0, 1] then rounded, no resizing'
        protocol[name] = entry
    return protocol


def test_pipeline(argv=None, root_path=None):
    """Run the test sets of an option file (see the module docstring).

    Args:
        argv (list[str], optional): Command-line arguments (default ``sys.argv[1:]``).
        root_path (str, optional): Overrides ``--root``.

    Returns:
        dict: ``{dataset_name: {'num_images': n, 'metrics': {name: mean or 'n/a (...)'}}}``.
    """
    args = parse_test_args(argv)
    opt = load_options(args.opt, is_train=False, cfg_options=args.cfg_options, root_path=root_path or args.root)
    results_root = opt['path']['results_root']
    os.makedirs(results_root, exist_ok=True)
    logger = setup_logger(osp.join(results_root, f"test_{opt['name']}_{time.strftime('%Y%m%d_%H%M%S')}.log"))
    logger.info(environment_info())
    dump_options(opt, osp.join(results_root, 'options.yml'))
    model = build_model(opt)
    model.print_networks(logger)
    metrics_opt = (opt.get('val') or {}).get('metrics') or {}
    suffix = (opt.get('val') or {}).get('suffix')

    summary, all_rows = {}, []
    datasets = opt.get('datasets') or {}
    prefix = 'test' if any(p.startswith('test') for p in datasets) else 'val'
    for phase, dataset_opt in datasets.items():
        if not phase.startswith(prefix):
            continue
        dataset, loader = build_eval_loader(dataset_opt, opt, where=f'datasets.{phase}')
        name = dataset_opt['name']
        vis = osp.join(opt['path']['visualization'], name)
        save_fn = (lambda img, vis=vis: osp.join(vis, f'{img}_{suffix}.png' if suffix else f'{img}.png'))
        if not (opt.get('val') or {}).get('save_img', True):
            save_fn = None
        t0 = time.time()
        rows = evaluate_loader(model, loader, metrics_opt, save_fn, pbar=(opt.get('val') or {}).get('pbar', False))
        seconds = time.time() - t0
        means = mean_of_rows(rows, list(metrics_opt))
        summary[name] = {'num_images': len(rows), 'seconds': round(seconds, 3), 'metrics': means}
        all_rows += [{'dataset': name, **row} for row in rows]
        all_rows.append({'dataset': name, 'image': 'mean', **means})
        logger.info(f'{name}: {len(rows)} images in {seconds:.1f} s, results in {vis}')
    if not summary:
        raise ValueError(f'{args.opt}: no datasets.test* (or val*) block to test on')

    write_rows_csv(all_rows, osp.join(results_root, 'metrics.csv'))
    as_json = {name: {**entry, 'metrics': {k: v if isinstance(v, float) else format_metric(v)
                                           for k, v in entry['metrics'].items()}} for name, entry in summary.items()}
    payload = {'name': opt['name'], 'model_type': opt['model_type'],
               'pretrain_network_g': opt['path'].get('pretrain_network_g'), 'datasets': as_json,
               'protocol': metric_protocol(metrics_opt)}
    tmp = osp.join(results_root, 'metrics.json.tmp')
    with open(tmp, 'w') as f:
        json.dump(payload, f, indent=2)
    os.replace(tmp, osp.join(results_root, 'metrics.json'))
    table = format_table([{'dataset': k, 'images': v['num_images'], **v['metrics']} for k, v in summary.items()])
    logger.info(f"Results of {opt['name']}:\n{table}\nWritten: {results_root}/metrics.csv, metrics.json")
    print(table, flush=True)
    return summary
