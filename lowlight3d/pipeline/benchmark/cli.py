"""Command line of ``scripts/benchmark_demo.py`` (``make benchmark-demo``, ``make benchmark-real``, ...).

Parses the flags, resolves the paths the user gave relative to their own folder, enters ``--workdir`` (whose
``datasets`` links to the caller's) and runs :func:`~lowlight3d.pipeline.benchmark.suite.run_benchmark`.
``--smoke`` is an end-to-end check: 2 iterations per stage and prerequisite, first seed, its own work folder.
"""
import argparse
import os
import os.path as osp

from lowlight3d.pipeline.benchmark.spec import DEFAULT_LIST, load_benchmark_list, resolve
from lowlight3d.pipeline.benchmark.suite import run_benchmark
from lowlight3d.utils.results_table import format_table

__all__ = ['main', 'absolute_user_paths', 'enter_workdir']


def main(argv=None):
    """Command-line entry point of ``scripts/benchmark_demo.py``; returns the table rows."""
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
        seeds = seeds[:1] if seeds else load_benchmark_list(resolve(args.list))['seeds'][:1]
        workdir = workdir or out + '_work'
    out = osp.abspath(out)
    absolute_user_paths(args)
    if workdir:
        enter_workdir(workdir)
    rows = run_benchmark(args.list, out, total_iter, seeds, args.only, args.cfg_options, args.force,
                         budget_s=args.budget_s, prerequisite_iter=prereq_iter, reprobe=args.reprobe)
    print(format_table(rows), flush=True)
    print(f'[benchmark] written: {out}/benchmark.md, benchmark.csv', flush=True)
    return rows


def absolute_user_paths(args, env=('LOWLIGHT3D_TEST_DATA', )):
    """Resolve what the user gave relative to *their* working folder, before any change of folder: the list file
    (when it exists there; else it is looked up in the repository) and the data folders named by environment
    variables (``LOWLIGHT3D_TEST_DATA=../shared/data`` keeps meaning the caller's ``../shared/data`` inside
    ``--workdir`` / ``--smoke``)."""
    if not osp.isabs(args.list) and osp.isfile(args.list):
        args.list = osp.abspath(args.list)
    for name in env:
        value = os.environ.get(name)
        if value and not osp.isabs(value):
            os.environ[name] = osp.abspath(value)


def enter_workdir(workdir):
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
