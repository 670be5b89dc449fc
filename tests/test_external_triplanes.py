"""External EG3D-space tri-planes: file validation, dataset flip consistency, EG3D decoder conversion, and a short
DDPM training on them with a renderer only.

The tri-planes are random tensors written as ``.pt`` files and the EG3D decoder is a random stand-in in EG3D's
state-dict layout (no external weights are used or needed).
"""
import copy
import json
import math
import os.path as osp

import pytest
import torch
import torch.nn.functional as F

from lowlight3d.archs.eg3d_conversion import convert_eg3d_decoder
from lowlight3d.archs.triplane_renderer_arch import TriplaneRenderer, mirror_triplane, sample_triplane
from lowlight3d.data.external_triplanes import mirror_planes, read_triplane_file
from lowlight3d.data.face_depth_dataset import FaceDepthDataset
from lowlight3d.models import build_model
from lowlight3d.models.prior_extractor import PriorExtractor, load_renderer_weights
from lowlight3d.pipeline.train_pipeline import train_pipeline
from lowlight3d.utils.camera import look_at_label, mirror_label

from conftest import write_smooth_images

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
EXTERNAL_OPT = osp.join(REPO, 'options', 'train', 'LowLight3D', 'train_TriplaneDDPM_external_FFHQ.yml')
C, R = 4, 8  # tiny tri-planes 3 x 4 x 8 x 8
RENDERER_KW = dict(plane_channels=C, hidden=8, plane_axes='eg3d', resolution=8, num_coarse=6, num_fine=6)


def _eg3d_decoder_state(seed=0, channels=C, hidden=8, prefix=''):
    """Random weights in EG3D's OSGDecoder layout (FC(C -> hidden) -> Softplus -> FC(hidden -> 1 + 32))."""
    g = torch.Generator().manual_seed(seed)
    return {
        prefix + 'net.0.weight': torch.randn(hidden, channels, generator=g),
        prefix + 'net.0.bias': torch.randn(hidden, generator=g) * 0.1,
        prefix + 'net.2.weight': torch.randn(33, hidden, generator=g),
        prefix + 'net.2.bias': torch.randn(33, generator=g) * 0.1,
    }


@pytest.fixture(scope='module')
def external_set(tmp_path_factory):
    """6 train / 2 val 32x32 images, one random tri-plane file per image, EG3D-layout decoder weights."""
    root = tmp_path_factory.mktemp('external')
    files = {}
    for split, count, seed in (('train', 6, 1), ('val', 2, 2)):
        write_smooth_images(str(root / split / 'gt'), count, seed=seed)
        (root / split / 'planes').mkdir()
        g = torch.Generator().manual_seed(seed)
        for i in range(count):
            planes = torch.randn(3, C, R, R, generator=g).half()  # fp16 on disk, as the doc suggests
            camera = look_at_label(float(torch.rand(1, generator=g)) * 30 - 15, float(torch.rand(1, generator=g)) * 10)
            torch.save({'planes': planes, 'camera': camera}, root / split / 'planes' / f'{i:03d}.pt')
            files[(split, f'{i:03d}')] = (planes.float(), camera)
    torch.save(_eg3d_decoder_state(prefix='decoder.'), root / 'eg3d_decoder.pt')
    return root, files


def _dataset(root, split='train', **extra):
    opt = {'name': f'ext_{split}', 'phase': 'train' if split == 'train' else 'val', 'dataroot_gt': f'{root}/{split}/gt',
           'triplane_dir': f'{root}/{split}/planes', 'gt_size': 32, 'lowlight': True, **extra}
    return FaceDepthDataset(opt)


def test_dataset_returns_file_planes_and_mirrors_planes_and_camera_together(external_set):
    root, files = external_set
    ds, plain = _dataset(root, use_hflip=True), _dataset(root, use_hflip=False)
    renderer = TriplaneRenderer(**RENDERER_KW).eval()
    flipped = 0
    for i in range(len(ds)):
        a, b = ds[i], plain[i]
        planes, camera = files[('train', f'{i:03d}')]
        assert torch.equal(b['planes'], planes) and torch.equal(b['camera'], camera)  # file camera, not canonical
        if torch.equal(a['gt'], b['gt']):
            assert torch.equal(a['planes'], planes)
            continue
        flipped += 1
        assert torch.equal(a['gt'], b['gt'].flip(-1))
        assert torch.equal(a['planes'], mirror_triplane(planes[None], 'eg3d')[0])
        assert torch.allclose(a['camera'], mirror_label(camera[None])[0])
        # consistency that matters: the flipped sample renders to the flip of the un-flipped render
        with torch.no_grad():
            ra = renderer(a['planes'][None], a['camera'][None], deterministic=True)
            rb = renderer(b['planes'][None], b['camera'][None], deterministic=True)
        assert torch.allclose(ra['image'], rb['image'].flip(-1), atol=1e-5)
        assert torch.allclose(ra['depth'], rb['depth'].flip(-1), atol=1e-4)
    assert 0 < flipped < len(ds)
    # the file camera overrides camera_file; without triplane_dir there are no planes
    cams = root / 'cameras.json'
    cams.write_text(json.dumps({f'{i:03d}': look_at_label(0, 0).tolist() for i in range(6)}))
    with_file = _dataset(root, use_hflip=False, camera_file=str(cams))
    assert torch.equal(with_file[2]['camera'], files[('train', '002')][1])
    assert 'planes' not in FaceDepthDataset({'dataroot_gt': f'{root}/train/gt', 'gt_size': 32})[0]


