"""Low-FaceNet baseline: network size, every loss against a hand computation, the face loss, one training step.

Pretrained parts are replaced by labelled random stand-ins (``random_for_tests``: VGG16 and FaceNet) and by the
``template`` landmark "detector" (fixed points, not a detector); the real-weights paths are only checked for their
missing-file errors.  The FaceMesh parsing masks are tested in ``tests/test_data_face_parsing.py``.
"""
import json
import math
import os
import os.path as osp
import warnings

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import baselines  # noqa: F401  (registrations)
from baselines.lowfacenet.face_alignment import FaceBox, TemplateLandmarks, align_face, eye_angle
from baselines.lowfacenet.facenet_arch import FACENET_FILENAME, LowFaceNetFaceNet, RandomFaceNetWarning, load_facenet
from baselines.lowfacenet.lowfacenet_arch import LowFaceNetEnhanceNet
from baselines.lowfacenet.lowfacenet_face_loss import FaceRecognitionLoss
from baselines.lowfacenet.lowfacenet_loss import (
    NEIGHBOURS_24,
    BrightnessContrastLoss,
    ColorLoss,
    FeatureContrastLoss,
    PerceptualLoss,
    SemanticBrightnessLoss,
    SmoothnessLoss,
)
from lowlight3d.utils.weights import WeightsNotFoundError

from conftest import write_smooth_images

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TRAIN_OPT = osp.join(REPO, 'options', 'demo', 'train_LowFaceNet_standins_demo.yml')


# ---------------------------------------------------------------------------------------------------- network
def test_enhancenet_has_the_original_size_and_is_retinex_style():
    net = LowFaceNetEnhanceNet()
    assert sum(p.numel() for p in net.parameters()) == 459_590
    x = torch.rand(2, 3, 17, 23) * 0.3
    with torch.no_grad():
        r, i = net.decompose(x)
    assert r.shape == i.shape == x.shape
    assert float(i.min()) >= 1e-4 and float(i.max()) <= 1
    assert torch.allclose(r, torch.clamp(x / i, 0, 1)) and torch.equal(net(x).detach(), r)
    with pytest.raises(ValueError, match='N x 3 x H x W'):
        net(torch.rand(1, 1, 8, 8))


def test_enhancenet_original_init_is_normal_002_with_zero_bias():
    torch.manual_seed(0)
    net = LowFaceNetEnhanceNet()
    assert float(net.e_conv2.bias.detach().abs().max()) == 0
    assert abs(float(net.e_conv2.weight.detach().std()) - 0.02) < 0.002


# ---------------------------------------------------------------------------------------------------- losses
def test_feature_contrast_against_hand_computation():
    fa = {'l1': torch.zeros(1, 1, 2, 2), 'l2': torch.zeros(1, 2, 1, 1)}
    fp = {'l1': torch.full((1, 1, 2, 2), 0.5), 'l2': torch.full((1, 2, 1, 1), 1.0)}
    fn = {'l1': torch.full((1, 1, 2, 2), 2.0), 'l2': torch.full((1, 2, 1, 1), 4.0)}
    loss = FeatureContrastLoss(loss_weight=0.62, layers=('l1', 'l2'), layer_weights=(1 / 32, 1 / 16), eps=0)
    expected = 0.62 * (1 / 32 * 0.5 / 2.0 + 1 / 16 * 1.0 / 4.0)
    assert float(loss(fa, fp, fn)) == pytest.approx(expected)
    with pytest.raises(ValueError, match='layer_weights'):
        FeatureContrastLoss(layers=('a', 'b'), layer_weights=(1, ))


def test_brightness_contrast_against_hand_computation():
    a = torch.tensor([0.2, 0.4, 0.6]).view(1, 3, 1, 1).expand(2, 3, 2, 2)  # channel mean 0.4
    p = torch.full((2, 3, 2, 2), 0.5)  # |0.4 - 0.5| = 0.1
    n = torch.zeros(2, 3, 2, 2)  # |0.4 - 0| = 0.4
    assert float(BrightnessContrastLoss(eps=0)(a, p, n)) == pytest.approx(0.22 * 0.1 / 0.4)
    with pytest.raises(ValueError, match='same shape'):
        BrightnessContrastLoss()(a, p[:1], n)


