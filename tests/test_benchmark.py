"""The demo benchmark: list checks, mean +- std rows, an end-to-end run over two seeds with a missing-weights stage."""
import csv
import os.path as osp

import pytest

from lowlight3d.pipeline.benchmark import load_benchmark_list, run_benchmark, summarise
from lowlight3d.utils.options import OptionError
from lowlight3d.utils.weights import WeightsNotFoundError

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def test_the_demo_list_is_valid():
    spec = load_benchmark_list(osp.join(REPO, 'options', 'demo', 'benchmark_demo.yml'))
    labels = [s['label'] for s in spec['stages']]
    assert labels[0] == 'LowLightUNet' and 'EnlightenGAN' in labels and 'ZERO-IG' in labels
    assert len(spec['seeds']) >= 2
    assert sum(label.startswith(f'V{k} ') for label in labels for k in range(1, 8)) == 7  # Table 2 variants
    assert any(label.startswith('Ours full') for label in labels)
    assert any('TriplaneDDPM' in p for p in spec['prerequisites'])


def test_bad_lists_fail_clearly(tmp_path):
    bad = tmp_path / 'bad.yml'
    bad.write_text('stages:\n  - {label: A, test: options/demo/no_such_file.yml}\n')
    with pytest.raises(OptionError, match='does not exist'):
        load_benchmark_list(str(bad))
    bad.write_text('stages: []\n')
    with pytest.raises(OptionError, match='non-empty'):
        load_benchmark_list(str(bad))


@pytest.mark.parametrize('text, message', [
    ('stages:\n  - {label: A, train: null}\n', 'needs a label and a test option file'),
    ('stages:\n  - {label: A, test: %(test)s}\n  - {label: A, test: %(test)s}\n', "'A' appears twice"),
    ('seeds: []\nstages:\n  - {label: A, test: %(test)s}\n', "'seeds' must be a non-empty list"),
    ('budget_s: -1\nstages:\n  - {label: A, test: %(test)s}\n', "'budget_s' must be a positive number"),
    ('probe_iter: 1\nstages:\n  - {label: A, test: %(test)s}\n', "'probe_iter' must be >= 2"),
    ('total_iter: 0\nstages:\n  - {label: A, test: %(test)s}\n', 'total_iter must be a positive integer'),
    ('prepare: [no_colon]\nstages:\n  - {label: A, test: %(test)s}\n', 'prepare\\[0\\] must be'),
    ('face_grids: {sets: {}}\nstages:\n  - {label: A, test: %(test)s}\n', "'face_grids' must be"),
    ('stages:\n  - {label: A, test: %(test)s, total_iter: 0}\n', r'stages\[0\].total_iter must be a positive'),
])
def test_list_errors_name_the_file_and_the_entry(tmp_path, text, message):
    bad = tmp_path / 'bad.yml'
    bad.write_text(text % {'test': 'options/demo/test_LowLightUNet_demo.yml'})
    with pytest.raises(OptionError, match=message) as err:
        load_benchmark_list(str(bad))
    assert str(bad) in str(err.value)


def test_iteration_count_precedence():
    """Command line > the stage's total_iter > a CPU budget (command line, else list) > ``own`` > the list's."""
    from lowlight3d.pipeline.benchmark.budget import iteration_rule
    stage = {'label': 'U', 'train': 'options/demo/train_LowLightUNet_demo.yml'}
    fixed = dict(stage, total_iter=7)
    listed = {'total_iter': 200, 'budget_s': None}
    budgeted = {'total_iter': 200, 'budget_s': 60.0}
    own = {'total_iter': 'own', 'budget_s': None}
    assert iteration_rule(fixed, budgeted, total_iter=5, budget_s=9) == ('command line', 5)
    assert iteration_rule(fixed, budgeted, budget_s=9) == ('fixed in list', 7)
    assert iteration_rule(stage, budgeted, budget_s=9) == ('budget', 9.0)
    assert iteration_rule(stage, budgeted) == ('budget', 60.0)
    assert iteration_rule(stage, own, budget_s=9) == ('budget', 9.0)
    assert iteration_rule(stage, own) == ('option file', 600)  # train.total_iter of the demo U-Net's file
    assert iteration_rule(stage, listed) == ('list', 200)
    with pytest.raises(OptionError, match='train.total_iter must be a positive integer'):
        iteration_rule(dict(stage, train='options/_base_/datasets/demo_faces_test.yml'), own)  # no train block


def test_a_budget_becomes_iterations_through_the_probe(monkeypatch):
    from lowlight3d.pipeline.benchmark import budget
    probes = []
    monkeypatch.setattr(budget, 'probe_stage', lambda *args: probes.append(args) or {'cpu_s_per_iter': 0.3})
    stage = {'label': 'U', 'train': 'options/demo/train_LowLightUNet_demo.yml'}
    spec = {'total_iter': 200, 'budget_s': 1.0, 'probe_iter': 4, 'schedule_follows_budget': False}
    plan = budget.plan_iterations(stage, spec, [3, 4])
    assert plan == {'total_iter': 3, 'source': 'budget', 'probe': {'cpu_s_per_iter': 0.3}, 'budget_s': 1.0}
    assert probes[0][1:3] == (3, 4)  # first seed, probe_iter
    assert budget.plan_iterations(stage, spec, [3], total_iter=11)['source'] == 'command line' and len(probes) == 1
    assert budget.iterations_for_budget(0.1, 0.3) == 1  # at least one iteration


