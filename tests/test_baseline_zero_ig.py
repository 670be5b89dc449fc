"""ZERO-IG baseline: network size and ranges, loss terms against hand computations, folder training, zero-shot test."""
import glob
import json
import math
import os.path as osp

import pytest
import torch

import baselines  # noqa: F401  (registrations)
from baselines.zero_ig.zero_ig_arch import EPS, ZeroIGNetwork, pair_downsample
from baselines.zero_ig.zero_ig_loss import (
    DEFAULT_WEIGHTS,
    ZeroIGLoss,
    edge_aware_smoothness,
    local_variance,
    luma,
    near_box_gaussian_kernel,
    texture_similarity_mask,
    total_variation,
)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TRAIN_OPT = osp.join(REPO, 'options', 'demo', 'train_ZeroIG_demo.yml')
TEST_OPT = osp.join(REPO, 'options', 'demo', 'test_ZeroIG_demo.yml')


def test_size_and_shared_enhancer_block():
    net = ZeroIGNetwork()
    assert sum(p.numel() for p in net.parameters()) == 86_572
    assert net.enhance.blocks[0] is net.enhance.blocks[2] is net.enhance.conv


@pytest.mark.parametrize('size', [(16, 16), (18, 22)])
def test_shapes_and_ranges(size):
    net = ZeroIGNetwork(enhancer_channels=8, denoiser_channels=8)
    x = torch.rand(2, 3, *size) * 0.2
    y = net(x)
    assert y.shape == x.shape and y.min() >= EPS and y.max() <= 1
    out = net.decompose(x)
    h, w = size[0] // 2, size[1] // 2
    assert out['s'].shape == x.shape and out['s'].min() >= 1e-4
    assert out['pred1'].shape == (2, 6, h, w) and out['L_pred1'].shape == (2, 3, h, w)
    assert torch.allclose(out['H3'], net(x))


def test_pair_downsample_by_hand():
    img = torch.arange(16, dtype=torch.float32).view(1, 1, 4, 4)
    a, b = pair_downsample(img)
    # block [[0, 1], [4, 5]]: a = (top-right + bottom-left) / 2 = (1 + 4) / 2, b = (top-left + bottom-right) / 2
    assert a[0, 0].tolist() == [[2.5, 4.5], [10.5, 12.5]]
    assert b[0, 0].tolist() == [[2.5, 4.5], [10.5, 12.5]]
    img = torch.tensor([[[[1.0, 2.0], [3.0, 5.0]]]])
    assert pair_downsample(img)[0].item() == 2.5 and pair_downsample(img)[1].item() == 3.0


def test_small_functions_by_hand():
    rgb = torch.tensor([0.2, 0.4, 0.6]).view(1, 3, 1, 1)
    assert luma(rgb).item() == pytest.approx(0.299 * 0.2 + 0.587 * 0.4 + 0.114 * 0.6)
    assert luma(rgb, upstream=True).item() == pytest.approx(0.144 * 0.2 + 0.587 * 0.4 + 0.299 * 0.6)
    x = torch.tensor([[[[0.0, 1.0], [2.0, 4.0]]]])
    # 2 (sum dy^2 / ((h-1) w) + sum dx^2 / (h (w-1))) / N = 2 ((4 + 9) / 2 + (1 + 4) / 2)
    assert total_variation(x).item() == pytest.approx(18.0)
    kernel = near_box_gaussian_kernel()
    assert kernel.shape == (21, 21) and kernel.sum().item() == pytest.approx(1.0)
    assert torch.allclose(kernel, kernel.T) and 1.4 < (kernel[10, 10] / kernel[0, 0]).item() < 2.0  # near-box
    # local variance: boxmean5((x - boxmean5(x))^2), zero padding; a single 1 in a 5x5 zero image, centre value
    img = torch.zeros(1, 1, 5, 5)
    img[0, 0, 2, 2] = 1.0
    mean = torch.nn.functional.avg_pool2d(img, 5, 1, 2)
    expected = ((img - mean)**2).mean()  # the centre window covers the whole image
    assert local_variance(img)[0, 0, 2, 2].item() == pytest.approx(expected.item())


def test_edge_aware_smoothness_by_hand():
    guide = torch.full((1, 3, 5, 6), 0.3)  # constant guide: every weight is exp(0) = 1
    s = torch.rand(1, 3, 5, 6)
    expected = 0.0
    for dy, dx in [(1, 0), (0, 1), (1, 1), (1, -1), (2, 0), (0, 2), (2, 1), (2, -1), (1, 2), (1, -2), (2, 2), (2, -2)]:
        diffs = []
        for i in range(5 - dy):
            for j in range(6):
                if 0 <= j + dx < 6:
                    diffs.append((s[0, :, i + dy, j + dx] - s[0, :, i, j]).abs().sum().item())
        expected += 2 * sum(diffs) / len(diffs)
    assert edge_aware_smoothness(guide, s).item() == pytest.approx(expected, rel=1e-5)