def test_perceptual_loss_is_mse_of_one_layer():
    fx, fa = {'relu4_3': torch.zeros(1, 2, 2, 2)}, {'relu4_3': torch.full((1, 2, 2, 2), 3.0)}
    assert float(PerceptualLoss(loss_weight=1.0)(fx, fa)) == pytest.approx(9.0)


def test_color_loss_dense_blur_sums_the_channels():
    a, p = torch.zeros(1, 3, 5, 5), torch.ones(1, 3, 5, 5)
    # a 1 x 1 window: the dense kernel turns every output channel into the channel sum (3), depthwise keeps 1
    assert float(ColorLoss(size=1, dense=True)(a, p)) == pytest.approx(0.05 * 9.0)
    assert float(ColorLoss(size=1, dense=False)(a, p)) == pytest.approx(0.05 * 1.0)
    k = ColorLoss().kernel.double()  # 21 x 21, +-3 sigma window
    assert k.shape == (21, 21) and float(k.sum()) == pytest.approx(1.0)
    pos = torch.arange(21, dtype=torch.float64) - 10
    std = math.sqrt(float((k.sum(0) * pos**2).sum()))
    assert 4.0 < std < 4.6  # the spec's "effective std ~ 4.3 px"


def _smooth_by_hand(inp, illum, c, quirk):
    """Independent loop implementation of the 24-neighbour smoothness (one image)."""
    guide = inp[0].numpy().astype(np.float64)
    if not quirk:
        m = np.array([[0.257, 0.504, 0.098], [-0.148, -0.291, 0.439], [0.439, -0.368, -0.071]])
        guide = np.einsum('dc,chw->dhw', m, guide) + np.array([16, 128, 128]).reshape(3, 1, 1) / 255
    ill = illum[0].numpy().astype(np.float64)
    _, h, w = ill.shape
    total = 0.0
    for dy, dx in NEIGHBOURS_24:
        ws, ds = [], []
        for y in range(h):
            for x in range(w):
                y2, x2 = y + dy, x + dx
                if 0 <= y2 < h and 0 <= x2 < w:
                    ws.append(math.exp(c * ((guide[:, y2, x2] - guide[:, y, x])**2).sum()))
                    ds.append(np.abs(ill[:, y2, x2] - ill[:, y, x]))
        ws, ds = np.array(ws), np.array(ds)
        total += ws.mean() * ds.mean() if quirk else (ws * ds.mean(1)).mean()
    return 0.65 * total


def test_smoothness_is_total_variation_when_the_input_is_flat():
    inp = torch.full((1, 3, 3, 3), 0.3)
    illum = torch.arange(3.0).view(1, 1, 1, 3).expand(1, 3, 3, 3)  # horizontal ramp 0, 1, 2
    # mean |d illum| per offset (dy, dx) is |dx|: 0+1+1+1+0+2+1+1+2+2+2+2 = 15, each offset twice
    for quirk in (False, True):
        assert float(SmoothnessLoss(upstream_quirks=quirk)(inp, illum)) == pytest.approx(0.65 * 30, rel=1e-6)


def test_smoothness_with_and_without_the_quirk():
    fixed, quirky = SmoothnessLoss(), SmoothnessLoss(upstream_quirks=True)
    assert fixed.coefficient() == pytest.approx(-50.0)  # -1 / (2 sigma^2), sigma 0.1
    assert quirky.coefficient() == pytest.approx(-0.005)  # the released -1.0 / 2 * sigma * sigma
    torch.manual_seed(0)
    inp = torch.zeros(1, 3, 4, 5)
    inp[..., 2:] = 0.8  # an edge between columns 1 and 2
    illum = inp.clone() * 0.5 + 0.1 + 0.01 * torch.rand(1, 3, 4, 5)  # the illumination follows the edge
    for loss, c, quirk in ((fixed, -50.0, False), (quirky, -0.005, True)):
        assert float(loss(inp, illum)) == pytest.approx(_smooth_by_hand(inp, illum, c, quirk), rel=1e-5)
    # edge-aware when fixed: steps across the input's edge are nearly free; the quirk (weights ~ 1) is plain TV
    assert float(fixed(inp, illum)) < 0.2 * float(quirky(inp, illum))


