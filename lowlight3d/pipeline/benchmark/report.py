"""The benchmark table: one row per stage, mean ± sample std over seeds, written as markdown and CSV.

A row (:func:`summarise`) holds per test set and metric the mean ± standard deviation over seeds (sample std,
``n - 1``), the seconds per training iteration, with a budget the budget columns (iterations and their source, the
budget, the probe's CPU seconds per iteration, the CPU seconds the runs' training loops really used), and the
parameters / GMACs of ``network_g``.  A stage that could not run (pretrained weights missing) has one ``result``
column saying why.  :func:`write_report` writes ``benchmark.md`` (a header explaining the budget and the columns,
then the table, then, when the list has an ``ablation`` block and every row it names ran, what each component brings:
:mod:`.ablation`) and ``benchmark.csv``; while stages are pending the header says the table is incomplete.
"""
import os
import os.path as osp
import statistics
from collections import OrderedDict

from lowlight3d.pipeline.benchmark.ablation import ablation_ready, format_ablation
from lowlight3d.pipeline.benchmark.spec import OWN_ITERATIONS
from lowlight3d.pipeline.loss_spikes import SPIKE_FACTOR, describe_spikes
from lowlight3d.utils.checkpoint import atomic_write_text
from lowlight3d.utils.results_table import format_table, write_rows_csv

__all__ = ['mean_std', 'summarise', 'write_report']


def mean_std(values, digits=4):
    """``'m ± s'`` over seeds (sample std; one value: ``'m'``); non-floats are passed through."""
    floats = [v for v in values if isinstance(v, float)]
    if not floats:
        return values[0] if values else ''
    if len(floats) == 1:
        return f'{floats[0]:.{digits}f}'
    return f'{statistics.mean(floats):.{digits}f} ± {statistics.stdev(floats):.{digits}f}'


def summarise(label, runs, complexity=None, failure=None, plan=None, budget_columns=False):
    """One table row from the runs of a stage (one per seed).

    Args:
        label (str): Row label.
        runs (list[dict]): :func:`~lowlight3d.pipeline.benchmark.runner.run_stage` results.
        complexity (dict, optional): ``{'params_M': float, 'GMACs': float}`` of ``network_g``.
        failure (BaseException, optional): Why the stage could not run (every column says so).
        plan (dict, optional): :func:`~lowlight3d.pipeline.benchmark.budget.plan_iterations` result of a learned
            stage (adds the budget columns).
        budget_columns (bool): Add the budget columns even without a plan (a test-only row of a budgeted list).

    Returns:
        OrderedDict: The row (``method``, ``seeds``, ``<set>/<metric>`` columns, with a plan or ``budget_columns``
        ``train_iter``, ``budget_cpu_s``, ``probe_cpu_s_per_iter``, ``train_cpu_s``, for trained runs with a
        history ``loss_spikes`` (``'none'`` or ``'seed k: iter N (xR)'``, :mod:`lowlight3d.pipeline.loss_spikes`),
        then ``train_s_per_iter``, ``params_M``, ``GMACs``).
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
        row[key] = mean_std(values)
    if budget_columns or plan is not None:
        row['train_iter'] = f"{plan['total_iter']} ({plan['source']})" if plan else 'no training'
        row['budget_cpu_s'] = f"{plan['budget_s']:g}" if plan and plan.get('budget_s') else ''
        row['probe_cpu_s_per_iter'] = f"{plan['probe']['cpu_s_per_iter']:.3f}" if plan and plan.get('probe') else ''
        cpu = [float(r['timing']['cpu_s']) for r in runs if r.get('timing')]
        row['train_cpu_s'] = mean_std(cpu, 1) if cpu else ''
    checked = [r for r in runs if r.get('loss_spikes') is not None]
    if checked:
        row['loss_spikes'] = '; '.join(f"seed {r.get('seed', '?')}: {describe_spikes(r['loss_spikes'])}"
                                       for r in checked if r['loss_spikes']) or 'none'
    times = [r['seconds_per_iter'] for r in runs if r['seconds_per_iter'] is not None]
    row['train_s_per_iter'] = mean_std(times, 3) if times else 'no training'
    if complexity:
        row['params_M'] = f"{complexity['params_M']:.4f}"
        row['GMACs'] = f"{complexity['GMACs']:.3f}"
    return row


def _how_trained(spec, total_iter, budget_s):
    """The header's sentence on the training budget."""
    budget = None if total_iter else (budget_s or spec.get('budget_s'))
    if budget:
        return (f'Every learned method trained for an equal CPU budget of {budget:g} s per seed: a probe of '
                f"{spec['probe_iter']} iterations measured its CPU seconds per iteration after the first "
                '(probe_cpu_s_per_iter) and set train_iter = floor(budget / that); train_cpu_s is the CPU time its '
                'training loop really used (all threads, data loading included, start-up excluded). A stage with '
                '`total_iter` in the list, or --total-iter, trains that many iterations instead (train_iter says '
                'which). ')
    if not total_iter and spec['total_iter'] == OWN_ITERATIONS:
        return 'Every learned method trained the iterations of its own option file (train_iter). '
    return f"Every learned method trained {total_iter or spec['total_iter']} iterations per seed. "


def write_report(rows, out_dir, spec, seeds, total_iter=None, budget_s=None, pending=()):
    """Write ``benchmark.md`` / ``benchmark.csv`` of the rows so far; while stages are ``pending`` (a run in
    progress, or one that stopped), the table says it is incomplete and names them.

    Args:
        rows (list[OrderedDict]): :func:`summarise` rows. out_dir (str): Output folder.
        spec (dict): The list. seeds (list[int]): The seeds run.
        total_iter (int, optional): ``--total-iter``. budget_s (float, optional): ``--budget-s``.
        pending (Sequence[str]): Labels of the stages not run yet.
    """
    os.makedirs(out_dir, exist_ok=True)
    write_rows_csv(rows, osp.join(out_dir, 'benchmark.csv'))
    header = (f"# {spec['title']}\n\n{_how_trained(spec, total_iter, budget_s)}Seeds {seeds}; metrics are mean ± "
              f'sample std over seeds. loss_spikes: logged training losses above {SPIKE_FACTOR:g}x the median of '
              'the values logged before them (a run that blew up; its seed may distort the mean). params_M / GMACs: '
              f"network_g at 1x3x{spec['complexity_size']}x{spec['complexity_size']} (torch FLOP counter, 1 MAC = 2 "
              'FLOPs). train_s_per_iter: wall seconds per '
              'training iteration on this machine (start-up, validation and checkpoints included).\n\n')
    if spec.get('notes'):
        header += ' '.join(str(spec['notes']).split()) + '\n\n'
    if pending:
        header = (f'**INCOMPLETE: {len(rows)} of {len(rows) + len(pending)} stages done; not (yet) run: '
                  f"{', '.join(pending)}. The run is still going, or it stopped before them.**\n\n") + header
    text = header + format_table(rows) + '\n'
    block = spec.get('ablation')
    by_label = {row['method']: row for row in rows}
    if block and ablation_ready(by_label, block):
        text += '\n' + format_ablation(by_label, block)
    atomic_write_text(osp.join(out_dir, 'benchmark.md'), text)
