"""The benchmark list: which methods a benchmark compares, on what, with which seeds and which budget.

A list is a YAML file (``options/demo/benchmark_demo.yml``, ``options/real/benchmark_real.yml``)::

    total_iter: 200          # every method trains this many iterations (train.total_iter is overridden) ...
                             # (``own``: each trains its option file's train.total_iter, e.g. paper scale)
    budget_s: 60             # ... or: every learned method gets this many CPU seconds of training
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
    ablation: {reference: <label>, metrics: [...], components: [{name, without, paper}]}  # see .ablation
    title: ...               # heading of the table
    notes: ...               # a paragraph under it

An entry may add ``train_cfg`` / ``test_cfg``: lists of extra ``--cfg-options`` for that method only, ``total_iter``
(fixes its iterations, e.g. to repeat an earlier budgeted run exactly) and ``grid_label`` (short column label of the
face grids).  Instead of a ``test`` file an entry may name ``test_sets``: its test option file is then composed from
its training file and that file (:func:`lowlight3d.pipeline.benchmark.runner.stage_test_options`), so an ablation
needs no test file.  Relative paths in a list are relative to the repository root.

:func:`load_benchmark_list` is the one place that reads and checks a list: it raises :class:`OptionError` naming the
file and the bad entry, and returns the list with every default filled in; the rest of the benchmark reads only the
returned dict.
"""
import os.path as osp

from lowlight3d.pipeline.benchmark.ablation import check_ablation_block
from lowlight3d.utils.options import OptionError, yaml_load
from lowlight3d.utils.paths import REPO_ROOT

__all__ = ['DEFAULT_LIST', 'OWN_ITERATIONS', 'resolve', 'load_benchmark_list']

DEFAULT_LIST = osp.join('options', 'demo', 'benchmark_demo.yml')

#: ``total_iter`` value of a list whose stages keep their option files' iterations (paper scale).
OWN_ITERATIONS = 'own'


def resolve(path):
    """A list's path: absolute paths as they are, relative ones under the repository root."""
    return path if osp.isabs(path) else osp.join(REPO_ROOT, path)


def _positive_int(value, what, path):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise OptionError(f'{path}: {what} must be a positive integer, got {value!r}')
    return value


def _check_stages(stages, path):
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
            if stage.get(key) and not osp.isfile(resolve(stage[key])):
                raise OptionError(f"{path}: stages[{i}].{key} = {stage[key]} does not exist")
        if stage.get('total_iter') is not None:
            _positive_int(stage['total_iter'], f'stages[{i}].total_iter', path)


def _check_face_grids(grids, seeds, path):
    sets = grids.get('sets') if isinstance(grids, dict) else None
    if not isinstance(sets, dict) or not sets:
        raise OptionError(f"{path}: 'face_grids' must be {{sets: {{<test set name>: <number of faces>}}}}, "
                          f'got {grids!r}')
    for name, count in sets.items():
        _positive_int(count, f'face_grids.sets.{name}', path)
    if not 0 <= int(grids.get('seeds_index', 0)) < len(seeds):
        raise OptionError(f"{path}: face_grids.seeds_index must index 'seeds' ({seeds})")


def load_benchmark_list(path):
    """Read and check a benchmark list (format: the module docstring).

    Args:
        path (str): YAML file; relative option paths in it are relative to the repository root.

    Returns:
        dict: ``total_iter`` (int or ``'own'``; default 200), ``seeds`` (default ``[0, 1]``), ``complexity_size``
        (default 256), ``stages``, ``prerequisites``, ``budget_s`` (float, None without a budget), ``probe_iter``
        (default 6), ``schedule_follows_budget``, ``prepare`` (list of ``module:function``), ``demo_data`` (default
        True), ``face_grids`` (dict or None), ``ablation`` (checked block or None), ``title``, ``notes``.

    Raises:
        OptionError: An entry is missing, of the wrong type, or names a file that does not exist.
    """
    data = yaml_load(path) or {}
    stages = data.get('stages')
    _check_stages(stages, path)
    prerequisites = data.get('prerequisites') or []
    for i, pre in enumerate(prerequisites):
        if not isinstance(pre, str) or not osp.isfile(resolve(pre)):
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
        _check_face_grids(grids, seeds, path)
    ablation = data.get('ablation')
    if ablation is not None:
        ablation = check_ablation_block(ablation, [s['label'] for s in stages], path)
    total = data.get('total_iter', 200)
    if total != OWN_ITERATIONS:
        total = _positive_int(total, 'total_iter', path)
    return {'total_iter': total, 'seeds': seeds,
            'complexity_size': int(data.get('complexity_size', 256)), 'stages': stages,
            'prerequisites': prerequisites, 'budget_s': None if budget is None else float(budget),
            'probe_iter': probe_iter, 'schedule_follows_budget': bool(data.get('schedule_follows_budget', False)),
            'prepare': prepare, 'demo_data': bool(data.get('demo_data', True)), 'face_grids': grids,
            'ablation': ablation, 'title': data.get('title', 'Demo benchmark'), 'notes': data.get('notes', '')}
