"""EnlightenGAN baseline: shapes and sizes, losses against hand computations, unpaired data, one training run.

The self-feature-preserving loss is built with ``vgg_weights: random_for_tests`` (a random-weight VGG16 stand-in,
no download) everywhere in this file, except where the real-weights path is exercised with a saved random file.
"""
import os.path as osp

import pytest
import torch
import torch.nn.functional as F

import baselines  # noqa: F401  (registrations)
from baselines.enlightengan.enlightengan_arch import EnlightenGANDiscriminator, EnlightenGANGenerator, attention_map
from baselines.enlightengan.enlightengan_loss import (
    VGG16_FILENAME,
    EnlightenGANLSGANLoss,
    EnlightenGANRelativisticLSGANLoss,
    EnlightenGANSelfFeaturePreservingLoss,
    RandomVGGWarning,
)
from baselines.enlightengan.enlightengan_model import LinearDecayAfter, random_darken, random_patch_boxes
from lowlight3d.data import build_dataset
from lowlight3d.utils.weights import WeightsNotFoundError

from conftest import write_smooth_images

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TRAIN_OPT = osp.join(REPO, 'options', 'demo', 'train_EnlightenGAN_randomVGG_demo.yml')


def _random_sfp(**kwargs):
    with pytest.warns(RandomVGGWarning):
        return EnlightenGANSelfFeaturePreservingLoss(vgg_weights='random_for_tests', **kwargs)


def test_sizes_match_the_original():
    assert sum(p.numel() for p in EnlightenGANGenerator().parameters()) == 8_636_675
    assert sum(p.numel() for p in EnlightenGANDiscriminator(n_layers=5).parameters()) == 11_154_369
    assert sum(p.numel() for p in EnlightenGANDiscriminator(n_layers=4).parameters()) == 6_959_553


