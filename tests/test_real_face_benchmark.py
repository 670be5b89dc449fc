"""Real-face benchmark: non-learned reference archs, the real paired dataset, the data split, the list and its budget.

Tests that read the shared research photos use the ``shared_data`` fixture (``LOWLIGHT3D_TEST_DATA``) and skip
without it; the photos are only linked into temporary folders, never copied.
"""
import csv
import json
import math
import os
import os.path as osp

import cv2
import numpy as np
import pytest
import torch

from lowlight3d.archs.gamma_curve_enhancer_arch import GammaCurveEnhancer
from lowlight3d.archs.identity_enhancer_arch import IdentityEnhancer
from lowlight3d.data import build_dataset
from lowlight3d.data.preparation.real_face_benchmark import (
    DARK_CONDITIONS,
    REFERENCE_CONDITION,
    prepare_real_faces,
    utk_split,
    yaleb_sets,
    yaleb_subject_split,
    yaleb_train_pairs,
)
from lowlight3d.metrics.metric_util import metrics_of_set
from lowlight3d.pipeline.benchmark import load_benchmark_list, run_benchmark
from lowlight3d.pipeline.benchmark.runner import schedule_overrides
from lowlight3d.utils.img_io import read_image
from lowlight3d.utils.options import load_config

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
REAL = osp.join(REPO, 'options', 'real')


def _manifest(shared_data, folder):
    with open(osp.join(shared_data, folder, 'manifest.csv'), newline='') as f:
        return list(csv.DictReader(f))


# ---------------------------------------------------------------- reference archs
def test_identity_enhancer_is_exact_and_has_no_parameters():
    net = IdentityEnhancer()
    x = torch.rand(2, 3, 17, 23)
    y = net(x)
    assert torch.equal(y, x) and y.data_ptr() != x.data_ptr()
    assert sum(p.numel() for p in net.parameters()) == 0


def test_gamma_curve_hits_the_target_mean_on_random_images():
    net = GammaCurveEnhancer(target_mean=0.45)
    gen = torch.Generator().manual_seed(0)
    scales = torch.tensor([0.02, 0.1, 0.5, 1.0]).view(4, 1, 1, 1)  # very dark, dark, a little dark, bright
    x = torch.rand(4, 3, 40, 30, generator=gen) * scales
    y = net(x)
    assert y.shape == x.shape and float(y.min()) >= 0 and float(y.max()) <= 1
    assert torch.allclose(net.mean_luma(y), torch.full((4, ), 0.45), atol=1e-3)
    at_target = torch.full((1, 3, 8, 8), 0.45)
    assert abs(float(net.solve_gamma(at_target)) - 1) < 1e-4  # already at the target: gamma 1
    assert sum(p.numel() for p in net.parameters()) == 0


def test_gamma_curve_keeps_gray_gray_and_black_black():
    net = GammaCurveEnhancer(target_mean=0.3)
    gray = torch.rand(1, 1, 24, 24) * 0.1
    y = net(gray.expand(1, 3, 24, 24))
    assert torch.equal(y[:, 0], y[:, 1]) and torch.equal(y[:, 1], y[:, 2])
    assert abs(float(net.mean_luma(y)) - 0.3) < 1e-3
    black = torch.zeros(2, 3, 8, 8)
    assert torch.equal(net(black), black) and torch.equal(net.solve_gamma(black), torch.ones(2))
    mixed = torch.rand(1, 3, 8, 8) * 0.2  # per-image gammas: a black image beside a dark one
    out = net(torch.cat([black[:1], mixed]))
    assert torch.equal(out[0], black[0]) and abs(float(net.mean_luma(out[1:])) - 0.3) < 1e-3


def test_gamma_curve_options_are_checked():
    with pytest.raises(ValueError, match='target_mean'):
        GammaCurveEnhancer(target_mean=1.5)
    with pytest.raises(ValueError, match='gamma_range'):
        GammaCurveEnhancer(gamma_range=[2, 3])


