"""How many iterations each learned stage of a benchmark trains, and the probe that turns a CPU budget into them.

:func:`iteration_rule` picks the rule, first match wins:

====  ==========================================  ===================================  ==================
rank  set by                                      iterations                           ``source``
====  ==========================================  ===================================  ==================
1     ``--total-iter N`` (command line)           N                                    ``command line``
2     the stage's ``total_iter`` in the list      that number                          ``fixed in list``
3     ``--budget-s S``, else the list's budget_s  ``max(1, floor(S / probe's cost))``  ``budget``
4     the list's ``total_iter: own``              the option file's train.total_iter   ``option file``
5     the list's ``total_iter: N`` (default 200)  N                                    ``list``
====  ==========================================  ===================================  ==================

**Equal CPU budget** (rule 3).  Before its real runs, each learned stage is trained ``probe_iter`` iterations
(experiment ``<name>_probe``, first seed; :func:`probe_stage`); the training loop measures its process CPU time
(all threads, data loading included, start-up excluded).  The steady cost is the CPU time after the first (warm-up)
iteration divided by ``probe_iter - 1``.  The probe is cached in ``experiments/<name>_probe/probe.json`` and reused
while its settings, the thread count and the CPU model are unchanged (so a rerun repeats the same iterations and
reuses finished runs; ``reprobe`` measures again).  Test-time work (e.g. ZERO-IG's per-image optimisation) is not
part of the budget.
"""
import json
import math
import os.path as osp
import platform
import shutil

import torch

from lowlight3d.pipeline.benchmark.runner import train, train_args
from lowlight3d.pipeline.benchmark.spec import OWN_ITERATIONS, resolve
from lowlight3d.utils.checkpoint import atomic_write_json
from lowlight3d.utils.options import OptionError, load_config

__all__ = ['iteration_rule', 'iterations_for_budget', 'plan_iterations', 'probe_stage']


def iteration_rule(stage, spec, total_iter=None, budget_s=None):
    """The rule that sets a learned stage's iterations (the table of the module docstring), without probing.

    Args:
        stage (dict): A list entry with a ``train`` file. spec (dict): The list (:func:`load_benchmark_list`).
        total_iter (int, optional): ``--total-iter``. budget_s (float, optional): ``--budget-s``.

    Returns:
        tuple: ``(source, number)``: the iterations, or for ``'budget'`` the CPU seconds to turn into iterations.

    Raises:
        OptionError: ``total_iter: own`` and the option file has no positive ``train.total_iter``.
    """
    if total_iter:
        return 'command line', int(total_iter)
    if stage.get('total_iter'):
        return 'fixed in list', int(stage['total_iter'])
    budget = budget_s or spec.get('budget_s')
    if budget:
        return 'budget', float(budget)
    if spec['total_iter'] == OWN_ITERATIONS:
        iters = (load_config(resolve(stage['train'])).get('train') or {}).get('total_iter')
        if not isinstance(iters, int) or iters < 1:
            raise OptionError(f"{stage['train']}: train.total_iter must be a positive integer (the benchmark list says "
                              f'total_iter: {OWN_ITERATIONS}), got {iters!r}')
        return 'option file', iters
    return 'list', int(spec['total_iter'])


def iterations_for_budget(budget_s, cpu_s_per_iter):
    """``max(1, floor(budget_s / cpu_s_per_iter))``."""
    return max(1, math.floor(budget_s / max(cpu_s_per_iter, 1e-9)))


def plan_iterations(stage, spec, seeds, total_iter=None, budget_s=None, extra_overrides=(), reprobe=False):
    """The training iterations of a learned stage and where they come from (:func:`iteration_rule`), probing the
    stage's CPU cost when a budget sets them.

    Returns:
        dict: ``{'total_iter': int, 'source': 'command line' | 'fixed in list' | 'budget' | 'option file' | 'list',
        'probe': probe result or None, 'budget_s': float or None}``.
    """
    source, number = iteration_rule(stage, spec, total_iter, budget_s)
    if source != 'budget':
        return {'total_iter': number, 'source': source, 'probe': None, 'budget_s': None}
    probe = probe_stage(stage, seeds[0], spec['probe_iter'], extra_overrides, spec['schedule_follows_budget'],
                        reprobe)
    iters = iterations_for_budget(number, probe['cpu_s_per_iter'])
    print(f"[benchmark] {stage['label']}: {probe['cpu_s_per_iter']:.3f} CPU s / iteration -> {iters} iterations "
          f'for {number:g} CPU s', flush=True)
    return {'total_iter': iters, 'source': 'budget', 'probe': probe, 'budget_s': number}


def probe_stage(stage, seed, probe_iter, extra_overrides=(), schedule=False, reprobe=False):
    """Measure a learned stage's steady CPU seconds per training iteration with a short run.

    Trains ``probe_iter`` iterations as ``experiments/<name>_probe`` (a previous probe folder is deleted) and takes
    the steady cost from the loop timing the training call returns
    (:attr:`~lowlight3d.pipeline.train_pipeline.LoopTiming.steady_cpu_s_per_iter`).  The result is cached in
    ``probe.json`` there, keyed by the settings, the thread count and the CPU model, and reused unless ``reprobe``.

    Returns:
        dict: ``{'cpu_s_per_iter', 'wall_s_per_iter', 'probe_iter', 'threads', 'key'}``.
    """
    name = load_config(resolve(stage['train']))['name'] + '_probe'
    exp = osp.join('experiments', name)
    cache = osp.join(exp, 'probe.json')
    key = {'train': stage['train'], 'probe_iter': probe_iter, 'seed': seed, 'schedule': bool(schedule),
           'train_cfg': list(stage.get('train_cfg') or []), 'overrides': list(extra_overrides),
           'threads': torch.get_num_threads(), 'cpu': platform.processor() or platform.machine()}
    if not reprobe and osp.isfile(cache):
        with open(cache) as f:
            cached = json.load(f)
        if cached.get('key') == key:
            return cached
    if osp.isdir(exp):
        shutil.rmtree(exp)
    print(f"[benchmark] {stage['label']}: probe, {probe_iter} iterations", flush=True)
    timing = train(train_args(stage, name, seed, probe_iter, extra_overrides, schedule, '--auto_resume'), exp).timing
    if timing is None:
        raise RuntimeError(f'{exp}: the probe trained no iteration')
    result = {'cpu_s_per_iter': timing.steady_cpu_s_per_iter, 'wall_s_per_iter': timing.steady_wall_s_per_iter,
              'probe_iter': timing.iterations, 'threads': timing.threads, 'key': key}
    atomic_write_json(cache, result)
    return result
