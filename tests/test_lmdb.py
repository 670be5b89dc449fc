"""Tests of folder -> LMDB creation and of reading LMDBs (identical samples to the folder)."""
import importlib.util
import os
import os.path as osp
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from lowlight3d.data.lmdb_creation import LmdbExistsError, create_lmdb
from lowlight3d.data.lowlight_face_dataset import PairedLowLightFaceDataset, SemiSupervisedLowLightDataset
from lowlight3d.utils.img_io import ImageReadError

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
META_LINE = re.compile(r'^(\S+)\.png \((\d+),(\d+),(\d+)\) (\d)$')


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / 'faces'
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        cv2.imwrite(str(root / f'{i:03d}.png'), (rng.random((20, 18, 3)) * 255).astype(np.uint8))
    cv2.imwrite(str(root / 'gray.png'), (rng.random((20, 18)) * 255).astype(np.uint8))
    cv2.imwrite(str(root / 'deep16.png'), (rng.random((20, 18, 3)) * 65535).astype(np.uint16))
    cv2.imwrite(str(root / 'alpha.png'), (rng.random((20, 18, 4)) * 255).astype(np.uint8))
    cv2.imwrite(str(root / 'photo.jpg'), (rng.random((20, 18, 3)) * 255).astype(np.uint8))
    (root / 'notes.txt').write_text('not an image, not listed')
    return str(root)


def _silent(*args, **kwargs):
    pass


def test_create_meta_info_format(folder, tmp_path):
    out = str(tmp_path / 'sub' / 'faces.lmdb')
    info = create_lmdb(folder, out, compress_level=3, log=_silent)
    assert info == {'lmdb': out, 'num_images': 8, 'created': True}
    lines = open(osp.join(out, 'meta_info.txt')).read().splitlines()
    parsed = [META_LINE.match(line) for line in lines]
    assert all(parsed), lines
    assert [m.group(1) for m in parsed] == ['000', '001', '002', '003', 'alpha', 'deep16', 'gray', 'photo']
    shapes = {m.group(1): tuple(int(m.group(k)) for k in (2, 3, 4)) for m in parsed}
    assert shapes['gray'] == (20, 18, 1) and shapes['alpha'] == (20, 18, 4) and shapes['000'] == (20, 18, 3)
    assert {m.group(5) for m in parsed} == {'3'}
    assert not osp.exists(out + '.partial')


