"""RDDM baseline: sizes, schedules, forward process and sampler by hand, exact recovery, resizing, training, pipeline.

Tiny U-Nets everywhere except the parameter counts (built, never run at 256x256).
"""
import json
import math
import os.path as osp

import cv2
import numpy as np
import pytest
import torch

import baselines  # noqa: F401  (registrations)
from baselines.rddm.histogram_equalization import equalize_hist, equalize_hist_uint8
from baselines.rddm.rddm_arch import RDDMNetwork, sampling_cost
from baselines.rddm.rddm_unet_arch import RDDMUNet
from baselines.rddm.residual_schedule import ResidualSchedule
from lowlight3d.archs.diffusion_schedule import DiffusionSchedule

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TINY_UNET = {'dim': 8, 'dim_mults': [1, 2, 2, 2]}  # full attention at 1/8 of the size, as the original


def _count(net):
    return sum(p.numel() for p in net.parameters())


def test_parameter_counts_of_the_original_configurations():
    assert _count(RDDMNetwork(objective='pred_res')) == 36_261_187
    assert _count(RDDMNetwork(objective='pred_res_noise')) == 72_522_374


def test_exp3_schedules_and_the_ddpm_mapping():
    s = ResidualSchedule(num_steps=10, sum_scale=0.01)  # exp 3: alpha = 1/T, beta^2 ~ (t/(T-1))^3
    assert torch.allclose(s.alphas, torch.full((10, ), 0.1, dtype=torch.float64))
    cubes = (torch.arange(10, dtype=torch.float64) / 9)**3
    assert torch.allclose(s.betas2, 0.01 * cubes / cubes.sum())
    assert s.alphas_cumsum[-1] == 1.0 and math.isclose(float(s.betas2_cumsum[-1]), 0.01, rel_tol=1e-12)
    ddpm = ResidualSchedule(num_steps=1000, sum_scale=1, alpha_schedule='ddpm', beta2_schedule='ddpm')
    abar = DiffusionSchedule(1000).alphas_cumprod
    assert torch.allclose(ddpm.alphas_cumsum, 1 - abar.sqrt()) and torch.allclose(ddpm.betas2_cumsum, 1 - abar)
    with pytest.raises(ValueError, match='sum_scale: 1'):
        ResidualSchedule(sum_scale=0.01, alpha_schedule='ddpm', beta2_schedule='ddpm')
    with pytest.raises(ValueError, match='go together'):
        ResidualSchedule(alpha_schedule='ddpm')
    with pytest.raises(ValueError, match='alpha_schedule'):
        ResidualSchedule(alpha_schedule='cosine')


def test_forward_process_steps_equal_the_closed_form():
    s = ResidualSchedule(num_steps=6, sum_scale=0.05, alpha_schedule='decreased', beta2_schedule='increased')
    g = torch.Generator().manual_seed(0)
    x0, x_in = torch.rand(2, 3, 4, 5, generator=g) * 2 - 1, torch.rand(2, 3, 4, 5, generator=g) * 2 - 1
    res = x_in - x0
    x, weighted = x0.double(), torch.zeros_like(x0, dtype=torch.float64)
    for t in range(6):
        eps_t = torch.randn(x0.shape, generator=g, dtype=torch.float64)
        x = s.q_step(x, res.double(), t, eps_t)
        weighted += float(s.betas2[t])**0.5 * eps_t
        # the sum of independent N(0, beta_i^2) is bbar_t eps with eps = sum beta_i eps_i / bbar_t ~ N(0, 1)
        eps = weighted / float(s.betas_cumsum[t]) if t > 0 else torch.zeros_like(weighted)  # bbar_0 = 0 here
        closed = s.q_sample(x0.double(), res.double(), torch.full((2, ), t), eps)
        assert torch.allclose(x, closed, atol=1e-12)
    # the end point: the degraded image plus sqrt(sum_scale) noise
    assert torch.allclose(s.q_sample(x0, res, torch.tensor([5, 5]), eps.float()), s.start(x_in, eps.float()),
                          atol=1e-6)
    big = ResidualSchedule(num_steps=1000, sum_scale=0.01)
    e = torch.randn(20000, generator=g, dtype=torch.float64)
    draws = big.q_sample(torch.zeros(20000, 1, 1, 1, dtype=torch.float64), torch.ones(20000, 1, 1, 1,
                                                                                       dtype=torch.float64),
                         torch.full((20000, ), 499), e.reshape(-1, 1, 1, 1))
    assert abs(float(draws.mean()) - float(big.alphas_cumsum[499])) < 3e-3
    assert abs(float(draws.var()) / float(big.betas2_cumsum[499]) - 1) < 0.05


