"""VGG feature extractor and the feature losses of the method (perceptual, intra- and inter-network consistency).

Every loss is checked against a value computed here by explicit loops over hand-written tiny tensors, not by the
code under test.  The VGG is built with ``weights='random_for_tests'`` (a random-weight stand-in, no download)
everywhere, except where the offline error and loading from a file are exercised.
"""
import math

import pytest
import torch

from lowlight3d.archs import build_network
from lowlight3d.archs.vgg_feature_extractor_arch import (
    RANDOM_VGG,
    RandomVGGWarning,
    VGGFeatureExtractor,
    load_vgg_features,
    vgg_layer_names,
)
from lowlight3d.losses import build_loss
from lowlight3d.losses.feature_perceptual_loss import FeaturePerceptualLoss
from lowlight3d.losses.inter_consistency_loss import InterConsistencyLoss
from lowlight3d.losses.intra_consistency_loss import IntraConsistencyLoss, cosine_distance_map
from lowlight3d.utils.weights import WeightsNotFoundError


def _random_vgg(**kwargs):
    with pytest.warns(RandomVGGWarning):
        return VGGFeatureExtractor(weights=RANDOM_VGG, **kwargs)


def _t(values):
    """A float tensor from nested lists (written out by hand)."""
    return torch.tensor(values, dtype=torch.float32)


# ---------------------------------------------------------------- hand references (plain Python, nested lists)


def _pixels(x):
    """``x[b][c][i][j]`` -> list over b of lists over (i, j) of channel vectors."""
    return [[[x[b][c][i][j] for c in range(len(x[b]))] for i in range(len(x[b][0])) for j in range(len(x[b][0][0]))]
            for b in range(len(x))]


def _cos_dist(u, v):
    dot = sum(a * b for a, b in zip(u, v))
    nu, nv = math.sqrt(sum(a * a for a in u)), math.sqrt(sum(b * b for b in v))
    return 1 - (dot / (nu * nv) if nu * nv > 1e-8 else 0.0)


def _softmax(xs):
    m = max(xs)
    e = [math.exp(x - m) for x in xs]
    return [v / sum(e) for v in e]


def _std(xs):
    m = sum(xs) / len(xs)
    return math.sqrt(sum((x - m)**2 for x in xs) / len(xs))


def _intra_reference(pt, ut, ps, us, tau=1.0, normalize=None):
    """Eqs. (10)-(11) for one layer by loops: mean over batch of -(1/hw) sum S(d_t) log S(d_s).

    ``S(d) = softmax(d / tau)``, with ``d`` first divided by its population std when ``normalize == 'std'``.
    """
    values = []
    for b_pt, b_ut, b_ps, b_us in zip(_pixels(pt), _pixels(ut), _pixels(ps), _pixels(us)):
        d_t = [_cos_dist(u, v) for u, v in zip(b_pt, b_ut)]
        d_s = [_cos_dist(u, v) for u, v in zip(b_ps, b_us)]
        if normalize == 'std':
            d_t, d_s = [x / (_std(d_t) + 1e-6) for x in d_t], [x / (_std(d_s) + 1e-6) for x in d_s]
        s_t, s_s = _softmax([x / tau for x in d_t]), _softmax([x / tau for x in d_s])
        values.append(-sum(p * math.log(q) for p, q in zip(s_t, s_s)) / len(d_t))
    return sum(values) / len(values)


def _gram(x, normalize):
    """Gram matrices of ``x[b][c][i][j]`` by loops."""
    out = []
    for xb in x:
        c, hw = len(xb), len(xb[0]) * len(xb[0][0])
        flat = [[v for row in ch for v in row] for ch in xb]
        g = [[sum(flat[k][n] * flat[m][n] for n in range(hw)) for m in range(c)] for k in range(c)]
        out.append([[v / (c * hw) if normalize else v for v in row] for row in g])
    return out


def _sub(x, y):
    return [[[[a - b for a, b in zip(ra, rb)] for ra, rb in zip(ca, cb)] for ca, cb in zip(xa, xb)]
            for xa, xb in zip(x, y)]


