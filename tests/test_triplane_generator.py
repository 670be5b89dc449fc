"""3D feature generator: face/depth dataset, encoder shapes, losses, and a short CPU training that lowers the loss."""
import os.path as osp

import numpy as np
import pytest
import torch

from lowlight3d.archs.triplane_encoder_arch import TriplaneEncoder, TriplaneGenerator
from lowlight3d.data.demo_faces import generate_demo_dataset
from lowlight3d.data.face_depth_dataset import FaceDepthDataset
from lowlight3d.data.lowlight_face_dataset import PairedLowLightFaceDataset
from lowlight3d.losses.triplane_losses_loss import MaskedDepthLoss
from lowlight3d.models import build_model
from lowlight3d.utils.camera import look_at_label, mirror_label
from lowlight3d.utils.options import load_config

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
GEN_OPT = osp.join(REPO, 'options', 'demo', 'train_TriplaneGenerator_demo.yml')


@pytest.fixture(scope='module')
def tiny_faces(tmp_path_factory):
    """8 train / 2 val demo faces at 32x32 with exact depth, masks and cameras."""
    root = str(tmp_path_factory.mktemp('tiny_faces'))
    generate_demo_dataset(root, num_train=8, num_val=2, num_test=1, num_unpaired=1, size=32, num_workers=0)
    return root


def _data_opt(root, split='train', **extra):
    return {
        'name': f'tiny_{split}', 'phase': 'train' if split == 'train' else 'val', 'dataroot_gt': f'{root}/{split}/gt',
        'depth_source': 'files', 'dataroot_depth': f'{root}/{split}/depth', 'dataroot_mask': f'{root}/{split}/mask',
        'camera_file': f'{root}/{split}/cameras.json', 'gt_size': 32, **extra
    }


def test_dataset_flip_mirrors_depth_mask_and_camera(tiny_faces):
    ds = FaceDepthDataset(_data_opt(tiny_faces, use_hflip=True))
    plain = FaceDepthDataset(_data_opt(tiny_faces, use_hflip=False))
    flipped = [i for i in range(len(ds)) if not torch.equal(ds[i]['gt'], plain[i]['gt'])]
    assert flipped and len(flipped) < len(ds)  # both cases occur in 8 draws with seed 0
    i = flipped[0]
    a, b = ds[i], plain[i]
    assert torch.equal(a['gt'], b['gt'].flip(-1)) and torch.equal(a['depth'], b['depth'].flip(-1))
    assert torch.equal(a['mask'], b['mask'].flip(-1))
    assert torch.allclose(a['camera'], mirror_label(b['camera'][None])[0])
    assert bool(a['has_depth']) and a['depth'].shape == (1, 32, 32) and (a['depth'][a['mask'] > 0] > 2).all()
    # same (seed, epoch, index) -> same sample; the low-light input equals PairedLowLightFaceDataset's
    ds_ll = FaceDepthDataset(_data_opt(tiny_faces, lowlight=True))
    paired = PairedLowLightFaceDataset({'dataroot_gt': f'{tiny_faces}/train/gt', 'gt_size': 32})
    for ds_x in (ds_ll, paired):
        ds_x.set_epoch(3)
    assert torch.equal(ds_ll[5]['lq'], paired[5]['lq']) and torch.equal(ds_ll[5]['gt'], paired[5]['gt'])
    ds_ll.set_epoch(4)
    assert not torch.equal(ds_ll[5]['lq'], paired[5]['lq'])


def test_dataset_bad_options_name_the_problem(tiny_faces):
    with pytest.raises(ValueError, match='depth_source'):
        FaceDepthDataset(_data_opt(tiny_faces, depth_source='mediapipe'))
    with pytest.raises(FileNotFoundError, match='dataroot_depth'):
        FaceDepthDataset(_data_opt(tiny_faces, dataroot_depth=None))
    no_depth = FaceDepthDataset(_data_opt(tiny_faces, depth_source=None, dataroot_mask=None, camera_file=None))
    s = no_depth[0]
    assert not bool(s['has_depth']) and torch.all(s['mask'] == 1)
    assert torch.allclose(s['camera'], look_at_label(0, 0))


