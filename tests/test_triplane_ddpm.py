"""Tri-plane DDPM: forward process vs closed form, samplers (hand-computed, seeded), denoiser, short CPU training.

The generator that makes the training targets is a randomly initialised stand-in saved as a checkpoint (no trained
weights are needed for these checks).
"""
import copy
import math
import os.path as osp

import pytest
import torch

from lowlight3d.archs.diffusion_schedule import DiffusionSchedule
from lowlight3d.archs.triplane_ddpm_arch import AdaptiveFusion, TriplaneDDPM
from lowlight3d.archs.triplane_encoder_arch import TriplaneGenerator
from lowlight3d.data.demo_faces import generate_demo_dataset
from lowlight3d.data.face_depth_dataset import FaceDepthDataset
from lowlight3d.models import build_model
from lowlight3d.models.prior_extractor import sample_x0, seeded_generators
from lowlight3d.utils.camera import look_at_label
from lowlight3d.utils.options import load_config

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DDPM_OPT = osp.join(REPO, 'options', 'demo', 'train_TriplaneDDPM_demo.yml')



def _fixed_batch(root, count=8):
    """The first ``count`` low-light training faces of the tiny set as one batch (lq, gt, camera, lq_path)."""
    ds = FaceDepthDataset({'dataroot_gt': str(root / 'faces/train/gt'), 'camera_file':
                           str(root / 'faces/train/cameras.json'), 'gt_size': 32, 'lowlight': True})
    batch = {k: torch.stack([ds[i][k] for i in range(count)]) for k in ('lq', 'gt', 'camera')}
    batch['lq_path'] = [ds[i]['lq_path'] for i in range(count)]
    return batch

def test_forward_steps_agree_with_closed_form():
    sched = DiffusionSchedule(100, schedule='scaled_linear')
    assert abs(sched.betas[0].item() - 1e-3) < 1e-12 and abs(sched.betas[-1].item() - 0.2) < 1e-12
    # exact: two steps with noises e1, e2 equal the closed form with the combined unit-variance noise
    x0, e1, e2 = torch.randn(3, 5, dtype=torch.float64).unbind(0)
    t0, t1 = torch.tensor([0]), torch.tensor([1])
    two = sched.q_step(sched.q_step(x0[None], t0, e1[None]), t1, e2[None])
    a1, a2 = sched.alphas[0], sched.alphas[1]
    e = (torch.sqrt(a2 * (1 - a1)) * e1 + torch.sqrt(1 - a2) * e2) / torch.sqrt(1 - a1 * a2)
    assert torch.allclose(two, sched.q_sample(x0[None], t1, e[None]))
    # statistical: 60 chained steps from x0 = 1 have mean sqrt(abar) and variance 1 - abar
    g = torch.Generator().manual_seed(0)
    x = torch.ones(40000, 1, dtype=torch.float64)
    for t in range(60):
        x = sched.q_step(x, torch.full((40000, ), t), torch.randn(x.shape, generator=g, dtype=torch.float64))
    abar = sched.alphas_cumprod[59].item()
    assert abs(x.mean().item() - math.sqrt(abar)) < 0.015 and abs(x.var().item() - (1 - abar)) < 0.02


def test_paper_sampler_matches_eq4_by_hand_and_respacing():
    sched = DiffusionSchedule(4, beta_start=0.1, beta_end=0.4)
    model_fn = lambda x, t: 0.5 * x + 0.01 * t[:, None].to(x.dtype)  # noqa: E731
    out = sched.sample(model_fn, (2, 3), sampler='paper', generators=seeded_generators(7, 2))
    gens = seeded_generators(7, 2)
    x = torch.stack([torch.randn(3, generator=g) for g in gens])
    for t in (3, 2, 1, 0):
        a, abar = sched.alphas[t].item(), sched.alphas_cumprod[t].item()
        eps = model_fn(x, torch.full((2, ), t))
        x = (x - (1 - a) / math.sqrt(1 - abar) * eps) / math.sqrt(a)
        if t > 0:
            x = x + math.sqrt(1 - a) * torch.stack([torch.randn(3, generator=g) for g in gens])
    assert torch.allclose(out, x, atol=1e-6)
    big = DiffusionSchedule(1000)
    tau = big.timesteps(5)
    assert tau.tolist() == [0, 250, 500, 749, 999]
    with pytest.raises(ValueError, match='sampling steps'):
        big.timesteps(0)
    with pytest.raises(ValueError, match='sampler'):
        big.sample(model_fn, (1, 3), 5, sampler='euler')


