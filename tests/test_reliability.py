"""Issue 14 (reliability): one test per point, each named after it (points 2, 3, 4, 5, 6, 8).

Every test reproduces the failure of the issue on tiny data (``conftest.tiny_image_sets``) and checks the fixed
behaviour: untrained networks are refused, nothing is silently ignored, a failed start does not block the name,
``--input`` never overwrites a test run's results, skipped files are skipped, and the small traps of training.
"""
import csv
import json
import os
import os.path as osp

import pytest
import torch

import lowlight3d.pipeline.test_pipeline as testing  # (a bare test_pipeline name would be collected by pytest)
from lowlight3d.pipeline.train_pipeline import train_pipeline
from lowlight3d.utils.checkpoint import load_checkpoint
from lowlight3d.utils.options import OptionError

from conftest import tiny_train_overrides, write_smooth_images

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TRAIN_OPT = osp.join(REPO, 'options', 'demo', 'train_LowLightUNet_demo.yml')
TEST_OPT = osp.join(REPO, 'options', 'demo', 'test_LowLightUNet_demo.yml')
FULL_OPT = osp.join(REPO, 'options', 'demo', 'train_LowLight3D_demo.yml')


def _train(root, sets, total_iter, name, *flags, overrides=()):
    return train_pipeline(
        ['-opt', TRAIN_OPT, *flags, '--cfg-options', *tiny_train_overrides(sets, total_iter, name), *overrides],
        root_path=str(root)).opt


def _test_overrides(sets, name, weights):
    """``--cfg-options`` testing the tiny U-Net of ``_train`` on the tiny sets."""
    return [f'name={name}', 'network_g.num_feat=8', f'path.pretrain_network_g={weights}',
            f'datasets.test_paired.dataroot_gt={sets}/val', f'datasets.test_unpaired.dataroot_lq={sets}/unpaired',
            'datasets.test_paired.gt_size=32', 'datasets.test_unpaired.gt_size=32',
            'datasets.test_unpaired.meta_info_file=~', 'val.save_grid=false', 'val.paper_table=~']


@pytest.fixture(scope='module')
def trained(tmp_path_factory, tiny_image_sets):
    """A 2-iteration tiny U-Net: ``(root, weights)``."""
    root = tmp_path_factory.mktemp('trained')
    opt = _train(root, tiny_image_sets, 2, 'rel_trained')
    return root, osp.join(opt['path']['models'], 'net_g_latest.pth')


# ---------------------------------------------------------------- 2. an untrained model must not look like a result
def test_point2_untrained_network_is_refused_unless_allowed_and_then_labelled(tmp_path, tiny_image_sets):
    argv = ['-opt', TEST_OPT, '--cfg-options', *_test_overrides(tiny_image_sets, 'untrained', 'null')]
    with pytest.raises(RuntimeError, match=r'untrained.*net_g.*path\.pretrain_network_g'):
        testing.test_pipeline(argv, root_path=str(tmp_path))
    assert not (tmp_path / 'results').exists()  # refused before anything is written
    testing.test_pipeline(argv[:2] + ['--allow-untrained'] + argv[2:], root_path=str(tmp_path))
    assert sorted(os.listdir(tmp_path / 'results')) == ['untrained_UNTRAINED']
    payload = json.load(open(tmp_path / 'results' / 'untrained_UNTRAINED' / 'metrics.json'))
    assert payload['untrained_networks'] == ['net_g'] and 'UNTRAINED' in payload['label']


def test_point2_every_run_logs_where_each_networks_weights_came_from(tmp_path, tiny_image_sets, trained):
    _, weights = trained
    testing.test_pipeline(['-opt', TEST_OPT, '--cfg-options', *_test_overrides(tiny_image_sets, 'logged', weights)],
                          root_path=str(tmp_path))
    res = tmp_path / 'results' / 'logged'
    log = open(next(res / f for f in os.listdir(res) if f.endswith('.log'))).read()
    assert 'Network net_g: LowLightUNet' in log and f'weights: {weights} (params)' in log
    assert 'Network net_g_ema: LowLightUNet' in log and f'weights: {weights} (params_ema)' in log
    assert json.load(open(res / 'metrics.json'))['weights']['net_g'] == f'{weights} (params)'
    train_log_dir = osp.dirname(osp.dirname(weights))
    train_log = open(osp.join(train_log_dir, next(f for f in os.listdir(train_log_dir) if f.endswith('.log')))).read()
    assert 'weights: initial weights (trained by this run)' in train_log


