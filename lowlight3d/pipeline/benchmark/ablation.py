"""What each component of a method brings, from a benchmark table: the reference row minus each ablation row.

The paper's question for Table 2 ("does removing X cost accuracy?") asked of our own runs. A benchmark list may hold
an ``ablation`` block::

    ablation:
      reference: Ours full [random VGG19]          # the stage label of the whole method
      metrics: [UTKFace_test/psnr, UTKFace_test/ssim, YaleB_dark/identity]   # table columns to compare
      components:
        - name: 3D prior guidance                  # what the ablation removes
          without: V5 no 3D prior [random VGG19]   # the stage label of the method without it
          paper: {UTKFace_test/psnr: 2.12}         # optional: the paper's contribution (its own test set)
      paper_source: the paper's Table 2 (FFHQ)     # optional: where the paper values come from

For every component and metric the **contribution** is ``reference - without`` turned so that a positive value means
the component makes the metric better (for a lower-is-better metric such as ``identity`` the sign is flipped; the
direction comes from the metric registry, :func:`~lowlight3d.metrics.metric_util.metric_info`). With several seeds
the **spread** is the sum of the two rows' sample standard deviations, and the verdict is ``helps`` when the
contribution exceeds the spread, ``hurts`` when it is below minus the spread, else ``within spread``. With two seeds
this is a rough screen, not a significance test; the table says so.

:func:`ablation_rows` computes the rows from benchmark rows (those of :mod:`.report`, or read back from one or more
``benchmark.csv`` files by :func:`read_benchmark_csv`, so that stages run in separate ``--out`` folders can be
compared); :func:`format_ablation` writes them as markdown. ``scripts/ablation_table.py`` is the command line;
``benchmark.md`` gets the section itself when every row it needs is in that run.
"""
import csv
import os.path as osp
import re
from collections import OrderedDict

from lowlight3d.metrics.metric_util import metric_info
from lowlight3d.utils.options import OptionError
from lowlight3d.utils.results_table import format_table

__all__ = ['check_ablation_block', 'parse_mean_std', 'read_benchmark_csv', 'ablation_ready', 'ablation_rows',
           'format_ablation', 'main']

_MEAN_STD = re.compile(r'^\s*([-+]?[0-9.]+(?:[eE][-+]?\d+)?)\s*(?:±\s*([0-9.]+(?:[eE][-+]?\d+)?))?\s*$')


def check_ablation_block(block, stage_labels, path):
    """Check a list's ``ablation`` block (format: the module docstring) against the list's stage labels.

    Args:
        block (dict): The block. stage_labels (Iterable[str]): Labels of the list's stages. path (str): The list file
            (for the error message).

    Returns:
        dict: The block with ``paper`` defaulted to ``{}`` in every component.

    Raises:
        OptionError: A key is missing or of the wrong type, or a label names no stage of the list.
    """
    labels = set(stage_labels)
    if not isinstance(block, dict) or not isinstance(block.get('reference'), str):
        raise OptionError(f"{path}: 'ablation' must be {{reference: <stage label>, metrics: [...], components: "
                          f'[...]}}, got {block!r}')
    unknown = set(block) - {'reference', 'metrics', 'components', 'paper_source'}
    if unknown:
        raise OptionError(f'{path}: unknown key(s) {sorted(unknown)} in ablation; known: reference, metrics, '
                          'components, paper_source')
    metrics, components = block.get('metrics'), block.get('components')
    if not isinstance(metrics, list) or not metrics or not all(isinstance(m, str) and '/' in m for m in metrics):
        raise OptionError(f"{path}: ablation.metrics must be a non-empty list of '<test set>/<metric>' columns, "
                          f'got {metrics!r}')
    if not isinstance(components, list) or not components:
        raise OptionError(f'{path}: ablation.components must be a non-empty list of {{name, without, paper}}')
    for label in [block['reference']] + [c.get('without') if isinstance(c, dict) else None for c in components]:
        if label not in labels:
            raise OptionError(f'{path}: ablation names the stage {label!r}, which is not a label of the list '
                              f"(labels: {sorted(labels)})")
    checked = []
    for i, comp in enumerate(components):
        if not isinstance(comp.get('name'), str) or set(comp) - {'name', 'without', 'paper'}:
            raise OptionError(f'{path}: ablation.components[{i}] must be {{name, without, paper}} with a name, got '
                              f'{comp!r}')
        paper = comp.get('paper') or {}
        if not isinstance(paper, dict) or not all(isinstance(v, (int, float)) for v in paper.values()):
            raise OptionError(f'{path}: ablation.components[{i}].paper must map columns to numbers, got {paper!r}')
        checked.append(dict(comp, paper=paper))
    return dict(block, components=checked)


def parse_mean_std(cell):
    """``'18.69 ± 0.09'`` -> ``(18.69, 0.09)``; ``'18.69'`` (one seed) -> ``(18.69, None)``; a float passes.

    Raises:
        ValueError: The cell is not a number or ``mean ± std`` (e.g. ``'n/a (...)'``).
    """
    if isinstance(cell, (int, float)):
        return float(cell), None
    match = _MEAN_STD.match(str(cell))
    if not match:
        raise ValueError(f'not a number or "mean ± std": {cell!r}')
    return float(match.group(1)), None if match.group(2) is None else float(match.group(2))