def test_one_sampling_step_by_hand():
    T, s2 = 10, 0.01
    sched = ResidualSchedule(num_steps=T, sum_scale=s2)
    assert sched.time_pairs(2) == [(9, 4), (4, -1)]
    assert ResidualSchedule(num_steps=1000).time_pairs(2) == [(999, 499), (499, -1)]
    cubes = [(i / (T - 1))**3 for i in range(T)]
    abar = {t: (t + 1) / T for t in range(T)}
    bbar = {t: math.sqrt(s2 * sum(cubes[:t + 1]) / sum(cubes)) for t in range(T)}
    g = torch.Generator().manual_seed(1)
    x_in = torch.rand(1, 3, 4, 4, generator=g) * 2 - 1
    eps0 = torch.randn(1, 3, 4, 4, generator=g)
    r_hat = torch.rand(1, 3, 4, 4, generator=g) - 0.5
    seen = []

    def model_fn(x, t):
        seen.append((x.clone(), int(t[0])))
        return {'res': r_hat}

    out = sched.sample(model_fn, x_in, steps=2, mode='res', noise=eps0)
    x_T = x_in + math.sqrt(s2) * eps0
    eps_hat = (x_T - x_in - (abar[9] - 1) * r_hat) / bbar[9]
    x_4 = x_T - (abar[9] - abar[4]) * r_hat - (bbar[9] - bbar[4]) * eps_hat
    assert seen[0][1] == 9 and torch.allclose(seen[0][0], x_T)
    assert seen[1][1] == 4 and torch.allclose(seen[1][0], x_4, atol=1e-6)
    assert torch.allclose(out, (x_in - r_hat).clamp(-1, 1))


@pytest.mark.parametrize('steps', [1, 2, 5])
def test_sampler_with_a_perfect_residual_predictor_returns_the_ground_truth_exactly(steps):
    g = torch.Generator().manual_seed(2)
    grid = lambda: torch.randint(-64, 65, (2, 3, 8, 8), generator=g).float() / 64  # noqa: E731 (exact in float)
    x0, x_in = grid(), grid()
    sched = ResidualSchedule(num_steps=1000, sum_scale=0.01)
    out = sched.sample(lambda x, t: {'res': x_in - x0}, x_in, steps=steps, clip=False)
    assert torch.equal(out, x0)
    bounded = x_in.clamp(x0 - 1, x0 + 1)  # |res| <= 1: the original's clamp of the residual changes nothing
    out = sched.sample(lambda x, t: {'res': bounded - x0}, bounded, steps=steps, clip=True)
    assert torch.equal(out, x0)


@pytest.mark.parametrize('mode', ['noise', 'res_noise'])
def test_sampler_with_perfect_noise_predictions_recovers_the_ground_truth(mode):
    g = torch.Generator().manual_seed(3)
    x0, x_in = torch.rand(1, 3, 8, 8, generator=g) * 2 - 1, torch.rand(1, 3, 8, 8, generator=g) * 2 - 1
    sched = ResidualSchedule(num_steps=1000, sum_scale=0.01)
    res = x_in - x0

    def oracle(x, t):  # the noise that explains x_t on the exact trajectory
        return {'res': res, 'noise': (x - x0 - sched._at(sched.alphas_cumsum, t, x) * res) /
                sched._at(sched.betas_cumsum, t, x)}

    out = sched.sample(oracle, x_in, steps=3, mode=mode, clip=False)
    assert torch.allclose(out, x0, atol=1e-4)


def test_histogram_equalisation_equals_opencv():
    rng = np.random.default_rng(0)
    for k in range(40):
        img = (rng.random((int(rng.integers(1, 40)), int(rng.integers(1, 40))))**rng.uniform(0.3, 4) *
               rng.integers(1, 256)).astype(np.uint8)
        if k % 10 == 0:
            img[:] = rng.integers(0, 256)  # constant channel
        assert np.array_equal(equalize_hist_uint8(torch.from_numpy(img)).numpy(), cv2.equalizeHist(img))
    batch = torch.rand(2, 3, 9, 7)**3
    out = equalize_hist(batch)
    q = np.round(batch.numpy() * 255).astype(np.uint8)
    for b in range(2):
        for c in range(3):
            assert np.array_equal(np.round(out[b, c].numpy() * 255).astype(np.uint8), cv2.equalizeHist(q[b, c]))


