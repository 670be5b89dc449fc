"""Tests of the low-light face datasets: determinism, resume, conversions, corrupt files, semi-supervised items."""
import os.path as osp

import cv2
import numpy as np
import pytest
import torch

from lowlight3d.data.lowlight_face_dataset import (
    CorruptImageWarning,
    PairedLowLightFaceDataset,
    SemiSupervisedLowLightDataset,
    UnpairedLowLightDataset,
)
from lowlight3d.utils.img_io import ImageReadError
from lowlight3d.utils.registry import DATASET_REGISTRY


def _write_images(folder, n, h=24, w=20, seed=0, prefix='img'):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        cv2.imwrite(str(folder / f'{prefix}{i:02d}.png'), (rng.random((h, w, 3)) * 255).astype(np.uint8))
    return str(folder)


@pytest.fixture
def gt_dir(tmp_path):
    return _write_images(tmp_path / 'gt', 6)


@pytest.fixture
def lq_dir(tmp_path):
    return _write_images(tmp_path / 'lq', 4, h=30, w=30, seed=1, prefix='real')


def _paired(root, **kw):
    return PairedLowLightFaceDataset({'dataroot_gt': root, 'gt_size': 16, **kw})


def test_paired_sample_format(gt_dir):
    sample = _paired(gt_dir, phase='val')[2]
    assert set(sample) == {'lq', 'gt', 'lq_path', 'gt_path', 'hflip'}
    for key in ('lq', 'gt'):
        assert sample[key].dtype == torch.float32 and sample[key].shape == (3, 16, 16)
        assert 0.0 <= float(sample[key].min()) and float(sample[key].max()) <= 1.0
    assert sample['gt_path'] == sample['lq_path'] == osp.join(gt_dir, 'img02.png')
    assert float(sample['lq'].mean()) < float(sample['gt'].mean())
    full = _paired(gt_dir, phase='val', gt_size=None)[0]
    assert full['gt'].shape == (3, 24, 20)
    assert _paired(gt_dir, phase='val', gt_size=[8, 12])[0]['lq'].shape == (3, 8, 12)


def test_registered_and_buildable_by_basicsr(gt_dir):
    from basicsr.data import build_dataset
    for name in ('PairedLowLightFaceDataset', 'UnpairedLowLightDataset', 'SemiSupervisedLowLightDataset'):
        assert name in DATASET_REGISTRY
    ds = build_dataset({
        'type': 'PairedLowLightFaceDataset',
        'name': 'x',
        'phase': 'train',
        'dataroot_gt': gt_dir,
        'gt_size': 16,
        'batch_size_per_gpu': 2
    })
    assert len(ds) == 6


def test_val_deterministic_per_name_across_instances_and_order(gt_dir, tmp_path):
    a = _paired(gt_dir, phase='val')
    b = _paired(gt_dir, phase='test')
    forward = [a[i]['lq'] for i in range(len(a))]
    backward = [b[i]['lq'] for i in reversed(range(len(b)))][::-1]
    for x, y in zip(forward, backward):
        assert torch.equal(x, y)
    a.set_epoch(7)
    assert torch.equal(a[3]['lq'], forward[3])  # epoch does not matter outside training
    # a meta_info subset in another order gives the same input for the same image name
    meta = tmp_path / 'meta.txt'
    meta.write_text('img04.png (24,20,3) 1\nimg01.png\n')
    c = _paired(gt_dir, phase='val', meta_info_file=str(meta))
    assert len(c) == 2 and torch.equal(c[0]['lq'], forward[4]) and torch.equal(c[1]['lq'], forward[1])
    assert not torch.equal(_paired(gt_dir, phase='val', seed=1)[0]['lq'], forward[0])


def test_train_deterministic_per_seed_epoch_index(gt_dir):
    a = _paired(gt_dir, phase='train')
    b = _paired(gt_dir, phase='train')
    a.set_epoch(3)
    b.set_epoch(3)
    first = a[4]
    _ = [b[i] for i in range(len(b))]  # other samples drawn first: no shared state
    again = b[4]
    assert torch.equal(first['lq'], again['lq']) and torch.equal(first['gt'], again['gt'])
    b.set_epoch(4)
    assert not torch.equal(b[4]['lq'], first['lq'])
    b.set_epoch(3)
    assert torch.equal(b[4]['lq'], first['lq'])  # resume: same epoch -> same sample
    # index beyond len: same image, a different draw (enlarged samplers)
    far = a[4 + len(a)]
    assert far['gt_path'] == first['gt_path'] and not torch.equal(far['lq'], first['lq'])
    assert torch.equal(a[-1]['lq'], a[len(a) - 1]['lq'])