def test_samplers_are_deterministic_with_a_seed():
    sched = DiffusionSchedule(1000)
    model_fn = lambda x, t: torch.tanh(x) * (t[:, None].float() / 1000)  # noqa: E731
    for sampler, eta in (('paper', 0.0), ('ddim', 0.0), ('ddim', 1.0)):
        a = sched.sample(model_fn, (3, 4), 5, sampler, eta, generators=seeded_generators(1, 3))
        b = sched.sample(model_fn, (3, 4), 5, sampler, eta, generators=seeded_generators(1, 3))
        c = sched.sample(model_fn, (3, 4), 5, sampler, eta, generators=seeded_generators(2, 3))
        assert torch.equal(a, b) and not torch.allclose(a, c)
        # a sample does not depend on its batch
        one = sched.sample(model_fn, (1, 4), 5, sampler, eta, generators=seeded_generators(1, 3)[1:2])
        assert torch.allclose(one[0], a[1], atol=1e-6)
    # DDIM with eta = 0 and an exact eps model recovers x0 from x_T exactly
    x0 = torch.randn(2, 4, dtype=torch.float64)
    x_t = sched.q_sample(x0, torch.tensor([999, 999]), torch.randn(2, 4, dtype=torch.float64))
    ab = sched.alphas_cumprod

    def exact(x, t):
        a = ab[t[0]].item()
        return (x - math.sqrt(a) * x0) / math.sqrt(1 - a)

    assert torch.allclose(sched.sample(exact, (2, 4), 10, 'ddim', x_T=x_t), x0, atol=1e-8)


def test_denoiser_shapes_fusion_and_x0_layout():
    net = TriplaneDDPM(plane_channels=4, base_channels=8, image_downsample=1, cond_blocks=3)
    x, t, img = net.example_inputs(32)
    assert x.shape == (1, 37, 16, 16)
    assert torch.count_nonzero(net(x, t, img)) == 0  # zero-initialised output conv
    with pytest.raises(ValueError, match='image_downsample'):
        net(x, t, torch.rand(1, 3, 16, 16))
    for mode in ('sk', 'proj'):
        fuse = AdaptiveFusion(8, mode)
        b, f = torch.randn(2, 8, 4, 4), torch.randn(2, 8, 4, 4)
        out = fuse(b, f)
        assert out.shape == b.shape
        if mode == 'proj':
            assert torch.equal(out, b)  # zero-initialised projection
        else:
            w = torch.softmax(fuse.attn(torch.cat([b, f], 1).mean((2, 3), keepdim=True)).reshape(2, 2, 8, 1, 1), 1)
            assert torch.allclose(out, b + w[:, 0] * b + w[:, 1] * f, atol=1e-6)
    planes = torch.randn(3, 3, 4, 16, 16)
    cams = torch.stack([look_at_label(10, 2), look_at_label(-5, 4), look_at_label(0, -8)])
    raw = net.make_x0(planes, cams)
    net.set_statistics(raw)
    std = net.standardize(raw)
    assert torch.allclose(std.mean((0, 2, 3))[:12], torch.zeros(12), atol=1e-5)
    assert net.x_std[-1] == 1  # the constant camera entries keep std 1
    p, c = net.split_x0(std)
    assert torch.allclose(p, planes, atol=1e-5) and torch.allclose(c, cams, atol=1e-5)


