"""``make benchmark-demo``: train and test a list of methods at one small, equal budget over several seeds.

The list of methods is data (``options/demo/benchmark_demo.yml``)::

    total_iter: 200          # every method trains this many iterations (train.total_iter is overridden)
    seeds: [0, 1]            # manual_seed of each run; experiment names get the suffix _seed<k>
    complexity_size: 256     # params / GMACs of network_g at this input size
    prerequisites:           # trained once, at their own budget, before the stages (e.g. the 3D prior)
      - options/demo/train_TriplaneGenerator_demo.yml
    stages:
      - {label: LowLightUNet, train: options/demo/train_LowLightUNet_demo.yml,
         test: options/demo/test_LowLightUNet_demo.yml}
      - {label: ..., train: null, test: ...}   # test only (e.g. a zero-shot method without training)
      - {label: ..., train: ..., test_sets: options/_base_/datasets/demo_faces_test.yml}

An entry may add ``train_cfg`` / ``test_cfg``: lists of extra ``--cfg-options`` for that method only.  Instead of a
``test`` file an entry may name ``test_sets``: the test option file is then composed as ``_base_: [train,
test_sets]`` (written to ``experiments/<name>/benchmark_test_options.yml``), so an ablation needs no test file.
For every stage and seed the stage is trained (``--auto_resume``: a finished run is reused) and tested on the test sets of its
test file (every method sees the same inputs: test sets are seeded by image name only), then one table is written to
``<out>/benchmark.md`` and ``benchmark.csv``: per test set and metric the mean +- standard deviation over seeds
(sample std, ``n - 1``), the seconds per training iteration, and the parameters / GMACs of ``network_g``
(:mod:`lowlight3d.pipeline.complexity`).  A stage that cannot be built because pretrained weights are missing (for
example EnlightenGAN's VGG16 offline) gets ``n/a (pretrained weights missing: <file>)`` in every column instead of
stopping the benchmark.
"""
import argparse
import json
import os
import os.path as osp
import re
import statistics
import time
from collections import OrderedDict

from lowlight3d.pipeline.option_loading import training_overrides
from lowlight3d.utils.options import OptionError, load_config, yaml_load
from lowlight3d.utils.results_table import format_table, write_rows_csv
from lowlight3d.utils.weights import WeightsNotFoundError

__all__ = ['load_benchmark_list', 'run_prerequisites', 'run_stage', 'summarise', 'run_benchmark', 'main']

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEFAULT_LIST = osp.join('options', 'demo', 'benchmark_demo.yml')


def load_benchmark_list(path):
    """Read and check a benchmark list (see the module docstring).

    Args:
        path (str): YAML file; relative option paths in it are relative to the repository root.

    Returns:
        dict: ``{'total_iter': int, 'seeds': [int], 'complexity_size': int, 'stages': [dict]}``.
    """
    data = yaml_load(path) or {}
    stages = data.get('stages')
    if not isinstance(stages, list) or not stages:
        raise OptionError(f"{path}: 'stages' must be a non-empty list of {{label, train, test}} entries")
    labels = set()
    for i, stage in enumerate(stages):
        testable = isinstance(stage, dict) and (stage.get('test') or (stage.get('train') and stage.get('test_sets')))
        if not testable or not stage.get('label'):
            raise OptionError(f'{path}: stages[{i}] needs a label and a test option file (train may be null), or '
                              f'a train file and test_sets, got {stage!r}')
        if stage['label'] in labels:
            raise OptionError(f"{path}: the label {stage['label']!r} appears twice")
        labels.add(stage['label'])
        for key in ('train', 'test', 'test_sets'):
            if stage.get(key) and not osp.isfile(_resolve(stage[key])):
                raise OptionError(f"{path}: stages[{i}].{key} = {stage[key]} does not exist")
    prerequisites = data.get('prerequisites') or []
    for i, pre in enumerate(prerequisites):
        if not isinstance(pre, str) or not osp.isfile(_resolve(pre)):
            raise OptionError(f'{path}: prerequisites[{i}] = {pre!r} is not an option file')
    seeds = data.get('seeds', [0, 1])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and s >= 0 for s in seeds):
        raise OptionError(f"{path}: 'seeds' must be a non-empty list of non-negative integers, got {seeds!r}")
    return {'total_iter': int(data.get('total_iter', 200)), 'seeds': seeds,
            'complexity_size': int(data.get('complexity_size', 256)), 'stages': stages,
            'prerequisites': prerequisites}


def run_prerequisites(files, extra_overrides=()):
    """Train each prerequisite option file once, at its own budget (``--auto_resume``: finished runs are kept)."""
    from lowlight3d.pipeline.train_pipeline import train_pipeline
    for path in files:
        print(f'[benchmark] prerequisite {path}', flush=True)
        train_pipeline(['-opt', _resolve(path), '--auto_resume', '--cfg-options', 'logger.use_tb_logger=false',
                        *training_overrides(list(extra_overrides))])