def test_point2_wrong_checkpoint_names_the_file_and_first_keys_briefly(tmp_path, tiny_image_sets):
    from lowlight3d.archs import build_network
    other = build_network({'type': 'LowLightUNet', 'num_feat': 4, 'num_levels': 2, 'num_blocks': 1})
    path = str(tmp_path / 'other_network.pth')
    torch.save({'params': other.state_dict()}, path)
    with pytest.raises(RuntimeError) as info:
        testing.test_pipeline(['-opt', TEST_OPT, '--cfg-options', *_test_overrides(tiny_image_sets, 'wrong', path)],
                              root_path=str(tmp_path))
    message = str(info.value)
    assert path in message and 'first:' in message and len(message) < 1500, message


# ---------------------------------------------------------------- 3. nothing silently ignored
def test_point3_misspelt_loss_block_of_the_full_method_is_rejected():
    from lowlight3d.models import build_model
    from lowlight3d.pipeline.option_loading import load_options
    opt = load_options(FULL_OPT, is_train=True, root_path='/tmp', cfg_options=[
        'prior=null', 'train.pixel_opt=null', '+train.pixl_opt={type: L1Loss, loss_weight: 1.0}'])
    with pytest.raises(ValueError, match=r'train\.pixl_opt.*Did you mean pixel_opt.*pixel_opt, perceptual_opt'):
        build_model(opt)


def test_point3_misspelt_top_level_key_in_an_option_file_is_rejected(tmp_path):
    from lowlight3d.pipeline.option_loading import load_options
    typo = tmp_path / 'typo.yml'
    typo.write_text(f'_base_: {TRAIN_OPT}\ntrian: {{total_iter: 4}}\n')
    with pytest.raises(OptionError, match=r"'trian' \(did you mean train\b.*custom_keys"):
        load_options(str(typo), is_train=True, root_path=str(tmp_path))
    custom = tmp_path / 'custom.yml'  # the documented way to add a key of one's own
    custom.write_text(f'_base_: {TRAIN_OPT}\ncustom_keys: [my_notes]\nmy_notes: {{author: me}}\n')
    assert load_options(str(custom), is_train=True, root_path=str(tmp_path))['my_notes'] == {'author': 'me'}


# ---------------------------------------------------------------- 4. a failed start must not block the name
@pytest.mark.parametrize('override, error, match', [
    ('train.total_iter=abc', OptionError, r'train\.total_iter'),
    ('network_g.type=NoSuchNet', KeyError, 'NoSuchNet'),
    ('datasets.train.dataroot_gt={empty}', ValueError, 'contains no image'),
])
def test_point4_failed_start_leaves_no_folder_and_the_fixed_rerun_runs(tmp_path, tiny_image_sets, override, error,
                                                                       match):
    empty = tmp_path / 'empty'
    empty.mkdir()
    with pytest.raises(error, match=match):
        _train(tmp_path, tiny_image_sets, 2, 'failed', overrides=[override.format(empty=empty)])
    assert not (tmp_path / 'experiments' / 'failed').exists()
    _train(tmp_path, tiny_image_sets, 2, 'failed')  # the fixed rerun, no flag needed


@pytest.mark.parametrize('flags', [(), ('--auto_resume', )])
def test_point4_a_folder_without_checkpoint_is_started_afresh(tmp_path, tiny_image_sets, flags):
    killed = tmp_path / 'experiments' / 'killed'  # what a kill before the first checkpoint leaves
    (killed / 'models').mkdir(parents=True)
    (killed / 'training_states').mkdir()
    (killed / 'train_killed_20260101_000000.log').write_text('started\n')
    (killed / 'options.yml').write_text('name: killed\n')
    opt = _train(tmp_path, tiny_image_sets, 2, 'killed', *flags)
    assert sorted(os.listdir(opt['path']['training_states'])) == ['2.state']