def test_semantic_brightness_on_a_two_region_mask():
    y = torch.tensor([[0.2, 0.4], [0.6, 1.0]])
    a = y.view(1, 1, 2, 2).expand(1, 3, 2, 2).clone()  # channel mean = y
    mask = torch.tensor([[[0, 0], [1, 1]]])
    # region 0: {0.2, 0.4}, variance 0.01; region 1: {0.6, 1.0}, variance 0.04
    assert float(SemanticBrightnessLoss()(a, mask)) == pytest.approx(0.05)
    # batch mean of per-image sums; an absent class adds nothing
    a2 = torch.cat([a, torch.full_like(a, 0.5)])
    mask2 = torch.cat([mask, torch.full_like(mask, 3)])
    assert float(SemanticBrightnessLoss()(a2, mask2)) == pytest.approx(0.05 / 2)
    # the released formula (one image): m = where(y == c, y, 0), d = mean(m) over all 4 pixels, zeros -> d
    expected = 0.0
    for c in range(11):
        m = np.where(mask[0].numpy() == c, y.numpy(), 0.0)
        d = m.mean()
        m = np.where(m == 0, d, m)
        expected += ((m - d)**2).mean()
    assert float(SemanticBrightnessLoss(upstream_quirks=True)(a, mask)) == pytest.approx(expected)
    assert expected != pytest.approx(0.05)
    with pytest.raises(ValueError, match='N x H x W'):
        SemanticBrightnessLoss()(a, mask[:, :1])


# ---------------------------------------------------------------------------------------------------- face loss
def test_face_alignment_levels_the_eyes_and_letterboxes():
    face = FaceBox((0, 0, 40, 20), [(10, 12), (30, 8), (20, 12), (12, 16), (28, 16)])
    assert eye_angle(face.landmarks) == pytest.approx(math.degrees(math.atan(4 / -20)))
    img = torch.rand(1, 3, 20, 40, requires_grad=True)
    out = align_face(img, face, size=160)
    assert out.shape == (1, 3, 160, 160)
    assert torch.allclose(out[0, :, 0, :], torch.full((3, 160), 128 / 255))  # 160 x 80 face centred: gray bands
    out.sum().backward()
    assert float(img.grad.abs().sum()) > 0


def _gallery(tmp_path):
    root = osp.join(tmp_path, 'gallery')
    for k, name in enumerate(('Ann_0001', 'Ann_0002', 'Bob_0001', 'Cid_0001')):
        write_smooth_images(root, 1, size=40, seed=k, prefix=name + '_x')
    return root


def _face_loss(root, **kwargs):
    with pytest.warns(RandomFaceNetWarning):
        return FaceRecognitionLoss(gallery_root=root, identity_from='csv' if 'identity_csv' in kwargs else 'prefix',
                                   detector='template', facenet_weights='random_for_tests', **kwargs)


def test_face_loss_is_cross_entropy_of_cosine_similarities(tmp_path):
    root = osp.join(tmp_path, 'gallery')
    for k, name in enumerate(('Ann_0001', 'Ann_0002', 'Bob_0001', 'Cid_0001')):
        img = (np.random.default_rng(k).random((40, 40, 3)) * 255).astype(np.uint8)
        os.makedirs(root, exist_ok=True)
        cv2.imwrite(osp.join(root, name + '.png'), img)
    loss = _face_loss(root, gallery_cache=osp.join(tmp_path, 'g.npz'))
    assert loss.build_gallery() == ['Ann', 'Bob', 'Cid']
    assert loss.gallery.shape == (3, 128) and torch.allclose(loss.gallery.norm(dim=1), torch.ones(3), atol=1e-5)
    x = torch.rand(3, 3, 48, 48, requires_grad=True)  # any batch size
    value = loss(x, ['Bob', 'Ann', 'Cid'])
    emb = loss.facenet(torch.cat([align_face(x[b:b + 1], TemplateLandmarks()(np.zeros((48, 48, 3))))
                                  for b in range(3)]))
    logits = F.cosine_similarity(emb.unsqueeze(1), loss.gallery.unsqueeze(0), dim=2)
    assert float(value.detach()) == pytest.approx(float(F.cross_entropy(logits, torch.tensor([1, 0, 2]))), rel=1e-5)
    value.backward()
    assert float(x.grad.abs().sum()) > 0
    with pytest.raises(KeyError, match='not in the gallery'):
        loss(x, ['Bob', 'Ann', 'Zed'])
    # the cache is reused by a second loss with the same files and weights
    again = _face_loss(root, gallery_cache=osp.join(tmp_path, 'g.npz'))
    again.build_gallery()
    assert torch.allclose(again.gallery, loss.gallery)