def _test_option_file(stage, name):
    """The stage's test file, or one composed from its training file and ``test_sets``."""
    if stage.get('test'):
        return _resolve(stage['test'])
    path = osp.join('experiments', name, 'benchmark_test_options.yml')
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.write(f"_base_: [{osp.abspath(_resolve(stage['train']))}, {osp.abspath(_resolve(stage['test_sets']))}]\n")
    return path


def _resolve(path):
    return path if osp.isabs(path) else osp.join(REPO_ROOT, path)


def _missing_weights(err):
    """Short reason for a :class:`WeightsNotFoundError`: ``pretrained weights missing: <file>``."""
    match = re.search(r"Weight file '([^']+)'", str(err))
    return f"pretrained weights missing: {match.group(1) if match else ' '.join(str(err).split())[:80]}"


def run_stage(stage, seed, total_iter, extra_overrides=(), force=False):
    """Train (unless ``train`` is null) and test one stage with one seed, in the current folder.

    Args:
        stage (dict): ``{label, train, test, train_cfg?, test_cfg?}``.
        seed (int): ``manual_seed``; the experiment is named ``<name of the test file>_seed<seed>``.
        total_iter (int): Training iterations.
        extra_overrides (Sequence[str]): ``--cfg-options`` for both training and testing.
        force (bool): Retrain from scratch (``--force``) instead of resuming a finished run.

    Returns:
        dict: ``{'summary': test summary, 'seconds_per_iter': float | None, 'name': str}``.
    """
    from lowlight3d.pipeline.test_pipeline import test_pipeline
    from lowlight3d.pipeline.train_pipeline import train_pipeline
    base_name = load_config(_resolve(stage['train']) if stage.get('train') else _resolve(stage['test']))['name']
    name = f'{base_name}_seed{seed}'
    common = [f'name={name}', f'manual_seed={seed}', *extra_overrides]
    seconds_per_iter = None
    test_overrides = list(common) + list(stage.get('test_cfg') or [])
    if stage.get('train'):
        train_args = ['-opt', _resolve(stage['train']), '--force' if force else '--auto_resume', '--cfg-options',
                      *training_overrides(common), f'train.total_iter={total_iter}', 'logger.use_tb_logger=false',
                      *(stage.get('train_cfg') or [])]
        exp = osp.join('experiments', name)
        timing = osp.join(exp, 'benchmark_timing.json')
        finished = not force and osp.isfile(osp.join(exp, 'training_states', f'{total_iter}.state'))
        t0 = time.time()
        try:
            opt = train_pipeline(train_args)
        except WeightsNotFoundError:
            _remove_unstarted(exp)
            raise
        if finished:  # nothing was trained now: the time of the first run, when known
            seconds_per_iter = _read_json(timing)['seconds_per_iter'] if osp.isfile(timing) else None
        else:
            seconds_per_iter = (time.time() - t0) / max(1, total_iter)
            with open(timing, 'w') as f:
                json.dump({'seconds_per_iter': seconds_per_iter, 'total_iter': total_iter}, f)
        test_overrides.append(f"+path.pretrain_network_g={osp.join(opt['path']['models'], 'net_g_latest.pth')}")
    summary = test_pipeline(['-opt', _test_option_file(stage, name), '--cfg-options', *test_overrides])
    return {'summary': summary, 'seconds_per_iter': seconds_per_iter, 'name': name}


def _remove_unstarted(exp):
    """Delete an experiment folder that a failed start left without any training state (so a rerun can start)."""
    import shutil
    states = osp.join(exp, 'training_states')
    if osp.isdir(exp) and not (osp.isdir(states) and os.listdir(states)):
        shutil.rmtree(exp)


def _read_json(path):
    with open(path) as f:
        return json.load(f)


def _mean_std(values, digits=4):
    """``'m +- s'`` over seeds (sample std; one value: ``'m'``); non-floats are passed through."""
    floats = [v for v in values if isinstance(v, float)]
    if not floats:
        return values[0] if values else ''
    if len(floats) == 1:
        return f'{floats[0]:.{digits}f}'
    return f'{statistics.mean(floats):.{digits}f} ± {statistics.stdev(floats):.{digits}f}'


def summarise(label, runs, complexity=None, failure=None):
    """One table row from the runs of a stage (one per seed).

    Args:
        label (str): Row label. runs (list[dict]): :func:`run_stage` results.
        complexity (dict, optional): ``{'params_M': float, 'GMACs': float}`` of ``network_g``.
        failure (BaseException, optional): Why the stage could not run (every column says so).

    Returns:
        OrderedDict: The row (``method``, ``seeds``, ``<set>/<metric>`` columns, ``train_s_per_iter``,
        ``params_M``, ``GMACs``).
    """
    row = OrderedDict(method=label, seeds=len(runs))
    if failure is not None:
        row['result'] = failure
        return row
    columns = OrderedDict()
    for run in runs:
        for dataset, entry in run['summary'].items():
            for metric, value in entry['metrics'].items():
                columns.setdefault(f'{dataset}/{metric}', []).append(value)
    for key, values in columns.items():
        row[key] = _mean_std(values)
    times = [r['seconds_per_iter'] for r in runs if r['seconds_per_iter'] is not None]
    row['train_s_per_iter'] = _mean_std(times, 3) if times else 'no training'
    if complexity:
        row['params_M'] = f"{complexity['params_M']:.4f}"
        row['GMACs'] = f"{complexity['GMACs']:.3f}"
    return row


