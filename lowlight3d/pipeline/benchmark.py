"""``make benchmark-demo`` / ``make benchmark-real``: train and test a list of methods at an equal budget over seeds.

The list of methods is data (``options/demo/benchmark_demo.yml``, ``options/real/benchmark_real.yml``)::

    total_iter: 200          # every method trains this many iterations (train.total_iter is overridden) ...
                             # (``own``: each trains its option file's train.total_iter, e.g. paper scale)
    budget_s: 60             # ... or: every learned method gets this many CPU seconds of training (see below)
    probe_iter: 6            # budget only: iterations of the probe run that measures a method's CPU s / iteration
    schedule_follows_budget: true  # a one-period scheduler (cosine) gets periods = [the stage's iterations]
    seeds: [0, 1]            # manual_seed of each run; experiment names get the suffix _seed<k>
    complexity_size: 256     # params / GMACs of network_g at this input size
    prepare: [lowlight3d.data.preparation.real_face_benchmark:prepare_real_faces]  # called first, no arguments
    demo_data: true          # generate the demo faces first (the 3D prior prerequisites train on them)
    prerequisites:           # trained once, at their own budget, before the stages (e.g. the 3D prior)
      - options/demo/train_TriplaneGenerator_demo.yml
    stages:
      - {label: LowLightUNet, train: options/demo/train_LowLightUNet_demo.yml,
         test: options/demo/test_LowLightUNet_demo.yml}
      - {label: ..., train: null, test: ...}   # test only (zero-shot or non-learned: no training, no budget)
      - {label: ..., train: ..., test_sets: options/_base_/datasets/demo_faces_test.yml, total_iter: 123}
    face_grids: {seeds_index: 0, sets: {UTKFace_test: 4, YaleB_dark: 4}}   # pictures of the same faces, all rows

An entry may add ``train_cfg`` / ``test_cfg``: lists of extra ``--cfg-options`` for that method only, ``total_iter``
(fixes its iterations, e.g. to repeat an earlier budgeted run exactly) and ``grid_label`` (short column label of the
face grids).  Instead of a ``test`` file an entry may name ``test_sets``: the test option file is then composed as
``_base_: [train, test_sets]`` (written to ``experiments/<name>/benchmark_test_options.yml``), so an ablation needs no
test file.  For every stage and seed the stage is trained (``--auto_resume``: a finished run is reused) and tested on
the test sets of its test file (every method sees the same inputs: test sets are seeded by image name only), then one
table is written to ``<out>/benchmark.md`` and ``benchmark.csv``: per test set and metric the mean +- standard
deviation over seeds (sample std, ``n - 1``), the seconds per training iteration, and the parameters / GMACs of
``network_g`` (:mod:`lowlight3d.pipeline.complexity`).  A stage that cannot be built because pretrained weights are
missing (for example EnlightenGAN's VGG16 offline) gets ``n/a (pretrained weights missing: <file>)`` in every column
instead of stopping the benchmark.

**Equal CPU budget** (``budget_s``).  Before its real runs, each learned stage is trained ``probe_iter`` iterations
(experiment ``<name>_probe``, first seed); the training loop records its process CPU time (all threads, data loading
included, start-up excluded; ``experiments/<name>/timing.json``).  The steady cost is the CPU time after the first
(warm-up) iteration divided by ``probe_iter - 1``, and the stage's iterations are ``max(1, floor(budget_s / cost))``.
The probe is cached in ``experiments/<name>_probe/probe.json`` and reused while its settings are unchanged (so a
rerun repeats the same iterations and reuses finished runs; ``--reprobe`` measures again).  The table records the
budget, the probe's CPU seconds per iteration, the iterations and the CPU seconds the runs' training loops really
used (``train_cpu_s``, mean +- std over seeds).  ``--total-iter N`` replaces the budget by N iterations for every
learned stage.  Test-time work (e.g. ZERO-IG's per-image optimisation) is not part of the budget.

``face_grids``: after all stages, one picture per chosen face (``<out>/faces_<set>_<image>.png``) and one per set
(``<out>/faces_<set>.png``) with the columns ``input | every stage | reference``, from the results of the seed at
``seeds_index`` (:mod:`lowlight3d.pipeline.benchmark_grids`).
"""
import argparse
import importlib
import json
import math
import os
import os.path as osp
import platform
import re
import shutil
import statistics
import time
from collections import OrderedDict

