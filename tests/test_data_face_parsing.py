"""Per-image face annotations: FaceMesh-derived LaPa-class parsing masks and FaceParsingLowLightDataset.

The FaceMesh tests read real faces from ``$LOWLIGHT3D_TEST_DATA`` (default ``../shared/data`` beside the repository;
skipped with the reason when absent or when mediapipe is not installed).  Shared photos are only *linked* into
temporary folders, never copied into the repository.
"""
import os
import os.path as osp

import cv2
import numpy as np
import pytest
import torch

from lowlight3d.data import build_dataset
from lowlight3d.data.face_parsing_dataset import identity_of, identity_table
from lowlight3d.data.facemesh_parsing import LAPA_CLASSES, flip_parsing_mask, landmarks_to_parsing

from conftest import write_smooth_images

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def _utk_faces(count):
    root = os.environ.get('LOWLIGHT3D_TEST_DATA') or osp.join(osp.dirname(REPO), 'shared', 'data')
    folder = osp.join(root, 'faces_utk', 'images')
    if not osp.isdir(folder):
        pytest.skip(f'real faces not available: {folder} is missing (set LOWLIGHT3D_TEST_DATA to ../shared/data)')
    pytest.importorskip('mediapipe', reason='mediapipe==0.10.14 (optional extra) is not installed')
    files = sorted(f for f in os.listdir(folder) if f.endswith('.jpg'))
    return [osp.join(folder, f) for f in files[:count]]


def _centre(mask, label):
    ys, xs = np.nonzero(mask == label)
    assert len(ys) > 0, f'no {LAPA_CLASSES[label]} pixels'
    return ys.mean(), xs.mean()


@pytest.fixture(scope='module')
def parser():
    pytest.importorskip('mediapipe', reason='mediapipe==0.10.14 (optional extra) is not installed')
    from lowlight3d.data.facemesh_parsing import FaceMeshParser
    return FaceMeshParser()


def test_facemesh_mask_of_a_real_face_has_regions_in_plausible_places(parser):
    from lowlight3d.utils.img_io import read_image
    path = _utk_faces(4)[3]
    img = read_image(path)
    mask, found = parser.parse(img)
    assert found and mask.shape == img.shape[:2] and mask.dtype == np.uint8 and int(mask.max()) <= 10
    c = {k: _centre(mask, k) for k in range(1, 11) if k != 8}
    eyes_y = (c[4][0] + c[5][0]) / 2
    lips_y = (c[7][0] + c[9][0]) / 2
    assert c[2][0] < c[4][0] and c[3][0] < c[5][0]  # brows above eyes
    assert eyes_y < c[6][0] < lips_y  # nose between the eyes and the mouth
    assert c[7][0] < c[9][0]  # upper lip above the lower lip
    assert c[10][0] < min(c[2][0], c[3][0])  # hair above the brows
    assert c[4][1] > c[5][1] and c[2][1] > c[3][1]  # subject's left on the image's right
    assert abs(c[6][1] - (c[4][1] + c[5][1]) / 2) < 0.15 * mask.shape[1]  # nose centred between the eyes
    counts = np.bincount(mask.ravel(), minlength=11)
    assert counts[1] == max(counts[1:10])  # skin is the largest face class
    for k in (2, 3, 4, 5, 7, 9):
        assert counts[k] < counts[6] * 3  # small parts stay small
    blank, found = parser.parse(np.zeros((64, 64, 3), np.float32))
    assert not found and not blank.any()


def test_flip_swaps_left_and_right():
    mask = np.array([[2, 3, 4], [5, 1, 10]], np.uint8)
    assert flip_parsing_mask(mask).tolist() == [[5, 2, 3], [10, 1, 4]]
    with pytest.raises(ValueError, match='468'):
        landmarks_to_parsing(np.zeros((10, 3)), 8, 8)


