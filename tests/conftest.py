"""Shared pytest fixtures.

Real research-only images live in ``../shared/data`` beside the repository and are never copied into it.
Tests reach them through ``LOWLIGHT3D_TEST_DATA`` (``.ci/run`` and ``make test`` set it) and skip, with the
reason, where it is unset.
"""
import os
import os.path as osp

import pytest

import lowlight3d  # noqa: F401  (compat patches + registrations before any test imports basicsr)


@pytest.fixture(scope='session')
def shared_data():
    """Path of the shared real-image folder, or skip the test."""
    root = os.environ.get('LOWLIGHT3D_TEST_DATA')
    if not root:
        pytest.skip('LOWLIGHT3D_TEST_DATA is unset: real-image test data (../shared/data) not available')
    if not osp.isdir(root):
        pytest.skip(f'LOWLIGHT3D_TEST_DATA={root} is not a folder')
    return root


def write_smooth_images(folder, count, size=32, seed=0, prefix=''):
    """Write ``count`` smooth random RGB PNGs (face-free stand-ins) into ``folder``; returns their paths."""
    import cv2
    import numpy as np
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        img = (rng.random((size, size, 3)) * 255).astype('uint8')
        img = cv2.GaussianBlur(img, (7, 7), 2)
        path = osp.join(folder, f'{prefix}{i:03d}.png')
        cv2.imwrite(path, img)
        paths.append(path)
    return paths


@pytest.fixture(scope='session')
def tiny_image_sets(tmp_path_factory):
    """Folders ``train`` (12), ``val`` (3) and ``unpaired`` (3) of 32x32 smooth images."""
    root = tmp_path_factory.mktemp('tiny_sets')
    write_smooth_images(osp.join(root, 'train'), 12, seed=1)
    write_smooth_images(osp.join(root, 'val'), 3, seed=2)
    write_smooth_images(osp.join(root, 'unpaired'), 3, seed=3)
    return str(root)


def tiny_train_overrides(sets_root, total_iter=12, name='tiny_run'):
    """``--cfg-options`` turning the demo training file into a seconds-long run on ``tiny_image_sets``."""
    return [
        f'name={name}', f'train.total_iter={total_iter}', f'datasets.train.dataroot_gt={sets_root}/train',
        f'datasets.val.dataroot_gt={sets_root}/val', 'datasets.train.gt_size=32', 'datasets.val.gt_size=32',
        'datasets.train.batch_size_per_gpu=4', 'logger.print_freq=2', 'logger.save_checkpoint_freq=6',
        'val.val_freq=6', 'logger.use_tb_logger=false', 'network_g.num_feat=8',
        f'train.scheduler.periods=[{total_iter}]'
    ]
