"""mediapipe FaceMesh depth: rasteriser vs hand computation, depth conversion, cache round trip, optional import.

mediapipe itself is not installed in the test environment: a fake ``mediapipe`` module (monkeypatched into
``sys.modules``) returns known landmarks, so everything but the landmark network is checked.
"""
import os
import sys
import types

import cv2
import numpy as np
import pytest
import torch

from lowlight3d.data.face_depth_dataset import FaceDepthDataset
from lowlight3d.data.mediapipe_depth import (
    DepthCache,
    FaceMeshDepth,
    landmarks_to_depth,
    mesh_triangles,
    rasterize_depth,
)
from lowlight3d.utils.camera import FFHQ_FOCAL, FFHQ_RADIUS

from conftest import write_smooth_images


def test_single_triangle_is_interpolated_barycentrically():
    # vertices at pixel positions (1, 1), (9, 1), (1, 9) of a 10 x 10 map with z = 1, 2, 3: z(x, y) is the plane
    # 1 + (x - 1) / 8 + 2 (y - 1) / 8 inside x >= 1, y >= 1, x + y <= 10 (pixel centres x = j + .5, y = i + .5)
    z, mask = rasterize_depth(np.array([[0.1, 0.1, 1.0], [0.9, 0.1, 2.0], [0.1, 0.9, 3.0]]), 10, 10)
    for i in range(10):
        for j in range(10):
            x, y = j + 0.5, i + 0.5
            inside = x >= 1 and y >= 1 and x + y <= 10
            assert mask[i, j] == inside, (i, j)
            expected = 1 + (x - 1) / 8 + 2 * (y - 1) / 8 if inside else 0.0
            assert abs(z[i, j] - expected) < 1e-6, (i, j, z[i, j], expected)
    assert mask.sum() == 36  # 8 + 7 + ... + 1 pixel centres


def test_overlapping_triangles_keep_the_closest_and_degenerate_input_fails():
    pts = np.array([[0.0, 0.0, 5.0], [1.0, 0.0, 5.0], [0.0, 1.0, 5.0], [0.0, 0.0, 1.0], [1.0, 0.0, 1.0],
                    [0.0, 1.0, 1.0]])
    z, mask = rasterize_depth(pts, 4, 4, triangles=np.array([[0, 1, 2], [3, 4, 5]]))
    assert np.allclose(z[mask], 1.0) and mask.sum() == 10
    with pytest.raises(ValueError, match=r'\(N >= 3, 3\)'):
        rasterize_depth(np.zeros((2, 3)), 4, 4)


def _planar_landmarks(count=478, seed=0):
    """Landmarks on the plane z = 0.1 u - 0.05 v + 0.02 filling the square [0.2, 0.8]^2 (its 4 corners included)."""
    rng = np.random.default_rng(seed)
    uv = np.concatenate([[[0.2, 0.2], [0.8, 0.2], [0.2, 0.8], [0.8, 0.8]], rng.uniform(0.2, 0.8, (count - 4, 2))])
    return np.column_stack([uv, 0.1 * uv[:, 0] - 0.05 * uv[:, 1] + 0.02])


def _expected_planar_depth(size):
    c = (np.arange(size) + 0.5) / size
    u, v = np.meshgrid(c, c)
    inside = (u >= 0.2) & (u <= 0.8) & (v >= 0.2) & (v <= 0.8)
    depth = FFHQ_RADIUS + FFHQ_RADIUS / FFHQ_FOCAL * (0.1 * u - 0.05 * v + 0.02)
    return np.where(inside, depth, 0.0), inside


def test_landmarks_to_depth_of_a_plane_is_exact():
    depth, inside = _expected_planar_depth(32)
    out = landmarks_to_depth(_planar_landmarks(), 32, 32)
    assert out.dtype == np.float32 and np.allclose(out, depth, atol=1e-5)
    assert ((out > 0) == inside).all() and abs(FFHQ_RADIUS / FFHQ_FOCAL - 0.633) < 1e-3


def test_mesh_triangles_from_edges_and_the_facemesh_tesselation_is_used(fake_mediapipe):
    square = [(0, 1), (1, 3), (3, 2), (2, 0), (0, 3), (3, 0)]  # two triangles sharing the diagonal 0-3
    assert mesh_triangles(square).tolist() == [[0, 1, 3], [0, 2, 3]]
    fake_mediapipe.solutions.face_mesh.FACEMESH_TESSELATION = frozenset(square)  # over the 4 corner landmarks
    fm = FaceMeshDepth()
    assert fm.triangles.tolist() == [[0, 1, 3], [0, 2, 3]]
    depth, _ = _expected_planar_depth(32)
    assert np.allclose(fm.depth(np.full((32, 32, 3), 0.5)), depth, atol=1e-5)  # float input -> uint8 for FaceMesh
    assert _FakeFaceMesh.calls[-1][0] == np.uint8


