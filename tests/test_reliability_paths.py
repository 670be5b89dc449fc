"""Reliability, second round (issue 24): an experiment name cannot leave experiments/ or results/, and one run holds an
experiment at a time."""
import json
import os
import os.path as osp
import socket
import subprocess
import sys

import numpy as np
import pytest

import lowlight3d.pipeline.test_pipeline as testing  # (a bare test_pipeline name would be collected by pytest)
from lowlight3d.pipeline.train_pipeline import train_pipeline
from lowlight3d.utils.options import OptionError, check_experiment_name
from lowlight3d.utils.run_lock import ExperimentLockedError

from conftest import tiny_train_overrides

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TRAIN_OPT = osp.join(REPO, 'options', 'demo', 'train_LowLightUNet_demo.yml')
TEST_OPT = osp.join(REPO, 'options', 'demo', 'test_LowLightUNet_demo.yml')
BAD_NAMES = ['../../victim', '../victim', 'a/b', '/tmp/abs_victim', '.', '..', 'a\\b', '', '   ']


@pytest.mark.parametrize('name', BAD_NAMES)
def test_a_name_must_be_one_folder_name(name):
    with pytest.raises(OptionError, match='name'):
        check_experiment_name(name, 'x.yml')


def test_plain_names_pass():
    for name in ('demo_LowLight3D_randomVGG', 'run-1.2', 'V1 supervised'):
        check_experiment_name(name)


@pytest.mark.parametrize('name', ['../../victim', '/tmp/lowlight3d_abs_victim', '.'])
def test_train_and_test_refuse_an_escaping_name_before_writing_anything(tmp_path, name):
    root = tmp_path / 'work' / 'inner'
    root.mkdir(parents=True)
    victim = tmp_path / 'victim'
    victim.mkdir()
    (victim / 'keep.tmp123').write_text('the user\'s file')
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(OptionError, match='not one folder name'):
        train_pipeline(['-opt', TRAIN_OPT, '--cfg-options', f'name={name}', 'train.total_iter=2', 'val.val_freq=0'],
                       root_path=str(root))
    with pytest.raises(OptionError, match='not one folder name'):
        testing.test_pipeline(['-opt', TEST_OPT, '--cfg-options', f'name={name}'], root_path=str(root))
    assert (victim / 'keep.tmp123').read_text() == 'the user\'s file'
    assert sorted(os.listdir(tmp_path)) == before and os.listdir(root) == []
    assert not osp.exists('/tmp/lowlight3d_abs_victim')


def _lock_file(root, name, pid, host=None):
    path = root / 'experiments' / f'.{name}.lock'
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({'pid': pid, 'host': host or socket.gethostname(), 'started': '2026-12-06 01:02:03'}))
    return path


def test_a_second_run_of_the_same_experiment_is_refused_naming_the_first(tmp_path, tiny_image_sets):
    first = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])
    try:
        lock = _lock_file(tmp_path, 'locked_run', first.pid)
        with pytest.raises(ExperimentLockedError, match=f'process {first.pid} on this host'):
            train_pipeline(['-opt', TRAIN_OPT, '--cfg-options',
                            *tiny_train_overrides(tiny_image_sets, 2, 'locked_run')], root_path=str(tmp_path))
        assert lock.exists() and not (tmp_path / 'experiments' / 'locked_run').exists()
        other = _lock_file(tmp_path, 'remote_run', 12345, host='another-host')
        with pytest.raises(ExperimentLockedError, match=f'rm {other}'):
            train_pipeline(['-opt', TRAIN_OPT, '--cfg-options',
                            *tiny_train_overrides(tiny_image_sets, 2, 'remote_run')], root_path=str(tmp_path))
    finally:
        first.kill()
        first.wait()


def test_a_stale_lock_is_taken_over_and_every_lock_is_released(tmp_path, tiny_image_sets):
    dead = subprocess.Popen([sys.executable, '-c', 'pass'])
    dead.wait()
    lock = _lock_file(tmp_path, 'stale_run', dead.pid)
    train_pipeline(['-opt', TRAIN_OPT, '--cfg-options', *tiny_train_overrides(tiny_image_sets, 2, 'stale_run'),
                    'val.val_freq=0'], root_path=str(tmp_path))
    log = next((tmp_path / 'experiments' / 'stale_run').glob('train_stale_run_*.log')).read_text()
    assert f'Stale lock of experiment \'stale_run\' taken over: process {dead.pid}' in log  # replayed into the log
    assert not lock.exists()  # released at the end of the run
    assert (tmp_path / 'experiments' / 'stale_run' / 'models' / 'net_g_latest.pth').exists()