def test_gamma_curve_on_real_faces(shared_data):
    net = GammaCurveEnhancer(target_mean=0.472)
    yale = [r for r in _manifest(shared_data, 'faces_yaleb') if r['size'] == '168x192']
    utk = _manifest(shared_data, 'faces_utk')[:8]
    for folder, rows in (('faces_yaleb', yale), ('faces_utk', utk)):
        for row in rows:
            x = torch.from_numpy(read_image(osp.join(shared_data, folder, 'images', row['file'])).transpose(2, 0, 1))
            y = net(x[None])
            mean = float(net.mean_luma(y))
            if row.get('condition') == 'P00_Ambient':  # near-black frames: the bound may stop the curve first
                gamma = float(net.solve_gamma(x[None]))
                assert abs(mean - 0.472) < 1e-3 or (gamma <= 0.0201 and mean < 0.472), row['file']
            else:
                assert abs(mean - 0.472) < 1e-3, row['file']
            if folder == 'faces_yaleb':
                assert torch.equal(y[:, 0], y[:, 2])  # gray stays gray


# ---------------------------------------------------------------- real paired dataset
def _gray_pairs(root):
    """Two dark gray frames sharing one gray reference, plus a pair list; returns the folder."""
    os.makedirs(root, exist_ok=True)
    rng = np.random.default_rng(0)
    ref = (rng.random((24, 20)) * 200 + 30).astype(np.uint8)
    cv2.imwrite(osp.join(root, 's1_ref.png'), ref)
    cv2.imwrite(osp.join(root, 's1_dark_a.png'), (ref * 0.1).astype(np.uint8))
    cv2.imwrite(osp.join(root, 's1_dark_b.png'), (ref * 0.05).astype(np.uint8))
    with open(osp.join(root, 'pairs.txt'), 'w') as f:
        f.write('# dark reference\ns1_dark_a.png s1_ref.png\n\ns1_dark_b.png s1_ref.png\n')
    return str(root)


def test_real_paired_dataset_reads_both_images_as_rgb(tmp_path):
    root = _gray_pairs(tmp_path / 'yale')
    opt = {'type': 'RealPairedLowLightDataset', 'name': 'Dark', 'phase': 'test', 'dataroot_lq': root,
           'dataroot_gt': root, 'meta_info_file': osp.join(root, 'pairs.txt'), 'gt_size': None}
    dataset = build_dataset(opt)
    assert len(dataset) == 2
    sample = dataset[1]
    assert sample['lq'].shape == sample['gt'].shape == (3, 24, 20)
    assert torch.equal(sample['lq'][0], sample['lq'][2]) and torch.equal(sample['gt'][0], sample['gt'][1])
    assert sample['lq_path'].endswith('s1_dark_b.png') and sample['gt_path'].endswith('s1_ref.png')
    assert float(sample['lq'].mean()) < 0.1 * float(sample['gt'].mean())
    resized = build_dataset({**opt, 'gt_size': [16, 12]})[0]
    assert resized['lq'].shape == resized['gt'].shape == (3, 16, 12)


def test_real_paired_dataset_errors_name_the_problem(tmp_path):
    root = _gray_pairs(tmp_path / 'yale')
    with open(osp.join(root, 'bad.txt'), 'w') as f:
        f.write('s1_dark_a.png nowhere.png\n')
    opt = {'type': 'RealPairedLowLightDataset', 'phase': 'test', 'dataroot_lq': root, 'dataroot_gt': root,
           'meta_info_file': osp.join(root, 'bad.txt')}
    with pytest.raises(FileNotFoundError, match='nowhere.png'):
        build_dataset(opt)
    cv2.imwrite(osp.join(root, 'big.png'), np.zeros((30, 30), np.uint8))
    with open(osp.join(root, 'sizes.txt'), 'w') as f:
        f.write('s1_dark_a.png big.png\n')
    with pytest.raises(ValueError, match='set gt_size'):
        build_dataset({**opt, 'meta_info_file': osp.join(root, 'sizes.txt'), 'gt_size': None})[0]