def test_face_loss_without_a_face_gives_zero_logits(tmp_path):
    loss = _face_loss(_gallery(tmp_path))
    loss.build_gallery()
    loss.detector = lambda rgb: None  # nothing found in the enhanced images
    x = torch.rand(2, 3, 32, 32, requires_grad=True)
    value = loss(x, torch.tensor([0, 2]))
    assert float(value) == pytest.approx(math.log(len(loss.names)))
    assert loss.stats['found'] == 0 and not value.requires_grad


def test_face_loss_identities_from_a_csv(tmp_path):
    root = _gallery(tmp_path)
    table = osp.join(tmp_path, 'ids.csv')
    names = sorted(os.listdir(root))
    with open(table, 'w') as f:
        f.write('file,identity\n' + ''.join(f'{n},{"P" if i % 2 else "Q"}\n' for i, n in enumerate(names)))
    assert _face_loss(root, identity_csv=table).build_gallery() == ['P', 'Q']


def test_missing_pretrained_files_are_named(tmp_path, monkeypatch):
    monkeypatch.setenv('LOWLIGHT3D_WEIGHTS', str(tmp_path))
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(WeightsNotFoundError, match=FACENET_FILENAME):
        load_facenet(None)
    from baselines.lowfacenet.face_alignment import build_landmark_detector
    with pytest.raises(WeightsNotFoundError, match='detection_mobilenet0.25_Final.pth'):
        build_landmark_detector('retinaface')
    with pytest.raises(ValueError, match='unknown detector'):
        build_landmark_detector('dlib')


def test_retinaface_detector_runs_with_a_random_standin_file(tmp_path):
    """The original's detector path (facexlib RetinaFace MobileNet0.25) with a saved RANDOM-weight file."""
    from facexlib.detection.retinaface import RetinaFace

    from baselines.lowfacenet.face_alignment import build_landmark_detector
    torch.manual_seed(0)
    path = osp.join(tmp_path, 'detection_mobilenet0.25_Final.pth')
    torch.save(RetinaFace(network_name='mobile0.25', device='cpu').state_dict(), path)
    det = build_landmark_detector('retinaface', weights_path=path)
    found = det((np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8))
    assert found is None or (isinstance(found, FaceBox) and found.landmarks.shape == (5, 2))


def test_facenet_loads_a_released_style_state_dict(tmp_path):
    net = LowFaceNetFaceNet()
    state = {f'module.{k}': v for k, v in net.state_dict().items()}
    state['classifier.weight'] = torch.zeros(10, 128)  # the training head of the released file is ignored
    path = osp.join(tmp_path, FACENET_FILENAME)
    torch.save(state, path)
    loaded = load_facenet(path)
    assert not loaded.is_random_standin and not loaded.training
    assert all(not p.requires_grad for p in loaded.parameters())
    assert sum(p.numel() for p in loaded.parameters()) == 3_338_304


