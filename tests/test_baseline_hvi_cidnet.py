"""HVI-CIDNet baseline: size, HVI round trip, loss terms by hand, quirks, schedule, GT-mean metrics, one iteration.

The perceptual term is built with ``vgg_weights: random_for_tests`` (a random VGG19 stand-in, no download).
"""
import glob
import json
import math
import os.path as osp

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import baselines  # noqa: F401  (registrations)
from baselines.hvi_cidnet.hvi_cidnet_arch import CIDNet, HVITransform
from baselines.hvi_cidnet.hvi_cidnet_loss import (
    HVICIDNetLoss,
    edge_loss,
    gaussian_window,
    laplacian_residual,
    ssim_index,
)
from baselines.hvi_cidnet.hvi_cidnet_model import WarmupCosine
from lowlight3d.archs.vgg_feature_extractor_arch import RandomVGGWarning

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TRAIN_OPT = osp.join(REPO, 'options', 'demo', 'train_HVICIDNet_randomVGG_demo.yml')
TINY = {'channels': [4, 4, 8, 8], 'heads': [1, 2, 4, 8]}

# Round-trip bound: the original's inverse puts eps = 1e-8 inside sqrt(H^2 + V^2 + eps), so s >= 1e-4 and a gray
# pixel of value v comes back with min(R, G, B) = v (1 - 1e-4): error <= 1e-4 (+ float32 rounding).
ROUND_TRIP_TOL = 1e-4 + 2e-6


def test_parameter_count_equals_the_official_code():
    assert sum(p.numel() for p in CIDNet().parameters()) == 1_975_569
    assert sum(p.numel() for p in CIDNet(upstream_quirks=False).parameters()) == 1_975_569


def _round_trip_error(img):
    trans = HVITransform()
    with torch.no_grad():
        return (trans.phvit(trans.hvit(img)) - img).abs().max().item()


def test_hvi_round_trip_random_images():
    torch.manual_seed(0)
    img = torch.rand(2, 3, 40, 40)
    img[0, :, :4] = img[0, :1, :4]  # gray pixels
    img[1, :, :2, :2] = 0.0  # black
    img[1, :, 2:4, :2] = 1.0  # white
    img[1, 1, 4:6] = img[1, 0, 4:6]  # red/green ties for the maximum
    assert _round_trip_error(img) <= ROUND_TRIP_TOL
    trans = HVITransform()
    hvi = trans.hvit(img)
    assert hvi[:, :2].abs().max() <= 1 and torch.equal(hvi[:, 2], img.max(1)[0])
    assert torch.allclose(trans.hvit(img * 0 + 0.5)[:, :2], torch.zeros(2, 2, 40, 40))  # gray -> no colour


def test_hvi_round_trip_real_images(shared_data):
    import cv2
    paths = sorted(glob.glob(osp.join(shared_data, 'lowlight_real', 'LOL_eval15_low', '*.png')))[:2]
    paths += sorted(glob.glob(osp.join(shared_data, 'faces_hq', 'ffhq', '**', '*.png'), recursive=True))[:2]
    assert paths, 'no real images found'
    for path in paths:
        img = cv2.resize(cv2.imread(path), (96, 96), interpolation=cv2.INTER_AREA)[:, :, ::-1] / 255.0
        tensor = torch.from_numpy(img.copy()).permute(2, 0, 1)[None].float()
        assert _round_trip_error(tensor) <= ROUND_TRIP_TOL, path


def test_hvi_density_k_is_learnable_and_detached_in_the_inverse():
    trans = HVITransform()
    img = torch.rand(1, 3, 8, 8)
    trans.hvit(img).sum().backward()
    assert trans.density_k.grad is not None and trans.density_k.grad.abs().item() > 0
    trans.density_k.grad = None
    hvi = torch.rand(1, 3, 8, 8, requires_grad=True)
    trans.phvit(hvi).sum().backward()
    assert trans.density_k.grad is None and hvi.grad is not None


def test_ssim_term_by_hand():
    torch.manual_seed(0)
    a, b = torch.rand(1, 2, 13, 13), torch.rand(1, 2, 13, 13)
    assert ssim_index(a, a).item() == pytest.approx(1.0, abs=1e-6)
    win = gaussian_window(11, 1.5).double()
    assert win.sum().item() == pytest.approx(1.0)
    # by hand at every pixel: windowed statistics with zero padding 5, C1 = 1e-4, C2 = 9e-4
    pa, pb = F.pad(a.double(), (5, 5, 5, 5)), F.pad(b.double(), (5, 5, 5, 5))
    values = []
    for c in range(2):
        for i in range(13):
            for j in range(13):
                x, y = pa[0, c, i:i + 11, j:j + 11], pb[0, c, i:i + 11, j:j + 11]
                mx, my = (win * x).sum(), (win * y).sum()
                vx, vy = (win * x * x).sum() - mx**2, (win * y * y).sum() - my**2
                cxy = (win * x * y).sum() - mx * my
                values.append(((2 * mx * my + 1e-4) * (2 * cxy + 9e-4)) / ((mx**2 + my**2 + 1e-4) * (vx + vy + 9e-4)))
    assert ssim_index(a, b).item() == pytest.approx(torch.stack(values).mean().item(), abs=1e-5)