# ---------------------------------------------------------------- splits
def test_utk_split_is_deterministic_and_disjoint():
    names = [f'{age}_0_0_{i}.jpg' for i, age in enumerate(np.random.default_rng(1).integers(1, 90, 500))]
    train, test = utk_split(names, test_every=25, max_train=300)
    assert (train, test) == utk_split(list(reversed(names)), test_every=25, max_train=300)  # order-free
    assert len(test) == 20 and len(train) == 300 and not set(train) & set(test)
    assert train == sorted(train) and test == sorted(test)


def test_real_split_of_the_shared_photos(shared_data):
    utk = [r['file'] for r in _manifest(shared_data, 'faces_utk')]
    train, test = utk_split(utk)
    assert len(test) == 60 and len(train) == 1000 and not set(train) & set(test)
    rows = _manifest(shared_data, 'faces_yaleb')
    train_subjects, test_subjects = yaleb_subject_split(r['subject'] for r in rows)
    assert not set(train_subjects) & set(test_subjects) and len(test_subjects) == 9
    unpaired, pairs = yaleb_sets(rows, test_subjects)
    by_file = {r['file']: r for r in rows}
    assert len(pairs) == 23 and len(unpaired) == 25
    for dark, ref in pairs:  # each dark frame -> its own subject's frontal flash frame
        assert by_file[dark]['subject'] == by_file[ref]['subject'] in test_subjects
        assert by_file[dark]['condition'] in DARK_CONDITIONS and by_file[ref]['condition'] == REFERENCE_CONDITION
        assert by_file[dark]['size'] == '168x192'
    assert all(by_file[f]['subject'] in train_subjects for f in unpaired)
    train_pairs = yaleb_train_pairs(rows, test_subjects)
    assert [dark for dark, _ in train_pairs] == unpaired  # every training dark frame, now with its reference
    for dark, ref in train_pairs:
        assert by_file[dark]['subject'] == by_file[ref]['subject'] in train_subjects
        assert by_file[ref]['condition'] == REFERENCE_CONDITION


def test_prepare_real_faces_links_and_lists(shared_data, tmp_path):
    out = tmp_path / 'real_faces'
    summary = prepare_real_faces(str(out), shared_data, verbose=False)
    assert osp.islink(out / 'utk' / 'images') and osp.islink(out / 'yaleb' / 'images')  # linked, not copied
    assert summary['utk_test'] == 60 and summary['yaleb_test_pairs'] == 23 and summary['yaleb_train_pairs'] == 25
    assert len((out / 'yaleb' / 'meta_train_pairs.txt').read_text().splitlines()) == 25
    assert abs(summary['utk_train_mean_luma'] - 0.472) < 0.0006  # the target of test_GammaCurve_real.yml
    first = (out / 'utk' / 'meta_test.txt').read_text()
    assert prepare_real_faces(str(out), shared_data, verbose=False) == summary  # re-run: identical
    assert (out / 'utk' / 'meta_test.txt').read_text() == first
    dataset = build_dataset({'type': 'RealPairedLowLightDataset', 'phase': 'test', 'gt_size': None,
                             'dataroot_lq': str(out / 'yaleb' / 'images'), 'dataroot_gt': str(out / 'yaleb' / 'images'),
                             'meta_info_file': str(out / 'yaleb' / 'meta_test_pairs.txt')})
    sample = dataset[0]
    assert sample['lq'].shape == sample['gt'].shape == (3, 192, 168)
    assert osp.basename(sample['gt_path']) == osp.basename(sample['lq_path'])[:7] + '_P00A+000E+00.png'