def test_rerun_is_noop_mismatch_refused_overwrite_rebuilds(folder, tmp_path):
    out = str(tmp_path / 'faces.lmdb')
    create_lmdb(folder, out, log=_silent)
    stamp = os.stat(osp.join(out, 'data.mdb')).st_mtime_ns
    assert create_lmdb(folder, out, log=_silent)['created'] is False
    assert os.stat(osp.join(out, 'data.mdb')).st_mtime_ns == stamp
    cv2.imwrite(osp.join(folder, 'new.png'), np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(LmdbExistsError, match='1 new'):
        create_lmdb(folder, out, log=_silent)
    assert create_lmdb(folder, out, overwrite=True, log=_silent) == {'lmdb': out, 'num_images': 9, 'created': True}
    ds = PairedLowLightFaceDataset({'dataroot_gt': out, 'phase': 'val', 'gt_size': None})
    assert len(ds) == 9 and ds[ds.source.names.index('new')]['gt'].shape == (3, 4, 4)


def test_interrupted_run_is_cleaned(folder, tmp_path):
    out = str(tmp_path / 'faces.lmdb')
    os.makedirs(out + '.partial')
    open(osp.join(out + '.partial', 'data.mdb'), 'wb').close()
    assert create_lmdb(folder, out, log=_silent)['created'] is True
    assert not osp.exists(out + '.partial')


def test_corrupt_input_is_rejected_by_name(folder, tmp_path):
    with open(osp.join(folder, '002.png'), 'r+b') as f:
        f.truncate(40)
    out = str(tmp_path / 'faces.lmdb')
    with pytest.raises(ImageReadError, match='002.png'):
        create_lmdb(folder, out, log=_silent)
    assert not osp.exists(out)


def test_bad_arguments(folder, tmp_path):
    with pytest.raises(ValueError, match='.lmdb'):
        create_lmdb(folder, str(tmp_path / 'out'), log=_silent)
    with pytest.raises(ValueError, match='compress_level'):
        create_lmdb(folder, str(tmp_path / 'o.lmdb'), compress_level=12, log=_silent)
    cv2.imwrite(osp.join(folder, '000.bmp'), np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match='000'):
        create_lmdb(folder, str(tmp_path / 'o.lmdb'), log=_silent)


@pytest.mark.parametrize('phase', ['val', 'train'])
def test_folder_and_lmdb_give_identical_samples(folder, tmp_path, phase):
    out = str(tmp_path / 'faces.lmdb')
    create_lmdb(folder, out, log=_silent)
    opts = {'phase': phase, 'gt_size': 16}
    disk = PairedLowLightFaceDataset({**opts, 'dataroot_gt': folder})
    lmdb_ds = PairedLowLightFaceDataset({**opts, 'dataroot_gt': out, 'io_backend': {'type': 'lmdb'}})
    assert disk.source.names == lmdb_ds.source.names
    for ds in (disk, lmdb_ds):
        ds.set_epoch(5)
    for i in range(len(disk)):
        a, b = disk[i], lmdb_ds[i]
        assert torch.equal(a['gt'], b['gt']) and torch.equal(a['lq'], b['lq'])
        assert osp.splitext(osp.basename(a['gt_path']))[0] == osp.splitext(osp.basename(b['gt_path']))[0]


def test_lmdb_read_by_basicsr_and_shared_env(folder, tmp_path):
    out = str(tmp_path / 'faces.lmdb')
    create_lmdb(folder, out, log=_silent)
    from basicsr.utils import FileClient
    value = FileClient('lmdb', db_paths=[out], client_keys=['gt']).get('001', 'gt')
    assert cv2.imdecode(np.frombuffer(value, np.uint8), cv2.IMREAD_UNCHANGED).shape == (20, 18, 3)
    # paired and unpaired parts on the same LMDB in one process, then two DataLoader workers
    ds = SemiSupervisedLowLightDataset({
        'phase': 'train',
        'gt_size': 8,
        'paired': {
            'dataroot_gt': out
        },
        'unpaired': {
            'dataroot_lq': out
        }
    })
    first = ds[0]
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2)))
    assert torch.equal(batch['lq_unpaired'][0], first['lq_unpaired'])


def _load_script():
    path = osp.join(REPO, 'scripts', 'data_preparation', 'create_lmdb.py')
    spec = importlib.util.spec_from_file_location('create_lmdb_script', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_script(folder, tmp_path, capsys):
    main = _load_script().main
    out = str(tmp_path / 'cli.lmdb')
    args = ['--input', folder, '--output', out, '--compress-level', '1']
    assert main(args) == 0 and osp.isfile(osp.join(out, 'meta_info.txt'))
    assert main(args) == 0 and 'nothing to do' in capsys.readouterr().out
    with open(osp.join(folder, 'gray.png'), 'wb') as f:
        f.write(b'')
    assert main(args + ['--overwrite']) == 1
    err = capsys.readouterr().err
    assert 'gray.png' in err and 'empty' in err
    assert len(open(osp.join(out, 'meta_info.txt')).readlines()) == 8  # the old LMDB is kept on failure


def test_cli_script_help_runs_standalone():
    script = osp.join(REPO, 'scripts', 'data_preparation', 'create_lmdb.py')
    result = subprocess.run([sys.executable, script, '--help'], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0 and '--compress-level' in result.stdout


def test_lmdb_without_meta_info_lists_keys(folder, tmp_path):
    out = str(tmp_path / 'faces.lmdb')
    create_lmdb(folder, out, log=_silent)
    with_meta = PairedLowLightFaceDataset({'dataroot_gt': out, 'phase': 'val', 'gt_size': 8})
    os.remove(osp.join(out, 'meta_info.txt'))
    without = PairedLowLightFaceDataset({
        'dataroot_gt': '',
        'io_backend': {
            'type': 'lmdb',
            'db_paths': [out]
        },
        'phase': 'val',
        'gt_size': 8
    })
    assert without.source.names == with_meta.source.names
    assert torch.equal(without[2]['lq'], with_meta[2]['lq'])