def test_mirror_planes_matches_the_renderer_helper():
    p = torch.randn(2, 3, 2, 5, 5)
    for axes in ('eg3d', 'xyz'):
        assert torch.equal(mirror_planes(p, axes), mirror_triplane(p, axes))
        assert torch.equal(mirror_planes(p[0], axes), mirror_triplane(p[:1], axes)[0])
    with pytest.raises(ValueError, match='plane axes'):
        mirror_planes(p, 'zyx')


def test_bad_files_and_folders_name_the_problem(external_set, tmp_path):
    root, _ = external_set
    with pytest.raises(FileNotFoundError, match='is not a folder'):
        _dataset(root, triplane_dir=str(tmp_path / 'nowhere'))
    partial = tmp_path / 'partial'
    partial.mkdir()
    torch.save({'planes': torch.zeros(3, C, R, R), 'camera': look_at_label(0, 0)}, partial / '000.pt')
    with pytest.raises(FileNotFoundError, match=r'5 of 6 images .*partial.*001\.pt'):
        _dataset(root, triplane_dir=str(partial))
    cases = {
        'no_camera.pt': ({'planes': torch.zeros(3, C, R, R)}, "'camera'"),
        'two_planes.pt': ({'planes': torch.zeros(2, C, R, R), 'camera': look_at_label(0, 0)}, r'\(3, C, R, R\)'),
        'int_planes.pt': ({'planes': torch.zeros(3, C, R, R, dtype=torch.long), 'camera': look_at_label(0, 0)},
                          'float tensor'),
        'short_cam.pt': ({'planes': torch.zeros(3, C, R, R), 'camera': torch.zeros(16)}, r'\(25,\)'),
        'nan.pt': ({'planes': torch.full((3, C, R, R), float('nan')), 'camera': look_at_label(0, 0)}, 'NaN'),
        'xyz.pt': ({'planes': torch.zeros(3, C, R, R), 'camera': look_at_label(0, 0), 'plane_axes': 'xyz'},
                   'triplane_axes'),
    }
    for name, (payload, message) in cases.items():
        torch.save(payload, tmp_path / name)
        with pytest.raises(ValueError, match=message) as err:
            read_triplane_file(str(tmp_path / name))
        assert name in str(err.value)
    (tmp_path / 'junk.pt').write_bytes(b'not a pickle')
    with pytest.raises(ValueError, match='junk.pt cannot be read'):
        read_triplane_file(str(tmp_path / 'junk.pt'))


def test_eg3d_decoder_conversion_matches_the_equalised_lr_mlp_by_hand(tmp_path):
    state = _eg3d_decoder_state(seed=3)
    torch.save(state, tmp_path / 'dec.pt')
    renderer = TriplaneRenderer(**RENDERER_KW)
    assert load_renderer_weights(renderer, str(tmp_path / 'dec.pt')) == 'eg3d'
    planes, points = torch.randn(1, 3, C, R, R), torch.rand(1, 50, 3) - 0.5
    feats = sample_triplane(planes, points, 'eg3d')
    # EG3D FullyConnectedLayer: x @ (W * lr_mul / sqrt(fan_in)).T + b * lr_mul, lr_mul = 1
    h = F.softplus(feats @ (state['net.0.weight'] / math.sqrt(C)).T + state['net.0.bias'])
    out = h @ (state['net.2.weight'] / math.sqrt(8)).T + state['net.2.bias']
    sigma, rgb = renderer.query(planes, points)
    assert torch.allclose(sigma, out[..., 0], atol=1e-5)
    assert torch.allclose(rgb, torch.sigmoid(out[..., 1:4]) * 1.002 - 0.001, atol=1e-5)
    half = convert_eg3d_decoder(state, lr_mul=0.5)
    assert torch.allclose(half['decoder.0.weight'], state['net.0.weight'] * 0.5 / 2)
    with pytest.raises(ValueError, match='plane_axes: eg3d'):
        load_renderer_weights(TriplaneRenderer(**{**RENDERER_KW, 'plane_axes': 'xyz'}), str(tmp_path / 'dec.pt'))
    with pytest.raises(RuntimeError, match='do not fit network_renderer'):
        load_renderer_weights(TriplaneRenderer(**{**RENDERER_KW, 'hidden': 16}), str(tmp_path / 'dec.pt'))
    torch.save({'foo.weight': torch.zeros(2)}, tmp_path / 'other.pt')
    with pytest.raises(KeyError, match='OSGDecoder'):
        load_renderer_weights(renderer, str(tmp_path / 'other.pt'))