def test_processing_at_256_with_the_result_resized_back():
    torch.manual_seed(0)
    net = RDDMNetwork(unet=TINY_UNET, image_size=256).eval()
    sizes = []
    net.unet0.register_forward_hook(lambda m, args, out: sizes.append(tuple(args[0].shape[-2:])))
    out = net(torch.rand(2, 3, 40, 56))
    assert out.shape == (2, 3, 40, 56) and sizes == [(256, 256)] * 2  # two sampling steps, both at 256x256
    assert 0 <= float(out.min()) and float(out.max()) <= 1
    native = RDDMNetwork(unet=TINY_UNET, image_size=None).eval()
    sizes.clear()
    native.unet0.register_forward_hook(lambda m, args, out: sizes.append(tuple(args[0].shape[-2:])))
    assert native(torch.rand(1, 3, 30, 45)).shape == (1, 3, 30, 45) and sizes[0] == (32, 48)
    with pytest.raises(ValueError, match='multiple of 8'):
        RDDMNetwork(unet=TINY_UNET, image_size=255)


def test_seeded_sampling_is_deterministic_and_batch_independent():
    torch.manual_seed(0)
    net = RDDMNetwork(unet=TINY_UNET, image_size=32).eval()
    lq = torch.rand(2, 3, 32, 32)
    gens = lambda: [torch.Generator().manual_seed(s) for s in (5, 6)]  # noqa: E731
    both = net(lq, generators=gens())
    assert torch.equal(both, net(lq, generators=gens()))
    assert torch.allclose(both[1:], net(lq[1:], generators=gens()[1:]), atol=2e-5)  # batched-conv rounding


def test_options_are_checked():
    with pytest.raises(ValueError, match='objective'):
        RDDMNetwork(unet=TINY_UNET, objective='pred_x0')
    with pytest.raises(ValueError, match='trains only'):
        RDDMNetwork(unet=TINY_UNET, objective='pred_res', sampling='res_noise')
    with pytest.raises(ValueError, match='sampling steps'):
        RDDMNetwork(unet=TINY_UNET, sampling_steps=0)
    with pytest.raises(ValueError, match='divisible'):
        RDDMUNet(dim=12)
    two = RDDMNetwork(unet=TINY_UNET, objective='pred_res_noise', sampling='res', image_size=16)
    assert two.evaluations_per_step() == 1 and set(two.predict(torch.zeros(1, 3, 16, 16), torch.tensor([3]),
                                                               torch.zeros(1, 3, 16, 16))) == {'res', 'noise'}


def test_a_tiny_model_lowers_its_loss():
    torch.manual_seed(0)
    net = RDDMNetwork(unet=TINY_UNET, image_size=None, num_steps=100)
    gt = torch.rand(4, 3, 16, 16)
    lq = gt * 0.2
    x_in, x0 = net.condition(lq), net.to_model_space(gt)
    g = torch.Generator().manual_seed(0)
    fixed = [net.schedule.training_inputs(x0, x_in, g) for _ in range(4)]

    def held_out():
        with torch.no_grad():
            return sum(float((net(x_t, t, x_in)['res'] - res).abs().mean()) for x_t, t, res, _ in fixed)

    before = held_out()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    for _ in range(25):
        x_t, t, res, _ = net.schedule.training_inputs(x0, x_in)
        loss = (net(x_t, t, x_in)['res'] - res).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert held_out() < 0.8 * before


def test_sampling_cost_counts_every_network_evaluation():
    net = RDDMNetwork(unet=TINY_UNET, image_size=64, sampling_steps=3)
    cost = sampling_cost(net, size=48)
    assert cost['nfe'] == 3
    assert cost['GMACs_sampling'] == pytest.approx(3 * cost['GMACs_per_nfe'], rel=1e-6)