# ---------------------------------------------------------------- option files and the list
def test_the_real_list_and_its_option_files_load():
    spec = load_benchmark_list(osp.join(REAL, 'benchmark_real.yml'))
    labels = [s['label'] for s in spec['stages']]
    for needed in ('Identity', 'Gamma', 'LowLightUNet', 'EnlightenGAN', 'random VGG16 stand-in', 'ZERO-IG', 'V1 ',
                   'V5 ', 'Ours full'):
        assert any(needed in label for label in labels), needed
    assert spec['budget_s'] and spec['schedule_follows_budget'] and len(spec['seeds']) == 2
    assert [s['train'] for s in spec['stages'] if 'Identity' in s['label'] or 'Gamma' in s['label']] == [None, None]
    assert set(spec['face_grids']['sets']) == {'UTKFace_test', 'YaleB_dark'}
    for stage in spec['stages']:
        test = stage.get('test') or stage['test_sets']
        opt = load_config(osp.join(REPO, test))
        for block in opt['datasets'].values():
            if 'metrics' in block:
                metrics_of_set(opt['val']['metrics'], block)  # every listed metric is defined
        if stage.get('train'):
            train = load_config(osp.join(REPO, stage['train']))
            assert train['name'].startswith('real_') and train['val']['val_freq'] is None
            assert 'real_faces' in json.dumps(train['datasets']['train'])
    gamma = load_config(osp.join(REAL, 'test_GammaCurve_real.yml'))
    assert gamma['network_g'] == {'type': 'GammaCurveEnhancer', 'target_mean': 0.472}
    v5 = load_config(osp.join(REAL, 'ablation', 'train_LowLight3D_V5_no_prior_real.yml'))
    assert v5['prior'] is None and v5['datasets']['train']['type'] == 'SemiSupervisedLowLightDataset'


def test_metrics_of_set_selects_and_checks():
    metrics = {'psnr': {'type': 'psnr'}, 'niqe': {'type': 'niqe'}}
    assert list(metrics_of_set(metrics, {})) == ['psnr', 'niqe']
    assert list(metrics_of_set(metrics, {'metrics': ['niqe']})) == ['niqe']
    with pytest.raises(ValueError, match="datasets.test_x.metrics names \\['lpips'\\]"):
        metrics_of_set(metrics, {'metrics': ['lpips']}, 'datasets.test_x')


def test_schedule_follows_the_budget():
    unet = osp.join(REPO, 'options', 'demo', 'train_LowLightUNet_demo.yml')
    assert schedule_overrides(unet, [], 37) == ['train.scheduler.periods=[37]']
    egan = osp.join(REPO, 'options', 'demo', 'train_EnlightenGAN_demo.yml')
    assert schedule_overrides(egan, [], 37) == []  # its linear decay follows train.total_iter itself


# ---------------------------------------------------------------- a parameter-free arch through test.py, no weights
def _tiny_test_cfg(sets):
    """``--cfg-options`` pointing the real test sets at the tiny images (no shared photos needed)."""
    return [f'datasets.test_utk.dataroot_gt={sets}/val', 'datasets.test_utk.meta_info_file=~',
            f'datasets.test_yaleb.dataroot_lq={sets}/unpaired', f'datasets.test_yaleb.dataroot_gt={sets}/unpaired',
            'datasets.test_yaleb.meta_info_file=~', 'datasets.test_utk.metrics=[psnr]',
            'datasets.test_yaleb.metrics=[chroma]']


def test_parameter_free_arch_runs_through_test_py_without_weights(tmp_path, tiny_image_sets):
    import lowlight3d.pipeline.test_pipeline as testing
    summary = testing.test_pipeline(['-opt', osp.join(REAL, 'test_GammaCurve_real.yml'), '--cfg-options',
                                     *_tiny_test_cfg(tiny_image_sets)], root_path=str(tmp_path))
    assert summary['UTKFace_test']['num_images'] == 3 and isinstance(summary['UTKFace_test']['metrics']['psnr'], float)
    assert list(summary['YaleB_dark']['metrics']) == ['chroma']  # the set's own metric list
    results = tmp_path / 'results' / 'real_GammaCurve'
    log = next(p for p in os.listdir(results) if p.startswith('test_') and p.endswith('.log'))
    assert 'has no parameters: it needs no checkpoint' in (results / log).read_text()
    assert len(os.listdir(results / 'visualization' / 'YaleB_dark')) == 3