def test_encoder_shapes_and_errors():
    enc = TriplaneEncoder(plane_channels=4, base_channels=8, channel_mults=(1, 2), num_up=1, num_bottleneck_blocks=1)
    assert enc(torch.randn(2, 3, 16, 16)).shape == (2, 3, 4, 8, 8) and enc.plane_resolution(16) == 8
    with pytest.raises(ValueError, match='divisible'):
        enc(torch.randn(1, 3, 18, 18))
    gen = TriplaneGenerator(encoder=dict(plane_channels=4, base_channels=8, channel_mults=(1, 2), num_up=2),
                            renderer=dict(hidden=8, resolution=8, num_coarse=4, num_fine=4), input_size=16)
    assert gen.plane_shape == (3, 4, 16, 16)
    assert gen(torch.rand(1, 3, 40, 40)).shape == (1, 3, 4, 16, 16)  # resized to input_size


def test_depth_loss_scale_shift_fit():
    target = torch.rand(2, 1, 6, 6) + 1
    mask = torch.ones_like(target)
    mask[:, :, :2] = 0
    pred = 0.6 * target + 0.3
    assert MaskedDepthLoss(fit='scale_shift')(pred, target, mask) < 1e-5
    assert MaskedDepthLoss(fit='none')(pred, target, mask) > 0.05
    assert MaskedDepthLoss()(pred, target, torch.zeros_like(mask)) == 0


def _generator_opt(root, tmp_path, total_iter):
    opt = load_config(GEN_OPT)
    opt.update(is_train=True, dist=False, device='cpu', rank=0, world_size=1)
    opt['path'] = {'models': str(tmp_path), 'training_states': str(tmp_path)}
    opt['network_generator']['input_size'] = 32
    opt['network_generator']['encoder'].update(base_channels=8, channel_mults=[1, 2], num_up=1)
    opt['network_generator']['renderer'].update(resolution=16, num_coarse=8, num_fine=8, hidden=16)
    opt['train']['scheduler']['periods'] = [total_iter]
    opt['train']['density_opt'].update(num_points=64, every=2)
    return opt


def test_generator_training_lowers_the_loss(tiny_faces, tmp_path):
    torch.manual_seed(0)
    iters = 30
    model = build_model(_generator_opt(tiny_faces, tmp_path, iters))
    assert set(model.losses) == {'rgb', 'depth', 'mirror', 'opacity', 'density', 'plane_reg'}
    ds = FaceDepthDataset(_data_opt(tiny_faces))
    batch = {k: torch.stack([ds[i][k] for i in range(4)]) for k in ('gt', 'depth', 'mask', 'camera', 'has_depth')}
    totals = []
    for it in range(1, iters + 1):
        model.update_learning_rate(it)
        model.feed_data(batch)
        model.optimize_parameters(it)
        totals.append(model.get_current_log()['l_rgb'] + model.get_current_log()['l_depth'])
    assert np.mean(totals[-5:]) < 0.85 * np.mean(totals[:5])
    model.test()
    vis = model.get_current_visuals()
    assert vis['result'].shape == vis['gt'].shape == (4, 3, 16, 16)
    model.save_networks('latest')
    assert osp.isfile(osp.join(str(tmp_path), 'net_generator_latest.pth'))


def test_a_misspelt_loss_block_is_rejected(tiny_faces, tmp_path):
    opt = _generator_opt(tiny_faces, tmp_path, 2)
    opt['train']['mirorr_opt'] = opt['train'].pop('mirror_opt')
    with pytest.raises(ValueError, match='train.mirorr_opt: TriplaneGeneratorModel does not use.*mirror_opt'):
        build_model(opt)


def test_opacity_loss_is_finite_for_saturated_opacity_in_bf16():
    """Opacity 1 outside the mask under bf16: the loss is the clamped BCE, finite, as in float32 (bf16 rounded the
    clamp bound 1 - 1e-4 to 1 and the loss was NaN, seen in a real-face generator run)."""
    from lowlight3d.losses.triplane_losses_loss import OpacityMaskLoss
    opacity = torch.ones(1, 1, 4, 4)
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., :2, :] = 1
    ref = OpacityMaskLoss(loss_weight=1.0)(opacity, mask)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        got = OpacityMaskLoss(loss_weight=1.0)(opacity.bfloat16(), mask.bfloat16())
    assert torch.isfinite(got) and got.item() == pytest.approx(ref.item(), rel=1e-3)
    assert ref.item() == pytest.approx(-0.5 * np.log(1e-4), rel=1e-3)  # half the pixels pay -log(1e-4)
