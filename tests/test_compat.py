"""The basicsr compatibility patches, each exercised on the code path it fixes."""
import os.path as osp

import numpy as np
import torch

from lowlight3d.utils import basicsr_compat


def test_all_patches_applied():
    assert set(basicsr_compat.APPLIED_PATCHES) >= {'cpu load_resume_state', 'int jpeg quality', 'lmdb parent folder'}


def test_functional_tensor_alias_works():
    from torchvision.transforms.functional_tensor import rgb_to_grayscale
    gray = rgb_to_grayscale(torch.ones(3, 4, 4))
    assert gray.shape == (1, 4, 4) and torch.allclose(gray, torch.ones(1, 4, 4), atol=1e-3)


def test_jpeg_with_float_quality():
    from basicsr.data.degradations import random_add_jpg_compression
    img = np.random.default_rng(0).random((16, 16, 3)).astype(np.float32)
    out = random_add_jpg_compression(img, quality_range=(30.0, 95.0))  # draws a float quality
    assert out.shape == img.shape and out.dtype == np.float32 and np.abs(out - img).mean() > 0


def test_lmdb_parent_folder_is_created(tmp_path):
    import cv2
    from basicsr.utils.lmdb_util import make_lmdb_from_imgs
    cv2.imwrite(str(tmp_path / 'a.png'), np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    target = tmp_path / 'deep' / 'er' / 'x.lmdb'
    make_lmdb_from_imgs(str(tmp_path), str(target), ['a.png'], ['a'])
    assert osp.isfile(target / 'data.mdb') and osp.isfile(target / 'meta_info.txt')


def test_basicsr_resume_loads_on_cpu(tmp_path):
    import basicsr.train
    states = tmp_path / 'experiments' / 'x' / 'training_states'
    states.mkdir(parents=True)
    torch.save({'iter': 7, 'epoch': 1, 'optimizers': [], 'schedulers': []}, states / '7.state')
    opt = {'auto_resume': False, 'name': 'x', 'network_g': {},
           'path': {'resume_state': str(states / '7.state'), 'models': str(tmp_path / 'models')}}
    state = basicsr.train.load_resume_state(opt)
    assert state['iter'] == 7