# ---------------------------------------------------------------- the equal CPU budget, end to end (seconds)
def test_budgeted_list_probes_trains_and_draws_face_grids(tmp_path, tiny_image_sets, monkeypatch):
    sets = tiny_image_sets
    tiny = ('[datasets.train.dataroot_gt={s}/train, datasets.train.meta_info_file=~, datasets.val.dataroot_gt={s}/val, '
            'datasets.val.meta_info_file=~, datasets.train.gt_size=32, datasets.train.batch_size_per_gpu=4, '
            'network_g.num_feat=4]').format(s=sets)
    test_cfg = json.dumps(_tiny_test_cfg(sets))
    unet_test_cfg = json.dumps(_tiny_test_cfg(sets) + ['network_g.num_feat=4'])
    listing = tmp_path / 'list.yml'
    listing.write_text(f"""title: tiny
budget_s: 0.3
probe_iter: 3
schedule_follows_budget: true
seeds: [0]
complexity_size: 32
demo_data: false
stages:
  - label: Identity
    train: null
    test: options/real/test_Identity_real.yml
    test_cfg: {test_cfg}
  - label: UNet
    train: options/real/train_LowLightUNet_real.yml
    test_sets: options/_base_/datasets/real_faces_test.yml
    train_cfg: {tiny}
    test_cfg: {unet_test_cfg}
face_grids: {{sets: {{UTKFace_test: 2}}}}
""")
    monkeypatch.chdir(tmp_path)
    rows = run_benchmark(str(listing), out_dir='out')
    probe = json.load(open(tmp_path / 'experiments' / 'real_LowLightUNet_probe' / 'probe.json'))
    iters = max(1, math.floor(0.3 / max(probe['cpu_s_per_iter'], 1e-9)))  # the formula of plan_iterations
    assert rows[1]['train_iter'] == f'{iters} (budget)' and rows[1]['budget_cpu_s'] == '0.3'
    assert rows[0]['train_iter'] == 'no training' and rows[0]['params_M'] == '0.0000'
    states = os.listdir(tmp_path / 'experiments' / 'real_LowLightUNet_seed0' / 'training_states')
    assert states == [f'{iters}.state']
    resolved = load_config(str(tmp_path / 'experiments' / 'real_LowLightUNet_seed0' / 'options.yml'))
    assert resolved['train']['scheduler']['periods'] == [iters]
    table = (tmp_path / 'out' / 'benchmark.md').read_text()
    assert 'equal CPU budget of 0.3 s' in table and '| Identity |' in table
    grid = cv2.imread(str(tmp_path / 'out' / 'faces_UTKFace_test.png'))
    assert grid.shape[1] == 4 * 32 + 3 * 4  # input | Identity | UNet | reference
    # a rerun reuses the cached probe (same iterations) and the finished run
    mtime = os.path.getmtime(tmp_path / 'experiments' / 'real_LowLightUNet_probe' / 'probe.json')
    rows_again = run_benchmark(str(listing), out_dir='out')
    assert rows_again[1]['train_iter'] == rows[1]['train_iter']
    assert os.path.getmtime(tmp_path / 'experiments' / 'real_LowLightUNet_probe' / 'probe.json') == mtime


