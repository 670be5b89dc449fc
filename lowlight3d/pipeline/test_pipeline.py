"""Testing and benchmarking behind ``python lowlight3d/test.py -opt X.yml``.

For every ``datasets.test*`` block (``val*`` blocks when there is none; ``train*`` blocks are ignored, so a
test option file may inherit the training file): enhance each image with the model, write it to
``results/<name>/visualization/<dataset>/<image>.png``, score it with ``val.metrics`` (full-reference
metrics are ``n/a (no ground truth)`` on sets without ground truth), then write
``results/<name>/metrics.csv`` (one row per image and a mean row per set), ``results/<name>/metrics.json``
(means, image counts and the metric protocol) and print a table.  Set-level metrics (``identity_rank1`` of an
``identity`` block) are computed over each whole set and reported with its means.

* A test set's ``metrics: [names]`` restricts ``val.metrics`` to those names on that set (default: all).
* ``val.save_grid: true``: comparison grids ``input | <val.grid_label or name> | ground truth`` per image in
  ``results/<name>/grids/<dataset>/`` and an overview of the first ``val.grid_rows`` [6] images,
  ``results/<name>/grids/<dataset>_overview.png``.
* ``val.paper_table``: a list of ``{dataset, metrics}``; prints one row in the layout of the paper's Table 1 (e.g.
  PSNR/SSIM/LPIPS on the synthetic pairs, NIQE/BRISQUE on the real set) and writes ``paper_table.md``.
* ``--input DIR``: enhance every image of a folder of low-light faces without ground truth instead of the option
  file's test sets (any size, kept).  Everything goes to the folder's own place,
  ``results/<name>/inputs/<folder name>_<hash>/`` (``visualization/<folder name>_<hash>/``, the hash of
  the absolute path keeping same-named folders apart, ``metrics.csv``, ``metrics.json``,
  ``options.yml``, the log): a test run's results in ``results/<name>/`` are never touched.  An unreadable file
  is left out and reported by name; the others are enhanced.  No-reference metrics are computed unless
  ``--no-metrics``.
* Untrained networks are refused: a network with parameters and no loaded weights (``path.pretrain_network_*``
  unset) is an error before anything is written, unless ``--allow-untrained`` (debugging), which writes to
  ``results/<name>_UNTRAINED/`` and labels ``metrics.json`` (``untrained_networks``).  Parameter-free networks
  (``IdentityEnhancer``, ``GammaCurveEnhancer``) and zero-shot methods need no weights.  The log and
  ``metrics.json`` (``weights``) say where every network's weights came from.
* ``skip_corrupt: true`` in a test set leaves unreadable images out: the count and the means are over the readable
  images, and ``metrics.json`` (``skipped``), the log and the printed report name the files left out.
* Grayscale stays grayscale: ``--gray keep`` (the default with ``--input``; ``val.gray: keep`` in an option file)
  makes the result of every grayscale input (equal channels) gray, its luma on all channels; ``colour`` (the
  default for test sets, so the benchmark scores the network as it is) keeps the network's result.
"""
import argparse
import hashlib
import os
import os.path as osp
import time

from basicsr.utils import imwrite

from lowlight3d.metrics.metric_util import format_metric, is_full_reference, mean_of_rows, metrics_of_set
from lowlight3d.models import build_model
from lowlight3d.models.validation import evaluate_loader
from lowlight3d.pipeline.data_loading import build_eval_loader
from lowlight3d.pipeline.option_loading import load_options
from lowlight3d.utils.checkpoint import atomic_write_json
from lowlight3d.utils.gray import GRAY_MODES
from lowlight3d.utils.logger import buffer_logger, environment_info, setup_logger
from lowlight3d.utils.options import dump_options
from lowlight3d.utils.results_table import format_table, write_rows_csv

__all__ = ['parse_test_args', 'test_pipeline', 'metric_protocol', 'metrics_of_set', 'input_folder_datasets',
           'no_reference_metrics',
           'paper_table_row', 'UntrainedNetworkError']