def test_train_and_test_pipelines(tmp_path, tiny_image_sets):
    from lowlight3d.pipeline.test_pipeline import test_pipeline
    from lowlight3d.pipeline.train_pipeline import train_pipeline
    sets = tiny_image_sets
    opt = train_pipeline(['-opt', osp.join(REPO, 'options', 'demo', 'train_RDDM_demo.yml'), '--cfg-options',
                          'name=rddm', 'train.total_iter=3', f'datasets.train.dataroot_gt={sets}/train',
                          f'datasets.val.dataroot_gt={sets}/val', 'datasets.train.gt_size=32',
                          'datasets.val.gt_size=32', 'datasets.train.batch_size_per_gpu=2', 'network_g.unet.dim=8',
                          'network_g.unet.dim_mults=[1,2,2,2]', 'train.ema_start=1', 'train.ema_every=2',
                          'logger.print_freq=1', 'logger.use_tb_logger=false', 'val.val_freq=3',
                          'logger.save_checkpoint_freq=3'], root_path=str(tmp_path)).opt
    with open(osp.join(opt['path']['experiments_root'], 'history.json')) as f:
        logged = json.load(f)['losses']
    assert len(logged) == 3 and all(math.isfinite(row['l_res']) and 'grad_norm' in row for row in logged)
    weights = osp.join(opt['path']['models'], 'net_g_latest.pth')
    assert 'params_ema' in torch.load(weights, map_location='cpu')
    args = ['-opt', osp.join(REPO, 'options', 'demo', 'test_RDDM_demo.yml'), '--cfg-options',
            f'path.pretrain_network_g={weights}', 'network_g.unet.dim=8', 'network_g.unet.dim_mults=[1,2,2,2]',
            'network_g.image_size=64', f'datasets.test_paired.dataroot_gt={sets}/val',
            'datasets.test_paired.gt_size=30', f'datasets.test_unpaired.dataroot_lq={sets}/unpaired',
            'datasets.test_unpaired.gt_size=30',
            'datasets.test_unpaired.meta_info_file=~', 'val.metrics={psnr: {type: psnr}}', 'val.save_grid=false']
    first = test_pipeline(args + ['name=rddm_test1'], root_path=str(tmp_path))
    again = test_pipeline(args + ['name=rddm_test2'], root_path=str(tmp_path))
    psnr = first['DemoFacesTest']['metrics']['psnr']
    assert isinstance(psnr, float) and psnr == again['DemoFacesTest']['metrics']['psnr']  # seeded per image name
    assert first['DemoFacesUnpaired']['num_images'] == 3


def test_loss_blocks_must_fit_the_objective(tmp_path, tiny_image_sets):
    from lowlight3d.pipeline.train_pipeline import train_pipeline
    with pytest.raises(ValueError, match='noise_opt'):
        train_pipeline(['-opt', osp.join(REPO, 'options', 'demo', 'train_RDDM_demo.yml'), '--cfg-options',
                        'name=rddm_bad', 'network_g.unet.dim=8', 'network_g.unet.dim_mults=[1,2,2,2]',
                        'network_g.objective=pred_res_noise', f'datasets.train.dataroot_gt={tiny_image_sets}/train',
                        f'datasets.val.dataroot_gt={tiny_image_sets}/val', 'logger.use_tb_logger=false'],
                       root_path=str(tmp_path))


def test_two_unets_train_on_both_targets(tmp_path, tiny_image_sets):
    from lowlight3d.pipeline.train_pipeline import train_pipeline
    opt = train_pipeline(['-opt', osp.join(REPO, 'options', 'demo', 'train_RDDM_demo.yml'), '--cfg-options',
                          'name=rddm_two', 'train.total_iter=1', 'network_g.unet.dim=8',
                          'network_g.unet.dim_mults=[1,2,2,2]', 'network_g.objective=pred_res_noise',
                          'network_g.sampling=res_noise', '+train.noise_opt={type: L1Loss, loss_weight: 1.0}',
                          f'datasets.train.dataroot_gt={tiny_image_sets}/train', 'datasets.train.gt_size=32',
                          f'datasets.val.dataroot_gt={tiny_image_sets}/val', 'val.val_freq=~',
                          'logger.print_freq=1', 'logger.use_tb_logger=false'], root_path=str(tmp_path)).opt
    with open(osp.join(opt['path']['experiments_root'], 'history.json')) as f:
        row = json.load(f)['losses'][0]
    assert math.isclose(row['l_total'], row['l_res'] + row['l_noise'], rel_tol=1e-5)
    state = torch.load(osp.join(opt['path']['models'], 'net_g_latest.pth'), map_location='cpu')['params']
    assert any(k.startswith('unet1.') for k in state)