def _fake_training(monkeypatch, calls):
    """``train_pipeline`` / ``test_pipeline`` stand-ins: record the mode, save ``<total_iter>.state`` + options and
    return a :class:`TrainResult` (nothing trained when ``<total_iter>.state`` was there and the mode resumes)."""
    import lowlight3d.pipeline.test_pipeline as testing
    import lowlight3d.pipeline.train_pipeline as training
    from lowlight3d.pipeline.benchmark.runner import planned_options
    from lowlight3d.utils.options import dump_options

    def train(args):
        name = next(a[len('name='):] for a in args if a.startswith('name='))
        total = int(next(a.split('=')[1] for a in args if a.startswith('train.total_iter=')))
        mode = '--force' if '--force' in args else '--auto_resume'
        calls.append((mode, total))
        exp = osp.join('experiments', name)
        if mode == '--force' and osp.isdir(exp):
            import shutil
            shutil.rmtree(exp)
        state = osp.join(exp, 'training_states', f'{total}.state')
        start = total if osp.isfile(state) else 0
        os.makedirs(osp.dirname(state), exist_ok=True)
        open(state, 'w').close()
        saved = planned_options(args)  # what train.py saves, less the keys its resolver adds
        saved.update(num_gpu=0, path={'root': str(osp.abspath('.'))})
        dump_options(saved, osp.join(exp, 'options.yml'))
        timing = training.LoopTiming(total - start, 2.0, 4.0, 0.5, 1.0, 1) if start < total else None
        return training.TrainResult({'path': {'models': osp.join(exp, 'models')}}, start, total, timing)

    monkeypatch.setattr(training, 'train_pipeline', train)
    monkeypatch.setattr(testing, 'test_pipeline', lambda args: {})


def _fake_unet_stage(tmp_path, monkeypatch):
    """In ``tmp_path`` with :func:`_fake_training`: ``(run_stage, the LowLightUNet stage, the recorded calls)``."""
    from lowlight3d.pipeline.benchmark import run_stage
    monkeypatch.chdir(tmp_path)
    calls = []
    _fake_training(monkeypatch, calls)
    stage = {'label': 'UNet', 'train': 'options/real/train_LowLightUNet_real.yml',
             'test': 'options/real/test_Identity_real.yml'}
    return run_stage, stage, calls


def test_a_run_planned_for_other_iterations_is_retrained_not_resumed(tmp_path, monkeypatch, capsys):
    run_stage, stage, calls = _fake_unet_stage(tmp_path, monkeypatch)
    run_stage(stage, 0, 5)
    run_stage(stage, 0, 5)  # the same plan: resumed (a finished or interrupted run goes on)
    assert calls == [('--auto_resume', 5), ('--auto_resume', 5)]
    run_stage(stage, 0, 7)  # a new budget measurement: from scratch
    assert calls[-1] == ('--force', 7) and 'planned for 5 iterations, now 7' in capsys.readouterr().out
    assert os.listdir(tmp_path / 'experiments' / 'real_LowLightUNet_seed0' / 'training_states') == ['7.state']


def test_a_run_whose_options_changed_is_retrained_and_the_changed_keys_are_named(tmp_path, monkeypatch, capsys):
    run_stage, stage, calls = _fake_unet_stage(tmp_path, monkeypatch)
    run_stage(stage, 0, 5)
    run_stage({**stage, 'train_cfg': ['+train.grad_clip=2']}, 0, 5)  # e.g. an option file edited since
    assert calls == [('--auto_resume', 5), ('--force', 5)]
    assert "train.grad_clip: '<absent>' -> 2" in capsys.readouterr().out
    run_stage({**stage, 'train_cfg': ['+train.grad_clip=2']}, 0, 5)  # now the saved run is this plan: reused
    run_stage(stage, 0, 5)  # a key removed is a change too
    assert calls[2:] == [('--auto_resume', 5), ('--force', 5)]
    assert "train.grad_clip: 2 -> '<absent>'" in capsys.readouterr().out