import torch

from lowlight3d.pipeline.option_loading import training_overrides
from lowlight3d.utils.options import OptionError, apply_cfg_options, load_config, yaml_load
from lowlight3d.utils.results_table import format_table, write_rows_csv
from lowlight3d.utils.weights import WeightsNotFoundError

__all__ = ['load_benchmark_list', 'run_prerequisites', 'probe_stage', 'plan_iterations', 'run_stage', 'summarise',
           'run_benchmark', 'main']

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEFAULT_LIST = osp.join('options', 'demo', 'benchmark_demo.yml')


def _positive_int(value, what, path):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise OptionError(f'{path}: {what} must be a positive integer, got {value!r}')
    return value


#: ``total_iter`` value of a list whose stages keep their option files' iterations (paper scale).
OWN_ITERATIONS = 'own'


def load_benchmark_list(path):
    """Read and check a benchmark list (see the module docstring).

    Args:
        path (str): YAML file; relative option paths in it are relative to the repository root.

    Returns:
        dict: ``total_iter``, ``seeds``, ``complexity_size``, ``stages``, ``prerequisites``, ``budget_s`` (None
        without a budget), ``probe_iter``, ``schedule_follows_budget``, ``prepare`` (list of ``module:function``),
        ``demo_data``, ``face_grids`` (dict or None), ``title``, ``notes``.
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
        if stage.get('total_iter') is not None:
            _positive_int(stage['total_iter'], f'stages[{i}].total_iter', path)
    prerequisites = data.get('prerequisites') or []
    for i, pre in enumerate(prerequisites):
        if not isinstance(pre, str) or not osp.isfile(_resolve(pre)):
            raise OptionError(f'{path}: prerequisites[{i}] = {pre!r} is not an option file')
    seeds = data.get('seeds', [0, 1])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and s >= 0 for s in seeds):
        raise OptionError(f"{path}: 'seeds' must be a non-empty list of non-negative integers, got {seeds!r}")
    budget = data.get('budget_s')
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, (int, float)) or budget <= 0):
        raise OptionError(f"{path}: 'budget_s' must be a positive number of CPU seconds, got {budget!r}")
    probe_iter = _positive_int(data.get('probe_iter', 6), 'probe_iter', path)
    if probe_iter < 2:
        raise OptionError(f"{path}: 'probe_iter' must be >= 2 (the first, warm-up iteration is not timed)")
    prepare = data.get('prepare') or []
    prepare = [prepare] if isinstance(prepare, str) else prepare
    for i, target in enumerate(prepare):
        if not isinstance(target, str) or target.count(':') != 1:
            raise OptionError(f"{path}: prepare[{i}] must be 'package.module:function', got {target!r}")
    grids = data.get('face_grids')
    if grids is not None:
        sets = grids.get('sets') if isinstance(grids, dict) else None
        if not isinstance(sets, dict) or not sets:
            raise OptionError(f"{path}: 'face_grids' must be {{sets: {{<test set name>: <number of faces>}}}}, "
                              f'got {grids!r}')
        for name, count in sets.items():
            _positive_int(count, f'face_grids.sets.{name}', path)
        if not 0 <= int(grids.get('seeds_index', 0)) < len(seeds):
            raise OptionError(f"{path}: face_grids.seeds_index must index 'seeds' ({seeds})")
    total = data.get('total_iter', 200)
    if total != OWN_ITERATIONS:
        total = _positive_int(total, 'total_iter', path)
    return {'total_iter': total, 'seeds': seeds,
            'complexity_size': int(data.get('complexity_size', 256)), 'stages': stages,
            'prerequisites': prerequisites, 'budget_s': None if budget is None else float(budget),
            'probe_iter': probe_iter, 'schedule_follows_budget': bool(data.get('schedule_follows_budget', False)),
            'prepare': prepare, 'demo_data': bool(data.get('demo_data', True)), 'face_grids': grids,
            'title': data.get('title', 'Demo benchmark'), 'notes': data.get('notes', '')}


def _call(target):
    """Call ``'package.module:function'`` without arguments (a list's ``prepare`` step)."""
    module, func = target.split(':')
    try:
        fn = getattr(importlib.import_module(module), func)
    except (ImportError, AttributeError) as err:
        raise OptionError(f"prepare: cannot find {target!r} ({err})") from err
    print(f'[benchmark] prepare: {target}', flush=True)
    return fn()


def run_prerequisites(files, extra_overrides=(), total_iter=None):
    """Train each prerequisite option file once, at its own budget (``--auto_resume``: finished runs are kept).

    Args:
        files (Sequence[str]): Option files. extra_overrides (Sequence[str]): ``--cfg-options`` for every run.
        total_iter (int, optional): Overrides their iterations (and one-period schedules), e.g. for a smoke test.
    """
    from lowlight3d.pipeline.train_pipeline import train_pipeline
    for path in files:
        print(f'[benchmark] prerequisite {path}', flush=True)
        iters = []
        if total_iter:
            iters = [f'train.total_iter={total_iter}', *_schedule_overrides(_resolve(path), (), total_iter)]
        train_pipeline(['-opt', _resolve(path), '--auto_resume', '--cfg-options', 'logger.use_tb_logger=false',
                        *training_overrides(list(extra_overrides)), *iters])


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


def _schedule_overrides(train_path, train_cfg, total_iter):
    """``train.scheduler.periods=[N]`` when the training file's scheduler has exactly one period, else nothing.

    So that a cosine schedule ends where the (budgeted) training ends; multi-period and other schedulers are left
    alone (EnlightenGAN's linear decay already follows ``train.total_iter``).
    """
    opt = load_config(train_path)
    apply_cfg_options(opt, [o for o in train_cfg if 'scheduler' in o])
    periods = ((opt.get('train') or {}).get('scheduler') or {}).get('periods')
    if isinstance(periods, list) and len(periods) == 1:
        return [f'train.scheduler.periods=[{int(total_iter)}]']
    return []


def _train_args(stage, name, seed, total_iter, extra_overrides, schedule, mode):
    """Command line of one training run of ``stage``."""
    common = [f'name={name}', f'manual_seed={seed}', *extra_overrides]
    train_cfg = list(stage.get('train_cfg') or [])
    sched = _schedule_overrides(_resolve(stage['train']), train_cfg, total_iter) if schedule else []
    return ['-opt', _resolve(stage['train']), mode, '--cfg-options', *training_overrides(common),
            f'train.total_iter={total_iter}', *sched, 'logger.use_tb_logger=false', *train_cfg]


def _read_json(path):
    with open(path) as f:
        return json.load(f)


def probe_stage(stage, seed, probe_iter, extra_overrides=(), schedule=False, reprobe=False):
    """Measure a learned stage's steady CPU seconds per training iteration with a short run.

    Trains ``probe_iter`` iterations as ``experiments/<name>_probe`` (a previous probe folder is deleted) and reads
    its ``timing.json``: ``(cpu_s - first_iter_cpu_s) / (iterations - 1)``.  The result is cached in
    ``probe.json`` there, keyed by the settings, the thread count and the CPU model, and reused unless ``reprobe``.

    Returns:
        dict: ``{'cpu_s_per_iter', 'wall_s_per_iter', 'probe_iter', 'threads', 'key'}``.
    """
    from lowlight3d.pipeline.train_pipeline import train_pipeline
    name = load_config(_resolve(stage['train']))['name'] + '_probe'
    exp = osp.join('experiments', name)
    cache = osp.join(exp, 'probe.json')
    key = {'train': stage['train'], 'probe_iter': probe_iter, 'seed': seed, 'schedule': bool(schedule),
           'train_cfg': list(stage.get('train_cfg') or []), 'overrides': list(extra_overrides),
           'threads': torch.get_num_threads(), 'cpu': platform.processor() or platform.machine()}
    if not reprobe and osp.isfile(cache):
        cached = _read_json(cache)
        if cached.get('key') == key:
            return cached
    if osp.isdir(exp):
        shutil.rmtree(exp)
    print(f"[benchmark] {stage['label']}: probe, {probe_iter} iterations", flush=True)
    try:
        train_pipeline(_train_args(stage, name, seed, probe_iter, extra_overrides, schedule, '--auto_resume'))
    except WeightsNotFoundError:
        _remove_unstarted(exp)
        raise
    timing = _read_json(osp.join(exp, 'timing.json'))
    steady = max(1, timing['iterations'] - 1)
    result = {'cpu_s_per_iter': (timing['cpu_s'] - timing['first_iter_cpu_s']) / steady,
              'wall_s_per_iter': (timing['wall_s'] - timing['first_iter_wall_s']) / steady,
              'probe_iter': timing['iterations'], 'threads': timing['threads'], 'key': key}
    with open(cache, 'w') as f:
        json.dump(result, f, indent=1)
    return result


def plan_iterations(stage, spec, seeds, total_iter=None, budget_s=None, extra_overrides=(), reprobe=False):
    """The training iterations of a learned stage, and where they come from.

    Precedence: ``total_iter`` (the command line) > the stage's own ``total_iter`` > the CPU budget (``budget_s``
    argument, else the list's; measured by :func:`probe_stage`) > the list's ``total_iter`` (``own``: the stage's
    option file's ``train.total_iter``).

    Returns:
        dict: ``{'total_iter': int, 'source': 'command line' | 'fixed in list' | 'budget' | 'option file' | 'list',
        'probe': probe result or None, 'budget_s': float or None}``.
    """
    if total_iter:
        return {'total_iter': int(total_iter), 'source': 'command line', 'probe': None, 'budget_s': None}
    if stage.get('total_iter'):
        return {'total_iter': int(stage['total_iter']), 'source': 'fixed in list', 'probe': None, 'budget_s': None}
    budget = budget_s or spec.get('budget_s')
    if not budget and spec['total_iter'] == OWN_ITERATIONS:
        iters = (load_config(_resolve(stage['train'])).get('train') or {}).get('total_iter')
        if not isinstance(iters, int) or iters < 1:
            raise OptionError(f"{stage['train']}: train.total_iter must be a positive integer (the benchmark list says "
                              f'total_iter: {OWN_ITERATIONS}), got {iters!r}')
        return {'total_iter': iters, 'source': 'option file', 'probe': None, 'budget_s': None}
    if budget:
        probe = probe_stage(stage, seeds[0], spec['probe_iter'], extra_overrides, spec['schedule_follows_budget'],
                            reprobe)
        iters = max(1, math.floor(budget / max(probe['cpu_s_per_iter'], 1e-9)))
        print(f"[benchmark] {stage['label']}: {probe['cpu_s_per_iter']:.3f} CPU s / iteration -> {iters} iterations "
              f'for {budget:g} CPU s', flush=True)
        return {'total_iter': iters, 'source': 'budget', 'probe': probe, 'budget_s': float(budget)}
    return {'total_iter': int(spec['total_iter']), 'source': 'list', 'probe': None, 'budget_s': None}


def run_stage(stage, seed, total_iter, extra_overrides=(), force=False, schedule=False):
    """Train (unless ``train`` is null) and test one stage with one seed, in the current folder.

    Args:
        stage (dict): ``{label, train, test, train_cfg?, test_cfg?}``.
        seed (int): ``manual_seed``; the experiment is named ``<name of the training (else test) file>_seed<seed>``.
        total_iter (int): Training iterations.
        extra_overrides (Sequence[str]): ``--cfg-options`` for both training and testing.
        force (bool): Retrain from scratch (``--force``) instead of resuming a finished run.  A saved run planned
            for another ``total_iter`` is always retrained from scratch (and the output says so).
        schedule (bool): Fit a one-period scheduler to ``total_iter`` (see :func:`_schedule_overrides`).

    Returns:
        dict: ``{'summary': test summary, 'seconds_per_iter': float | None, 'name': str, 'timing': the training
        loop's timing.json or None, 'test_options': the test option file, 'test_overrides': its overrides,
        'results': results folder}``.
    """
    from lowlight3d.pipeline.test_pipeline import test_pipeline
    from lowlight3d.pipeline.train_pipeline import train_pipeline
    base_name = load_config(_resolve(stage['train']) if stage.get('train') else _resolve(stage['test']))['name']
    name = f'{base_name}_seed{seed}'
    common = [f'name={name}', f'manual_seed={seed}', *extra_overrides]
    seconds_per_iter, timing_loop = None, None
    test_overrides = list(common) + list(stage.get('test_cfg') or [])
    if stage.get('train'):
        exp = osp.join('experiments', name)
        planned = None if force else _planned_total_iter(exp)
        if planned is not None and planned != int(total_iter):
            print(f"[benchmark] {stage['label']}: {exp} was planned for {planned} iterations, now {total_iter}: "
                  'retraining from scratch instead of resuming', flush=True)
            force = True
        train_args = _train_args(stage, name, seed, total_iter, extra_overrides, schedule,
                                 '--force' if force else '--auto_resume')
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
        loop = osp.join(exp, 'timing.json')
        timing_loop = _read_json(loop) if osp.isfile(loop) else None
        test_overrides.append(f"+path.pretrain_network_g={osp.join(opt['path']['models'], 'net_g_latest.pth')}")
    test_options = _test_option_file(stage, name)
    summary = test_pipeline(['-opt', test_options, '--cfg-options', *test_overrides])
    return {'summary': summary, 'seconds_per_iter': seconds_per_iter, 'name': name, 'timing': timing_loop,
            'test_options': test_options, 'test_overrides': test_overrides, 'results': osp.join('results', name)}


def _planned_total_iter(exp):
    """``train.total_iter`` of the run saved in ``exp`` (its ``options.yml``), or None without a saved state.

    A run planned for another number of iterations (e.g. a CPU budget measured anew) is not resumed: resuming
    would mix two schedules.  An interrupted run of the same plan is resumed.
    """
    states, options = osp.join(exp, 'training_states'), osp.join(exp, 'options.yml')
    if not (osp.isdir(states) and any(f.endswith('.state') for f in os.listdir(states)) and osp.isfile(options)):
        return None
    try:
        return int(((yaml_load(options) or {}).get('train') or {})['total_iter'])
    except (KeyError, TypeError, ValueError):
        return None


def _remove_unstarted(exp):
    """Delete an experiment folder that a failed start left without any training state (so a rerun can start)."""
    states = osp.join(exp, 'training_states')
    if osp.isdir(exp) and not (osp.isdir(states) and os.listdir(states)):
        shutil.rmtree(exp)


def _mean_std(values, digits=4):
    """``'m +- s'`` over seeds (sample std; one value: ``'m'``); non-floats are passed through."""
    floats = [v for v in values if isinstance(v, float)]
    if not floats:
        return values[0] if values else ''
    if len(floats) == 1:
        return f'{floats[0]:.{digits}f}'
    return f'{statistics.mean(floats):.{digits}f} ± {statistics.stdev(floats):.{digits}f}'


def summarise(label, runs, complexity=None, failure=None, plan=None, budget_columns=False):
    """One table row from the runs of a stage (one per seed).

    Args:
        label (str): Row label. runs (list[dict]): :func:`run_stage` results.
        complexity (dict, optional): ``{'params_M': float, 'GMACs': float}`` of ``network_g``.
        failure (BaseException, optional): Why the stage could not run (every column says so).
        plan (dict, optional): :func:`plan_iterations` result of a learned stage (adds the budget columns).
        budget_columns (bool): Add the budget columns even without a plan (a test-only row of a budgeted list).

    Returns:
        OrderedDict: The row (``method``, ``seeds``, ``<set>/<metric>`` columns, with a plan or ``budget_columns``
        ``train_iter``, ``budget_cpu_s``, ``probe_cpu_s_per_iter``, ``train_cpu_s``, then ``train_s_per_iter``,
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
    if budget_columns or plan is not None:
        row['train_iter'] = f"{plan['total_iter']} ({plan['source']})" if plan else 'no training'
        row['budget_cpu_s'] = f"{plan['budget_s']:g}" if plan and plan.get('budget_s') else ''
        row['probe_cpu_s_per_iter'] = f"{plan['probe']['cpu_s_per_iter']:.3f}" if plan and plan.get('probe') else ''
        cpu = [float(r['timing']['cpu_s']) for r in runs if r.get('timing')]
        row['train_cpu_s'] = _mean_std(cpu, 1) if cpu else ''
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
                  seeds=None, only=None, extra_overrides=(), force=False, generate_data=True, budget_s=None,
                  prerequisite_iter=None, reprobe=False):
    """Run every stage of a benchmark list for every seed and write the table (and the face grids).

    Args:
        list_path (str): Benchmark list (relative paths: to the repository root).
        out_dir (str): Where ``benchmark.md``, ``benchmark.csv`` and the face grids go.
        total_iter (int, optional): Iterations of every learned stage (overrides the list's budget and iterations).
        seeds (list[int], optional): Overrides its seeds.
        only (Sequence[str], optional): Labels of the stages to run (default: all).
        extra_overrides (Sequence[str]): ``--cfg-options`` for every run.
        force (bool): Retrain every stage from scratch (and probe again).
        generate_data (bool): Run the list's ``prepare`` steps and generate the demo faces when missing.
        budget_s (float, optional): CPU seconds per learned stage and seed (overrides the list's ``budget_s``).
        prerequisite_iter (int, optional): Iterations of the prerequisites (default: their own; for smoke tests).
        reprobe (bool): Measure the CPU cost per iteration again even when a probe is cached.

    Returns:
        list[OrderedDict]: The table rows.
    """
    spec = load_benchmark_list(_resolve(list_path))
    seeds = list(seeds or spec['seeds'])
    stages = [s for s in spec['stages'] if not only or s['label'] in only]
    if only and len(stages) != len(set(only)):
        known = [s['label'] for s in spec['stages']]
        raise OptionError(f'--only: unknown label(s) {sorted(set(only) - set(known))}; known: {known}')
    if generate_data:
        for target in spec['prepare']:
            _call(target)
        if spec['demo_data']:
            from lowlight3d.data.demo_faces import generate_demo_dataset
            generate_demo_dataset(osp.join('datasets', 'demo_faces'), verbose=True)
    run_prerequisites(spec['prerequisites'], extra_overrides, prerequisite_iter)
    rows, columns = [], []
    for stage in stages:
        runs, failure, plan = [], None, None
        try:
            if stage.get('train'):
                plan = plan_iterations(stage, spec, seeds, total_iter, budget_s, extra_overrides, reprobe or force)
            for seed in seeds:
                iters = plan['total_iter'] if plan else 0
                what = f'{iters} iterations' if plan else 'test only'
                print(f"[benchmark] {stage['label']}: seed {seed}, {what}", flush=True)
                runs.append(run_stage(stage, seed, iters, extra_overrides, force, spec['schedule_follows_budget']))
        except WeightsNotFoundError as err:
            failure = WeightsNotFoundError(_missing_weights(err))
            print(f"[benchmark] {stage['label']}: n/a ({failure})", flush=True)
        complexity = None if failure else _complexity(_resolve(stage.get('test') or stage['train']),
                                                      spec['complexity_size'])
        rows.append(summarise(stage['label'], runs, complexity, failure, plan,
                              budget_columns=any(s.get('train') for s in stages)))
        columns.append((stage.get('grid_label') or stage['label'], runs))
        _write(rows, out_dir, spec, seeds, total_iter, budget_s,
               pending=[s['label'] for s in stages[len(rows):]])
    if spec['face_grids'] and any(runs for _, runs in columns):
        from lowlight3d.pipeline.benchmark_grids import write_face_grids
        index = int(spec['face_grids'].get('seeds_index', 0))
        written = write_face_grids(columns, spec['face_grids']['sets'], out_dir, min(index, len(seeds) - 1))
        print(f'[benchmark] face grids: {", ".join(written)}', flush=True)
    return rows


def _write(rows, out_dir, spec, seeds, total_iter=None, budget_s=None, pending=()):
    """Write ``benchmark.md`` / ``benchmark.csv`` of the rows so far; while stages are ``pending`` (a run in
    progress, or one that stopped), the table says it is incomplete and names them."""
    os.makedirs(out_dir, exist_ok=True)
    write_rows_csv(rows, osp.join(out_dir, 'benchmark.csv'))
    budget = None if total_iter else (budget_s or spec.get('budget_s'))
    if budget:
        how = (f'Every learned method trained for an equal CPU budget of {budget:g} s per seed: a probe of '
               f"{spec['probe_iter']} iterations measured its CPU seconds per iteration after the first "
               '(probe_cpu_s_per_iter) and set train_iter = floor(budget / that); train_cpu_s is the CPU time its '
               'training loop really used (all threads, data loading included, start-up excluded). A stage with '
               '`total_iter` in the list, or --total-iter, trains that many iterations instead (train_iter says '
               'which). ')
    elif not total_iter and spec['total_iter'] == OWN_ITERATIONS:
        how = 'Every learned method trained the iterations of its own option file (train_iter). '
    else:
        how = f"Every learned method trained {total_iter or spec['total_iter']} iterations per seed. "
    header = (f"# {spec['title']}\n\n{how}Seeds {seeds}; metrics are mean ± sample std over seeds. "
              f"params_M / GMACs: network_g at 1x3x{spec['complexity_size']}x{spec['complexity_size']} (torch FLOP "
              'counter, 1 MAC = 2 FLOPs). train_s_per_iter: wall seconds per training iteration on this machine '
              '(start-up, validation and checkpoints included).\n\n')
    if spec.get('notes'):
        header += ' '.join(str(spec['notes']).split()) + '\n\n'
    if pending:
        header = (f'**INCOMPLETE: {len(rows)} of {len(rows) + len(pending)} stages done; not (yet) run: '
                  f"{', '.join(pending)}. The run is still going, or it stopped before them.**\n\n") + header
    with open(osp.join(out_dir, 'benchmark.md'), 'w', encoding='utf-8') as f:
        f.write(header + format_table(rows) + '\n')


def main(argv=None):
    """Command-line entry point of ``scripts/benchmark_demo.py``."""
    parser = argparse.ArgumentParser(description='Train and test the methods of a benchmark list at an equal small '
                                     'budget over several seeds; write one table.')
    parser.add_argument('--list', default=DEFAULT_LIST, help='Benchmark list YAML (default: %(default)s).')
    parser.add_argument('--out', default=None, help='Output folder (default: results/<list file name without '
                        "'.yml'>, e.g. results/benchmark_demo).")
    parser.add_argument('--total-iter', type=int, default=None,
                        help='Training iterations of every learned stage (overrides the list and its budget).')
    parser.add_argument('--budget-s', type=float, default=None, help='CPU seconds per learned stage and seed '
                        "(overrides the list's budget_s).")
    parser.add_argument('--prerequisite-iter', type=int, default=None,
                        help='Training iterations of the prerequisites (default: their own option files).')
    parser.add_argument('--seeds', type=int, nargs='+', default=None, help='Seeds (overrides the list).')
    parser.add_argument('--only', nargs='+', default=None, metavar='LABEL', help='Run only these stages.')
    parser.add_argument('--force', action='store_true', help='Retrain from scratch (archive existing runs).')
    parser.add_argument('--reprobe', action='store_true', help='Measure the CPU cost per iteration again.')
    parser.add_argument('--workdir', default=None, help='Run inside this folder (its own experiments/ and results/); '
                        'datasets/ is linked from the current folder, so prepared data is shared.')
    parser.add_argument('--smoke', action='store_true', help='End-to-end check in seconds per stage: 2 iterations '
                        'for every stage and prerequisite, the first seed only, in --workdir (default '
                        '<out>_smoke_work), table in <out>_smoke. Numbers are meaningless.')
    parser.add_argument('--cfg-options', nargs='+', default=[], metavar='KEY=VALUE', help='Overrides for every run.')
    args = parser.parse_args(argv)
    out = args.out or osp.join('results', osp.splitext(osp.basename(args.list))[0])
    total_iter, prereq_iter, seeds, workdir = args.total_iter, args.prerequisite_iter, args.seeds, args.workdir
    if args.smoke:
        out = out.rstrip('/') + '_smoke'
        total_iter, prereq_iter = total_iter or 2, prereq_iter or 2
        seeds = seeds[:1] if seeds else load_benchmark_list(_resolve(args.list))['seeds'][:1]
        workdir = workdir or out + '_work'
    out = osp.abspath(out)
    _absolute_user_paths(args)
    if workdir:
        _enter_workdir(workdir)
    rows = run_benchmark(args.list, out, total_iter, seeds, args.only, args.cfg_options, args.force,
                         budget_s=args.budget_s, prerequisite_iter=prereq_iter, reprobe=args.reprobe)
    print(format_table(rows), flush=True)
    print(f'[benchmark] written: {out}/benchmark.md, benchmark.csv', flush=True)
    return rows


def _absolute_user_paths(args, env=('LOWLIGHT3D_TEST_DATA', )):
    """Resolve what the user gave relative to *their* working folder, before any change of folder: the list file
    (when it exists there; else it is looked up in the repository, as before) and the data folders named by
    environment variables (``LOWLIGHT3D_TEST_DATA=../shared/data`` keeps meaning the caller's ``../shared/data``
    inside ``--workdir`` / ``--smoke``)."""
    if not osp.isabs(args.list) and osp.isfile(args.list):
        args.list = osp.abspath(args.list)
    for name in env:
        value = os.environ.get(name)
        if value and not osp.isabs(value):
            os.environ[name] = osp.abspath(value)


def _enter_workdir(workdir):
    """``chdir`` into ``workdir``, whose ``datasets`` links to the current folder's (created when missing)."""
    here, workdir = osp.abspath('.'), osp.abspath(workdir)
    os.makedirs(workdir, exist_ok=True)
    os.makedirs(osp.join(here, 'datasets'), exist_ok=True)
    link = osp.join(workdir, 'datasets')
    if not osp.lexists(link):
        os.symlink(osp.join(here, 'datasets'), link, target_is_directory=True)
    elif not osp.islink(link):
        raise FileExistsError(f'{link} exists and is not a link to {here}/datasets; use another --workdir')
    os.chdir(workdir)
    print(f'[benchmark] working in {workdir} (datasets/ linked from {here})', flush=True)