def _inter_reference(pt, ps, ut, us, normalize):
    """Eqs. (12)-(13) for one layer by loops: mean over batch of ||Gram(u_t - u_s) - Gram(p_t - p_s)||_F."""
    gu, gp = _gram(_sub(ut, us), normalize), _gram(_sub(pt, ps), normalize)
    norms = [math.sqrt(sum((a - b)**2 for ra, rb in zip(mu, mp) for a, b in zip(ra, rb))) for mu, mp in zip(gu, gp)]
    return sum(norms) / len(norms)


# two layers of hand-written features: layer 1 (B=1, C=2, 2x2), layer 2 (B=1, C=2, 1x2)
P_T = [[[[1.0, 0.0], [2.0, 1.0]], [[0.0, 1.0], [1.0, 3.0]]]], [[[[0.5, 2.0]], [[1.0, -1.0]]]]
U_T = [[[[1.0, 1.0], [0.0, 2.0]], [[1.0, 0.0], [2.0, 1.0]]]], [[[[1.0, 1.0]], [[0.0, 2.0]]]]
P_S = [[[[0.5, 0.5], [1.0, 1.0]], [[1.0, 2.0], [0.0, 1.0]]]], [[[[2.0, 1.0]], [[1.0, 1.0]]]]
U_S = [[[[2.0, 0.0], [1.0, 1.0]], [[0.0, 1.0], [1.0, 0.5]]]], [[[[1.0, 0.0]], [[1.0, 3.0]]]]


def _lists(*hand, grad=False):
    return [[_t(layer).requires_grad_(grad) for layer in feats] for feats in hand]


# ---------------------------------------------------------------- VGG feature extractor


def test_vgg_layer_names_match_torchvision_indices():
    n19, n16 = vgg_layer_names('vgg19'), vgg_layer_names('vgg16')
    assert len(n19) == 37 and len(n16) == 31  # len(torchvision vgg19().features), vgg16
    for name, index in {'conv1_1': 0, 'relu1_1': 1, 'pool1': 4, 'relu2_1': 6, 'relu3_1': 11, 'pool3': 18,
                        'relu4_1': 20, 'relu5_1': 29, 'relu5_4': 35, 'pool5': 36}.items():
        assert n19[index] == name
    assert n16[25] == 'relu5_1' and n16[23] == 'pool4' and n16[30] == 'pool5'


def test_random_vgg_shapes_frozen_and_labelled():
    rng = torch.get_rng_state()
    vgg = _random_vgg()
    assert torch.equal(torch.get_rng_state(), rng)  # the stand-in does not touch the global RNG
    assert vgg.is_random_standin and len(vgg.features) == 12  # truncated after relu3_1 (index 11)
    assert not any(p.requires_grad for p in vgg.parameters())
    vgg.train()
    assert not vgg.features.training
    x = torch.rand(2, 3, 32, 24, requires_grad=True)
    feats = vgg(x)
    assert [tuple(f.shape) for f in feats] == [(2, 64, 32, 24), (2, 128, 16, 12), (2, 256, 8, 6)]
    feats[-1].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    again = _random_vgg()  # fixed seed: the same stand-in every time
    assert all(torch.equal(a, b) for a, b in zip(vgg.state_dict().values(), again.state_dict().values()))


def test_vgg_layer_order_normalisation_and_bad_names():
    vgg = _random_vgg(layers=('relu2_1', 'conv1_1', 'relu1_1'))
    x = torch.rand(1, 3, 16, 16)
    relu2_1, conv1_1, relu1_1 = vgg(x)
    assert relu2_1.shape[1] == 128 and conv1_1.shape[1] == 64
    assert torch.equal(relu1_1, conv1_1.clamp_min(0))  # the ReLU is not in-place: conv1_1 is kept intact
    raw = _random_vgg(layers=('relu1_1', ), imagenet_norm=False)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    torch.testing.assert_close(raw((x - mean) / std)[0], relu1_1)
    with pytest.raises(ValueError, match='relu5_4'):  # the error lists the valid names
        VGGFeatureExtractor(layers=('relu1_1', 'relu9_9'), weights=RANDOM_VGG)
    with pytest.raises(ValueError, match="'vgg11'"):
        VGGFeatureExtractor(arch='vgg11', weights=RANDOM_VGG)
    with pytest.raises(ValueError, match=r'\(B, 3, H, W\)'):
        vgg(torch.rand(1, 1, 16, 16))