@pytest.mark.parametrize('size', [(32, 32), (21, 38)])
def test_generator_shape_and_identity_when_residual_is_zero(size):
    g = EnlightenGANGenerator(num_feat=4).eval()
    x = torch.rand(2, 3, *size)
    y = g(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    torch.nn.init.zeros_(g.to_residual.weight)
    torch.nn.init.zeros_(g.to_residual.bias)
    assert torch.allclose(g(x), x, atol=1e-6)  # out = x + A * R with R = 0, mapped back to [0, 1]


def test_generator_shrinks_large_inputs():
    g = EnlightenGANGenerator(num_feat=4, max_side=40).eval()
    assert g(torch.rand(1, 3, 48, 30)).shape == (1, 3, 48, 30)


def test_attention_map_is_one_minus_luma():
    img = torch.tensor([1.0, 0.5, 0.0]).view(1, 3, 1, 1)
    assert torch.allclose(attention_map(img), torch.tensor(1 - (0.299 + 0.5 * 0.587)).view(1, 1, 1, 1))


def test_discriminator_output_size():
    # 4x4 convs with padding 2: stride 2 maps n -> n // 2 + 1, stride 1 maps n -> n + 1
    d = EnlightenGANDiscriminator(ndf=4, n_layers=2)
    n = 32
    for _ in range(2):
        n = n // 2 + 1
    n = n + 1 + 1
    assert d(torch.rand(3, 3, 32, 32)).shape == (3, 1, n, n)


def test_relativistic_lsgan_by_hand():
    loss = EnlightenGANRelativisticLSGANLoss(loss_weight=2.0)
    real, fake = torch.tensor([1.0, 2.0]), torch.tensor([0.0, 1.0])
    # E real = 1.5, E fake = 0.5. D: 1/2 [mean((0.5, 1.5) - 1)^2 + mean((-1.5, -0.5))^2] = 1/2 (0.25 + 1.25)
    assert loss(real, fake, for_discriminator=True).item() == pytest.approx(2.0 * 0.75)
    # G: 1/2 [mean((0.5, 1.5))^2 + mean((-1.5, -0.5) - 1)^2] = 1/2 (1.25 + 4.25)
    assert loss(real, fake, for_discriminator=False).item() == pytest.approx(2.0 * 2.75)


def test_lsgan_by_hand():
    loss = EnlightenGANLSGANLoss()
    real, fake = torch.tensor([1.0, 2.0]), torch.tensor([0.0, 1.0])
    assert loss(fake).item() == pytest.approx(0.5)  # mean((f - 1)^2) = (1 + 0) / 2
    assert loss(fake, real).item() == pytest.approx(0.5 * (0.5 + 0.5))


def test_self_feature_preserving_loss_by_hand():
    sfp = _random_sfp(loss_weight=3.0)
    a, b = torch.rand(2, 3, 32, 32, requires_grad=True), torch.rand(2, 3, 32, 32)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    feats = [F.instance_norm(sfp.vgg((t - mean) / std)) for t in (a, b)]
    assert feats[0].shape == (2, 512, 4, 4)  # relu5_1 without the 4th max-pool: 1/8 resolution
    value = sfp(a, b)
    assert value.item() == pytest.approx(3.0 * F.mse_loss(*feats).item(), rel=1e-5)
    assert sfp(b, b).item() == pytest.approx(0.0, abs=1e-6)
    value.backward()
    assert a.grad is not None and not any(p.requires_grad for p in sfp.vgg.parameters())


def test_vgg_weights_offline_fail_clearly_and_load_from_a_path(tmp_path, monkeypatch):
    monkeypatch.setenv('LOWLIGHT3D_WEIGHTS', str(tmp_path / 'empty'))
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(WeightsNotFoundError, match=VGG16_FILENAME):
        EnlightenGANSelfFeaturePreservingLoss(download=False)
    # a weights file given by path (random weights saved in torchvision's key layout) is loaded exactly
    from torchvision.models import vgg16
    state = {f'features.{k}': v for k, v in vgg16(weights=None).features.state_dict().items()}
    path = tmp_path / VGG16_FILENAME
    torch.save(state, path)
    sfp = EnlightenGANSelfFeaturePreservingLoss(vgg_weights=str(path))
    assert torch.equal(sfp.vgg[0].weight, state['features.0.weight'])
    assert torch.equal(sfp.vgg[-2].weight, state['features.24.weight'])  # conv5_1


def test_random_darken_and_patch_boxes():
    img = torch.full((64, 3, 4, 4), 0.8)
    assert torch.equal(random_darken(img, prob=0.0), img)
    dark = random_darken(img, prob=1.0, low=2.0, high=4.0)
    assert (dark <= 0.4 + 1e-6).all() and (dark >= 0.2 - 1e-6).all()
    mixed = random_darken(img, prob=0.5)
    changed = (mixed[:, 0, 0, 0] < 0.8).float().mean().item()
    assert 0.2 < changed < 0.8
    boxes = random_patch_boxes(10, 12, 8, 200)
    assert {t for t, _ in boxes} == {0, 1, 2} and {x for _, x in boxes} == {0, 1, 2, 3, 4}
    with pytest.raises(ValueError, match='patch_size'):
        random_patch_boxes(6, 12, 8, 1)


def test_linear_decay_schedule():
    rule = LinearDecayAfter(4, 8)
    assert [rule(s) for s in range(9)] == [1, 1, 1, 1, 1.0, 0.75, 0.5, 0.25, 0.0]
    with pytest.raises(ValueError):
        LinearDecayAfter(9, 8)


def test_unpaired_two_domain_dataset_never_pairs_and_is_seeded(tmp_path):
    write_smooth_images(tmp_path / 'faces', 3, size=16)
    opt = {'type': 'UnpairedTwoDomainDataset', 'phase': 'train', 'seed': 5, 'gt_size': 16,
           'low': {'type': 'PairedLowLightFaceDataset', 'dataroot_gt': str(tmp_path / 'faces')},
           'normal': {'dataroot_gt': str(tmp_path / 'faces')}}
    ds = build_dataset(opt)
    assert len(ds) == 3
    refs = set()
    for epoch in range(6):
        ds.set_epoch(epoch)
        for i in range(3):
            item = ds[i]
            assert item['lq'].shape == item['ref'].shape == (3, 16, 16)
            assert item['ref_path'] != item['lq_path']  # never the ground truth of its own low-light image
            refs.add((i, item['ref_path']))
    assert len(refs) == 6  # each item meets both other faces over the epochs
    again = build_dataset(opt)
    again.set_epoch(5)
    assert torch.equal(again[2]['ref'], ds[2]['ref']) and torch.equal(again[2]['lq'], ds[2]['lq'])
    with pytest.raises(ValueError, match="'normal'"):
        build_dataset({k: v for k, v in opt.items() if k != 'normal'})


def test_one_training_iteration_and_testing(tmp_path, tiny_image_sets):
    from lowlight3d.pipeline.test_pipeline import test_pipeline
    from lowlight3d.pipeline.train_pipeline import train_pipeline
    from lowlight3d.utils.checkpoint import load_checkpoint
    sets = tiny_image_sets
    with pytest.warns(RandomVGGWarning):
        opt = train_pipeline(['-opt', TRAIN_OPT, '--cfg-options', 'name=egan', 'train.total_iter=2',
                              f'datasets.train.low.dataroot_gt={sets}/train',
                              f'datasets.train.normal.dataroot_gt={sets}/train', f'datasets.val.dataroot_gt={sets}/val',
                              'datasets.train.gt_size=32', 'datasets.val.gt_size=32',
                              'datasets.train.batch_size_per_gpu=2',
                              'train.local.patch_size=16', 'network_g.num_feat=4', 'network_d_global.ndf=4',
                              'network_d_local.ndf=4', 'logger.print_freq=1', 'logger.use_tb_logger=false',
                              'val.val_freq=2', 'logger.save_checkpoint_freq=2'], root_path=str(tmp_path)).opt
    state = load_checkpoint(osp.join(opt['path']['training_states'], '2.state'))
    assert set(state['networks']) == {'net_g', 'net_d_global', 'net_d_local'}
    assert set(state['optimizers']) == {'optim_g', 'optim_d'}
    history = osp.join(opt['path']['experiments_root'], 'history.json')
    import json
    logged = json.load(open(history))['losses'][-1]
    for key in ('l_g_global', 'l_g_local', 'l_sfp', 'l_sfp_local', 'l_d_global', 'l_d_local'):
        assert key in logged and logged[key] == logged[key]
    shares = [logged[f'share_{k}'] for k in ('g_global', 'g_local', 'sfp', 'sfp_local')]  # print_freq 1: measured
    assert sum(shares) == pytest.approx(1.0) and logged['grad_total'] > 0
    weights = osp.join(opt['path']['models'], 'net_g_latest.pth')
    summary = test_pipeline(['-opt', osp.join(REPO, 'options', 'demo', 'test_EnlightenGAN_randomVGG_demo.yml'),
                             '--cfg-options', 'name=egan_test', f'path.pretrain_network_g={weights}',
                             'network_g.num_feat=4', 'network_d_global.ndf=4', 'network_d_local.ndf=4',
                             f'datasets.test_paired.dataroot_gt={sets}/val', 'datasets.test_paired.gt_size=32',
                             f'datasets.test_unpaired.dataroot_lq={sets}/unpaired', 'datasets.test_unpaired.gt_size=32',
                             'datasets.test_unpaired.meta_info_file=~',
                             'val.metrics={psnr: {type: psnr, crop_border: 0}}'], root_path=str(tmp_path))
    assert isinstance(summary['DemoFacesTest']['metrics']['psnr'], float)
    assert summary['DemoFacesUnpaired']['num_images'] == 3