# ---------------------------------------------------------------------------------------------------- training
@pytest.fixture(scope='module')
def parsing_sets(tmp_path_factory):
    """Tiny training faces named ``<identity>_<n>.png`` with LaPa-style ``seg/`` masks and contrast folders."""
    root = str(tmp_path_factory.mktemp('lapa_like'))
    for ident, seed in (('Ann', 1), ('Bob', 2), ('Cid', 3)):
        write_smooth_images(osp.join(root, 'normal'), 2, size=32, seed=seed, prefix=f'{ident}_000')
    os.makedirs(osp.join(root, 'seg'))
    for name in os.listdir(osp.join(root, 'normal')):
        mask = np.zeros((32, 32), np.uint8)
        mask[8:24, 6:26], mask[12:14, 10:14], mask[12:14, 18:22], mask[20:22, 12:20] = 1, 4, 5, 7
        cv2.imwrite(osp.join(root, 'seg', name), mask)
    write_smooth_images(osp.join(root, 'high'), 3, size=32, seed=7)
    write_smooth_images(osp.join(root, 'low'), 3, size=32, seed=8)
    return root


@pytest.mark.parametrize('batch', [1, 3])
def test_one_training_iteration(tmp_path, parsing_sets, batch):
    from lowlight3d.pipeline.train_pipeline import train_pipeline
    s = parsing_sets
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        opt = train_pipeline([
            '-opt', TRAIN_OPT, '--cfg-options', f'name=lfn_b{batch}', 'train.total_iter=1',
            f'datasets.train.low.dataroot_gt={s}/normal', f'datasets.train.parsing={{dataroot_seg: {s}/seg}}',
            'datasets.train.identity.from=prefix', f'datasets.train.contrast.positive.dataroot={s}/high',
            f'datasets.train.contrast.negative={{dataroot: {s}/low}}', 'datasets.train.gt_size=32',
            f'datasets.train.batch_size_per_gpu={batch}', f'train.face_opt.gallery_root={s}/normal',
            'train.face_opt.identity_from=prefix', 'train.face_opt.gallery_cache=~', 'train.face_opt.detector=template',
            f'datasets.val.dataroot_gt={s}/normal', 'datasets.val.gt_size=32', 'val.val_freq=1',
            'logger.print_freq=1', 'logger.save_checkpoint_freq=1'], root_path=str(tmp_path)).opt
    logged = json.load(open(osp.join(opt['path']['experiments_root'], 'history.json')))['losses'][-1]
    for key in ('feature_contrast', 'brightness_contrast', 'perceptual', 'color', 'smooth', 'semantic', 'face',
                'total'):
        assert math.isfinite(logged[f'l_{key}']), key
    assert logged['face_found'] == 1.0  # template landmarks: every image has its "face"
    weights = osp.join(opt['path']['models'], 'net_g_latest.pth')
    assert osp.isfile(weights)
    if batch == 1:  # testing needs none of the loss networks
        from lowlight3d.pipeline.test_pipeline import test_pipeline
        summary = test_pipeline([
            '-opt', osp.join(REPO, 'options', 'demo', 'test_LowFaceNet_standins_demo.yml'), '--cfg-options',
            'name=lfn_test', f'path.pretrain_network_g={weights}', f'datasets.test_paired.dataroot_gt={s}/normal',
            'datasets.test_paired.gt_size=32', f'datasets.test_unpaired.dataroot_lq={s}/low',
            'datasets.test_unpaired.gt_size=32', 'datasets.test_unpaired.meta_info_file=~',
            'val.metrics={psnr: {type: psnr, crop_border: 0}}'], root_path=str(tmp_path))
        assert isinstance(summary['DemoFacesTest']['metrics']['psnr'], float)


def test_model_reports_a_missing_batch_key(tmp_path, parsing_sets):
    from lowlight3d.models import build_model
    from lowlight3d.utils.options import load_config
    opt = load_config(TRAIN_OPT)
    opt.update(is_train=True, dist=False, device='cpu',
               path={'models': str(tmp_path), 'training_states': str(tmp_path)})
    opt['train'] = {k: v for k, v in opt['train'].items() if k not in ('face_opt', 'feature_contrast_opt',
                                                                       'perceptual_opt')}
    model = build_model(opt)
    model.feed_data({'lq': torch.rand(1, 3, 16, 16)})
    with pytest.raises(KeyError, match="needs 'pos'"):
        model.optimize_parameters(1)
