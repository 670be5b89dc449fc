"""UHDformer baseline: sizes, channel matching, FFT loss by hand, cyclic cosine schedule, one training iteration."""
import json
import math
import os.path as osp

import pytest
import torch

import baselines  # noqa: F401  (registrations)
from baselines.uhdformer.uhdformer_arch import UHDformerNetwork, match_channels, pad_to_multiple
from baselines.uhdformer.uhdformer_loss import FFTLoss
from baselines.uhdformer.uhdformer_model import CosineAnnealingRestartCyclicLR, resolve_periods

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TRAIN_OPT = osp.join(REPO, 'options', 'demo', 'train_UHDformer_demo.yml')
TEST_OPT = osp.join(REPO, 'options', 'demo', 'test_UHDformer_demo.yml')


def _count(net):
    return sum(p.numel() for p in net.parameters())


def test_parameter_counts():
    assert _count(UHDformerNetwork()) == 339_323  # the official configuration (UHDformer's own 0.34 M)
    # the wide variant nearest the face paper's 13.35 M (width must be divisible by heads and match factor)
    assert _count(UHDformerNetwork(width=108, num_heads=12)) == 13_328_679


def test_bad_options_are_clear():
    with pytest.raises(ValueError, match='divisible by num_heads'):
        UHDformerNetwork(width=20, num_heads=8)
    with pytest.raises(ValueError, match='divisible by match_factor'):
        UHDformerNetwork(width=24, num_heads=8, match_factor=5)
    with pytest.raises(ValueError, match='positive integer'):
        UHDformerNetwork(width=0)
    with pytest.raises(ValueError, match='N x 3 x H x W'):
        UHDformerNetwork(width=8)(torch.rand(1, 1, 16, 16))


def test_matching_replaces_features_as_in_the_original():
    # DualCMT's output holds perception channels only; the features just choose them (no gradient through the
    # choice).  So, as in the official code, the FFN's project_in and norm2 never get a gradient (baselines/README.md)
    torch.manual_seed(0)
    net = UHDformerNetwork(width=8, num_groups=1, blocks_per_group=1)
    net(torch.rand(1, 3, 16, 16)).abs().mean().backward()
    dead = sorted(name for name, p in net.named_parameters() if p.grad is None)
    assert dead == ['groups.0.blocks.0.ffn.project_in.0.bias', 'groups.0.blocks.0.ffn.project_in.0.weight',
                    'groups.0.blocks.0.ffn.project_in.1.bias', 'groups.0.blocks.0.ffn.project_in.1.weight',
                    'groups.0.blocks.0.norm2.bias', 'groups.0.blocks.0.norm2.weight']
    qkv = net.groups[0].blocks[0].attn.qkv.weight.grad
    assert qkv[:8].abs().sum() == 0 and qkv[8:].abs().sum() > 0  # the query rows (the key/value rows learn)