def test_vgg_weights_offline_fail_clearly_and_load_from_a_path(tmp_path, monkeypatch):
    monkeypatch.setenv('LOWLIGHT3D_WEIGHTS', str(tmp_path / 'empty'))
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(WeightsNotFoundError, match='vgg19-dcbb9e9d.pth'):
        VGGFeatureExtractor(download=False)
    with pytest.raises(WeightsNotFoundError, match='vgg16-397923af.pth'):
        build_network({'type': 'FrozenVGGFeatureExtractor', 'arch': 'vgg16', 'download': False})
    # a file in torchvision's key layout (random weights, saved here) is loaded exactly, found in LOWLIGHT3D_WEIGHTS
    with pytest.warns(RandomVGGWarning):
        full = load_vgg_features('vgg19', RANDOM_VGG, seed=3)
    state = {f'features.{k}': v for k, v in full.state_dict().items()}
    state['classifier.0.weight'] = torch.zeros(2, 2)  # the file's classifier is ignored
    (tmp_path / 'empty').mkdir()
    torch.save(state, tmp_path / 'empty' / 'vgg19-dcbb9e9d.pth')
    vgg = VGGFeatureExtractor(layers=('relu3_1', ), download=False)
    assert not vgg.is_random_standin
    assert torch.equal(vgg.features[10].weight, state['features.10.weight'])  # conv3_1
    torch.save({'0.weight': torch.zeros(64, 3, 3, 3)}, tmp_path / 'broken.pth')
    with pytest.raises(KeyError, match=r'0\.bias'):
        VGGFeatureExtractor(weights=str(tmp_path / 'broken.pth'))


# ---------------------------------------------------------------- perceptual loss


def test_feature_perceptual_loss_by_hand():
    a = [[[[1.0, 2.0], [3.0, 4.0]], [[0.0, -1.0], [2.0, 0.5]]]]
    b = [[[[0.0, 2.0], [1.0, 4.0]], [[1.0, 1.0], [2.0, 0.0]]]]
    c, d = [[[[3.0]]]], [[[[1.0]]]]
    # layer 1: squared differences 1, 0, 4, 0, 1, 4, 0, 0.25 -> mean 10.25 / 8; layer 2: (3 - 1)^2 = 4
    expected = 0.1 * (2.0 * 10.25 / 8 + 0.5 * 4.0)
    loss = FeaturePerceptualLoss(loss_weight=0.1, layer_weights=[2.0, 0.5])
    pred = [_t(a).requires_grad_(), _t(c).requires_grad_()]
    value = loss(pred, [_t(b), _t(d)])
    assert value.item() == pytest.approx(expected, rel=1e-6)
    value.backward()
    assert pred[1].grad.item() == pytest.approx(0.1 * 0.5 * 2 * (3.0 - 1.0))
    assert FeaturePerceptualLoss()(pred, pred).item() == 0.0
    with pytest.raises(ValueError, match='one weight per'):
        FeaturePerceptualLoss(layer_weights=[1.0])(pred, pred)
    with pytest.raises(ValueError, match='layers'):
        FeaturePerceptualLoss()(pred, pred[:1])


# ---------------------------------------------------------------- intra-network consistency