def test_no_global_rng_use(gt_dir):
    ds = _paired(gt_dir, phase='train')
    np_state, torch_state = np.random.get_state(), torch.get_rng_state()
    ds[0]
    assert np.array_equal(np.random.get_state()[1], np_state[1])
    assert torch.equal(torch.get_rng_state(), torch_state)


def test_hflip_train_only(tmp_path):
    img = np.zeros((8, 8, 3), np.uint8)
    img[:, :4] = 255
    folder = tmp_path / 'flip'
    folder.mkdir()
    cv2.imwrite(str(folder / 'a.png'), img)
    opts = {'dataroot_gt': str(folder), 'gt_size': None}
    train = PairedLowLightFaceDataset({**opts, 'phase': 'train'})
    flips = set()
    for epoch in range(12):
        train.set_epoch(epoch)
        sample = train[0]
        flipped = bool(sample['gt'][:, :, 0].mean() < 0.5)
        assert sample['hflip'] == flipped  # the flag tells a per-image prior cache that this is the mirror
        flips.add(flipped)
    assert flips == {True, False}
    val = PairedLowLightFaceDataset({**opts, 'phase': 'val'})
    assert float(val[0]['gt'][:, :, 0].mean()) == 1.0 and val[0]['hflip'] is False
    no_flip = PairedLowLightFaceDataset({**opts, 'phase': 'train', 'use_hflip': False})
    assert all(float(no_flip[i]['gt'][:, :, 0].mean()) == 1.0 for i in range(8))


def test_gray_rgba_16bit_inputs(tmp_path):
    folder = tmp_path / 'mixed'
    folder.mkdir()
    cv2.imwrite(str(folder / 'gray.png'), np.full((10, 10), 128, np.uint8))
    cv2.imwrite(str(folder / 'rgba.png'), np.full((10, 10, 4), 128, np.uint8))
    cv2.imwrite(str(folder / 'deep.png'), np.full((10, 10, 3), 32896, np.uint16))
    cv2.imwrite(str(folder / 'jpeg.jpg'), np.full((10, 10, 3), 128, np.uint8))
    ds = PairedLowLightFaceDataset({'dataroot_gt': str(folder), 'phase': 'val', 'gt_size': None})
    assert len(ds) == 4
    for i in range(4):
        sample = ds[i]
        assert sample['gt'].shape == (3, 10, 10) and sample['lq'].shape == (3, 10, 10)
        assert torch.allclose(sample['gt'], torch.full_like(sample['gt'], 128 / 255), atol=2 / 255)


def test_corrupt_file_raises_naming_it(gt_dir):
    bad = osp.join(gt_dir, 'img03.png')
    with open(bad, 'wb') as f:
        f.write(b'\x89PNG\r\n\x1a\n garbage')
    ds = _paired(gt_dir, phase='train')
    with pytest.raises(ImageReadError, match='img03.png'):
        ds[3]
    ds[2]  # the others still work


def test_skip_corrupt_leaves_the_file_out_and_names_it(gt_dir):
    open(osp.join(gt_dir, 'img03.png'), 'wb').close()  # empty file
    full = len(_paired(gt_dir, phase='train', skip_corrupt=False))
    with pytest.warns(CorruptImageWarning, match='img03.png'):
        ds = _paired(gt_dir, phase='train', skip_corrupt=True)
    assert len(ds) == full - 1 and [s['file'] for s in ds.skipped] == [osp.join(gt_dir, 'img03.png')]
    paths = [ds[i]['gt_path'] for i in range(len(ds))]
    assert len(set(paths)) == len(paths) and not any(p.endswith('img03.png') for p in paths)  # none twice
    sample = ds[3]
    assert sample['gt_path'].endswith('img04.png') and sample['lq'].shape == (3, 16, 16)
    assert torch.isfinite(sample['lq']).all()


