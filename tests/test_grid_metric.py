"""The ``grid`` and ``chroma`` metrics, the up/down-samplers of the enhancer, and grayscale-stays-grayscale.

The sampler tests are the regression tests of issue 10: the enhancer's default up-sampling must not stamp a
period-2/4 pattern on a smooth input, freshly built and after a few training iterations; the old pixel-shuffle
default must fail the same check (so the test can fail on the defect).
"""
import glob
import os.path as osp

import cv2
import numpy as np
import pytest
import torch

from lowlight3d.archs import build_network
from lowlight3d.archs.arch_util import Downsample2x, Upsample2x, icnr_init_
from lowlight3d.metrics.grid_metric import chroma, grid, grid_ratios, luma_grid_ratios
from lowlight3d.metrics.metric_util import MetricUnavailable, compute_metric
from lowlight3d.utils.gray import is_gray, keep_gray


def _smooth_face_like(size=96, seed=0):
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.random((size, size, 3)).astype(np.float64), (0, 0), 4)
    img = (img - img.min()) / (img.max() - img.min())
    return (img * 200 + 20).astype(np.uint8)


# ------------------------------------------------------------------ grid metric
def test_grid_is_about_one_for_smooth_and_noise_images():
    assert grid(_smooth_face_like()) < 2.0
    noise = (np.random.default_rng(1).random((128, 128, 3)) * 255).astype(np.uint8)
    assert 0.7 < grid(noise) < 1.5


@pytest.mark.parametrize('period, axis', [(2, 'x'), (2, 'y'), (4, 'x'), (4, 'y')])
def test_grid_detects_each_line(period, axis):
    img = _smooth_face_like(128).astype(np.float64)
    pattern = np.zeros(img.shape[:2])
    if axis == 'x':
        pattern[:, ::period] = 1.0
    else:
        pattern[::period, :] = 1.0
    bad = np.clip(img + 6 * pattern[..., None], 0, 255).astype(np.uint8)
    ratios = grid_ratios(bad)
    assert ratios[f'{axis}{period}'] > 10 * grid_ratios(img.astype(np.uint8))[f'{axis}{period}']
    assert grid(bad) > 10


def test_grid_hand_computed_line_ratio():
    """A pure cosine at 1/4 cycles/pixel along x: all its high-passed energy is on the x4 line."""
    x = np.arange(64)
    luma = np.tile(0.5 + 0.1 * np.cos(2 * np.pi * x / 4), (64, 1)) + 1e-3 * np.random.default_rng(0).random((64, 64))
    ratios = luma_grid_ratios(luma)
    assert ratios['x4'] > 1e3 and ratios['y4'] < 10


def test_grid_errors_and_registry():
    with pytest.raises(MetricUnavailable, match='at least 32x32'):
        grid(np.zeros((20, 40, 3), np.uint8))
    with pytest.raises(MetricUnavailable, match='high-frequency'):
        grid(np.full((64, 64, 3), 128, np.uint8))
    img = _smooth_face_like()
    assert compute_metric({'type': 'grid'}, img) == pytest.approx(grid(img))


def test_grid_of_real_photos_is_low(shared_data):
    files = sorted(glob.glob(osp.join(shared_data, 'faces_utk', 'images', '*')))[:10]
    files += sorted(glob.glob(osp.join(shared_data, 'faces_yaleb', 'images', '*P00A+000E+00.png')))[:5]
    scores = [grid(cv2.imread(f)) for f in files]
    assert np.median(scores) < 2.0 and max(scores) < 4.0


def test_chroma():
    gray = np.repeat(_smooth_face_like()[..., :1], 3, axis=2)
    assert chroma(gray) == 0.0
    img = np.zeros((4, 4, 3), np.uint8)
    img[..., 2] = 30  # R = 30, G = B = 0 everywhere
    img[0, 0] = (10, 20, 40)  # chroma 30 as well
    assert chroma(img) == pytest.approx(30.0)


# ------------------------------------------------------------------ samplers
def test_icnr_makes_subpixel_filters_equal():
    conv = torch.nn.Conv2d(5, 3 * 4, 1)
    icnr_init_(conv.weight, 2, conv.bias)
    y = torch.nn.functional.pixel_shuffle(conv(torch.randn(1, 5, 6, 6)), 2)
    assert torch.allclose(y[..., 0::2, 0::2], y[..., 1::2, 1::2])
    assert torch.allclose(y[..., 0::2, 0::2], y[..., 0::2, 1::2])