@pytest.fixture(scope='module')
def tiny_setup(tmp_path_factory):
    """Tiny demo faces and a random-weight generator checkpoint (stand-in for a trained one)."""
    root = tmp_path_factory.mktemp('ddpm')
    generate_demo_dataset(str(root / 'faces'), num_train=8, num_val=2, num_test=1, num_unpaired=1, size=32,
                          num_workers=0)
    opt = load_config(DDPM_OPT)
    opt['network_generator']['input_size'] = 32
    opt['network_generator']['encoder'].update(base_channels=8, channel_mults=[1, 2], num_up=1, plane_channels=4)
    opt['network_generator']['renderer'].update(resolution=16, num_coarse=8, num_fine=8, hidden=16)
    torch.manual_seed(0)
    gen = TriplaneGenerator(**{k: v for k, v in opt['network_generator'].items() if k != 'type'})
    torch.save({'params': gen.state_dict()}, root / 'net_generator_random.pth')
    opt.update(is_train=True, dist=False, device='cpu')
    opt['path'] = {'pretrain_network_generator': str(root / 'net_generator_random.pth'), 'models': str(root)}
    opt['network_g'].update(plane_channels=4, base_channels=8, image_downsample=1)
    opt['val'].update(sampling_steps=5, flip_consistent=False)
    opt['diffusion']['objective'] = 'noise'  # the paper's eq. 6 (the demo file uses v); tests that need v set it
    return root, opt


def test_ddpm_training_lowers_the_loss_and_sampled_prior_approaches_target(tiny_setup):
    root, opt = tiny_setup
    iters = 80
    opt['train']['scheduler']['periods'] = [iters]
    opt['train']['optim_g']['lr'] = 4e-3
    opt['train']['ema_decay'] = 0.9
    torch.manual_seed(0)
    model = build_model(opt)
    batch = _fixed_batch(root)
    model.feed_data(batch)
    model.bare(model.nets['net_g']).set_statistics(model.x0_raw)
    model.nets['net_g_ema'].load_state_dict(model.nets['net_g'].state_dict())
    denoiser = model.test_network()

    def x0_error():
        x0 = sample_x0(denoiser.eval(), model.schedule, model.lq, 5, generators=seeded_generators(0, 8),
                       clip=5.0)
        return ((x0 - denoiser.standardize(model.x0_raw))**2).mean().item()

    model.test()  # untrained (zero-output) denoiser: the sample is the start noise
    untrained, untrained_x0 = ((model.output - model.target)**2).mean().item(), x0_error()
    losses = []
    for it in range(1, iters + 1):
        model.update_learning_rate(it)
        model.optimize_parameters(it)
        losses.append(model.get_current_log()['l_noise'])
    assert sum(losses[-20:]) / 20 < 0.95 * sum(losses[:20]) / 20
    model.test()
    trained, trained_x0 = ((model.output - model.target)**2).mean().item(), x0_error()
    assert trained_x0 < 0.98 * untrained_x0
    # The render error of the random stand-in generator barely depends on the planes (differences ~1e-6 of an
    # error of ~4e-5), so the render path is tested with an exact denoiser below instead of a trained one.
    assert torch.isfinite(torch.tensor([trained, untrained])).all()
    assert model.get_current_visuals()['result'].shape == (8, 3, 16, 16)


def test_an_exact_denoiser_renders_the_target_and_a_wrong_one_does_not(tiny_setup):
    """The validation render is the renderer applied to the *sampled* tri-planes and camera: a denoiser that returns
    the true x0 (one regression pass) reproduces the target render, depth included; x0 = 0 (the mean tri-planes
    and camera) gives a different render."""
    root, base = tiny_setup
    opt = copy.deepcopy(base)
    opt['diffusion'] = {**opt['diffusion'], 'objective': 'regression'}
    opt['val'].update(sampler='regression', flip_consistent=False)
    torch.manual_seed(0)
    model = build_model(opt)
    model.feed_data(_fixed_batch(root))
    net = model.test_network()
    net.set_statistics(model.x0_raw)
    exact = net.standardize(model.x0_raw)
    ext = model.prior_extractor()
    keys = [str(i) for i in range(exact.shape[0])]
    net.denoise = lambda x, t, feats: exact
    out = ext._compute(model.lq, 0, keys)
    model.test()  # the target render, from the true planes and camera
    assert torch.allclose(out['render'], model.target, atol=1e-5)
    assert torch.allclose(out['depth'], model.target_depth, atol=1e-5)
    net.denoise = lambda x, t, feats: torch.zeros_like(exact)
    wrong = ext._compute(model.lq, 0, keys)
    assert (wrong['depth'] - model.target_depth).abs().mean() > 100 * (out['depth'] - model.target_depth).abs().mean()


