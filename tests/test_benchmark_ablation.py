"""What each component brings (lowlight3d/pipeline/benchmark/ablation.py): contributions against hand computations."""
import csv
import os.path as osp

import pytest

from lowlight3d.pipeline.benchmark import load_benchmark_list, summarise, write_report
from lowlight3d.pipeline.benchmark.ablation import (
    ablation_rows,
    check_ablation_block,
    main,
    parse_mean_std,
    read_benchmark_csv,
)
from lowlight3d.utils.options import OptionError

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))

BLOCK = {'reference': 'full', 'metrics': ['S/psnr', 'R/identity'],
         'components': [{'name': 'prior', 'without': 'V5', 'paper': {'S/psnr': 2.12}},
                        {'name': 'fusion', 'without': 'V7'},
                        {'name': 'intra', 'without': 'V3'}]}


def _rows():
    return {'full': {'method': 'full', 'S/psnr': '20.0000 ± 0.1000', 'R/identity': '0.5000 ± 0.0100'},
            'V5': {'method': 'V5', 'S/psnr': '19.0000 ± 0.2000', 'R/identity': '0.5500 ± 0.0100'},
            'V7': {'method': 'V7', 'S/psnr': '20.2000 ± 0.2000', 'R/identity': '0.4000 ± 0.0200'}}


def test_parse_mean_std():
    assert parse_mean_std('18.6883 ± 0.0920') == (18.6883, 0.092)
    assert parse_mean_std('0.5') == (0.5, None)
    assert parse_mean_std(1.25) == (1.25, None)
    assert parse_mean_std('-1e-3 ± 2e-4') == (-0.001, 0.0002)
    with pytest.raises(ValueError, match='not a number'):
        parse_mean_std('n/a (weights missing)')


def test_contributions_signs_spreads_and_verdicts_by_hand():
    """Contribution = reference - without, flipped for lower-is-better identity; spread = sum of the stds."""
    block = check_ablation_block(BLOCK, ['full', 'V5', 'V7', 'V3'], 'list.yml')
    prior, fusion, intra = ablation_rows(_rows(), block)
    # 20.0 - 19.0 = +1.0 > 0.1 + 0.2: helps; identity 0.55 - 0.50 = +0.05 > 0.02: helps (lower is better)
    assert prior['S/psnr'] == '+1.000 ± 0.300 (helps; paper +2.120)'
    assert prior['R/identity'] == '+0.050 ± 0.020 (helps)'
    # 20.0 - 20.2 = -0.2, inside 0.3: within spread; identity 0.40 - 0.50 -> -0.10 < -0.03: hurts
    assert fusion['S/psnr'] == '-0.200 ± 0.300 (within spread)'
    assert fusion['R/identity'] == '-0.100 ± 0.030 (hurts)'
    assert intra['S/psnr'] == 'not run' and intra['without'] == 'V3'


def test_one_seed_has_no_verdict():
    rows = {'full': {'S/psnr': '20.0', 'R/identity': '0.5'}, 'V5': {'S/psnr': '21.5', 'R/identity': '0.5'}}
    block = check_ablation_block(dict(BLOCK, components=BLOCK['components'][:1]), ['full', 'V5'], 'l.yml')
    assert ablation_rows(rows, block)[0]['S/psnr'] == '-1.500 (one seed; paper +2.120)'


def test_missing_reference_and_bad_blocks_fail_clearly():
    block = check_ablation_block(BLOCK, ['full', 'V5', 'V7', 'V3'], 'list.yml')
    with pytest.raises(KeyError, match="reference row 'full'"):
        ablation_rows({'V5': _rows()['V5']}, block)
    with pytest.raises(OptionError, match="list.yml: ablation names the stage 'V9'"):
        check_ablation_block(dict(BLOCK, components=[{'name': 'x', 'without': 'V9'}]), ['full'], 'list.yml')
    with pytest.raises(OptionError, match=r"unknown key\(s\) \['paper_sorce'\]"):
        check_ablation_block(dict(BLOCK, paper_sorce='x'), ['full', 'V5', 'V7', 'V3'], 'list.yml')
    with pytest.raises(OptionError, match='must be {name, without, paper}'):
        check_ablation_block(dict(BLOCK, components=[{'name': 'x', 'without': 'V5', 'papr': {}}]), ['full', 'V5'],
                             'list.yml')
    with pytest.raises(OptionError, match='<test set>/<metric>'):
        check_ablation_block(dict(BLOCK, metrics=['psnr']), ['full', 'V5', 'V7', 'V3'], 'list.yml')
    with pytest.raises(OptionError, match='paper must map columns to numbers'):
        check_ablation_block(dict(BLOCK, components=[{'name': 'x', 'without': 'V5', 'paper': {'S/psnr': 'big'}}]),
                             ['full', 'V5'], 'list.yml')