class UntrainedNetworkError(RuntimeError):
    """A network with parameters would be tested with its untrained initial weights."""


def parse_test_args(argv=None):
    """Command-line arguments of ``test.py``."""
    parser = argparse.ArgumentParser(description='Test a lowlight3d model and write metrics and images.')
    parser.add_argument('-opt', '--opt', required=True, help='Path to the test option YAML file.')
    parser.add_argument('--cfg-options', '--force_yml', nargs='+', default=[], metavar='KEY=VALUE',
                        help='Override options, e.g. path.pretrain_network_g=experiments/x/models/net_g_best.pth')
    parser.add_argument('--root', default='.', help='Folder holding results/ (default: cwd).')
    parser.add_argument('--launcher', choices=['none'], default='none', help='Testing runs in one process.')
    parser.add_argument('--input', default=None, metavar='DIR',
                        help='Enhance this folder of low-light images (no ground truth) instead of the test sets.')
    parser.add_argument('--no-metrics', action='store_true', help='Only write the enhanced images.')
    parser.add_argument('--allow-untrained', action='store_true',
                        help='Debugging only: test networks that have no trained weights; the results go to '
                             'results/<name>_UNTRAINED/ and are labelled.')
    parser.add_argument('--gray', choices=GRAY_MODES, default=None,
                        help="keep: a grayscale input (equal channels) gives a grayscale result; colour: the "
                             "network's result as it is. Default: keep with --input, else val.gray (default colour).")
    return parser.parse_args(argv)


def input_folder_datasets(folder):
    """``datasets`` block that tests a folder of low-light images at their own size (no ground truth).

    The set is named ``<basename>_<8 hex digits of the absolute path's SHA-1>``: readable, and two folders with
    the same basename (``/a/photos``, ``/b/photos``) get results folders of their own.
    """
    folder = osp.abspath(folder)
    if not osp.isdir(folder):
        raise FileNotFoundError(f'--input {folder}: not a folder (give a folder of low-light images)')
    folder = folder.rstrip('/') or '/'
    digest = hashlib.sha1(folder.encode('utf-8')).hexdigest()[:8]
    name = f"{osp.basename(folder) or 'input'}_{digest}"
    return {'test_input': {'name': name, 'type': 'UnpairedLowLightDataset', 'dataroot_lq': folder, 'phase': 'test',
                           'io_backend': {'type': 'disk'}, 'gt_size': None, 'recursive': True,
                           'skip_corrupt': True}}


def no_reference_metrics(metrics_opt):
    """The blocks of ``val.metrics`` that need no ground truth (``--input``): see ``metric_info``."""
    return {k: v for k, v in (metrics_opt or {}).items() if not is_full_reference(v.get('type', k))}


def _set_results_root(opt, root):
    """Point ``path.results_root``, ``path.log`` and ``path.visualization`` at ``root``."""
    opt['path'].update(results_root=root, log=root, visualization=osp.join(root, 'visualization'))


def _refuse_untrained(model, opt, allow):
    """Raise :class:`UntrainedNetworkError` when a network would run untrained (unless ``allow``); returns them."""
    untrained = model.untrained_networks()
    if untrained and not allow:
        keys = ', '.join(f'path.pretrain_network_{label[4:]}' for label in untrained if label.startswith('net_'))
        details = '; '.join(f'{label} ({type(model.bare(model.nets[label])).__name__}, '
                            f'{sum(p.numel() for p in model.nets[label].parameters()):,} parameters)'
                            for label in untrained)
        raise UntrainedNetworkError(
            f"{opt['opt_path']}: refusing to test untrained networks: {details}. Set {keys or 'their weights'} "
            '(e.g. experiments/<name>/models/net_g_latest.pth). --allow-untrained runs them anyway for debugging; '
            f"the results then go to results/{opt['name']}_UNTRAINED/ and are labelled.")
    return untrained