# ---------------------------------------------------------------- 5. never overwrite results
def test_point5_input_folder_never_touches_a_test_runs_results(tmp_path, tiny_image_sets, trained):
    _, weights = trained
    overrides = _test_overrides(tiny_image_sets, 'kept', weights)
    testing.test_pipeline(['-opt', TEST_OPT, '--cfg-options', *overrides], root_path=str(tmp_path))
    res = tmp_path / 'results' / 'kept'
    before = {f: (res / f).read_bytes() for f in ('metrics.csv', 'metrics.json', 'options.yml')}
    photos = tmp_path / 'photos'
    write_smooth_images(str(photos), 2, size=24)
    testing.test_pipeline(['-opt', TEST_OPT, '--input', str(photos), '--cfg-options', *overrides],
                          root_path=str(tmp_path))
    assert {f: (res / f).read_bytes() for f in before} == before
    name = testing.input_folder_datasets(str(photos))['test_input']['name']
    own = res / 'inputs' / name
    assert sorted(os.listdir(own / 'visualization' / name)) == ['000.png', '001.png']
    assert json.load(open(own / 'metrics.json'))['datasets'][name]['num_images'] == 2
    assert not (res / 'visualization' / name).exists()


# ---------------------------------------------------------------- 6. skipped files are skipped
def test_point6_skip_corrupt_shrinks_the_set_and_reports_the_file(tmp_path, tiny_image_sets, trained):
    _, weights = trained
    gt = tmp_path / 'gt'
    write_smooth_images(str(gt), 3, seed=2)
    (gt / '001_broken.png').write_bytes(b'not a png')
    overrides = _test_overrides(tiny_image_sets, 'skip', weights)
    summary = testing.test_pipeline(['-opt', TEST_OPT, '--cfg-options', *overrides,
                                     f'datasets.test_paired.dataroot_gt={gt}',
                                     '+datasets.test_paired.skip_corrupt=true'],
                                    root_path=str(tmp_path))
    entry = summary['DemoFacesTest']
    assert entry['num_images'] == 3 and entry['skipped'] == [str(gt / '001_broken.png')]
    rows = list(csv.DictReader(open(tmp_path / 'results' / 'skip' / 'metrics.csv')))
    images = [r['image'] for r in rows if r['dataset'] == 'DemoFacesTest' and r['image'] != 'mean']
    assert sorted(images) == ['000', '001', '002']  # each readable image once, none twice
    per_image = [float(r['psnr']) for r in rows if r['dataset'] == 'DemoFacesTest' and r['image'] != 'mean']
    assert abs(entry['metrics']['psnr'] - sum(per_image) / 3) < 1e-4
    payload = json.load(open(tmp_path / 'results' / 'skip' / 'metrics.json'))
    assert payload['datasets']['DemoFacesTest']['skipped'] == [str(gt / '001_broken.png')]


def test_point6_input_folder_with_a_corrupt_file_goes_on(tmp_path, trained, capsys):
    _, weights = trained
    photos = tmp_path / 'dark'
    write_smooth_images(str(photos), 2, size=24)
    (photos / 'corrupt.jpg').write_bytes(b'\xff\xd8 truncated')
    summary = testing.test_pipeline(['-opt', TEST_OPT, '--input', str(photos), '--no-metrics', '--cfg-options',
                                     'name=goes_on', 'network_g.num_feat=8', f'path.pretrain_network_g={weights}'],
                                    root_path=str(tmp_path))
    entry = summary[testing.input_folder_datasets(str(photos))['test_input']['name']]
    assert entry['num_images'] == 2 and entry['skipped'] == [str(photos / 'corrupt.jpg')]
    assert 'corrupt.jpg' in capsys.readouterr().out


# ---------------------------------------------------------------- 8. small traps
def test_point8_save_checkpoint_freq_zero_saves_only_at_the_end(tmp_path, tiny_image_sets):
    opt = _train(tmp_path, tiny_image_sets, 3, 'freq0', overrides=['logger.save_checkpoint_freq=0'])
    assert sorted(os.listdir(opt['path']['training_states'])) == ['3.state']
    with pytest.raises(OptionError, match=r'logger\.save_checkpoint_freq'):
        _train(tmp_path, tiny_image_sets, 3, 'freq_neg', overrides=['logger.save_checkpoint_freq=-1'])


def test_point8_orphan_tmp_files_of_a_killed_save_are_removed(tmp_path, tiny_image_sets):
    opt = _train(tmp_path, tiny_image_sets, 2, 'orphans')
    orphans = [osp.join(opt['path']['models'], 'net_g_4.pth.tmp4242'),
               osp.join(opt['path']['training_states'], '4.state.tmp4242'),
               osp.join(opt['path']['experiments_root'], '.options.ymlx8k2_q1a.part')]  # an atomic_write temp
    for path in orphans:
        open(path, 'wb').write(b'half a checkpoint')
    _train(tmp_path, tiny_image_sets, 2, 'orphans', '--auto_resume')  # resuming (a finished run) cleans up
    assert not any(osp.exists(p) for p in orphans)


