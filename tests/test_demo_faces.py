"""Tests of the built-in synthetic demo face data set (lowlight3d.data.demo_faces)."""
import json
import os
import os.path as osp

import cv2
import numpy as np
import pytest

from lowlight3d.data import demo_faces as df
from lowlight3d.data.demo_faces import dataset_writer

SIZE = 64


def _luma(img):
    x = img.astype(np.float64) / 255.0
    return 0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2]


# ---------------------------------------------------------------------------------------------------------------
# determinism
# ---------------------------------------------------------------------------------------------------------------
def test_determinism_same_seed_identical_bytes():
    a = df.make_demo_face(0, 'train', 5, size=SIZE)
    b = df.make_demo_face(0, 'train', 5, size=SIZE)
    assert a['image'].dtype == np.uint8 and a['image'].shape == (SIZE, SIZE, 3)
    assert a['image'].tobytes() == b['image'].tobytes()
    assert a['depth'].tobytes() == b['depth'].tobytes()
    assert json.dumps(a['params'], sort_keys=True) == json.dumps(b['params'], sort_keys=True)


def test_determinism_different_seeds_and_splits_differ():
    a = df.make_demo_face(0, 'train', 5, size=SIZE)['image']
    b = df.make_demo_face(1, 'train', 5, size=SIZE)['image']
    c = df.make_demo_face(0, 'val', 5, size=SIZE)['image']
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 2
    assert np.abs(a.astype(int) - c.astype(int)).mean() > 2


def test_params_json_serialisable():
    for split in ('train', 'unpaired'):
        p = df.face_params_for(3, split, 7)
        assert json.loads(json.dumps(p)) == p
    assert df.face_params_for(3, 'unpaired', 7)['lowlight']['scenario'] in ('underexposed', 'dim_colored',
                                                                             'side_light')


# ---------------------------------------------------------------------------------------------------------------
# geometry: depth of an analytic sphere
# ---------------------------------------------------------------------------------------------------------------
def _analytic_sphere(c2w, k, size, center, r):
    origin, dirs, zscale = df.generate_rays(c2w, k, size)
    oc = origin.astype(np.float64) - np.asarray(center)
    d = dirs.astype(np.float64)
    b = oc @ d
    disc = b * b - (oc @ oc - r * r)
    hit = disc > 0
    t = -b - np.sqrt(np.maximum(disc, 0))
    impact = np.sqrt(np.maximum(oc @ oc - b * b, 0))  # distance of the ray from the centre
    return (t * zscale).reshape(size, size), hit.reshape(size, size), impact.reshape(size, size)


@pytest.mark.parametrize('r,center,yaw,pitch', [(0.3, (0.0, 0.0, 0.0), 0.0, 0.0), (0.2, (0.0, 0.0, 0.0), 20.0, -10.0),
                                                (0.15, (0.0, 0.0, 0.5), 0.0, 0.0)])
def test_sphere_depth_matches_analytic(r, center, yaw, pitch):
    cx, cy, cz = (np.float32(v) for v in center)
    sdf = lambda x, y, z: np.sqrt((x - cx)**2 + (y - cy)**2 + (z - cz)**2) - np.float32(r)  # noqa: E731
    c2w, k = df.camera_from_angles(yaw, pitch)
    out = df.render_sdf(sdf, c2w, k, SIZE, bound_center=center, bound_radius=r + 0.05)
    depth, mask = out['depth'], out['mask']
    assert depth.dtype == np.float32 and depth.shape == (SIZE, SIZE)
    assert np.all(depth[~mask] == 0) and np.all(depth[mask] > 0)
    ref, ref_hit, impact = _analytic_sphere(c2w, k, SIZE, center, r)
    # centre depth: (distance of the centre from the camera along the axis) - r
    dist = np.linalg.norm(c2w[:3, 3] - np.asarray(center))
    c = SIZE // 2
    centre = depth[c - 1:c + 1, c - 1:c + 1]
    if center == (0.0, 0.0, 0.0):
        assert abs(centre.max() - (df.CAMERA_RADIUS - r)) < 2e-3
    else:
        assert abs(centre.max() - (dist - r)) < 2e-3
    # every clearly-inside pixel agrees with the analytic intersection
    inner = ref_hit & (impact < 0.97 * r)
    assert mask[inner].all()
    assert np.abs(depth[inner] - ref[inner]).max() < 1e-3
    # silhouette: misclassified pixels only where the ray passes within ~one pixel footprint of the rim
    px = dist * 1.0 / (df.FOCAL * SIZE)  # world size of one pixel at the sphere
    wrong = mask != ref_hit
    assert np.all(np.abs(impact[wrong] - r) < px)
    # the silhouette area matches the analytic projected disc (within 3 %)
    rad_px = np.tan(np.arcsin(r / dist)) * df.FOCAL * SIZE
    assert abs(mask.sum() / (np.pi * rad_px**2) - 1) < 0.03
    # z-depth -> ray distance conversion is consistent with the renderer's ray distance
    np.testing.assert_allclose(df.zdepth_to_ray_distance(depth, k)[mask], out['ray_dist'][mask], rtol=1e-5)