def test_texture_mask():
    torch.manual_seed(0)
    a = torch.rand(1, 3, 12, 12)
    assert texture_similarity_mask(a, a).mean().item() == 1.0
    assert texture_similarity_mask(a, a * 0.1).mean().item() < 0.1  # std ratio 10: 2*0.1/(1+0.01) ~ 0.2


def test_zero_ig_loss_terms_by_hand():
    torch.manual_seed(0)
    net = ZeroIGNetwork(enhancer_channels=8, denoiser_channels=8)
    x = torch.rand(1, 3, 24, 24) * 0.2
    out = net.decompose(x)
    out['L'] = torch.full_like(x, 0.1)
    out['s'] = torch.full_like(x, 0.5)
    terms = ZeroIGLoss().terms(out, x)
    assert list(terms) == list(DEFAULT_WEIGHTS)
    k = 5.0  # 0.5 / mean luma(L) = 0.5 / 0.1 (BT.601 weights sum to 1)
    rho = 0.7**(-k) / k
    assert terms['illum_target'].item() == pytest.approx(700 * (0.5 - rho * (k * 0.1)**k)**2, rel=1e-4)
    assert terms['illum_ratio'].item() == pytest.approx(1000 * (0.1 / 0.5 - k * 0.1)**2, rel=1e-4)
    assert terms['tv'].item() == 0 and terms['smooth'].item() == 0
    fixed, quirky = ZeroIGLoss().terms(net.decompose(x), x), ZeroIGLoss(upstream_quirks=True).terms(net.decompose(x), x)
    assert fixed['d1_n2n'].item() == pytest.approx(quirky['d1_n2n'].item())  # the quirks touch other terms only
    partial = ZeroIGLoss(weights={'tv': 0, 'color': 1.0}).terms(net.decompose(x), x)
    assert 'tv' not in partial and partial['color'].item() == pytest.approx(fixed['color'].item() / 1e4, rel=1e-5)
    with pytest.raises(ValueError, match='unknown term'):
        ZeroIGLoss(weights={'no_such_term': 1})
    small = torch.rand(1, 3, 8, 8)
    with pytest.raises(ValueError, match='at least 22'):
        ZeroIGLoss().terms(net.decompose(small), small)


def test_one_training_iteration(tmp_path, tiny_image_sets):
    from lowlight3d.pipeline.train_pipeline import train_pipeline
    sets = tiny_image_sets
    opt = train_pipeline(['-opt', TRAIN_OPT, '--cfg-options', 'name=zig', 'train.total_iter=2',
                          f'datasets.train.dataroot_gt={sets}/train', f'datasets.val.dataroot_gt={sets}/val',
                          'datasets.train.gt_size=32', 'datasets.val.gt_size=32', 'network_g.enhancer_channels=8',
                          'network_g.denoiser_channels=8', 'logger.print_freq=1', 'logger.use_tb_logger=false',
                          'val.val_freq=2', 'logger.save_checkpoint_freq=2'], root_path=str(tmp_path)).opt
    logged = json.load(open(osp.join(opt['path']['experiments_root'], 'history.json')))['losses']
    assert len(logged) == 2 and all(math.isfinite(row['l_total']) for row in logged)
    assert {f'l_{k}' for k in DEFAULT_WEIGHTS} <= set(logged[0])
    assert osp.isfile(osp.join(opt['path']['models'], 'net_g_latest.pth'))


def _zero_shot_model(steps, extra=()):
    from lowlight3d.models import build_model
    from lowlight3d.pipeline.option_loading import load_options
    opt = load_options(TEST_OPT, is_train=False, root_path='/tmp', cfg_options=[
        'path.pretrain_network_g=null', f'test_opt.steps={steps}', 'network_g.enhancer_channels=16',
        'network_g.denoiser_channels=16', *extra])
    return build_model(opt)


def test_zero_shot_on_a_real_image_lowers_its_loss_and_brightens_it(shared_data):
    import cv2
    path = sorted(glob.glob(osp.join(shared_data, 'lowlight_real', 'LOL_eval15_low', '*.png')))[0]
    img = cv2.resize(cv2.imread(path), (48, 48), interpolation=cv2.INTER_AREA)[:, :, ::-1] / 255.0
    lq = torch.from_numpy(img.copy()).permute(2, 0, 1)[None].float()
    model = _zero_shot_model(steps=8)
    before = {k: v.clone() for k, v in model.nets['net_g'].state_dict().items()}
    model.feed_data({'lq': lq, 'lq_path': [path]})
    model.test()
    log = model.zero_shot_log[-1]
    assert len(log['losses']) == 9 and log['losses'][-1] < 0.9 * log['losses'][0]
    result = model.get_current_visuals()['result']
    assert result.mean() > 2 * lq.mean()  # brightened (the LOL input has mean ~0.05)
    after = model.nets['net_g'].state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # initial weights restored
    model.test()  # deterministic per image, whatever came before
    assert torch.equal(model.get_current_visuals()['result'], result)
    other = _zero_shot_model(steps=8)  # a fresh model (same seed) gives the same result
    other.feed_data({'lq': lq, 'lq_path': [path]})
    other.test()
    assert torch.equal(other.get_current_visuals()['result'], result)