def test_paper_sampler_posterior_variance_matches_closed_form_by_hand():
    sched = DiffusionSchedule(8, beta_start=0.05, beta_end=0.3)
    model_fn = lambda x, t: 0.3 * x - 0.02 * t[:, None].to(x.dtype)  # noqa: E731
    out = sched.sample(model_fn, (2, 3), 4, 'paper', generators=seeded_generators(5, 2), variance='posterior')
    tau = sched.timesteps(4).tolist()
    assert tau == [0, 2, 5, 7]
    gens = seeded_generators(5, 2)
    x = torch.stack([torch.randn(3, generator=g) for g in gens])
    ab = sched.alphas_cumprod.tolist()
    for k in (3, 2, 1, 0):
        abar, abar_prev = ab[tau[k]], (ab[tau[k - 1]] if k else 1.0)
        a = abar / abar_prev
        eps = model_fn(x, torch.full((2, ), tau[k]))
        x = (x - (1 - a) / math.sqrt(1 - abar) * eps) / math.sqrt(a)
        if k:
            var = (1 - abar_prev) / (1 - abar) * (1 - a)  # beta~' = (1 - abar'_{k-1}) / (1 - abar'_k) * beta'_k
            assert var < 1 - a
            x = x + math.sqrt(var) * torch.stack([torch.randn(3, generator=g) for g in gens])
    assert torch.allclose(out, x, atol=1e-6)
    assert not torch.allclose(out, sched.sample(model_fn, (2, 3), 4, 'paper', generators=seeded_generators(5, 2)))
    with pytest.raises(ValueError, match='variance'):
        sched.sample(model_fn, (2, 3), 4, 'paper', variance='beta_tilde')
    # clip: the paper update with the eps implied by the clamped x0; a clip nothing reaches changes nothing
    far = sched.sample(model_fn, (2, 3), 4, 'paper', generators=seeded_generators(5, 2), variance='posterior',
                       clip=1e6)
    assert torch.allclose(far, out, atol=1e-6)
    one = sched.sample(model_fn, (2, 3), 1, 'paper', x_T=torch.full((2, 3), 3.0), clip=0.5)
    assert torch.allclose(one, torch.full((2, 3), 0.5))  # one step from T: x = clamped x0_hat
    assert not torch.allclose(sched.sample(model_fn, (2, 3), 1, 'paper', x_T=torch.full((2, 3), 3.0)), one)


def test_posterior_variance_keeps_the_marginals_of_an_exact_model_and_beta_overshoots():
    # Data = one point x0, so the exact noise model is known.  With the posterior variance every respaced step maps
    # q(x_t | x0) to q(x_prev | x0) (variance 1 - abar_prev around sqrt(abar_prev) x0); the paper's beta' adds too
    # much noise when steps are few (why 10 respaced steps diverge) and about the right amount when S = T.
    n = 20000
    x0 = torch.full((n, 1), 0.7, dtype=torch.float64)

    def run(sched, steps, variance):
        ab, seen = sched.alphas_cumprod, {}

        def exact(x, t):
            a = ab[t[0]].item()
            seen[int(t[0])] = ((x - math.sqrt(a) * x0).var().item(), 1 - a)
            return (x - math.sqrt(a) * x0) / math.sqrt(1 - a)

        torch.manual_seed(0)
        x_T = torch.randn(n, 1, dtype=torch.float64)
        out = sched.sample(exact, (n, 1), steps, 'paper', x_T=x_T, variance=variance)
        assert torch.allclose(out, x0)  # the last step returns x0_hat = x0 for an exact model
        return seen

    sched = DiffusionSchedule(1000)
    tau = sched.timesteps(10).tolist()
    post, beta = run(sched, 10, 'posterior'), run(sched, 10, 'beta')
    for t in tau[:-1]:
        var, expected = post[t]
        assert abs(var / expected - 1) < 0.05, (t, var, expected)
    var, expected = beta[tau[0]]
    assert var > 20 * expected  # beta' over-noises the low-t steps
    small = DiffusionSchedule(50, schedule='scaled_linear')  # S = T: both variances give close marginals
    full_post, full_beta = run(small, 50, 'posterior'), run(small, 50, 'beta')
    for t in (45, 25, 10):
        assert abs(full_post[t][0] / full_post[t][1] - 1) < 0.05
        assert abs(full_beta[t][0] / full_beta[t][1] - 1) < 0.25