def test_edge_term_by_hand():
    # a single bright pixel at (2, 2) of a 6x6 zero image, one channel
    img = torch.zeros(1, 1, 6, 6)
    img[0, 0, 2, 2] = 1.0
    k1 = torch.tensor([.05, .25, .4, .25, .05])
    kernel = k1[:, None] * k1[None, :]

    def blur(x):  # replicate padding by hand
        padded = x[np.clip(np.arange(-2, 8), 0, 5)][:, np.clip(np.arange(-2, 8), 0, 5)]
        return torch.stack([torch.stack([(padded[i:i + 5, j:j + 5] * kernel).sum() for j in range(6)])
                            for i in range(6)])

    g = blur(img[0, 0])
    up = torch.zeros(6, 6)
    up[::2, ::2] = 4 * g[::2, ::2]
    expected = img[0, 0] - blur(up)
    assert torch.allclose(laplacian_residual(img)[0, 0], expected, atol=1e-6)
    assert edge_loss(img, torch.zeros_like(img)).item() == pytest.approx((expected**2).mean().item(), rel=1e-5)
    # a constant image has no residual away from the border (zero insertion + replicate padding: the border 2 px do)
    flat = torch.full((1, 3, 12, 12), 0.3)
    assert laplacian_residual(flat)[..., 2:-2, 2:-2].abs().max().item() < 1e-6


def test_full_loss_terms_and_weights():
    torch.manual_seed(0)
    net = CIDNet(**TINY)
    out, gt = net(torch.rand(1, 3, 16, 16) * 0.2), torch.rand(1, 3, 16, 16)
    with pytest.warns(RandomVGGWarning):
        loss = HVICIDNetLoss(vgg_weights='random_for_tests')
    terms = loss.terms(out, gt, net.hvit)
    assert list(terms) == [f'{s}_{t}' for s in ('rgb', 'hvi') for t in ('l1', 'ssim', 'edge', 'percep')]
    assert terms['rgb_l1'].item() == pytest.approx((out - gt).abs().mean().item(), rel=1e-6)
    assert terms['rgb_ssim'].item() == pytest.approx(0.5 * (1 - ssim_index(out, gt).item()), rel=1e-5)
    assert terms['rgb_edge'].item() == pytest.approx(50 * edge_loss(out, gt).item(), rel=1e-5)
    hvi_out, hvi_gt = net.hvit(out), net.hvit(gt)
    assert terms['hvi_l1'].item() == pytest.approx((hvi_out - hvi_gt).abs().mean().item(), rel=1e-5)
    assert loss(out, gt, net.hvit).item() == pytest.approx(sum(t.item() for t in terms.values()), rel=1e-5)
    p = loss.perceptual
    feats = [p.vgg[:i + 1]((((x + 1) / 2) - p.mean) / p.std) for x in (out, gt) for i in (2, 7, 16, 25)]
    expected = 0.01 * sum(F.mse_loss(feats[i], feats[i + 4]).item() for i in range(4))
    assert terms['rgb_percep'].item() == pytest.approx(expected, rel=1e-4)
    sum(terms.values()).backward()
    assert net.trans.density_k.grad is not None  # the HVI terms reach k
    rgb_only = HVICIDNetLoss(hvi_weight=0, perceptual_weight=0)
    assert list(rgb_only.terms(out, gt)) == ['rgb_l1', 'rgb_ssim', 'rgb_edge']
    with pytest.raises(ValueError, match='hvit'):
        HVICIDNetLoss(perceptual_weight=0).terms(out, gt)
    with pytest.raises(ValueError, match='unknown'):
        HVICIDNetLoss(layers=['conv9_9'], vgg_weights='random_for_tests')
    with pytest.raises(ValueError, match='>= 0'):
        HVICIDNetLoss(edge_weight=-1, perceptual_weight=0)


def test_missing_vgg19_fails_clearly(monkeypatch, tmp_path):
    from lowlight3d.utils.weights import WeightsNotFoundError
    monkeypatch.setenv('LOWLIGHT3D_WEIGHTS', str(tmp_path))
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(WeightsNotFoundError, match='vgg19-dcbb9e9d.pth'):
        HVICIDNetLoss(download=False)