def _complexity(test_opt, size):
    """Params and GMACs of ``network_g`` of an option file (one forward pass at ``size``)."""
    from lowlight3d.pipeline.complexity import complexity_from_options
    rows = complexity_from_options(test_opt, size=size, device='cpu', warmup=0, repeat=1)
    row = next((r for r in rows if r['network'] == 'network_g'), rows[0])
    return {'params_M': row['params_M'], 'GMACs': row['GMACs']}


def run_benchmark(list_path=DEFAULT_LIST, out_dir=osp.join('results', 'benchmark_demo'), total_iter=None,
                  seeds=None, only=None, extra_overrides=(), force=False, generate_data=True):
    """Run every stage of a benchmark list for every seed and write the table.

    Args:
        list_path (str): Benchmark list (relative paths: to the repository root).
        out_dir (str): Where ``benchmark.md`` and ``benchmark.csv`` go.
        total_iter (int, optional): Overrides the list's budget. seeds (list[int], optional): Overrides its seeds.
        only (Sequence[str], optional): Labels of the stages to run (default: all).
        extra_overrides (Sequence[str]): ``--cfg-options`` for every run.
        force (bool): Retrain every stage from scratch.
        generate_data (bool): Generate the demo faces first when missing.

    Returns:
        list[OrderedDict]: The table rows.
    """
    spec = load_benchmark_list(_resolve(list_path))
    total_iter = int(total_iter or spec['total_iter'])
    seeds = list(seeds or spec['seeds'])
    stages = [s for s in spec['stages'] if not only or s['label'] in only]
    if only and len(stages) != len(set(only)):
        known = [s['label'] for s in spec['stages']]
        raise OptionError(f'--only: unknown label(s) {sorted(set(only) - set(known))}; known: {known}')
    if generate_data:
        from lowlight3d.data.demo_faces import generate_demo_dataset
        generate_demo_dataset(osp.join('datasets', 'demo_faces'), verbose=True)
    run_prerequisites(spec['prerequisites'], extra_overrides)
    rows = []
    for stage in stages:
        runs, failure = [], None
        for seed in seeds:
            print(f"[benchmark] {stage['label']}: seed {seed}, {total_iter} iterations", flush=True)
            try:
                runs.append(run_stage(stage, seed, total_iter, extra_overrides, force))
            except WeightsNotFoundError as err:
                failure = WeightsNotFoundError(_missing_weights(err))
                print(f"[benchmark] {stage['label']}: n/a ({failure})", flush=True)
                break
        complexity = None if failure else _complexity(_resolve(stage.get('test') or stage['train']),
                                                      spec['complexity_size'])
        rows.append(summarise(stage['label'], runs, complexity, failure))
        _write(rows, out_dir, total_iter, seeds, spec['complexity_size'])
    return rows


def _write(rows, out_dir, total_iter, seeds, size):
    os.makedirs(out_dir, exist_ok=True)
    write_rows_csv(rows, osp.join(out_dir, 'benchmark.csv'))
    header = (f'# Demo benchmark\n\nEvery method trained {total_iter} iterations per seed (seeds {seeds}) on the '
              'demo faces and tested on the demo test sets; metrics are mean ± sample std over seeds. '
              f'params_M / GMACs: network_g at 1x3x{size}x{size} (torch FLOP counter, 1 MAC = 2 FLOPs). '
              'train_s_per_iter: wall seconds per training iteration on this machine (validation and checkpoints '
              'included).\n\n')
    with open(osp.join(out_dir, 'benchmark.md'), 'w', encoding='utf-8') as f:
        f.write(header + format_table(rows) + '\n')


def main(argv=None):
    """Command-line entry point of ``scripts/benchmark_demo.py``."""
    parser = argparse.ArgumentParser(description='Train and test the methods of a benchmark list at an equal small '
                                     'budget over several seeds; write one table.')
    parser.add_argument('--list', default=DEFAULT_LIST, help='Benchmark list YAML (default: %(default)s).')
    parser.add_argument('--out', default=osp.join('results', 'benchmark_demo'), help='Output folder.')
    parser.add_argument('--total-iter', type=int, default=None, help='Training iterations (overrides the list).')
    parser.add_argument('--seeds', type=int, nargs='+', default=None, help='Seeds (overrides the list).')
    parser.add_argument('--only', nargs='+', default=None, metavar='LABEL', help='Run only these stages.')
    parser.add_argument('--force', action='store_true', help='Retrain from scratch (archive existing runs).')
    parser.add_argument('--cfg-options', nargs='+', default=[], metavar='KEY=VALUE', help='Overrides for every run.')
    args = parser.parse_args(argv)
    rows = run_benchmark(args.list, args.out, args.total_iter, args.seeds, args.only, args.cfg_options, args.force)
    print(format_table(rows), flush=True)
    print(f'[benchmark] written: {args.out}/benchmark.md, benchmark.csv', flush=True)
    return rows