def _tiny_overrides(root, total_iter=3):
    return [
        'name=ext_tiny', f'train.total_iter={total_iter}', f'train.scheduler.periods=[{total_iter}]',
        f'datasets.train.dataroot_gt={root}/train/gt', f'datasets.train.triplane_dir={root}/train/planes',
        f'datasets.val.dataroot_gt={root}/val/gt', f'datasets.val.triplane_dir={root}/val/planes',
        'datasets.train.gt_size=32', 'datasets.val.gt_size=32', 'datasets.train.batch_size_per_gpu=3',
        'datasets.train.num_worker_per_gpu=0', f'path.pretrain_network_renderer={root}/eg3d_decoder.pt',
        f'network_g.plane_channels={C}', 'network_g.base_channels=8', 'network_g.image_downsample=1',
        f'network_renderer.plane_channels={C}', 'network_renderer.hidden=8', 'network_renderer.resolution=8',
        'network_renderer.num_coarse=6', 'network_renderer.num_fine=6', f'triplane_resolution={R}',
        'train.ema_decay=0.5', 'val.val_freq=3', 'val.sampling_steps=2', 'logger.print_freq=1',
        'logger.save_checkpoint_freq=3', 'logger.use_tb_logger=false'
    ]


def test_ddpm_trains_on_external_planes_with_a_renderer_only(external_set, tmp_path):
    root, files = external_set
    opt = train_pipeline(['-opt', EXTERNAL_OPT, '--cfg-options', *_tiny_overrides(root)], root_path=str(tmp_path)).opt
    models = opt['path']['models']
    saved = torch.load(osp.join(models, 'net_g_3.pth'))['params']
    renderer_ckpt = osp.join(models, 'net_renderer_3.pth')
    assert osp.isfile(renderer_ckpt) and not osp.exists(osp.join(models, 'net_generator_3.pth'))

    # targets are the files' planes (mirrored with the camera when flipped), standardised with the stored stats
    model_opt = copy.deepcopy(opt)
    model_opt.update(is_train=True, dist=False, device='cpu')
    model = build_model(model_opt)
    assert model.generator is None and 'net_renderer' in model.nets
    ds = _dataset(root, use_hflip=True)
    batch = {k: torch.stack([ds[i][k] for i in range(6)]) for k in ('lq', 'gt', 'camera', 'planes')}
    batch['lq_path'] = [ds[i]['lq_path'] for i in range(6)]
    model.feed_data(batch)
    denoiser = model.bare(model.nets['net_g'])
    denoiser.load_state_dict(saved)
    for i in range(6):
        planes, camera = files[('train', f'{i:03d}')]
        if not torch.equal(batch['gt'][i], _dataset(root, use_hflip=False)[i]['gt']):
            planes, camera = mirror_triplane(planes[None], 'eg3d')[0], mirror_label(camera[None])[0]
        x0 = denoiser.make_x0(planes[None], camera[None])
        assert torch.equal(model.x0_raw[i:i + 1], x0)
    std = denoiser.standardize(model.x0_raw)
    assert torch.allclose(std, (model.x0_raw - denoiser.x_mean[:, None, None]) / denoiser.x_std[:, None, None])
    assert bool(denoiser.stats_ready) and not torch.all(denoiser.x_std == 1)  # set from the first training batch
    model.optimize_parameters(4)
    assert math.isfinite(model.get_current_log()['l_noise'])

    # the prior from the renderer-only option file: EG3D weights or the saved toolkit renderer give the same render
    lq = batch['lq'][:2]
    dd = osp.join(models, 'net_g_3.pth')
    a = PriorExtractor.from_options(model_opt, dd, generator_weights=renderer_ckpt, steps=2).extract(lq, seed=1)
    b = PriorExtractor.from_options(model_opt, dd, renderer_weights=f'{root}/eg3d_decoder.pt', steps=2)
    b = b.extract(lq, seed=1)
    assert a['render'].shape == (2, 3, 8, 8) and torch.allclose(a['render'], b['render'], atol=1e-6)
    with pytest.raises(ValueError, match='exactly one of network_generator'):
        PriorExtractor.from_options({**model_opt, 'network_generator': {'type': 'TriplaneGenerator'}}, dd)
    no_res = {k: v for k, v in model_opt.items() if k != 'triplane_resolution'}
    with pytest.raises(ValueError, match='triplane_resolution'):
        PriorExtractor.from_options(no_res, dd)
    # a batch without planes cannot be used without a generator
    with pytest.raises(ValueError, match='triplane_dir'):
        model.feed_data({k: v for k, v in batch.items() if k != 'planes'})
    with pytest.raises(ValueError, match=r'expected \(3, 4, 8, 8\)'):
        model.feed_data({**batch, 'planes': batch['planes'][..., :4, :4]})