def test_summary_row_mean_and_std_by_hand():
    na = WeightsNotFoundError('x')
    runs = [{'summary': {'Set': {'metrics': {'psnr': 10.0, 'niqe': na}}}, 'seconds_per_iter': 1.0},
            {'summary': {'Set': {'metrics': {'psnr': 14.0, 'niqe': na}}}, 'seconds_per_iter': 3.0}]
    row = summarise('M', runs, {'params_M': 1.5, 'GMACs': 2.25})
    assert row['Set/psnr'] == '12.0000 ± 2.8284'  # sample std of (10, 14) = sqrt(8)
    assert isinstance(row['Set/niqe'], WeightsNotFoundError)
    assert row['train_s_per_iter'] == '2.000 ± 1.414' and row['params_M'] == '1.5000' and row['GMACs'] == '2.250'
    failed = summarise('F', [], failure=WeightsNotFoundError('pretrained weights missing: w.pth'))
    assert failed['result'].args[0] == 'pretrained weights missing: w.pth'


def test_end_to_end_two_seeds_and_a_stage_without_weights(tmp_path, tiny_image_sets, monkeypatch):
    import baselines.enlightengan.enlightengan_loss as egan_loss

    def offline(filename, **kwargs):
        raise WeightsNotFoundError(f"Weight file '{filename}' (test) is missing and downloads are disabled.")

    monkeypatch.setattr(egan_loss, 'resolve_weights', offline)
    sets = tiny_image_sets
    test_cfg = (f'[datasets.test_paired.dataroot_gt={sets}/val, datasets.test_paired.gt_size=32, '
                f'datasets.test_unpaired.dataroot_lq={sets}/unpaired, datasets.test_unpaired.gt_size=32, '
                'datasets.test_unpaired.meta_info_file=~, '
                '"val.metrics={psnr: {type: psnr, crop_border: 0}}", network_g.num_feat=4]')
    listing = tmp_path / 'list.yml'
    listing.write_text(f"""total_iter: 2
seeds: [0, 1]
complexity_size: 32
stages:
  - label: UNet
    train: options/demo/train_LowLightUNet_demo.yml
    test_sets: options/_base_/datasets/demo_faces_test.yml
    train_cfg: {tiny_cfg(sets)}
    test_cfg: {test_cfg}
  - label: EnlightenGAN
    train: options/demo/train_EnlightenGAN_demo.yml
    test: options/demo/test_EnlightenGAN_demo.yml
    train_cfg: [datasets.train.low.dataroot_gt={sets}/train, datasets.train.normal.dataroot_gt={sets}/train,
                datasets.val.dataroot_gt={sets}/val]
""")
    monkeypatch.chdir(tmp_path)
    rows = run_benchmark(str(listing), out_dir='out', generate_data=False)
    assert [r['method'] for r in rows] == ['UNet', 'EnlightenGAN']
    assert ' ± ' in rows[0]['DemoFacesTest/psnr'] and rows[0]['seeds'] == 2
    assert osp.isdir(tmp_path / 'experiments' / 'demo_LowLightUNet_seed0')
    assert osp.isdir(tmp_path / 'experiments' / 'demo_LowLightUNet_seed1')
    # the UNet's test file was composed from its training file and the test sets
    composed = tmp_path / 'experiments' / 'demo_LowLightUNet_seed0' / 'benchmark_test_options.yml'
    assert 'demo_faces_test.yml' in composed.read_text()
    assert not osp.exists(tmp_path / 'experiments' / 'demo_EnlightenGAN_seed0')  # failed start cleaned up
    table = (tmp_path / 'out' / 'benchmark.md').read_text()
    assert 'pretrained weights missing: vgg16-397923af.pth' in table and 'INCOMPLETE' not in table
    with open(tmp_path / 'out' / 'benchmark.csv') as f:
        assert len(list(csv.DictReader(f))) == 2


def tiny_cfg(sets):
    """``train_cfg`` list (YAML flow) making the demo U-Net training seconds long on the tiny sets."""
    return (f'[datasets.train.dataroot_gt={sets}/train, datasets.val.dataroot_gt={sets}/val, '
            'datasets.train.gt_size=32, datasets.val.gt_size=32, datasets.train.batch_size_per_gpu=4, '
            'network_g.num_feat=4, logger.save_checkpoint_freq=2, val.val_freq=2]')


def test_a_table_written_before_the_last_stage_says_it_is_incomplete(tmp_path):
    """The table is rewritten after every stage: until the last one it names the stages not yet run, so the table
    of an interrupted benchmark cannot pass for a finished one."""
    from lowlight3d.pipeline.benchmark import write_report
    spec = load_benchmark_list(osp.join(REPO, 'options', 'demo', 'benchmark_demo.yml'))
    rows = [summarise('UNet', [], None, None, None)]
    write_report(rows, str(tmp_path), spec, [0, 1], total_iter=2, pending=['V1', 'Ours'])
    table = (tmp_path / 'benchmark.md').read_text()
    assert table.startswith('**INCOMPLETE: 1 of 3 stages done; not (yet) run: V1, Ours.')
    write_report(rows, str(tmp_path), spec, [0, 1], total_iter=2)
    assert 'INCOMPLETE' not in (tmp_path / 'benchmark.md').read_text()