def test_intra_consistency_by_hand_and_gradients_to_the_student_only():
    pt, ut, ps, us = _lists(P_T, U_T, P_S, U_S, grad=True)
    loss = build_loss({'type': 'IntraConsistencyLoss', 'loss_weight': 0.25}, where='train.intra_opt')
    value = loss(pt, ut, ps, us)
    expected = 0.25 * sum(_intra_reference(*layer) for layer in zip(P_T, U_T, P_S, U_S))
    assert value.item() == pytest.approx(expected, rel=1e-5)
    value.backward()
    assert all(t.grad is None for t in pt + ut)  # the teacher carries no gradient
    assert all(s.grad is not None and s.grad.abs().sum() > 0 for s in ps + us)


def test_intra_consistency_minimum_is_the_teacher_entropy():
    pt, ut = _lists(P_T, U_T)
    ps, us = _lists(P_T, U_T, grad=True)  # the student equals the teacher
    value = IntraConsistencyLoss()(pt, ut, ps, us)
    entropy = 0.0
    for layer_p, layer_u in zip(P_T, U_T):
        d = [_cos_dist(u, v) for u, v in zip(_pixels(layer_p)[0], _pixels(layer_u)[0])]
        entropy += -sum(p * math.log(p) for p in _softmax(d)) / len(d)
    assert value.item() == pytest.approx(entropy, rel=1e-5)
    value.backward()  # cross-entropy is minimal at S(d_s) = S(d_t): zero gradient
    assert all(s.grad.abs().max() < 1e-6 for s in ps + us)
    other = IntraConsistencyLoss()(pt, ut, *_lists(P_S, U_S))
    assert other.item() > value.item()
    # a uniform distance map (features parallel at every pixel): S = 1/hw everywhere, value log(hw) / hw
    flat = [_t([[[[1.0, 2.0], [3.0, 4.0]], [[2.0, 4.0], [6.0, 8.0]]]])]
    assert IntraConsistencyLoss()(flat, flat, flat, flat).item() == pytest.approx(math.log(4) / 4, rel=1e-6)


def test_intra_consistency_zero_feature_vector_is_finite():
    a = torch.zeros(1, 2, 2, 2, requires_grad=True)  # a ReLU map that is zero everywhere: distance 1, no 1/eps blow-up
    b = _t(U_S[0])
    value = IntraConsistencyLoss()(_lists(P_T)[0][:1], _lists(U_T)[0][:1], [a], [b])
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(a.grad).all() and a.grad.abs().max() == 0


def test_intra_temperature_one_is_the_paper_and_lower_sharpens_and_strengthens():
    paper = IntraConsistencyLoss(loss_weight=0.25)(*_lists(P_T, U_T, P_S, U_S))
    same = IntraConsistencyLoss(loss_weight=0.25, temperature=1.0, normalize=None)(*_lists(P_T, U_T, P_S, U_S))
    assert torch.equal(paper, same)  # bit for bit: tau = 1 is the paper's softmax(d)
    # layer 2 has two positions: by hand, d_t = (1 - 0.5 / (sqrt(1.25) * 1), 1 - 0 / (sqrt(5) * sqrt(5))), so
    # S(d_t / tau) puts sigmoid((d_t[0] - d_t[1]) / tau) on position 0; a lower tau moves it away from 1/2
    d0, d1 = 1 - 0.5 / math.sqrt(1.25), 1.0
    assert torch.allclose(cosine_distance_map(_t(P_T[1]), _t(U_T[1])).flatten(), torch.tensor([d0, d1]))
    norms = []
    for tau in (1.0, 0.5, 0.25):
        loss = IntraConsistencyLoss(temperature=tau)
        logits = loss.logits(torch.tensor([[d0, d1]]))
        p0 = 1 / (1 + math.exp(-(d0 - d1) / tau))
        assert torch.softmax(logits, 1)[0, 0].item() == pytest.approx(p0, rel=1e-6)
        ps, us = _lists(P_S, U_S, grad=True)
        value = loss(*_lists(P_T, U_T), ps, us)
        expected = sum(_intra_reference(*layer, tau=tau) for layer in zip(P_T, U_T, P_S, U_S))
        assert value.item() == pytest.approx(expected, rel=1e-5)
        value.backward()
        norms.append(math.sqrt(sum(float(s.grad.pow(2).sum()) for s in ps + us)))
    assert abs(1 / (1 + math.exp(-(d0 - d1) / 0.25)) - 0.5) > abs(1 / (1 + math.exp(-(d0 - d1))) - 0.5)
    assert norms[0] < norms[1] < norms[2], norms


