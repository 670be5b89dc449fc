"""A whole benchmark: every stage of a list for every seed, then the table and the face grids.

:func:`run_benchmark` runs the list's ``prepare`` steps and demo data, trains the prerequisites, then for each stage
plans its iterations (:mod:`~lowlight3d.pipeline.benchmark.budget`), trains and tests it for every seed
(:mod:`~lowlight3d.pipeline.benchmark.runner`), measures the parameters / GMACs of its ``network_g``
(:mod:`lowlight3d.pipeline.complexity`) and rewrites the table (:mod:`~lowlight3d.pipeline.benchmark.report`).  A
stage that cannot be built because pretrained weights are missing (for example EnlightenGAN's VGG16 offline) gets
``n/a (pretrained weights missing: <file>)`` instead of stopping the benchmark.  Finally the face grids
(:mod:`~lowlight3d.pipeline.benchmark.grids`) show the same faces across all rows.
"""
import importlib
import os.path as osp

from lowlight3d.pipeline.benchmark.budget import plan_iterations
from lowlight3d.pipeline.benchmark.report import summarise, write_report
from lowlight3d.pipeline.benchmark.runner import missing_weights_reason, run_prerequisites, run_stage
from lowlight3d.pipeline.benchmark.spec import DEFAULT_LIST, load_benchmark_list, resolve
from lowlight3d.utils.options import OptionError
from lowlight3d.utils.weights import WeightsNotFoundError

__all__ = ['run_benchmark', 'run_prepare_step', 'network_complexity']


def run_prepare_step(target):
    """Call ``'package.module:function'`` without arguments (a list's ``prepare`` step)."""
    module, func = target.split(':')
    try:
        fn = getattr(importlib.import_module(module), func)
    except (ImportError, AttributeError) as err:
        raise OptionError(f"prepare: cannot find {target!r} ({err})") from err
    print(f'[benchmark] prepare: {target}', flush=True)
    return fn()


def network_complexity(test_opt, size):
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
    spec = load_benchmark_list(resolve(list_path))
    seeds = list(seeds or spec['seeds'])
    stages = [s for s in spec['stages'] if not only or s['label'] in only]
    if only and len(stages) != len(set(only)):
        known = [s['label'] for s in spec['stages']]
        raise OptionError(f'--only: unknown label(s) {sorted(set(only) - set(known))}; known: {known}')
    if generate_data:
        for target in spec['prepare']:
            run_prepare_step(target)
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
            failure = WeightsNotFoundError(missing_weights_reason(err))
            print(f"[benchmark] {stage['label']}: n/a ({failure})", flush=True)
        complexity = None if failure else network_complexity(resolve(stage.get('test') or stage['train']),
                                                             spec['complexity_size'])
        rows.append(summarise(stage['label'], runs, complexity, failure, plan,
                              budget_columns=any(s.get('train') for s in stages)))
        columns.append((stage.get('grid_label') or stage['label'], runs))
        write_report(rows, out_dir, spec, seeds, total_iter, budget_s,
                     pending=[s['label'] for s in stages[len(rows):]])
    if spec['face_grids'] and any(runs for _, runs in columns):
        from lowlight3d.pipeline.benchmark.grids import write_face_grids
        index = int(spec['face_grids'].get('seeds_index', 0))
        written = write_face_grids(columns, spec['face_grids']['sets'], out_dir, min(index, len(seeds) - 1))
        print(f'[benchmark] face grids: {", ".join(written)}', flush=True)
    return rows