def test_missing_meta_entry(gt_dir, tmp_path):
    meta = tmp_path / 'meta.txt'
    meta.write_text('img00.png\nghost.png\n')
    with pytest.raises(FileNotFoundError, match='ghost.png'):
        _paired(gt_dir, meta_info_file=str(meta))
    with pytest.warns(RuntimeWarning, match='ghost.png'):
        ds = _paired(gt_dir, meta_info_file=str(meta), skip_corrupt=True)
    assert len(ds) == 1


def test_bad_options(gt_dir, tmp_path):
    with pytest.raises(ValueError, match='phase'):
        _paired(gt_dir, phase='training')
    with pytest.raises(ValueError, match='seed'):
        _paired(gt_dir, seed=-1)
    with pytest.raises(FileNotFoundError, match='nowhere'):
        _paired(str(tmp_path / 'nowhere'))
    empty = tmp_path / 'empty'
    empty.mkdir()
    with pytest.raises(ValueError, match='no image'):
        _paired(str(empty))
    with pytest.raises(ValueError, match='Unknown option'):
        _paired(gt_dir, degradation={'noise': {'sigma': 1}})


def test_unpaired_dataset(lq_dir):
    ds = UnpairedLowLightDataset({'dataroot_lq': lq_dir, 'phase': 'train', 'gt_size': 16})
    sample = ds[1]
    assert set(sample) == {'lq', 'lq_path', 'hflip'} and sample['lq'].shape == (3, 16, 16)
    assert sample['lq_path'] == osp.join(lq_dir, 'real01.png')
    raw = cv2.resize(cv2.imread(sample['lq_path'])[:, :, ::-1].astype(np.float32) / 255, (16, 16),
                     interpolation=cv2.INTER_AREA)
    lq = sample['lq'].numpy().transpose(1, 2, 0)
    assert np.allclose(lq, raw, atol=1e-5) or np.allclose(lq, raw[:, ::-1], atol=1e-5)  # no degradation


def test_semi_supervised_items(gt_dir, lq_dir):
    opt = {
        'phase': 'train',
        'gt_size': 16,
        'seed': 3,
        'paired': {
            'dataroot_gt': gt_dir
        },
        'unpaired': {
            'dataroot_lq': lq_dir
        }
    }
    ds = SemiSupervisedLowLightDataset(opt)
    assert len(ds) == 6
    sample = ds[0]
    assert set(sample) == {'lq', 'gt', 'lq_path', 'gt_path', 'hflip', 'lq_unpaired', 'lq_unpaired_path',
                           'lq_unpaired_hflip'}
    for key in ('lq', 'gt', 'lq_unpaired'):
        assert sample[key].shape == (3, 16, 16) and sample[key].dtype == torch.float32
    assert sample['lq_unpaired_path'].startswith(lq_dir)
    # deterministic per (seed, epoch, index); the unpaired pick changes across epochs
    again = SemiSupervisedLowLightDataset(opt)
    assert all(torch.equal(sample[k], again[0][k]) for k in ('lq', 'gt', 'lq_unpaired'))
    picks = set()
    for epoch in range(8):
        ds.set_epoch(epoch)
        picks.add(ds[0]['lq_unpaired_path'])
    assert len(picks) > 1
    # flat layout
    flat = SemiSupervisedLowLightDataset({'phase': 'val', 'gt_size': 16, 'dataroot_gt': gt_dir, 'dataroot_lq': lq_dir})
    v1, v2 = flat[2], flat[2]
    assert v1['lq_unpaired_path'] == v2['lq_unpaired_path'] and torch.equal(v1['lq'], v2['lq'])


def test_dataloader_with_two_workers(gt_dir, lq_dir):
    ds = SemiSupervisedLowLightDataset({
        'phase': 'train',
        'gt_size': 16,
        'paired': {
            'dataroot_gt': gt_dir
        },
        'unpaired': {
            'dataroot_lq': lq_dir
        }
    })
    ds.set_epoch(2)
    loader = torch.utils.data.DataLoader(ds, batch_size=3, shuffle=False, num_workers=2)
    batches = list(loader)
    assert len(batches) == 2 and batches[0]['lq'].shape == (3, 3, 16, 16)
    assert torch.equal(batches[1]['lq'][0], ds[3]['lq'])  # workers reproduce the main process' samples
    assert torch.equal(batches[0]['lq_unpaired'][2], ds[2]['lq_unpaired'])