def test_samplers_shapes_and_bilinear_has_no_period_two():
    x = torch.randn(2, 8, 10, 12)
    for mode in ('pixel_shuffle', 'pixel_shuffle_icnr', 'bilinear'):
        assert Upsample2x(8, 4, mode)(x).shape == (2, 4, 20, 24)
    for mode in ('strided_conv', 'avgpool_conv'):
        assert Downsample2x(8, 4, mode)(x).shape == (2, 4, 5, 6)
    with pytest.raises(ValueError, match='mode must be one of'):
        Upsample2x(8, 4, 'nearest')
    # avgpool_conv: the gradient w.r.t. the input is the same on the 4 pixels of a 2x2 cell's pattern phase
    down = Downsample2x(1, 1, 'avgpool_conv')
    inp = torch.zeros(1, 1, 16, 16, requires_grad=True)
    down(inp).sum().backward()
    g = inp.grad[0, 0, 2:-2, 2:-2]
    assert torch.allclose(g[0::2, 0::2], g[1::2, 1::2])


def _residual_grid(net, img):
    x = torch.from_numpy(img[..., ::-1].copy()).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        res = (net(x) - x)[0].mean(0).double().numpy()
    return max(luma_grid_ratios(res).values())


def _enhancer(**kwargs):
    return build_network({'type': 'PriorGuidedEnhancer', 'base_channels': 8, 'blocks_per_level': 1, **kwargs})


def test_fresh_enhancer_has_no_grid_on_smooth_input():
    img = _smooth_face_like(96)
    torch.manual_seed(0)
    assert _residual_grid(_enhancer(), img) < 3.0
    torch.manual_seed(0)
    assert _residual_grid(_enhancer(upsample='pixel_shuffle'), img) > 30.0  # the defect, as it was


def test_enhancer_after_training_on_smooth_images_has_no_grid():
    torch.manual_seed(0)
    net = _enhancer()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    gts = torch.stack([torch.from_numpy(_smooth_face_like(48, s)).permute(2, 0, 1).float() / 255 for s in range(4)])
    for _ in range(15):
        loss = torch.nn.functional.l1_loss(net(gts * 0.3), gts)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert _residual_grid(net, _smooth_face_like(96, 7)) < 3.0


def _border_band(net, size=64, level=0.05):
    """Largest deviation of the output from its centre value for a constant dark input and constant prior maps."""
    x = torch.full((1, 3, size, size), level)
    prior = {'T': [torch.full((1, 3, size >> k, size >> k), 0.5) for k in (1, 2, 3)],
             'D': [torch.full((1, 1, size >> k, size >> k), 0.3) for k in (1, 2, 3)]}
    with torch.no_grad():
        out = net(x, prior)
    return (out - out[..., size // 2, size // 2][..., None, None]).abs().max().item()


def test_replicate_padding_leaves_no_border_band_on_a_constant_input():
    """The inset frame of issue 10: zero padding shows every conv a black border, so a constant dark input gives an
    output that changes towards the image border; replicate padding keeps it constant to the edge."""
    torch.manual_seed(0)
    assert _border_band(_enhancer(padding_mode='replicate')) < 1e-5
    torch.manual_seed(0)
    zeros = _enhancer()
    assert _border_band(zeros) > 1e-2  # the defect, with PyTorch's default
    with pytest.raises(ValueError, match='padding_mode'):
        _enhancer(padding_mode='circular')


def test_a_checkpoint_keeps_its_padding(tmp_path):
    """The padding travels with the weights: a network built with another padding refuses the checkpoint (no
    silent border band), through load_state_dict and through the models' checked loading; a checkpoint from before
    the option (no marker) is a zero-padded one."""
    from lowlight3d.archs.checkpoint_upgrade import load_weights_checked
    torch.manual_seed(0)
    zeros, replicate = _enhancer(), _enhancer(padding_mode='replicate')
    state = zeros.state_dict()
    assert int(state['padding_mode_code']) == 0 and int(replicate.state_dict()['padding_mode_code']) == 1
    with pytest.raises(ValueError, match="trained with padding_mode 'zeros'.*network_g.padding_mode: zeros"):
        replicate.load_state_dict(state)
    legacy = {k: v for k, v in state.items() if k != 'padding_mode_code'}
    with pytest.raises(ValueError, match='predates the option'):
        load_weights_checked(replicate, legacy, 'old.pth', 'net_g')
    fresh = _enhancer()
    load_weights_checked(fresh, legacy, 'old.pth', 'net_g')  # a pre-option checkpoint loads as zero padding
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), state.values()))
    again = _enhancer(padding_mode='replicate')
    again.load_state_dict(replicate.state_dict())
    assert _border_band(again) < 1e-5