def test_plan_differences_ignores_what_the_resolver_adds():
    from lowlight3d.pipeline.benchmark.runner import plan_differences
    planned = {'name': 'x', 'num_gpu': 'auto', 'datasets': {'train': {'gt_size': 96}}, 'prior': {'file': 'p.pth'},
               'train': {'total_iter': 1e4, 'pixel_opt': {'loss_weight': 1.0}}}
    saved = {'name': 'x', 'num_gpu': 0, 'device': 'cpu', 'is_train': True, 'path': {'models': '/e/x/models'},
             'datasets': {'train': {'gt_size': 96, 'phase': 'train'}}, 'prior': {'file': 'p.pth', 'fingerprint': 'ab'},
             'train': {'total_iter': 10000, 'pixel_opt': {'loss_weight': 1.0}}}
    assert plan_differences(planned, saved) == []
    saved['train']['pixel_opt']['loss_weight'] = 0.5
    saved['datasets']['train']['real_pairs'] = {'prob': 0.25}
    assert plan_differences(planned, saved) == ["datasets.train.real_pairs.prob: 0.25 -> '<absent>'",
                                                'train.pixel_opt.loss_weight: 0.5 -> 1.0']


def test_run_stage_takes_its_timing_from_the_training_result_and_a_reused_run_from_its_files(tmp_path,
                                                                                             monkeypatch):
    """A run trained now: the loop timing of the returned TrainResult (the fake writes no timing.json) and the
    call's wall time; a finished run reused: what the benchmark saved for it (benchmark_timing.json) and the loop's
    timing.json, here absent."""
    run_stage, stage, _ = _fake_unet_stage(tmp_path, monkeypatch)
    trained = run_stage(stage, 0, 5)
    assert trained['timing'] == {'iterations': 5, 'wall_s': 2.0, 'cpu_s': 4.0, 'first_iter_wall_s': 0.5,
                                 'first_iter_cpu_s': 1.0, 'threads': 1}
    assert trained['seconds_per_iter'] is not None
    assert not osp.exists(tmp_path / 'experiments' / 'real_LowLightUNet_seed0' / 'timing.json')
    reused = run_stage(stage, 0, 5)
    assert reused['seconds_per_iter'] == trained['seconds_per_iter'] and reused['timing'] is None


def test_probe_cache_is_keyed_by_threads_and_cpu(tmp_path, monkeypatch):
    import lowlight3d.pipeline.benchmark as benchmark
    import lowlight3d.pipeline.train_pipeline as training
    from lowlight3d.pipeline.benchmark import budget
    monkeypatch.chdir(tmp_path)
    probes = []

    def train(args):
        probes.append(torch.get_num_threads())
        name = next(a[len('name='):] for a in args if a.startswith('name='))
        os.makedirs(osp.join('experiments', name), exist_ok=True)
        timing = training.LoopTiming(3, 3.0, 3.0, 1.0, 1.0, torch.get_num_threads())
        return training.TrainResult({'name': name}, 0, 3, timing)

    monkeypatch.setattr(training, 'train_pipeline', train)
    stage = {'label': 'UNet', 'train': 'options/real/train_LowLightUNet_real.yml'}
    threads = torch.get_num_threads()
    try:
        first = benchmark.probe_stage(stage, 0, 3)
        assert benchmark.probe_stage(stage, 0, 3) == first and len(probes) == 1  # cached
        assert first['key']['threads'] == threads and first['key']['cpu']
        assert first['cpu_s_per_iter'] == 1.0 and first['probe_iter'] == 3  # from the returned LoopTiming
        torch.set_num_threads(threads + 1)
        benchmark.probe_stage(stage, 0, 3)
        assert len(probes) == 2  # another thread count: measured anew
        monkeypatch.setattr(budget.platform, 'processor', lambda: 'another CPU')
        benchmark.probe_stage(stage, 0, 3)
        assert len(probes) == 3  # another CPU model: measured anew
    finally:
        torch.set_num_threads(threads)