def _write_csv(path, rows):
    with open(path, 'w', newline='', encoding='utf-8') as f:
        writer = csv.DictWriter(f, fieldnames=['method', 'S/psnr', 'R/identity'])
        writer.writeheader()
        writer.writerows(rows)


def test_tables_of_two_runs_combine_and_a_disagreement_is_refused(tmp_path, capsys):
    rows = _rows()
    _write_csv(tmp_path / 'core.csv', [rows['full'], rows['V5']])
    _write_csv(tmp_path / 'rest.csv', [rows['V5'], rows['V7']])  # V5 again, with the same values
    combined = read_benchmark_csv([str(tmp_path / 'core.csv'), str(tmp_path / 'rest.csv')])
    assert list(combined) == ['full', 'V5', 'V7']
    _write_csv(tmp_path / 'other.csv', [dict(rows['V5'], **{'S/psnr': '18.0000 ± 0.1000'})])
    with pytest.raises(ValueError, match="the row 'V5' differs"):
        read_benchmark_csv([str(tmp_path / 'core.csv'), str(tmp_path / 'other.csv')])
    # the command line, on a list file with this block
    stages = ''.join(f'  - {{label: {name}, train: null, test: options/real/test_Identity_real.yml}}\n'
                     for name in ('full', 'V5', 'V7', 'V3'))
    lst = tmp_path / 'list.yml'
    lst.write_text('stages:\n' + stages + 'ablation:\n  reference: full\n  metrics: [S/psnr, R/identity]\n'
                   '  components:\n    - {name: prior, without: V5, paper: {S/psnr: 2.12}}\n'
                   '    - {name: fusion, without: V7}\n')
    out = tmp_path / 'ablation.md'
    main(['--list', str(lst), '--csv', str(tmp_path / 'core.csv'), str(tmp_path / 'rest.csv'), '--out', str(out)])
    text = out.read_text()
    assert '| prior | V5 | +1.000 ± 0.300 (helps; paper +2.120) | +0.050 ± 0.020 (helps) |' in text
    assert '| fusion | V7 | -0.200 ± 0.300 (within spread) | -0.100 ± 0.030 (hurts) |' in text


def test_shipped_lists_have_valid_ablation_blocks():
    """The equal-iteration real-face list and the paper list name existing stages in their ablation blocks."""
    for name, n in (('real/benchmark_real_equal_iter.yml', 6), ('benchmark_paper.yml', 7)):
        spec = load_benchmark_list(osp.join(REPO, 'options', name))
        assert len(spec['ablation']['components']) == n


def test_the_report_appends_the_section_once_the_reference_ran(tmp_path):
    spec = load_benchmark_list(osp.join(REPO, 'options', 'demo', 'benchmark_demo.yml'))
    spec['ablation'] = check_ablation_block(
        {'reference': 'full', 'metrics': ['S/psnr'], 'components': [{'name': 'prior', 'without': 'V5'}]},
        ['full', 'V5'], 'list.yml')

    def run(psnr):
        return {'summary': {'S': {'metrics': {'psnr': psnr}}}, 'seconds_per_iter': None}

    v5 = summarise('V5', [run(19.0), run(19.2)])
    write_report([v5], str(tmp_path), spec, [0, 1], pending=['full'])
    assert 'What each component brings' not in (tmp_path / 'benchmark.md').read_text()
    full = summarise('full', [run(20.0), run(20.4)])
    write_report([v5, full], str(tmp_path), spec, [0, 1])
    # 20.2 - 19.1 = 1.1; stds 0.2828 + 0.1414 = 0.4243
    assert '| prior | V5 | +1.100 ± 0.424 (helps) |' in (tmp_path / 'benchmark.md').read_text()