def test_regression_objective_trains_and_samples_in_one_pass(tiny_setup):
    root, base = tiny_setup
    opt = copy.deepcopy(base)
    opt['diffusion'] = {**opt['diffusion'], 'objective': 'regression'}
    opt['val'].update(sampler='regression')
    iters = 20
    opt['train']['scheduler']['periods'] = [1000]  # ~constant lr over the 20 steps
    opt['train']['optim_g']['lr'] = 4e-3
    torch.manual_seed(0)
    model = build_model(opt)
    batch = _fixed_batch(root)
    model.feed_data(batch)
    x_t, t, target = model.schedule.training_inputs(torch.randn(2, 3, 4, 4))
    assert torch.count_nonzero(x_t) == 0 and t.tolist() == [0, 0] and target.shape == (2, 3, 4, 4)
    losses = []
    for it in range(1, iters + 1):
        model.update_learning_rate(it)
        model.optimize_parameters(it)
        log = model.get_current_log()
        assert 'l_noise' not in log
        losses.append(log['l_regression'])
    assert losses[-1] < 0.92 * losses[0] and sum(losses[-5:]) < sum(losses[:5])
    den = model.test_network().eval()
    # the regression sample is the network output on zeros at t = 0: one deterministic pass, seed irrelevant
    a = sample_x0(den, model.schedule, model.lq, steps=7, sampler='regression', generators=seeded_generators(0, 8))
    b = sample_x0(den, model.schedule, model.lq, sampler='regression', generators=seeded_generators(9, 8))
    with torch.no_grad():
        direct = den(torch.zeros_like(a), torch.zeros(8, dtype=torch.long), model.lq)
    assert torch.equal(a, b) and torch.allclose(a, direct, atol=1e-6) and a.shape == (8, 37, 16, 16)
    model.test()  # validation path: sampler from val.sampler
    assert model.output.shape == (8, 3, 16, 16) and model.output_depth.shape == (8, 1, 16, 16)
    with pytest.raises(ValueError, match='objective'):
        model.prior_extractor(sampler='ddim')