@pytest.mark.parametrize('size', [(37, 50), (64, 40), (5, 9)])
def test_any_size_inference(size):
    torch.manual_seed(0)
    net = UHDformerNetwork(width=8, num_groups=1, blocks_per_group=1).eval()
    x = torch.rand(1, 3, *size)
    with torch.no_grad():
        y = net(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    padded, h, w = pad_to_multiple(x, 8)
    assert padded.shape[-2] % 8 == 0 and padded.shape[-1] % 8 == 0 and (h, w) == size
    assert torch.equal(padded[..., :h, :w], x)


def test_multiple_of_8_is_not_padded():
    x = torch.rand(1, 3, 16, 24)
    assert pad_to_multiple(x, 8)[0] is x


def test_match_channels_by_hand():
    # x channels: [0,0], [5,5], [1,1], [9,9]; candidates: [1,1] (0), [10,10] (1), [4,4] (2)
    x = torch.tensor([[0., 0.], [5., 5.], [1., 1.], [9., 9.]]).view(1, 4, 1, 2)
    cand = torch.tensor([[1., 1.], [10., 10.], [4., 4.]]).view(1, 3, 1, 2)
    # nearest candidate (distance): ch0 -> 0 (1.41), ch1 -> 2 (1.41), ch2 -> 0 (0), ch3 -> 1 (1.41)
    # the two closest x-channels: ch2 (0) and ch0 (first of the ties), kept in channel order: ch0, ch2 -> 0, 0
    out = match_channels(x, cand, 2)
    assert out.shape == (1, 2, 1, 2)
    assert out.flatten().tolist() == [1., 1., 1., 1.]
    out3 = match_channels(x, cand, 3)  # ch0, ch1, ch2 -> candidates 0, 2, 0
    assert out3[0, :, 0, 0].tolist() == [1., 4., 1.]
    with pytest.raises(ValueError, match='spatial size'):
        match_channels(x, cand.expand(1, 3, 1, 2)[..., :1], 2)


def test_fft_loss_by_hand():
    torch.manual_seed(0)
    pred, target = torch.rand(1, 1, 2, 3), torch.rand(1, 1, 2, 3)

    def rfft2_by_hand(img):  # X[k, l] = sum_{m,n} x[m, n] exp(-2 pi i (k m / 2 + l n / 3)), l = 0, 1 (W // 2 + 1)
        out = []
        for k in range(2):
            for l in range(2):  # noqa: E741 (the DFT's index name)
                re = im = 0.0
                for m in range(2):
                    for n in range(3):
                        angle = -2 * math.pi * (k * m / 2 + l * n / 3)
                        re += img[0, 0, m, n].item() * math.cos(angle)
                        im += img[0, 0, m, n].item() * math.sin(angle)
                out.append((re, im))
        return out

    diffs = [abs(a - b) for p, t in zip(rfft2_by_hand(pred), rfft2_by_hand(target)) for a, b in zip(p, t)]
    expected = 0.1 * sum(diffs) / len(diffs)  # 2 x 2 frequencies x (real, imaginary) = 8 numbers
    assert FFTLoss(loss_weight=0.1)(pred, target).item() == pytest.approx(expected, rel=1e-5)
    assert FFTLoss(loss_weight=1.0, reduction='sum')(pred, target).item() == pytest.approx(sum(diffs), rel=1e-5)
    assert FFTLoss()(pred, pred).item() == 0
    with pytest.raises(ValueError, match='reduction'):
        FFTLoss(reduction='max')
    with pytest.raises(ValueError, match='differ in shape'):
        FFTLoss()(pred, target[..., :2])


def test_cyclic_cosine_schedule():
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([param], lr=5e-4)
    sched = CosineAnnealingRestartCyclicLR(opt, periods=[100, 1000], restart_weights=[1, 1], eta_mins=[5e-4, 1e-7])
    rates = [opt.param_groups[0]['lr']]
    for _ in range(1200):
        opt.step()
        sched.step()
        rates.append(opt.param_groups[0]['lr'])
    assert all(r == pytest.approx(5e-4) for r in rates[:101])  # flat start (eta_min = base rate)
    assert rates[600] == pytest.approx(1e-7 + 0.5 * (5e-4 - 1e-7) * (1 + math.cos(math.pi * 500 / 1000)))
    assert rates[1100] == pytest.approx(1e-7) and rates[1200] == pytest.approx(1e-7)  # held after the last period
    again = CosineAnnealingRestartCyclicLR(torch.optim.AdamW([param], lr=5e-4), periods=[100, 1000],
                                           eta_mins=[5e-4, 1e-7])
    again.load_state_dict(sched.state_dict())  # resume: the position and the periods come back
    assert again.last_epoch == 1200 and again.get_lr() == [pytest.approx(1e-7)]
    assert resolve_periods([10, None], total_iter=200) == [10, 190]
    with pytest.raises(ValueError, match='same length'):
        CosineAnnealingRestartCyclicLR(opt, periods=[10, 20], eta_mins=[0.0])
    assert resolve_periods([10, None], total_iter=6) == [10, 1]  # a short probe run stays in the flat start
    with pytest.raises(ValueError, match='positive integer'):
        resolve_periods([10, 0])
    with pytest.raises(ValueError, match='only the last'):
        resolve_periods([None, 10])


def test_one_training_iteration(tmp_path, tiny_image_sets):
    from lowlight3d.pipeline.train_pipeline import train_pipeline
    sets = tiny_image_sets
    opt = train_pipeline(['-opt', TRAIN_OPT, '--cfg-options', 'name=uhd', 'train.total_iter=2',
                          f'datasets.train.dataroot_gt={sets}/train', f'datasets.val.dataroot_gt={sets}/val',
                          'datasets.train.gt_size=32', 'datasets.val.gt_size=32', 'datasets.train.batch_size_per_gpu=2',
                          'network_g.width=8', 'network_g.num_groups=1', 'network_g.blocks_per_group=1',
                          'logger.print_freq=1', 'logger.use_tb_logger=false', 'val.val_freq=2',
                          'logger.save_checkpoint_freq=2'], root_path=str(tmp_path)).opt
    with open(osp.join(opt['path']['experiments_root'], 'history.json')) as f:
        logged = json.load(f)['losses']
    assert len(logged) == 2 and all(math.isfinite(row['l_total']) for row in logged)
    assert {'l_pixel', 'l_fft'} <= set(logged[0])
    assert osp.isfile(osp.join(opt['path']['models'], 'net_g_latest.pth'))


def test_test_file_builds_the_model_with_odd_sizes():
    from lowlight3d.models import build_model
    from lowlight3d.pipeline.option_loading import load_options
    opt = load_options(TEST_OPT, is_train=False, root_path='/tmp', cfg_options=[
        'path.pretrain_network_g=null', 'network_g.width=8', 'network_g.num_groups=1'])
    model = build_model(opt)
    model.feed_data({'lq': torch.rand(1, 3, 37, 50)})
    model.test()
    assert model.get_current_visuals()['result'].shape == (1, 3, 37, 50)