def paper_table_row(method, summary, spec, datasets=None):
    """One row in the paper's Table 1 layout: ``method`` then ``<dataset> <METRIC>`` columns.

    Args:
        method (str): Row label. summary (dict): :func:`test_pipeline`'s summary.
        spec (list[dict]): ``[{dataset: name, metrics: [names]}]``; ``dataset`` is a test set's name or the key of
            its block in ``datasets`` (e.g. ``test_paired``), so that a renamed set (``make demo FACES=...`` names
            its paired set ``UserFaces_test``) still fills its columns.
        datasets (dict, optional): The option file's ``datasets`` blocks, to resolve keys to names.

    Returns:
        OrderedDict: The row (a set that was not tested reads ``n/a (not tested)``).
    """
    from collections import OrderedDict
    row = OrderedDict(method=method)
    for entry in spec:
        dataset = entry['dataset']
        block = (datasets or {}).get(dataset)
        if isinstance(block, dict) and block.get('name'):
            dataset = block['name']
        means = summary.get(dataset, {}).get('metrics')
        for metric in entry['metrics']:
            key = f'{dataset} {metric.upper()}'
            if means is None:
                row[key] = f'n/a (set {dataset} not tested)'
            elif metric not in means:
                row[key] = f'n/a (metric {metric} not configured in val.metrics)'
            else:
                value = means[metric]
                row[key] = (f'{value:.2f}' if metric in ('psnr', 'niqe', 'brisque') else f'{value:.4f}') \
                    if isinstance(value, float) else format_metric(value)
    return row


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
    val_opt = opt.setdefault('val', {}) or {}
    opt['val'] = val_opt
    if args.input:
        opt['datasets'] = input_folder_datasets(args.input)
        val_opt.pop('paper_table', None)
        val_opt['save_grid'] = False
        val_opt['metrics'] = {} if args.no_metrics else no_reference_metrics(val_opt.get('metrics'))
    elif args.no_metrics:
        val_opt['metrics'] = {}
    gray = args.gray or ('keep' if args.input else val_opt.get('gray', 'colour'))
    if gray not in GRAY_MODES:
        raise ValueError(f'{args.opt}: val.gray must be one of {GRAY_MODES}, got {gray!r}')
    buffer = buffer_logger()
    model = build_model(opt)  # built (and checked) before anything is written
    untrained = _refuse_untrained(model, opt, args.allow_untrained)
    results_root = opt['path']['results_root'] + ('_UNTRAINED' if untrained else '')
    if args.input:
        results_root = osp.join(results_root, 'inputs', opt['datasets']['test_input']['name'])
    _set_results_root(opt, results_root)
    os.makedirs(results_root, exist_ok=True)
    logger = setup_logger(osp.join(results_root, f"test_{opt['name']}_{time.strftime('%Y%m%d_%H%M%S')}.log"),
                          replay=buffer)
    logger.info(environment_info())
    dump_options(opt, osp.join(results_root, 'options.yml'))
    model.print_networks(logger)
    if untrained:
        logger.warning(f'!!! UNTRAINED networks {untrained} (--allow-untrained): these results are not a trained '
                       f'model; written to {results_root}')
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
        skipped = _skipped_files(dataset)
        if skipped:
            logger.warning(f'{name}: {len(skipped)} unreadable file(s) left out (skip_corrupt): ' + '; '.join(
                f"{s['file']} ({s['reason']})" for s in skipped))
        vis = osp.join(opt['path']['visualization'], name)

        def save_fn(img, vis=vis):
            return osp.join(vis, f'{img}_{suffix}.png' if suffix else f'{img}.png')
        if not val_opt.get('save_img', True) and not args.input:
            save_fn = None
        grid_fn, overview = None, []
        if val_opt.get('save_grid'):
            label = val_opt.get('grid_label', opt['name'])
            grid_fn = _grid_writer(osp.join(results_root, 'grids', name), label, overview,
                                   int(val_opt.get('grid_rows', 6)))
        set_metrics = metrics_of_set(metrics_opt, dataset_opt, f'datasets.{phase}')
        t0 = time.time()
        rows = evaluate_loader(model, loader, set_metrics, save_fn, pbar=val_opt.get('pbar', False), grid_fn=grid_fn,
                               gray=gray)
        if overview:
            from lowlight3d.utils.comparison_grid import stack_rows
            imwrite(stack_rows(overview), osp.join(results_root, 'grids', f'{name}_overview.png'))
        seconds = time.time() - t0
        means = mean_of_rows(rows, list(set_metrics))
        summary[name] = {'num_images': len(rows), 'seconds': round(seconds, 3), 'metrics': means}
        if skipped:
            summary[name]['skipped'] = [s['file'] for s in skipped]
        all_rows += [{'dataset': name, **row} for row in rows]
        all_rows.append({'dataset': name, 'image': 'mean', **means})
        logger.info(f'{name}: {len(rows)} images in {seconds:.1f} s, results in {vis}')
    if not summary:
        raise ValueError(f'{args.opt}: no datasets.test* (or val*) block to test on')

    write_rows_csv(all_rows, osp.join(results_root, 'metrics.csv'))
    as_json = {name: {**entry, 'metrics': {k: v if isinstance(v, float) else format_metric(v)
                                           for k, v in entry['metrics'].items()}} for name, entry in summary.items()}
    payload = {'name': opt['name'], 'model_type': opt['model_type'],
               'pretrain_network_g': opt['path'].get('pretrain_network_g'), 'weights': dict(model.weights_report()),
               'gray': gray, 'datasets': as_json, 'protocol': metric_protocol(metrics_opt)}
    if untrained:
        payload['untrained_networks'] = untrained
        payload['label'] = 'UNTRAINED (--allow-untrained): not a result of a trained model'
    atomic_write_json(osp.join(results_root, 'metrics.json'), payload, indent=2)
    table = format_table([{'dataset': k, 'images': v['num_images'], **v['metrics']} for k, v in summary.items()])
    logger.info(f"Results of {opt['name']}:\n{table}\nWritten: {results_root}/metrics.csv, metrics.json")
    print(table, flush=True)
    for name, entry in summary.items():
        if entry.get('skipped'):
            print(f"{name}: left out {len(entry['skipped'])} unreadable file(s): {', '.join(entry['skipped'])}",
                  flush=True)
    if untrained:
        print(f'!!! UNTRAINED networks {untrained}: debugging output, not a result', flush=True)
    if val_opt.get('paper_table'):
        paper = format_table([paper_table_row(opt['name'], summary, val_opt['paper_table'], opt.get('datasets'))])
        with open(osp.join(results_root, 'paper_table.md'), 'w', encoding='utf-8') as f:
            f.write(paper + '\n')
        logger.info(f'Paper layout (Table 1):\n{paper}')
        print(paper, flush=True)
    return summary


def _skipped_files(dataset):
    """``[{file, reason}]`` of the images a data set left out (``skip_corrupt``), its parts' included."""
    skipped = list(getattr(dataset, 'skipped', []) or [])
    for part in ('paired', 'unpaired', 'low', 'normal'):
        skipped += list(getattr(getattr(dataset, part, None), 'skipped', []) or [])
    return skipped


def _grid_writer(folder, method, overview, max_rows):
    """A ``grid_fn`` for :func:`evaluate_loader` writing ``input | method | ground truth`` rows."""
    from lowlight3d.utils.comparison_grid import comparison_row

    def write(name, lq, result, gt):
        images, labels = [lq, result], ['low-light input', method]
        if gt is not None:
            images.append(gt)
            labels.append('ground truth')
        row = comparison_row(images, labels)
        imwrite(row, osp.join(folder, f'{name}.png'))
        if len(overview) < max_rows:
            overview.append(row)

    return write