def test_point8_resume_reports_its_iterations_and_logs_the_same_losses(tmp_path, tiny_image_sets):
    """A run of 8 iterations logging every 4, killed after its checkpoint at 6 and resumed, logs the same losses."""
    every = ['logger.print_freq=4', 'logger.save_checkpoint_freq=6', 'val.val_freq=~']
    straight = _train(tmp_path / 'a', tiny_image_sets, 8, 'straight8', overrides=every)
    crashed = _train(tmp_path / 'b', tiny_image_sets, 8, 'resumed8', overrides=every)
    for folder in (crashed['path']['training_states'], crashed['path']['models']):
        for name in os.listdir(folder):
            if name.split('.')[0].split('_')[-1] in ('8', 'latest'):
                os.remove(osp.join(folder, name))
    resumed = _train(tmp_path / 'b', tiny_image_sets, 8, 'resumed8', '--auto_resume', overrides=every)
    a = json.load(open(osp.join(straight['path']['experiments_root'], 'history.json')))['losses']
    b = json.load(open(osp.join(resumed['path']['experiments_root'], 'history.json')))['losses']
    assert [r['iter'] for r in a] == [r['iter'] for r in b] == [4, 8]
    assert abs(a[1]['l_pixel'] - b[1]['l_pixel']) < 1e-6, (a, b)
    exp = resumed['path']['experiments_root']
    logs = sorted(f for f in os.listdir(exp) if f.endswith('.log'))
    last = open(osp.join(exp, logs[-1])).read()
    assert 'End of training: 8 iterations, of which 2 in ' in last and '(resumed at iteration 6)' in last
    assert load_checkpoint(osp.join(resumed['path']['training_states'], '8.state'))['iter'] == 8


def test_atomic_write_leaves_the_old_file_when_the_writer_fails(tmp_path):
    """``atomic_write`` (used by the depth and parsing caches and the IQA model files): a failing writer leaves the
    previous file and no temporary file; a good one replaces it with the usual permissions."""
    from lowlight3d.utils.checkpoint import atomic_write
    target = tmp_path / 'sub' / 'x.txt'

    def good(text):
        return lambda tmp: open(tmp, 'w').write(text)

    assert atomic_write(str(target), good('one')) == str(target) and target.read_text() == 'one'

    def broken(tmp):
        open(tmp, 'w').write('half')
        raise OSError('disk full')

    with pytest.raises(OSError, match='disk full'):
        atomic_write(str(target), broken)
    assert target.read_text() == 'one' and os.listdir(target.parent) == ['x.txt']
    atomic_write(str(target), good('two'), suffix='.png')
    umask = os.umask(0)
    os.umask(umask)
    assert target.read_text() == 'two' and (target.stat().st_mode & 0o777) == 0o666 & ~umask


def test_file_sha1_reads_in_chunks_and_matches_hashlib(tmp_path):
    """``file_sha1`` / ``update_file_digest`` (weights stamps of DLIENet and IC-FSRDENet, the prior fingerprint)."""
    import hashlib

    from lowlight3d.utils.file_hash import file_sha1, update_file_digest
    data = bytes(range(256)) * 5000  # 1.28 MB: more than one 1 MiB chunk
    a, b = tmp_path / 'a.bin', tmp_path / 'b.bin'
    a.write_bytes(data)
    b.write_bytes(b'second')
    assert file_sha1(str(a)) == hashlib.sha1(data).hexdigest()
    both = update_file_digest(update_file_digest(hashlib.sha1(), str(a)), str(b))
    assert both.hexdigest() == hashlib.sha1(data + b'second').hexdigest()


def test_point8_two_images_with_one_file_name_in_a_set_are_refused(tmp_path, trained):
    """``a/x.png`` and ``b/x.png`` in one set: results and rows are keyed by file name, so one would be lost."""
    _, weights = trained
    photos = tmp_path / 'dark'
    write_smooth_images(str(photos / 'a'), 1, size=24)
    write_smooth_images(str(photos / 'b'), 1, size=24)
    with pytest.raises(ValueError, match="share the file name '000'"):
        testing.test_pipeline(['-opt', TEST_OPT, '--input', str(photos), '--no-metrics', '--cfg-options',
                               'name=dup_names', 'network_g.num_feat=8', f'path.pretrain_network_g={weights}'],
                              root_path=str(tmp_path))