def test_v_objective_targets_convert_to_eps_and_an_exact_v_model_samples_x0():
    """Objective 'v': target sqrt(abar) eps - sqrt(1 - abar) x0 (hand computation with the same draws), its exact
    conversion back to eps, and both samplers return x0 itself from a network that predicts v exactly."""
    sched = DiffusionSchedule(50, schedule='scaled_linear', objective='v')
    x0 = torch.randn(3, 2, 4, 4)
    torch.manual_seed(1)
    x_t, t, v = sched.training_inputs(x0)
    torch.manual_seed(1)
    t_ref = torch.randint(0, 50, (3, ))
    eps = torch.randn_like(x0)
    abar = sched.alphas_cumprod[t_ref].float().view(-1, 1, 1, 1)
    assert torch.equal(t, t_ref)
    assert torch.allclose(x_t, abar.sqrt() * x0 + (1 - abar).sqrt() * eps, atol=1e-6)
    assert torch.allclose(v, abar.sqrt() * eps - (1 - abar).sqrt() * x0, atol=1e-6)
    assert torch.allclose(sched.eps_from_output(v, x_t, abar), eps, atol=1e-5)

    def exact_v(x, tt):
        ab = sched.alphas_cumprod[tt].float().view(-1, 1, 1, 1)
        e = (x - ab.sqrt() * x0) / (1 - ab).sqrt()
        return ab.sqrt() * e - (1 - ab).sqrt() * x0

    for sampler in ('ddim', 'paper'):
        out = sched.sample(exact_v, x0.shape, steps=6, sampler=sampler, generators=seeded_generators(0, 3),
                           variance='posterior')
        assert torch.allclose(out, x0, atol=1e-4), sampler
    # a network that outputs zeros: 'noise' reads it as eps = 0, 'v' as x0 = sqrt(abar) x_t (shrunk, not amplified)
    x = torch.randn(2, 2, 4, 4)
    assert torch.equal(DiffusionSchedule(50, objective='noise').eps_from_output(torch.zeros_like(x), x, 0.3),
                       torch.zeros_like(x))
    assert torch.allclose(sched.eps_from_output(torch.zeros_like(x), x, 0.36), 0.8 * x)
    with pytest.raises(ValueError, match='objective'):
        DiffusionSchedule(50, objective='velocity')


def test_v_objective_trains_through_the_model_and_logs_l_v(tiny_setup):
    root, base = tiny_setup
    opt = copy.deepcopy(base)
    opt['diffusion'] = {**opt['diffusion'], 'objective': 'v'}
    opt['train']['optim_g']['lr'] = 4e-3
    torch.manual_seed(0)
    model = build_model(opt)
    model.feed_data(_fixed_batch(root))
    losses = []
    for it in range(1, 61):
        model.update_learning_rate(it)
        model.optimize_parameters(it)
        log = model.get_current_log()
        assert 'l_noise' not in log
        losses.append(log['l_v'])
    assert sum(losses[-15:]) < 0.9 * sum(losses[:15])
    model.test()
    assert model.output.shape == (8, 3, 16, 16) and torch.isfinite(model.output).all()


def test_a_misspelt_loss_block_is_rejected(tiny_setup):
    import copy
    opt = copy.deepcopy(tiny_setup[1])
    opt['train']['nosie_opt'] = opt['train'].pop('noise_opt')
    with pytest.raises(ValueError, match='train.nosie_opt: TriplaneDiffusionModel does not use.*noise_opt'):
        build_model(opt)


def test_image_input_feeds_full_resolution_features_to_the_regression_unet():
    """Ablation V6: with ``x_t = 0, t = 0`` the default denoiser sees the image only at 1/2 and 1/4 (the gradient
    of its output with respect to the full-resolution features is zero); ``image_input`` feeds those features into
    the U-Net input, and the options of both regressor files switch it on."""
    torch.manual_seed(0)
    for image_input, expect in ((False, False), (True, True)):
        den = TriplaneDDPM(plane_channels=2, base_channels=8, image_input=image_input)
        torch.nn.init.normal_(den.out[-1].weight, std=0.1)  # zero-initialised: give the output a path back
        img = torch.rand(1, 3, 16, 16)
        feats = den.condition(img)
        f0 = feats[0].detach().requires_grad_(True)
        x = torch.zeros(1, den.in_channels, 16, 16)
        out = den.denoise(x, torch.zeros(1, dtype=torch.long), [f0, feats[1], feats[2]])
        out.square().sum().backward()
        assert (f0.grad is not None and f0.grad.abs().sum().item() > 0) == expect
    for path in ('options/train/LowLight3D/train_TriplaneRegressor_FFHQ.yml',
                 'options/demo/train_TriplaneRegressor_demo.yml'):
        opt = load_config(osp.join(REPO, path))
        assert opt['network_g']['image_input'] is True and opt['diffusion']['objective'] == 'regression'
    assert not load_config(osp.join(REPO, 'options/train/LowLight3D/train_TriplaneDDPM_FFHQ.yml'))['network_g'].get(
        'image_input', False)