def test_quirks_switch_and_any_size():
    torch.manual_seed(0)
    quirky = CIDNet(**TINY).eval()
    fixed = CIDNet(**TINY, upstream_quirks=False).eval()
    fixed.load_state_dict(quirky.state_dict())
    x = torch.rand(1, 3, 16, 24) * 0.3
    with torch.no_grad():
        assert not torch.allclose(quirky(x), fixed(x))
    quirky(x).mean().backward()  # issue #60: the fifth I-branch LCA gets no gradient with the quirks
    assert all(p.grad is None for p in quirky.I_LCA5.parameters())
    assert all(p.grad is not None for p in quirky.I_LCA4.parameters())
    for size in [(17, 30), (5, 3), (32, 32)]:
        x = torch.rand(2, 3, *size)
        with torch.no_grad():
            y = quirky(x)
        assert y.shape == x.shape and 0 <= y.min() and y.max() <= 1
    # padding changes nothing on a multiple-of-8 input: the padded result's crop equals the unpadded run
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(quirky(x), quirky._forward(x))
    with pytest.raises(ValueError, match='N x 3'):
        quirky(torch.rand(1, 1, 8, 8))
    with pytest.raises(ValueError, match='divisible'):
        CIDNet(channels=[6, 6, 6, 6], heads=[4, 4, 4, 4])


def test_warmup_cosine_schedule():
    rule = WarmupCosine(warmup_iter=4, total_iter=14, eta_min_ratio=0.01)
    assert [rule(t) for t in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert rule(9) == pytest.approx(0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert rule(14) == pytest.approx(0.01) and rule(100) == pytest.approx(0.01)
    with pytest.raises(ValueError, match='warmup_iter'):
        WarmupCosine(10, 10)


def test_gt_mean_metrics_by_hand():
    import cv2

    from lowlight3d.metrics.metric_util import METRIC_INFO, compute_metric
    from lowlight3d.metrics.psnr_ssim_metric import psnr
    rng = np.random.default_rng(0)
    gt = rng.integers(40, 200, (16, 16, 3)).astype(np.uint8)
    pred = (gt // 2).astype(np.uint8)  # half as bright
    scale = cv2.cvtColor(gt, cv2.COLOR_BGR2GRAY).mean() / cv2.cvtColor(pred, cv2.COLOR_BGR2GRAY).mean()
    expected = psnr(np.clip(pred * scale, 0, 255), gt)
    value = compute_metric({'type': 'psnr_gtmean'}, pred, gt)
    assert value == pytest.approx(expected) and value > psnr(pred, gt) + 10
    assert compute_metric({'type': 'ssim_gtmean'}, gt, gt) == pytest.approx(1.0)
    assert METRIC_INFO['psnr_gtmean'] == {'reference': 'full', 'better': 'higher'}
    from lowlight3d.metrics.gtmean_metric import psnr_gtmean
    from lowlight3d.metrics.metric_util import MetricUnavailable
    with pytest.raises(MetricUnavailable, match='black'):
        psnr_gtmean(np.zeros_like(gt), gt)


def test_one_training_iteration_and_testing(tmp_path, tiny_image_sets):
    from lowlight3d.pipeline.test_pipeline import test_pipeline
    from lowlight3d.pipeline.train_pipeline import train_pipeline
    sets = tiny_image_sets
    with pytest.warns(RandomVGGWarning):
        opt = train_pipeline(['-opt', TRAIN_OPT, '--cfg-options', 'name=hvi', 'train.total_iter=2',
                              f'datasets.train.dataroot_gt={sets}/train', f'datasets.val.dataroot_gt={sets}/val',
                              'datasets.train.gt_size=32', 'datasets.val.gt_size=32',
                              'datasets.train.batch_size_per_gpu=2', 'network_g.channels=[4,4,8,8]',
                              '+train.random_gamma=[0.6,1.2]', 'logger.print_freq=1', 'logger.use_tb_logger=false',
                              'val.val_freq=2', 'logger.save_checkpoint_freq=2'], root_path=str(tmp_path)).opt
    logged = json.load(open(osp.join(opt['path']['experiments_root'], 'history.json')))['losses']
    assert len(logged) == 2 and all(math.isfinite(row['l_total']) for row in logged)
    assert {'l_cid_rgb_l1', 'l_cid_rgb_percep', 'l_cid_hvi_edge', 'l_cid_hvi_ssim'} <= set(logged[0])
    weights = osp.join(opt['path']['models'], 'net_g_latest.pth')
    assert osp.isfile(weights)
    summary = test_pipeline(['-opt', osp.join(REPO, 'options', 'demo', 'test_HVICIDNet_randomVGG_demo.yml'),
                             '--cfg-options', 'name=hvi_test', f'path.pretrain_network_g={weights}',
                             'network_g.channels=[4,4,8,8]', f'datasets.test_paired.dataroot_gt={sets}/val',
                             'datasets.test_paired.gt_size=30', f'datasets.test_unpaired.dataroot_lq={sets}/unpaired',
                             'datasets.test_unpaired.gt_size=30', 'datasets.test_unpaired.meta_info_file=~',
                             'val.metrics={psnr: {type: psnr}, psnr_gtmean: {type: psnr_gtmean}}'],
                            root_path=str(tmp_path))
    metrics = summary['DemoFacesTest']['metrics']
    assert isinstance(metrics['psnr'], float) and isinstance(metrics['psnr_gtmean'], float)
    assert summary['DemoFacesUnpaired']['num_images'] == 3