def test_corrupt_file_in_worker_names_it(gt_dir):
    with open(osp.join(gt_dir, 'img01.png'), 'wb') as f:
        f.write(b'not a png at all')
    loader = torch.utils.data.DataLoader(_paired(gt_dir, phase='val'), batch_size=2, num_workers=2)
    batches = iter(loader)
    try:
        with pytest.raises(ImageReadError, match='img01.png'):
            next(batches)
    finally:
        # torch waits up to 5 s per worker when shutting a loader down after a worker error; end them now
        for worker in getattr(batches, '_workers', []):
            worker.terminate()
        del batches


# ---------------------------------------------------------------- real pairs mixed into the synthetic pairs
def _real_pair_block(tmp_path, prob):
    lq = _write_images(tmp_path / 'real_lq', 3, h=24, w=20, seed=5, prefix='dark')
    gt = _write_images(tmp_path / 'real_gt', 1, h=24, w=20, seed=6, prefix='ref')
    meta = tmp_path / 'real_pairs.txt'
    meta.write_text(''.join(f'dark{i:02d}.png ref00.png\n' for i in range(3)))
    return {'prob': prob, 'dataroot_lq': lq, 'dataroot_gt': gt, 'meta_info_file': str(meta)}


def test_real_pairs_replace_a_share_of_the_training_pairs_and_leave_the_others_unchanged(gt_dir, tmp_path):
    plain = _paired(gt_dir, phase='train', use_hflip=False)
    mixed = _paired(gt_dir, phase='train', use_hflip=False, real_pairs=_real_pair_block(tmp_path, 0.3))
    n, real = 400, 0
    for i in range(n):
        sample = mixed[i]
        if sample['real_pair']:
            real += 1
            assert osp.basename(sample['gt_path']) == 'ref00.png' and osp.basename(sample['lq_path']).startswith('dark')
            ref = cv2.imread(sample['gt_path'])[..., ::-1].astype(np.float32) / 255  # read from disk, not synthesised
            np.testing.assert_allclose(sample['gt'].numpy(), cv2.resize(ref, (16, 16), interpolation=cv2.INTER_AREA
                                                                          ).transpose(2, 0, 1), atol=1e-6)
        else:  # a synthesised item is exactly the item the set without real pairs gives
            other = plain[i]
            assert torch.equal(sample['lq'], other['lq']) and sample['gt_path'] == other['gt_path']
    assert abs(real / n - 0.3) < 0.08, real
    again = _paired(gt_dir, phase='train', use_hflip=False, real_pairs=_real_pair_block(tmp_path, 0.3))
    assert all(torch.equal(again[i]['lq'], mixed[i]['lq']) for i in range(20))  # a function of (seed, epoch, index)
    test_set = _paired(gt_dir, phase='val', real_pairs=_real_pair_block(tmp_path, 1.0))
    assert not any(test_set[i]['real_pair'] for i in range(6))  # never in val/test


def test_real_pairs_reach_the_semi_supervised_items_and_bad_blocks_are_refused(gt_dir, lq_dir, tmp_path):
    block = _real_pair_block(tmp_path, 1.0)
    semi = SemiSupervisedLowLightDataset({'phase': 'train', 'gt_size': 16, 'paired': {'dataroot_gt': gt_dir,
                                          'real_pairs': block}, 'unpaired': {'dataroot_lq': lq_dir}})
    sample = semi[3]
    assert sample['real_pair'] and sample['lq_unpaired'].shape == (3, 16, 16)
    for bad, match in (({**block, 'prob': 0}, r'prob must be a number in \(0, 1\]'),
                       ({**block, 'prob': True}, 'prob must be'),
                       ({**block, 'dataroot': 'x'}, "unknown key.*'dataroot'"),
                       ([0.5], 'must be a mapping')):
        with pytest.raises(ValueError, match=match):
            _paired(gt_dir, real_pairs=bad)
