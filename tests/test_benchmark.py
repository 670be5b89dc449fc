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
    from lowlight3d.pipeline.benchmark import _write
    spec = load_benchmark_list(osp.join(REPO, 'options', 'demo', 'benchmark_demo.yml'))
    rows = [summarise('UNet', [], None, None, None)]
    _write(rows, str(tmp_path), spec, [0, 1], total_iter=2, pending=['V1', 'Ours'])
    table = (tmp_path / 'benchmark.md').read_text()
    assert table.startswith('**INCOMPLETE: 1 of 3 stages done; not (yet) run: V1, Ours.')
    _write(rows, str(tmp_path), spec, [0, 1], total_iter=2)
    assert 'INCOMPLETE' not in (tmp_path / 'benchmark.md').read_text()