def test_the_equal_iteration_list_is_table_2_on_real_faces_with_the_real_prior():
    """The paper's protocol list: every learned row at one fixed iteration count (no budget), the ablations and the
    full method on the 3D prior learned from real faces (V6: the one-pass regressor), real_dark training inputs."""
    spec = load_benchmark_list(osp.join(REAL, 'benchmark_real_equal_iter.yml'))
    assert spec['budget_s'] is None and spec['total_iter'] >= 1500 and len(spec['seeds']) == 2
    labels = ' | '.join(s['label'] for s in spec['stages'])
    for needed in ('Identity', 'Gamma', 'LowLightUNet', 'V1 ', 'V3 ', 'V4 ', 'V5 ', 'V6 ', 'V7 ', 'Ours full'):
        assert needed in labels, needed
    assert spec['prerequisites'] == ['options/real/train_TriplaneGenerator_real.yml',
                                     'options/real/train_TriplaneDDPM_real.yml',
                                     'options/real/train_TriplaneRegressor_real.yml']
    names = set()
    for stage in spec['stages']:
        if not stage.get('train'):
            continue
        train = load_config(osp.join(REPO, stage['train']))
        names.add(train['name'])
        if train['model_type'] == 'SemiSupervisedDistillationModel':
            assert train['datasets']['train']['paired']['degradation'] == 'real_dark'
            if 'V5' not in stage['label']:
                expected = 'real_TriplaneRegressor' if 'V6' in stage['label'] else 'real_TriplaneDDPM_v'
                assert train['prior']['file'] == f'experiments/{expected}/models/prior_latest.pth'
        else:
            assert train['datasets']['train']['degradation'] == 'real_dark'
    assert len(names) == 8  # every row its own experiment
    regressor = load_config(osp.join(REAL, 'train_TriplaneRegressor_real.yml'))
    assert regressor['network_g']['image_input'] is True and regressor['diffusion']['objective'] == 'regression'
    assert regressor['path']['pretrain_network_generator'].startswith('experiments/real_TriplaneGenerator/')


def test_identity_probe_on_results_that_are_the_gamma_curve_of_the_real_dark_frames(shared_data, tmp_path):
    """scripts/identity_probe.py with the same saved results as 'method' and 'other': every mixed change equals its
    unmixed twin, and the split into darkest and lit frames averages back to the whole set."""
    import importlib.util
    spec = importlib.util.spec_from_file_location('identity_probe', osp.join(REPO, 'scripts', 'identity_probe.py'))
    probe_script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(probe_script)
    out = tmp_path / 'real_faces'
    prepare_real_faces(str(out), shared_data, verbose=False)
    yaleb = out / 'yaleb'
    saved = tmp_path / 'results' / 'visualization' / 'YaleB_dark'
    saved.mkdir(parents=True)
    stems = [line.split()[0] for line in (yaleb / 'meta_test_pairs.txt').read_text().splitlines()]
    for name in stems:
        img = cv2.imread(str(yaleb / 'images' / name), cv2.IMREAD_COLOR).astype(np.float32) / 255
        cv2.imwrite(str(saved / (osp.splitext(name)[0] + '_test.png')), np.rint(255 * img ** 0.4).astype(np.uint8))
    table, shading = probe_script.probe(str(tmp_path / 'results'), str(tmp_path / 'results'), str(yaleb))
    assert shading['method'] == shading['other'] and shading['method'][0] > 0  # gamma 0.4 compresses the shading
    assert table['as saved'] == table['the other, as saved']
    assert table['50/50 with the other (gray)'] == pytest.approx(table['gray'], abs=0.01)  # rounding of the mix
    n_dark = 6  # the inputs with mean luma < 0.02 (docs/experiments.md 3.3)
    every, darkest, lit = table['as saved']
    assert every == pytest.approx((n_dark * darkest + (len(stems) - n_dark) * lit) / len(stems), abs=1e-9)
    assert 0.3 < every < 0.7
    img = (np.random.default_rng(0).random((24, 20, 3)) * 100).astype(np.uint8) + 20
    assert probe_script.shading_difference(np.minimum(2 * img.astype(np.int32), 255).astype(np.uint8), img) < 1e-3
    assert probe_script.shading_difference(img[::-1].copy(), img) > 0.01