def test_identity_names():
    assert identity_of('x/Aaron_Eckhart_0001.jpg') == 'Aaron_Eckhart'
    assert identity_of('x/00012.png') == '00012' and identity_of('x/00012.png', 'stem') == '00012'
    with pytest.raises(ValueError, match='identity.from'):
        identity_table('folder')
    with pytest.raises(FileNotFoundError, match='identity.csv'):
        identity_table('csv', None)


def test_dataset_with_facemesh_masks_cached_from_real_faces(tmp_path):
    faces = _utk_faces(2)
    gt = osp.join(tmp_path, 'gt')
    os.makedirs(gt)
    for k, f in enumerate(faces):
        os.symlink(f, osp.join(gt, f'face{k}.jpg'))  # linked, never copied
    write_smooth_images(osp.join(tmp_path, 'neg'), 2, size=40)
    cache = osp.join(tmp_path, 'masks')
    opt = {'name': 'T', 'type': 'FaceParsingLowLightDataset', 'gt_size': 64, 'seed': 3,
           'low': {'type': 'PairedLowLightFaceDataset', 'dataroot_gt': gt},
           'parsing': {'cache': cache, 'facemesh_from': None}, 'identity': {'from': 'stem'},
           'contrast': {'positive': {'dataroot': gt}, 'negative': {'dataroot': osp.join(tmp_path, 'neg')}}}
    ds = build_dataset(opt)
    assert sorted(os.listdir(cache)) == ['face0.png', 'face1.png']  # derived offline when built
    flips = {}
    for epoch in range(6):
        ds.set_epoch(epoch)
        item = ds[0]
        assert item['lq'].shape == item['pos'].shape == item['neg'].shape == (3, 64, 64)
        assert item['mask'].shape == (64, 64) and item['mask'].dtype == torch.int64
        assert item['identity'] == 'face0'
        flips[bool(item['hflip'])] = item['mask']
    assert set(flips) == {False, True}
    assert torch.equal(flips[True], torch.from_numpy(flip_parsing_mask(flips[False].numpy()).astype(np.int64)))
    again = build_dataset(opt)  # reads the cache
    again.set_epoch(5)
    assert torch.equal(again[0]['neg'], ds[0]['neg']) and torch.equal(again[0]['mask'], ds[0]['mask'])


def test_dataset_with_lapa_layout_and_csv_identities(tmp_path):
    write_smooth_images(osp.join(tmp_path, 'underexposed'), 3, size=24, prefix='img')
    os.makedirs(osp.join(tmp_path, 'seg'))
    for k in range(3):
        cv2.imwrite(osp.join(tmp_path, 'seg', f'img{k:03d}.png'), np.full((24, 24), k, np.uint8))
    table = osp.join(tmp_path, 'ids.csv')
    with open(table, 'w') as f:
        f.write('file,identity\nimg000.png,A\nimg001.png,B\nimg002,A\n')
    opt = {'name': 'L', 'type': 'FaceParsingLowLightDataset', 'gt_size': 16, 'phase': 'test',
           'low': {'type': 'UnpairedLowLightDataset', 'dataroot_lq': osp.join(tmp_path, 'underexposed')},
           'parsing': {'dataroot_seg': osp.join(tmp_path, 'seg')}, 'identity': {'from': 'csv', 'csv': table}}
    ds = build_dataset(opt)
    items = [ds[k] for k in range(3)]
    assert [it['identity'] for it in items] == ['A', 'B', 'A']
    assert [int(it['mask'].unique()) for it in items] == [0, 1, 2] and items[0]['mask'].shape == (16, 16)
    assert 'pos' not in items[0]
    os.remove(osp.join(tmp_path, 'seg', 'img002.png'))
    with pytest.raises(FileNotFoundError, match='img002.png'):
        ds[2]
    with pytest.raises(ValueError, match='dataroot_seg'):
        build_dataset({**opt, 'parsing': {}})
    with pytest.raises(ValueError, match="'low'"):
        build_dataset({k: v for k, v in opt.items() if k != 'low'})