def test_face_depth_lies_on_surface():
    p = df.face_params_for(0, 'test', 1)
    out = df.render_face(p, size=SIZE)
    model = df.FaceModel(p)
    c2w, k = df.camera_from_label(out['camera'])
    origin, dirs, zscale = df.generate_rays(c2w, k, SIZE)
    m = out['mask'].reshape(-1)
    assert 0.15 < m.mean() < 0.8
    t = out['depth'].reshape(-1)[m] / zscale[m]
    pts = origin[:, None] + dirs[:, m] * t[None]
    d = np.abs(model.sdf(*pts.astype(np.float32)))
    assert np.median(d) < 3e-4 and np.percentile(d, 99) < 5e-3
    # the head sits in the EG3D sampling range and box
    assert df.RAY_NEAR < out['depth'][out['mask']].min() and out['depth'].max() < df.RAY_FAR
    assert np.abs(pts).max() < 0.5


# ---------------------------------------------------------------------------------------------------------------
# cameras
# ---------------------------------------------------------------------------------------------------------------
def test_canonical_camera_matches_eg3d():
    c2w, k = df.camera_from_angles(0.0, 0.0)
    expected = np.array([[1, 0, 0, 0], [0, -1, 0, 0], [0, 0, -1, 2.7], [0, 0, 0, 1]], dtype=np.float64)
    np.testing.assert_allclose(c2w, expected, atol=1e-12)
    np.testing.assert_allclose(k, [[4.2647, 0, 0.5], [0, 4.2647, 0.5], [0, 0, 1]], atol=1e-4)
    c2w, _ = df.camera_from_angles(np.degrees(0.3), 0.0)
    np.testing.assert_allclose(c2w[:3, 3], [0.798, 0.0, 2.579], atol=1e-3)
    c2w, _ = df.camera_from_angles(0.0, 10.0)
    assert c2w[1, 3] < 0  # positive pitch: camera below the face


@pytest.mark.parametrize('yaw,pitch', [(0.0, 0.0), (25.0, -15.0), (-17.5, 9.0)])
def test_camera_label_round_trip(yaw, pitch):
    c2w, k = df.camera_from_angles(yaw, pitch)
    label = df.camera_label(c2w, k)
    assert label.dtype == np.float32 and label.shape == (25, )
    c2w2, k2 = df.camera_from_label(label)
    np.testing.assert_allclose(c2w2, c2w, atol=1e-6)
    np.testing.assert_allclose(k2, k, atol=1e-6)
    rot, pos = c2w2[:3, :3], c2w2[:3, 3]
    np.testing.assert_allclose(rot.T @ rot, np.eye(3), atol=1e-6)  # rigid
    assert abs(np.linalg.det(rot) - 1) < 1e-6
    np.testing.assert_allclose(c2w2[3], [0, 0, 0, 1])
    assert abs(np.linalg.norm(pos) - df.CAMERA_RADIUS) < 1e-5
    np.testing.assert_allclose(rot[:, 2], -pos / np.linalg.norm(pos), atol=1e-6)  # looks at the origin
    assert rot[1, 1] < 0  # camera y (down) points down in the y-up world
    # intrinsics normalised; the origin projects to the image centre
    np.testing.assert_allclose(k2, [[df.FOCAL, 0, 0.5], [0, df.FOCAL, 0.5], [0, 0, 1]], atol=1e-6)
    pc = rot.T @ (np.zeros(3) - pos)
    uv = (k2 @ (pc / pc[2]))[:2]
    np.testing.assert_allclose(uv, [0.5, 0.5], atol=1e-6)


# ---------------------------------------------------------------------------------------------------------------
# mirror consistency
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('index', [2, 9])
def test_mirror_consistency(index):
    p = df.face_params_for(0, 'train', index)
    p['shape']['asymmetry'] = 0.0
    a = df.render_face(p, size=SIZE)
    b = df.render_face(df.mirror_params(p), size=SIZE)
    assert np.array_equal(a['mask'][:, ::-1], b['mask'])
    np.testing.assert_allclose(a['depth'][:, ::-1], b['depth'], atol=1e-5)
    diff = np.abs(a['image'][:, ::-1].astype(int) - b['image'].astype(int))
    assert diff.max() <= 2 and (diff > 1).mean() < 0.005
    # the mirrored camera is S P S with S = diag(-1, 1, 1, 1)
    s = np.diag([-1.0, 1.0, 1.0, 1.0])
    ca, _ = df.camera_from_label(a['camera'])
    cb, _ = df.camera_from_label(b['camera'])
    np.testing.assert_allclose(s @ ca @ s, cb, atol=1e-6)