def test_option_values_never_run_code_from_a_path(tmp_path, monkeypatch):
    """--cfg-options cannot set custom_imports (it imports modules); custom_imports takes module names, not files."""
    from lowlight3d.utils.registry import import_custom_modules
    payload = tmp_path / 'p.py'
    marker = tmp_path / 'ran'
    payload.write_text(f'open({str(marker)!r}, "w").write("x")\n')
    for override in (f'+custom_imports=[{payload}]', 'custom_imports=[os]', '+custom_imports.0=x'):
        with pytest.raises(OptionError, match='read from option files only'):
            train_pipeline(['-opt', TRAIN_OPT, '--cfg-options', override], root_path=str(tmp_path / 'w'))
    with pytest.raises(ImportError, match='not a module name'):
        import_custom_modules([str(payload)])
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ImportError, match='not a module name'):
        import_custom_modules(['p.py'])
    assert not marker.exists()


def _png_declaring(width, height):
    """A small PNG file whose header declares ``width x height`` (its pixel data is a few bytes)."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data) & 0xffffffff)
    ihdr = struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0)
    return b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', ihdr) + chunk(b'IDAT', zlib.compress(b'\x00' * 64)) + \
        chunk(b'IEND', b'')


def test_hostile_files_are_skipped_by_name_and_the_good_ones_enhanced(tmp_path):
    """A FIFO named .png (would block), a .png link to /dev/zero (would fill memory) and a PNG declaring
    30000 x 30000 (10 GiB as float32) are skipped unread, named, and the good file after them is enhanced."""
    from skimage import data

    from lowlight3d.inference.command import inference_main
    from lowlight3d.inference.model_file import export_model, save_model_file
    from lowlight3d.utils.img_io import ImageReadError, read_image, read_limits, write_image

    from inference_helpers import tiny_unet_options
    (tmp_path / 'model').mkdir()
    opt_path, _ = tiny_unet_options(str(tmp_path / 'model'))
    model = save_model_file(export_model(opt_path, face_size=64), str(tmp_path / 'model' / 'tiny.pth'))
    inputs = tmp_path / 'in'
    inputs.mkdir()
    os.mkfifo(inputs / 'a_fifo.png')
    os.symlink('/dev/zero', inputs / 'b_zero.png')
    (inputs / 'c_bomb.png').write_bytes(_png_declaring(30000, 30000))
    write_image(str(inputs / 'd_good.png'), data.astronaut()[::4, ::4].astype('float32') / 255 * 0.1)
    with pytest.raises(ImageReadError, match='declares 30000 x 30000'):
        read_image(str(inputs / 'c_bomb.png'))
    summary = inference_main(['-i', str(inputs), '-o', str(tmp_path / 'out'), '--model', model, '--no_face',
                              '--no_pbar'])
    skipped = {osp.basename(s['file']): s['reason'] for s in summary['skipped']}
    assert set(skipped) == {'a_fifo.png', 'b_zero.png', 'c_bomb.png'}
    assert 'FIFO' in skipped['a_fifo.png'] and 'device' in skipped['b_zero.png']
    assert 'megapixels' in skipped['c_bomb.png'] and summary['images'] == 1
    assert (tmp_path / 'out' / 'restored_imgs' / 'd_good.png').exists()
    assert read_limits()['max_pixels'] == 150_000_000


def test_outputs_never_overwrite_inputs(tmp_path):
    """-o overlapping -i (either way) and two inputs with one output name are refused before any work."""
    import argparse

    from lowlight3d.inference.command import check_outputs, list_inputs
    from lowlight3d.utils.img_io import write_image
    photos = tmp_path / 'X' / 'restored_imgs'
    img = np.full((8, 8, 3), 0.1, dtype=np.float32)
    write_image(str(photos / 'a.jpg'), img)
    write_image(str(photos / 'a.png'), img)

    def args(i, o, ext='auto'):
        return argparse.Namespace(input=str(i), output=str(o), ext=ext)
    for i, o, what in ((photos, tmp_path / 'X', 'overwrite the inputs'), (photos, photos, 'enhanced again'),
                       (photos, photos / 'out', 'enhanced again'), (photos / 'a.jpg', tmp_path / 'X', 'inside')):
        with pytest.raises(ValueError, match=what):
            check_outputs(args(i, o), list_inputs(str(i)))
    with pytest.raises(ValueError, match='both be written as a.png'):
        check_outputs(args(photos, tmp_path / 'out', 'png'), list_inputs(str(photos)))
    check_outputs(args(photos, tmp_path / 'out'), list_inputs(str(photos)))  # auto keeps a.jpg and a.png apart


def test_export_never_replaces_a_file_without_overwrite(tmp_path):
    from lowlight3d.inference.export_command import export_main

    from inference_helpers import tiny_unet_options
    opt_path, ckpt = tiny_unet_options(str(tmp_path))
    target = tmp_path / 'm.pth'
    target.write_text('someone else\'s file')
    with pytest.raises(ValueError, match='exists: choose another name, or add --overwrite'):
        export_main(['-opt', opt_path, '--out', str(target), '--face_size', '64'])
    assert target.read_text() == 'someone else\'s file'
    with pytest.raises(ValueError, match='one of the files the export reads'):
        export_main(['-opt', opt_path, '--out', ckpt, '--face_size', '64', '--overwrite'])
    with pytest.raises(ValueError, match='is a folder'):
        export_main(['-opt', opt_path, '--out', str(tmp_path), '--face_size', '64'])
    export_main(['-opt', opt_path, '--out', str(target), '--face_size', '64', '--overwrite'])
    assert target.stat().st_size > 1000


def test_relative_paths_follow_the_caller_not_the_workdir(tmp_path, monkeypatch):
    """LOWLIGHT3D_TEST_DATA=../shared/data and a list file given relative to the caller keep meaning the caller's
    files after the benchmark enters its --workdir / --smoke folder."""
    import argparse

    from lowlight3d.pipeline.benchmark import cli
    caller = tmp_path / 'caller'
    (caller / 'lists').mkdir(parents=True)
    (caller / 'lists' / 'mine.yml').write_text('stages: []\n')
    monkeypatch.chdir(caller)
    monkeypatch.setenv('LOWLIGHT3D_TEST_DATA', '../shared/data')
    args = argparse.Namespace(list='lists/mine.yml')
    cli.absolute_user_paths(args)
    cli.enter_workdir(str(tmp_path / 'work'))
    assert os.environ['LOWLIGHT3D_TEST_DATA'] == str(tmp_path / 'shared' / 'data')
    assert args.list == str(caller / 'lists' / 'mine.yml') and osp.isfile(args.list)
    repo_list = argparse.Namespace(list='options/real/benchmark_real.yml')  # not under the caller: the repository's
    cli.absolute_user_paths(repo_list)
    assert repo_list.list == 'options/real/benchmark_real.yml'


def test_a_resume_keeps_options_yml_and_records_its_own_changes(tmp_path, tiny_image_sets):
    import glob

    from lowlight3d.utils.options import load_config
    common = ['-opt', TRAIN_OPT, '--cfg-options', *tiny_train_overrides(tiny_image_sets, 6, 'resumed_run')]
    train_pipeline(common, root_path=str(tmp_path))
    folder = tmp_path / 'experiments' / 'resumed_run'
    first = (folder / 'options.yml').read_text()
    train_pipeline(['--auto_resume'] + common + ['train.optim_g.lr=0.5'], root_path=str(tmp_path))
    assert (folder / 'options.yml').read_text() == first  # the first run's options stay
    resumes = glob.glob(str(folder / 'options_resume_*.yml'))
    assert len(resumes) == 1 and load_config(resumes[0])['train']['optim_g']['lr'] == 0.5
    log = '\n'.join(open(p).read() for p in glob.glob(str(folder / 'train_resumed_run_*.log')))
    assert 'differ from options.yml' in log and 'train.optim_g.lr' in log and "keep the state's values" in log


def test_a_run_that_enhances_nothing_fails_and_bad_arguments_fail_before_any_work(tmp_path, capsys):
    from lowlight3d.inference.command import main
    from lowlight3d.inference.model_file import export_model, save_model_file

    from inference_helpers import tiny_unet_options
    (tmp_path / 'model').mkdir()
    opt_path, _ = tiny_unet_options(str(tmp_path / 'model'))
    model = save_model_file(export_model(opt_path, face_size=64), str(tmp_path / 'model' / 'tiny.pth'))
    inputs = tmp_path / 'in'
    inputs.mkdir()
    (inputs / 'broken.png').write_bytes(b'\x89PNG\r\n\x1a\n truncated')
    base = ['-i', str(inputs), '--model', model, '--no_face', '--no_pbar']
    with pytest.raises(SystemExit) as exit_info:
        main(base + ['-o', str(tmp_path / 'out')])
    assert exit_info.value.code == 1 and 'every input was skipped (1 file(s)' in capsys.readouterr().err
    (tmp_path / 'afile').write_text('x')
    for extra, message in ((['-o', str(tmp_path / 'afile')], 'is a file, not a folder'),
                           (['-o', str(tmp_path / 'o2'), '--ext', 'exe'], '--ext exe: not an image extension')):
        with pytest.raises(SystemExit):
            main(base + extra)
        assert message in capsys.readouterr().err
    assert not (tmp_path / 'o2').exists()


def test_large_photos_are_tiled_automatically_within_the_memory_budget(tmp_path, monkeypatch):
    from lowlight3d.inference import image_enhancer
    from lowlight3d.inference.loaded_model import load_model

    from inference_helpers import tiny_unet_options
    (tmp_path / 'model').mkdir()
    opt_path, ckpt = tiny_unet_options(str(tmp_path / 'model'))
    model = load_model(opt=opt_path, weights=ckpt)
    per_pixel = image_enhancer.activation_bytes_per_pixel(model)
    assert per_pixel > 100  # a U-Net keeps many feature maps per pixel
    tiles = []
    real = image_enhancer.tiled_apply
    monkeypatch.setattr(image_enhancer, 'tiled_apply', lambda x, fn, tile, pad: tiles.append(tile) or real(
        x, fn, tile, pad))
    enhancer = image_enhancer.ImageEnhancer(model, tile=0, memory_budget=int(per_pixel * 300 * 300))
    assert enhancer.auto_tile == 256 and 'automatic tiling' in enhancer.notes[-1]
    small, large = np.full((200, 200, 3), 0.1, np.float32), np.full((520, 700, 3), 0.1, np.float32)
    assert enhancer.enhance(small).shape == (200, 200, 3) and tiles[-1] == 0  # fits: one piece
    assert enhancer.enhance(large).shape == (520, 700, 3) and tiles[-1] == 256  # too large: tiles
    assert image_enhancer.ImageEnhancer(model, tile=0).auto_tile >= 256


def test_evaluate_never_writes_its_table_over_the_images(tmp_path):
    import subprocess
    import sys as _sys

    from lowlight3d.utils.img_io import write_image
    for folder in ('gt', 'pred'):
        write_image(str(tmp_path / folder / 'x.png'), np.full((8, 8, 3), 0.5, np.float32))
    before = (tmp_path / 'gt' / 'x.png').read_bytes()
    script = osp.join(REPO, 'scripts', 'evaluate.py')
    for out, message in ((tmp_path / 'gt' / 'x.png', 'ending in .csv'), (tmp_path / 'gt' / 't.csv', 'inside --gt')):
        run = subprocess.run([_sys.executable, script, '--pred', str(tmp_path / 'pred'), '--gt', str(tmp_path / 'gt'),
                              '--metrics', 'psnr', '--out', str(out)], capture_output=True, text=True)
        assert run.returncode == 2 and message in run.stderr, run.stderr
    assert (tmp_path / 'gt' / 'x.png').read_bytes() == before and not (tmp_path / 'gt' / 't.csv').exists()


def test_a_model_file_whose_options_do_not_fit_its_weights_is_one_clear_line(tmp_path, capsys):
    from lowlight3d.inference.command import main
    from lowlight3d.inference.model_file import export_model, load_model_file, save_model_file

    from inference_helpers import tiny_unet_options
    (tmp_path / 'model').mkdir()
    opt_path, _ = tiny_unet_options(str(tmp_path / 'model'))
    record = load_model_file(save_model_file(export_model(opt_path, face_size=64), str(tmp_path / 'ok.pth')))
    record['options']['network_g']['num_feat'] = 16  # options of another network than the weights
    bad = save_model_file(record, str(tmp_path / 'bad.pth'))
    from lowlight3d.utils.img_io import write_image
    write_image(str(tmp_path / 'in' / 'x.png'), np.full((16, 16, 3), 0.1, np.float32))
    with pytest.raises(SystemExit) as exit_info:
        main(['-i', str(tmp_path / 'in'), '-o', str(tmp_path / 'out'), '--model', bad, '--no_face'])
    err = capsys.readouterr().err
    assert exit_info.value.code == 1 and 'different shape' in err and 'disagree' in err and 'Traceback' not in err