def test_intra_std_normalisation_by_hand_and_bad_options():
    loss = IntraConsistencyLoss(temperature=0.5, normalize='std')
    expected = sum(_intra_reference(*layer, tau=0.5, normalize='std') for layer in zip(P_T, U_T, P_S, U_S))
    assert loss(*_lists(P_T, U_T, P_S, U_S)).item() == pytest.approx(expected, rel=1e-5)
    # scale-free: the same distances at 10x the contrast (std) give the same distribution
    d = torch.tensor([[0.1, 0.2, 0.4]])
    assert torch.allclose(loss.logits(d), loss.logits(10 * d), rtol=1e-4)
    assert build_loss({'type': 'IntraConsistencyLoss', 'normalize': 'none'}, where='train.intra_opt').normalize is None
    for kwargs, pattern in (({'temperature': 0}, 'temperature'), ({'temperature': -1.0}, 'temperature'),
                            ({'normalize': 'l2'}, 'normalize')):
        with pytest.raises(ValueError, match=rf'train\.intra_opt\.{pattern}'):
            IntraConsistencyLoss(**kwargs)


# ---------------------------------------------------------------- inter-network consistency


@pytest.mark.parametrize('normalize', [True, False])
def test_inter_consistency_by_hand_and_gradients_to_the_student_only(normalize):
    pt, ps, ut, us = _lists(P_T, P_S, U_T, U_S, grad=True)
    loss = InterConsistencyLoss(loss_weight=0.5, normalize=normalize)
    value = loss(pt, ps, ut, us)
    expected = 0.5 * sum(_inter_reference(*layer, normalize) for layer in zip(P_T, P_S, U_T, U_S))
    assert value.item() == pytest.approx(expected, rel=1e-5)
    value.backward()
    assert all(t.grad is None for t in pt + ut)
    assert all(s.grad is not None and s.grad.abs().sum() > 0 for s in ps + us)


def test_inter_consistency_is_zero_when_teacher_equals_student():
    pt, ut = _lists(P_T, U_T)
    ps, us = _lists(P_T, U_T, grad=True)  # as at the first step of the EMA teacher
    value = InterConsistencyLoss()(pt, ps, ut, us)
    assert value.item() == 0.0
    value.backward()
    assert all(torch.isfinite(s.grad).all() for s in ps + us)
    # equal gaps on paired and unpaired images also give 0
    gap = [_t(x) - _t(y) for x, y in zip(P_T, P_S)]
    us2 = [u - g for u, g in zip(_lists(U_T)[0], gap)]
    assert InterConsistencyLoss()(_lists(P_T)[0], _lists(P_S)[0], _lists(U_T)[0], us2).item() == pytest.approx(0.0,
                                                                                                             abs=1e-6)


# ---------------------------------------------------------------- with the VGG: features computed once, shared


def test_losses_on_vgg_features_send_gradients_to_the_student_images_only():
    vgg = _random_vgg(layers=('relu1_1', 'relu2_1'))
    torch.manual_seed(0)
    teacher = [torch.rand(2, 3, 16, 16, requires_grad=True) for _ in range(2)]
    student = [torch.rand(2, 3, 16, 16, requires_grad=True) for _ in range(2)]
    f_pt, f_ut = vgg(teacher[0]), vgg(teacher[1])
    f_ps, f_us = vgg(student[0]), vgg(student[1])
    total = IntraConsistencyLoss()(f_pt, f_ut, f_ps, f_us) + InterConsistencyLoss()(f_pt, f_ps, f_ut, f_us)
    total.backward()
    assert all(t.grad is None for t in teacher)
    assert all(s.grad is not None and s.grad.abs().sum() > 0 for s in student)