def test_symmetric_face_frontal_is_symmetric():
    p = df.face_params_for(0, 'train', 4)
    p['shape']['asymmetry'] = 0.0
    p['camera'] = {'yaw_deg': 0.0, 'pitch_deg': 5.0}
    geo_a = df.render_sdf(df.FaceModel(p).sdf, *df.camera_from_angles(0.0, 5.0), SIZE)
    assert np.array_equal(geo_a['mask'], geo_a['mask'][:, ::-1])
    np.testing.assert_allclose(geo_a['depth'], geo_a['depth'][:, ::-1], atol=1e-5)


# ---------------------------------------------------------------------------------------------------------------
# appearance
# ---------------------------------------------------------------------------------------------------------------
def test_skin_tone_range_coverage():
    lum = []
    for i in range(16):
        p = df.face_params_for(0, 'train', i)
        p['camera'] = {'yaw_deg': 0.0, 'pitch_deg': 0.0}
        p['light'].update(dir=[0.0, 0.3, 0.95], intensity=2.6, ambient=0.5, exposure=1.0, kelvin=6500.0,
                          ambient_kelvin=6500.0)
        out = df.render_face(p, size=48, antialias=False)
        skin = out['skin'] > 0.9
        assert skin.sum() > 50
        lum.append(_luma(out['image'])[skin].mean())
    lum = np.array(lum)
    assert lum.min() < 0.3, lum  # very dark skin present (Monk 9-10)
    assert lum.max() > 0.75, lum  # very light skin present (Monk 1-2)
    assert np.histogram(lum, bins=3, range=(lum.min(), lum.max()))[0].min() >= 2  # no gap in the middle


def test_unpaired_lowlight_is_dark_and_noisy():
    for i in range(6):
        out = df.make_demo_face(0, 'unpaired', i, size=48)
        assert _luma(out['image']).mean() < 0.25
    # sensor noise: the flat background has pixel-to-pixel variation
    img = df.make_demo_face(0, 'unpaired', 0, size=48)['image'].astype(np.float64)
    assert np.abs(np.diff(img[:6, :, 1], axis=1)).mean() > 0.3


def test_mask_and_depth_consistent():
    out = df.make_demo_face(0, 'val', 0, size=SIZE)
    assert out['mask'].dtype == bool
    assert np.array_equal(out['mask'], out['depth'] > 0)
    assert out['skin'].shape == (SIZE, SIZE) and np.all(out['skin'][~out['mask']] == 0)


# ---------------------------------------------------------------------------------------------------------------
# data set on disk
# ---------------------------------------------------------------------------------------------------------------
def _files(root):
    out = {}
    for d, _, names in os.walk(root):
        for n in names:
            p = osp.join(d, n)
            if n == 'meta.json':
                continue
            with open(p, 'rb') as f:
                out[osp.relpath(p, root)] = f.read()
    return out