def read_benchmark_csv(paths):
    """Rows of one or more ``benchmark.csv`` files, keyed by method label.

    A label found in several files must carry the same values in each (the references appear in every run); the
    first file's row is kept.

    Args:
        paths (Sequence[str]): ``benchmark.csv`` files written by :func:`~.report.write_report`.

    Returns:
        OrderedDict: ``{label: row dict}`` in first-seen order.

    Raises:
        ValueError: Two files disagree on a row.
        FileNotFoundError: A file is missing.
    """
    rows = OrderedDict()
    for path in paths:
        with open(path, newline='', encoding='utf-8') as f:
            for row in csv.DictReader(f):
                label = row['method']
                if label in rows:
                    shared = [k for k in row if k in rows[label] and k.count('/') == 1]
                    diff = [k for k in shared if row[k] != rows[label][k]]
                    if diff:
                        raise ValueError(f'{path}: the row {label!r} differs from an earlier file in {diff}; '
                                         'compare runs of the same test protocol')
                    continue
                rows[label] = row
    return rows


def _contribution(ref, without, metric):
    """(contribution, spread) of one metric; the sign makes a positive contribution an improvement."""
    (m_ref, s_ref), (m_without, s_without) = parse_mean_std(ref), parse_mean_std(without)
    sign = -1.0 if metric_info(metric.split('/', 1)[1])['better'] == 'lower' else 1.0
    spread = None if s_ref is None or s_without is None else s_ref + s_without
    return sign * (m_ref - m_without), spread


def _verdict(value, spread):
    if spread is None:
        return 'one seed'
    if value > spread:
        return 'helps'
    if value < -spread:
        return 'hurts'
    return 'within spread'


def ablation_ready(rows, block):
    """Whether ``rows`` (keyed by label) hold the reference row with every metric column."""
    ref = rows.get(block['reference'])
    return ref is not None and all(metric in ref for metric in block['metrics'])


def ablation_rows(rows, block, digits=3):
    """One row per component: its contribution to each metric, the seed spread, the verdict and the paper's value.

    Args:
        rows (Mapping[str, Mapping]): Benchmark rows keyed by label (:func:`read_benchmark_csv`, or the report's
            rows by their ``method``). block (dict): A checked ``ablation`` block.
        digits (int): Decimals of the contributions.

    Returns:
        list[OrderedDict]: ``component``, ``without``, then per metric one cell ``'+c ± spread (verdict; paper
        +p)'`` (``'not run'`` where the ablation row or its column is missing; the paper part where the block gives
        it).

    Raises:
        KeyError: The reference row, or one of its metric columns, is missing (the message names which).
    """
    reference = block['reference']
    if not ablation_ready(rows, block):
        raise KeyError(f'the reference row {reference!r} with the columns {block["metrics"]} is not in the table '
                       f'(rows: {list(rows)})')
    out = []
    for comp in block['components']:
        without = rows.get(comp['without'], {})
        row = OrderedDict(component=comp['name'], without=comp['without'])
        for metric in block['metrics']:
            if metric in without:
                value, spread = _contribution(rows[reference][metric], without[metric], metric)
                cell = f'{value:+.{digits}f}' + ('' if spread is None else f' ± {spread:.{digits}f}')
                notes = [_verdict(value, spread)]
            else:
                cell, notes = 'not run', []
            if metric in comp['paper']:
                notes.append(f"paper {comp['paper'][metric]:+.{digits}f}")
            row[metric] = cell + (f" ({'; '.join(notes)})" if notes else '')
        out.append(row)
    return out


def format_ablation(rows, block):
    """The markdown section of :func:`ablation_rows` (heading, how to read it, table)."""
    table = ablation_rows(rows, block)
    return (f"## What each component brings (contribution = {block['reference']} minus the row without it)\n\n"
            'Positive = the component makes the metric better (signs flipped for lower-is-better metrics). '
            '± is the sum of the two rows\' sample standard deviations over seeds; "helps" / "hurts" when the '
            'contribution is beyond it, else "within spread" (a rough screen with few seeds, not a significance '
            f"test). \"paper\": the contribution reported in {block.get('paper_source') or 'the paper'}, where the "
            'list gives it.\n\n' + format_table(table) + '\n')



def main(argv=None):
    """``scripts/ablation_table.py``: the component table of a list's ``ablation`` block from one or more
    ``benchmark.csv`` files (e.g. the core rows and the other ablations run into separate ``--out`` folders)."""
    import argparse

    from lowlight3d.pipeline.benchmark.spec import load_benchmark_list, resolve
    from lowlight3d.utils.checkpoint import atomic_write_text
    parser = argparse.ArgumentParser(description='What each component brings: the reference row of a benchmark '
                                     "list's ablation block minus each ablation row, from benchmark.csv files.")
    parser.add_argument('--list', required=True, help='Benchmark list YAML with an ablation block.')
    parser.add_argument('--csv', nargs='+', required=True, help='benchmark.csv files holding the rows.')
    parser.add_argument('--out', default=None, help='Also write the markdown section to this file.')
    args = parser.parse_args(argv)
    spec = load_benchmark_list(args.list if osp.isfile(args.list) else resolve(args.list))
    if not spec['ablation']:
        raise SystemExit(f'{args.list} has no ablation block (format: lowlight3d/pipeline/benchmark/ablation.py)')
    try:
        text = format_ablation(read_benchmark_csv(args.csv), spec['ablation'])
    except (KeyError, ValueError) as err:
        raise SystemExit(f'ablation table: {err.args[0]}') from None
    print(text, flush=True)
    if args.out:
        atomic_write_text(args.out, text)
    return text
