"""FFHQ preparation: seeded selection, resizing, layout, resumability, LMDB, and the fixed test input that must equal
what PairedLowLightFaceDataset synthesises in the test phase."""
import importlib.util
import json
import os
import os.path as osp

import numpy as np
import pytest

from lowlight3d.data import build_dataset
from lowlight3d.data.image_source import ImageSource
from lowlight3d.data.preparation.ffhq_preparation import prepare_ffhq, select_ffhq_split
from lowlight3d.utils.img_io import read_image

from conftest import write_smooth_images

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def _script_main(name):
    """``main`` of a script in scripts/data_preparation (not a package)."""
    spec = importlib.util.spec_from_file_location(name, osp.join(REPO, 'scripts', 'data_preparation', name + '.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


DEGRADATION = {'blur': {'sigma_range': [0.5, 1.5]}, 'jpeg': {'quality_range': [70, 90]}}


def test_selection_is_seeded_disjoint_and_order_free():
    paths = [f'{i // 10:02d}/{i:05d}.png' for i in range(50)]
    train, test = select_ffhq_split(paths, 30, 10, seed=3)
    again = select_ffhq_split(list(reversed(paths)), 30, 10, seed=3)
    assert (train, test) == again
    assert len(train) == 30 and len(test) == 10 and not set(train) & set(test)
    assert select_ffhq_split(paths, 30, 10, seed=4) != (train, test)
    with pytest.raises(ValueError, match='allow-fewer'):
        select_ffhq_split(paths, 45, 10)
    train, test = select_ffhq_split(paths, 45, 15, allow_fewer=True)  # ratio 3:1 kept
    assert (len(train), len(test)) == (38, 12)


def test_prepare_ffhq_layout_resume_and_fixed_test_input(tmp_path):
    src = tmp_path / 'ffhq'
    write_smooth_images(str(src / '00000'), 8, size=48, seed=1, prefix='0')
    write_smooth_images(str(src / '01000'), 4, size=48, seed=2, prefix='1')
    out = str(tmp_path / 'out')
    logs = []
    res = prepare_ffhq(str(src), out, num_train=6, num_test=4, seed=5, size=32, degradation=DEGRADATION, lmdb=True,
                       progress=False, log=logs.append)
    assert res['written'] == 10 and res['skipped'] == 0
    train = sorted(os.listdir(osp.join(out, 'train')))
    assert len([f for f in train if f.endswith('.png')]) == 6 and 'meta_info.txt' in train
    with open(osp.join(out, 'test_list.txt')) as f:
        test_list = f.read().split()
    assert len(test_list) == 4
    gt_names = sorted(osp.splitext(osp.basename(p))[0] for p in test_list)
    assert ImageSource(osp.join(out, 'test', 'gt')).names == gt_names
    assert read_image(osp.join(out, 'train', train[0])).shape == (32, 32, 3)
    # The saved low-light inputs are exactly what the dataset produces in the test phase.
    ds = build_dataset({'type': 'PairedLowLightFaceDataset', 'phase': 'test', 'seed': 5, 'gt_size': 32,
                        'dataroot_gt': osp.join(out, 'test', 'gt'), 'degradation': DEGRADATION,
                        'return_params': True})
    with open(osp.join(out, 'test', 'degradation_params.json')) as f:
        params = json.load(f)
    for i in range(len(ds)):
        sample = ds[i]
        name = ds.source.names[i]
        saved = read_image(osp.join(out, 'test', 'lq', name + '.png'))
        np.testing.assert_allclose(sample['lq'].numpy().transpose(1, 2, 0), saved, atol=1e-6)
        assert json.loads(sample['degradation_params']) == params[name]
    # LMDB copies hold the same pixels.
    lmdb_lq = ImageSource(osp.join(out, 'test', 'lq.lmdb'))
    np.testing.assert_array_equal(lmdb_lq.read(0), read_image(osp.join(out, 'test', 'lq', lmdb_lq.names[0] + '.png')))
    # Re-run: everything is skipped; a missing file is redone identically.
    lq0 = osp.join(out, 'test', 'lq', gt_names[0] + '.png')
    before = read_image(lq0)
    os.remove(lq0)
    res = prepare_ffhq(str(src), out, num_train=6, num_test=4, seed=5, size=32, degradation=DEGRADATION, lmdb=True,
                       progress=False, log=None)
    assert res['written'] == 1 and res['skipped'] == 9
    np.testing.assert_array_equal(read_image(lq0), before)
    # Other settings on the same folder: refused without --overwrite.
    with pytest.raises(ValueError, match='other settings'):
        prepare_ffhq(str(src), out, num_train=6, num_test=4, seed=6, size=32, progress=False, log=None)


def test_prepare_ffhq_on_real_faces_and_cli_errors(shared_data, tmp_path, capsys):
    main = _script_main('prepare_ffhq')
    ffhq = osp.join(shared_data, 'faces_hq', 'ffhq')
    out = str(tmp_path / 'real')
    assert main(['--input', ffhq, '--output', out, '--no-progress']) == 1
    assert 'allow-fewer' in capsys.readouterr().err
    assert main(['--input', ffhq, '--output', out, '--num-train', '12', '--num-test', '5', '--size', '64',
                 '--no-progress']) == 0
    assert len(ImageSource(osp.join(out, 'train'))) == 12
    lq = ImageSource(osp.join(out, 'test', 'lq'))
    assert len(lq) == 5
    brightness = [float(lq.read(i).mean()) for i in range(len(lq))]
    assert max(brightness) < 0.25  # the default degradation targets a mean brightness in [0.02, 0.2]