class _FakeFaceMesh:
    """Stands in for ``mediapipe.solutions.face_mesh.FaceMesh``: planar landmarks, no face on black images."""
    calls = []

    def __init__(self, **kwargs):
        self.kwargs = kwargs

    def process(self, rgb):
        _FakeFaceMesh.calls.append((rgb.dtype, rgb.shape, self.kwargs))
        if rgb.max() == 0:
            return types.SimpleNamespace(multi_face_landmarks=None)
        marks = [types.SimpleNamespace(x=x, y=y, z=z) for x, y, z in _planar_landmarks()]
        return types.SimpleNamespace(multi_face_landmarks=[types.SimpleNamespace(landmark=marks)])


@pytest.fixture
def fake_mediapipe(monkeypatch):
    module = types.ModuleType('mediapipe')
    module.solutions = types.SimpleNamespace(face_mesh=types.SimpleNamespace(FaceMesh=_FakeFaceMesh))
    monkeypatch.setitem(sys.modules, 'mediapipe', module)
    _FakeFaceMesh.calls = []
    return module


def _faces(tmp_path):
    write_smooth_images(str(tmp_path / 'gt'), 4)
    cv2.imwrite(str(tmp_path / 'gt' / '004.png'), np.zeros((32, 32, 3), np.uint8))  # no face here
    return {'name': 'mp', 'dataroot_gt': str(tmp_path / 'gt'), 'depth_source': 'mediapipe',
            'depth_cache_dir': str(tmp_path / 'cache'), 'gt_size': 32}


def test_dataset_computes_caches_and_flips_facemesh_depth(fake_mediapipe, tmp_path, monkeypatch):
    opt = _faces(tmp_path)
    ds = FaceDepthDataset({**opt, 'use_hflip': False})
    depth, inside = _expected_planar_depth(32)
    s = ds[1]
    assert bool(s['has_depth']) and torch.allclose(s['depth'][0], torch.from_numpy(depth).float(), atol=1e-5)
    assert torch.equal(s['mask'][0], torch.from_numpy(inside).float())
    assert _FakeFaceMesh.calls[0][:2] == (np.uint8, (32, 32, 3)) and _FakeFaceMesh.calls[0][2]['refine_landmarks']
    assert np.array_equal(np.load(tmp_path / 'cache' / '001.npy'), s['depth'][0].numpy())
    none = ds[4]
    assert not bool(none['has_depth']) and torch.all(none['mask'] == 1) and torch.all(none['depth'] == 0)
    for i in range(len(ds)):
        ds[i]
    assert sorted(os.listdir(tmp_path / 'cache')) == [f'{i:03d}.npy' for i in range(5)]  # no temporary files left
    calls = len(_FakeFaceMesh.calls)
    assert calls == 5
    # everything cached: mediapipe is neither imported nor run again, and flips mirror the cached depth
    monkeypatch.setitem(sys.modules, 'mediapipe', None)
    train = FaceDepthDataset({**opt, 'use_hflip': True})
    plain = FaceDepthDataset({**opt, 'use_hflip': False})
    flips = [i for i in range(4) if not torch.equal(train[i]['gt'], plain[i]['gt'])]
    assert flips and all(torch.equal(train[i]['depth'], plain[i]['depth'].flip(-1)) for i in flips)
    assert len(_FakeFaceMesh.calls) == calls and train.face_mesh is None


def test_depth_cache_round_trip_and_missing_mediapipe(tmp_path, monkeypatch):
    cache = DepthCache(str(tmp_path / 'c'))
    values = np.arange(12, dtype=np.float64).reshape(3, 4)
    out = cache.get('sub/a', lambda: values)
    assert out.dtype == np.float32 and np.array_equal(np.load(tmp_path / 'c' / 'sub' / 'a.npy'), values)
    assert np.array_equal(cache.get('sub/a', lambda: pytest.fail('recomputed a cached map')), values)

    def broken():
        raise RuntimeError('boom')

    with pytest.raises(RuntimeError, match='boom'):
        cache.get('b', broken)
    assert not cache.has('b') and os.listdir(tmp_path / 'c') == ['sub']
    monkeypatch.setitem(sys.modules, 'mediapipe', None)  # import mediapipe -> ImportError
    opt = _faces(tmp_path)
    with pytest.raises(ImportError, match=r'pip install mediapipe==0\.10\.14'):
        FaceDepthDataset(opt)
    with pytest.raises(ValueError, match='depth_cache_dir'):
        FaceDepthDataset({**opt, 'depth_cache_dir': None})
    monkeypatch.setitem(sys.modules, 'mediapipe', types.ModuleType('mediapipe'))  # a release without solutions
    with pytest.raises(ImportError, match='no solutions.face_mesh'):
        FaceDepthDataset(opt)