def _legacy_checkpoint(tmp_path, net_type, **kwargs):
    """A pre-issue-10 checkpoint (``downs.k.*``, ``ups.k.0.*``) of a pixel-shuffle network, and the network."""
    net = build_network({'type': net_type, **kwargs, 'upsample': 'pixel_shuffle'})
    legacy = {}
    for key, value in net.state_dict().items():
        for k in range(4):
            key = key.replace(f'ups.{k}.conv.', f'ups.{k}.0.')
            if net_type == 'PriorGuidedEnhancer':
                key = key.replace(f'downs.{k}.conv.', f'downs.{k}.')
        legacy[key] = value
    assert 'ups.1.0.weight' in legacy and 'ups.1.conv.weight' not in legacy
    path = str(tmp_path / f'{net_type}_legacy.pth')
    torch.save({'params': legacy}, path)
    return net, path


def _model_loading(path, net_opt):
    """The model path of test.py: ``BaseModel.add_network`` with ``path.pretrain_network_g``."""
    from lowlight3d.models.base_model import BaseModel
    model = BaseModel({'is_train': False, 'device': 'cpu', 'network_g': net_opt,
                       'path': {'pretrain_network_g': path}})
    return model.add_network('net_g', trainable=False)


@pytest.mark.parametrize('net_type,kwargs', [
    ('PriorGuidedEnhancer', {'base_channels': 8, 'blocks_per_level': 1}),
    ('LowLightUNet', {'num_feat': 8, 'num_blocks': 1}),
])
def test_legacy_checkpoint_keys_load(tmp_path, net_type, kwargs):
    net, path = _legacy_checkpoint(tmp_path, net_type, **kwargs)
    loaded = _model_loading(path, {'type': net_type, **kwargs, 'upsample': 'pixel_shuffle'})
    for (key, want), (_, got) in zip(net.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(want, got), key
    with pytest.raises(RuntimeError, match='trained before the bilinear up-sampling: set network_g.upsample: '
                                           'pixel_shuffle'):
        _model_loading(path, {'type': net_type, **kwargs})


# ------------------------------------------------------------------ grayscale stays grayscale
def test_keep_gray():
    gray_in = torch.rand(1, 1, 8, 8).expand(1, 3, 8, 8)
    colour_in = torch.rand(1, 3, 8, 8)
    lq = torch.cat([gray_in, colour_in])
    result = torch.rand(2, 3, 8, 8)
    assert is_gray(lq).tolist() == [True, False]
    out = keep_gray(lq, result)
    assert torch.equal(out[0, 0], out[0, 1]) and torch.equal(out[0, 1], out[0, 2])
    expected = 0.299 * result[0, 0] + 0.587 * result[0, 1] + 0.114 * result[0, 2]
    assert torch.allclose(out[0, 0], expected)
    assert torch.equal(out[1], result[1])
    assert torch.equal(keep_gray(lq, result, 'colour'), result)
    with pytest.raises(ValueError, match='gray mode'):
        keep_gray(lq, result, 'grey')


def test_validation_applies_the_sets_metrics_list_and_val_gray():
    """Validation during training scores what test.py scores: the set's ``metrics:`` list and ``val.gray``."""
    from lowlight3d.models.validation import validate

    class FakeModel:
        def __init__(self, gray):
            self.opt = {'val': {'gray': gray, 'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 0},
                                                          'chroma': {'type': 'chroma'}}}}
            self.best_metric_results = {}

        def feed_data(self, data):
            self.data = data

        def test(self):
            pass

        def get_current_visuals(self):
            lq = torch.full((1, 3, 16, 16), 0.2)  # a grayscale input
            result = torch.stack([torch.full((16, 16), v) for v in (0.3, 0.5, 0.7)])[None]  # painted in colour
            return {'lq': lq, 'result': result, 'gt': torch.full((1, 3, 16, 16), 0.5)}

    dataset = type('Set', (), {'opt': {'name': 'gray_faces', 'metrics': ['chroma']}})()
    loader = type('Loader', (list, ), {'dataset': dataset})([{'lq_path': ['a.png']}])
    kept, _ = validate(FakeModel('keep'), loader, current_iter=1)
    coloured, _ = validate(FakeModel('colour'), loader, current_iter=1)
    assert list(kept) == ['chroma'] and list(coloured) == ['chroma']
    assert kept['chroma'] < 1e-6 < coloured['chroma']


def test_long_grid_labels_are_shrunk_or_wrapped_not_cut():
    from lowlight3d.utils.comparison_grid import labelled_tile
    img = np.zeros((256, 256, 3), np.uint8)
    short = labelled_tile(img, 'input')
    long = labelled_tile(img, 'EnlightenGAN (random VGG16 stand-in, NOT the method)')
    assert short.shape == long.shape
    bar = long.shape[0] - 256
    ink = (long[:bar] < 128).any(axis=2)
    assert ink[:bar // 2].any() and ink[bar // 2:].any()  # two lines of text
    medium = labelled_tile(img, 'ours (demo, random VGG19)')
    cols = np.where((medium[:bar] < 128).any(axis=2).any(axis=0))[0]
    assert cols.max() > 200  # drawn across the tile, not cut after "ours (demo"