def test_generate_demo_dataset_layout_noop_and_regeneration(tmp_path):
    kw = dict(num_train=3, num_val=1, num_test=1, num_unpaired=2, size=32, seed=7)
    root = str(tmp_path / 'demo')
    paths = df.generate_demo_dataset(root, num_workers=1, **kw)
    assert df.is_demo_dataset_complete(root, **kw)
    for split, n in (('train', 3), ('val', 1), ('test', 1)):
        for i in range(n):
            img = cv2.imread(osp.join(root, split, 'gt', f'{i:05d}.png'))
            assert img is not None and img.shape == (32, 32, 3)
            d = np.load(osp.join(root, split, 'depth', f'{i:05d}.npy'))
            assert d.dtype == np.float32 and d.shape == (32, 32) and (d > 0).any()
            m = cv2.imread(osp.join(root, split, 'mask', f'{i:05d}.png'), cv2.IMREAD_UNCHANGED)
            assert np.array_equal(m > 0, d > 0)
            assert osp.exists(osp.join(root, split, 'depth_vis', f'{i:05d}.png'))
        cams = json.load(open(paths[f'{split}_cameras']))
        assert sorted(cams) == [f'{i:05d}' for i in range(n)] and all(len(v) == 25 for v in cams.values())
        assert sorted(json.load(open(paths[f'{split}_params']))) == sorted(cams)
    lq = [cv2.imread(osp.join(paths['unpaired_lq'], f'{i:05d}.png')) for i in range(2)]
    assert all(x is not None and x.mean() / 255 < 0.25 for x in lq)
    assert not osp.exists(osp.join(root, 'unpaired', 'gt'))
    meta = json.load(open(paths['meta']))
    assert meta['version'] == df.GENERATOR_VERSION and meta['seed'] == 7 and meta['counts']['train'] == 3
    assert osp.exists(paths['readme'])
    # camera labels on disk equal the rendered ones
    cams = json.load(open(paths['train_cameras']))
    np.testing.assert_allclose(cams['00001'], df.make_demo_face(7, 'train', 1, size=32)['camera'], atol=1e-6)
    # pixels equal a direct render
    direct = df.make_demo_face(7, 'train', 2, size=32)['image']
    assert np.array_equal(cv2.imread(osp.join(root, 'train', 'gt', '00002.png'))[..., ::-1], direct)

    # re-run with the same arguments: no-op (nothing rewritten)
    before = {p: os.stat(osp.join(root, p)).st_mtime_ns for p in _files(root)}
    meta_mtime = os.stat(paths['meta']).st_mtime_ns
    df.generate_demo_dataset(root, num_workers=1, **kw)
    assert {p: os.stat(osp.join(root, p)).st_mtime_ns for p in _files(root)} == before
    assert os.stat(paths['meta']).st_mtime_ns == meta_mtime

    # a file deleted from a finished set: incomplete, re-rendered identically
    ref = _files(root)
    os.remove(osp.join(root, 'train', 'gt', '00001.png'))
    assert not df.is_demo_dataset_complete(root, **kw)
    df.generate_demo_dataset(root, num_workers=1, **kw)
    assert df.is_demo_dataset_complete(root, **kw) and _files(root) == ref

    # different settings: error unless overwrite
    kw2 = dict(kw, num_train=2)
    with pytest.raises(FileExistsError):
        df.generate_demo_dataset(root, num_workers=1, **kw2)
    df.generate_demo_dataset(root, num_workers=1, overwrite=True, **kw2)
    assert df.is_demo_dataset_complete(root, **kw2) and not df.is_demo_dataset_complete(root, **kw)
    assert not osp.exists(osp.join(root, 'train', 'gt', '00002.png'))


def test_generate_demo_dataset_interrupted_is_incomplete_and_resumes(tmp_path, monkeypatch):
    kw = dict(num_train=3, num_val=1, num_test=1, num_unpaired=1, size=32, seed=5)
    ref = _files(df.generate_demo_dataset(str(tmp_path / 'ref'), num_workers=1, **kw)['root'])
    root = str(tmp_path / 'demo')
    real_write, calls = dataset_writer._write_png, []

    def failing_write(path, img):
        calls.append(path)
        if len(calls) == 7:
            raise KeyboardInterrupt('simulated interruption')
        real_write(path, img)

    monkeypatch.setattr(dataset_writer, '_write_png', failing_write)
    with pytest.raises(KeyboardInterrupt):
        df.generate_demo_dataset(root, num_workers=1, **kw)
    monkeypatch.setattr(dataset_writer, '_write_png', real_write)
    assert not osp.exists(osp.join(root, 'meta.json'))
    assert not df.is_demo_dataset_complete(root, **kw)
    assert not [n for n in os.listdir(osp.join(root, 'train', 'gt')) if 'tmp' in n]  # atomic writes
    df.generate_demo_dataset(root, num_workers=1, **kw)  # resumes (same settings: no error)
    assert df.is_demo_dataset_complete(root, **kw)
    assert _files(root) == ref


def test_generate_demo_dataset_independent_of_workers(tmp_path):
    kw = dict(num_train=3, num_val=0, num_test=1, num_unpaired=1, size=32, seed=3)
    a = _files(df.generate_demo_dataset(str(tmp_path / 'a'), num_workers=1, **kw)['root'])
    b = _files(df.generate_demo_dataset(str(tmp_path / 'b'), num_workers=2, **kw)['root'])
    assert a.keys() == b.keys() and all(a[k] == b[k] for k in a)
    assert 'val' not in {k.split(os.sep)[0] for k in a}


def test_package_keeps_the_public_names_of_the_former_module():
    # lowlight3d/data/demo_faces.py became a sub-package: every old public name still imports from it
    old = ['GENERATOR_VERSION', 'CAMERA_RADIUS', 'FOCAL', 'FOV_DEG', 'SKIN_TONES_SRGB', 'camera_from_angles',
           'camera_label', 'camera_from_label', 'intrinsics_matrix', 'generate_rays', 'zdepth_to_ray_distance',
           'sphere_trace', 'render_sdf', 'FaceModel', 'sample_face_params', 'sample_lowlight_params',
           'mirror_params', 'face_params_for', 'render_face', 'make_demo_face', 'depth_to_vis', 'demo_dataset_meta',
           'is_demo_dataset_complete', 'write_unpaired_split', 'generate_demo_dataset']
    assert sorted(df.__all__) == sorted(old)
    assert all(getattr(df, name) is not None for name in old + ['RAY_NEAR', 'RAY_FAR'])
    assert df.generate_demo_dataset is dataset_writer.generate_demo_dataset
