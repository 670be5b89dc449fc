"""IC-FSRDENet baseline: both network sizes, grid slicing, SR3's forward process and sampling step by hand, a tiny
model that learns, resizing for non-256 inputs, and both stages through train.py / test.py (stage 2 on the stage-1
results that test.py writes)."""
import math
import os
import os.path as osp
import warnings

import pytest
import torch
import torch.nn.functional as F

import baselines  # noqa: F401  (registrations)
from baselines.ic_fsrdenet import sr3_diffusion
from baselines.ic_fsrdenet.denet_arch import DENet
from baselines.ic_fsrdenet.denet_model import sampling_options
from baselines.ic_fsrdenet.ic_fsrnet_arch import ICFSRNet, resize_to, slice_bilateral_grid
from lowlight3d.archs.diffusion_schedule import DiffusionSchedule, continuous_noise_levels, q_sample_continuous

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO = osp.join(REPO, 'options', 'demo')


def _count(net):
    return sum(p.numel() for p in net.parameters())


def _tiny_denet(**kw):
    args = dict(inner_channel=8, norm_groups=4, channel_mults=(1, 2), attn_res=(8, ), res_blocks=1, dropout=0.0,
                image_size=16)
    args.update(kw)
    return DENet(**args)


def test_parameter_counts_of_the_original():
    assert _count(ICFSRNet()) == 8_910_017
    assert _count(DENet(init='default')) == 10_779_907


def test_slicing_reads_the_grid_transposed_with_the_guide_as_depth():
    grid = torch.zeros(1, 1, 2, 3, 3)
    grid[0, 0, :, :, 2] = 1.0  # only the grid's last (width) column is 1
    guide = torch.zeros(1, 1, 3, 3)
    out = slice_bilateral_grid(grid, guide)[0, 0]
    # upstream quirk: the row coordinate is grid_sample's x, so the grid's width axis varies with the image ROWS
    assert torch.allclose(out, torch.tensor([[0., 0., 0.], [0., 0., 0.], [1., 1., 1.]]))
    grid = torch.zeros(1, 1, 2, 3, 3)
    grid[0, 0, 1] = 2.0  # depth 1 (guide = +1) holds 2, depth 0 (guide = -1) holds 0
    guide = torch.tensor([-1.0, 0.0, 1.0, 3.0]).reshape(1, 1, 1, 4)
    assert torch.allclose(slice_bilateral_grid(grid, guide)[0, 0, 0], torch.tensor([0.0, 1.0, 2.0, 0.0]))


def test_forward_process_against_its_closed_form():
    sched = DiffusionSchedule(num_steps=12, beta_start=1e-3, beta_end=0.2, schedule='linear')
    x0, eps = torch.rand(4, 3, 2, 2) * 2 - 1, torch.randn(4, 3, 2, 2)
    t = torch.tensor([0, 3, 7, 11])
    gamma = sched.alphas_cumprod[t].sqrt().float()
    # continuous q_sample at gamma = sqrt(abar_t) is the discrete closed form at t
    # (gamma in float32: 1 - gamma**2 loses ~1e-7 of abar near 1, so sqrt(1 - abar) differs by up to ~1e-5)
    assert torch.allclose(q_sample_continuous(x0, gamma, eps), sched.q_sample(x0, t, eps), atol=1e-4)
    assert torch.allclose(q_sample_continuous(x0, gamma, eps),
                          gamma.view(-1, 1, 1, 1) * x0 + (1 - gamma.view(-1, 1, 1, 1)**2).sqrt() * eps)
    # t + 1 single forward steps from x0 have the closed form's mean sqrt(abar_t) x0 and variance 1 - abar_t
    g = torch.Generator().manual_seed(0)
    x0s = torch.tensor([0.8, -0.5, 0.1]).repeat(40000, 1)
    x = x0s.clone()
    for k in range(8):
        x = sched.q_step(x, torch.full((x.shape[0], ), k), torch.randn(x.shape, generator=g))
    abar = float(sched.alphas_cumprod[7])
    assert torch.allclose(x.mean(0), math.sqrt(abar) * x0s[0], atol=0.02)
    assert torch.allclose(x.var(0), torch.full((3, ), 1 - abar), atol=0.02)
    # SR3's training levels lie between the levels of adjacent steps; one step per batch unless per_sample_step
    levels = torch.cat([torch.ones(1, dtype=torch.float64), sched.alphas_cumprod.sqrt()])
    for per_sample in (False, True):
        gam, steps = continuous_noise_levels(sched.alphas_cumprod, 64, per_sample, torch.Generator().manual_seed(1))
        assert gam.shape == (64, ) and gam.dtype == torch.float32
        assert ((gam.double() >= levels[steps + 1] - 1e-7) & (gam.double() <= levels[steps] + 1e-7)).all()
        assert (steps.unique().numel() == 1) != per_sample


def _fake_net(x, gamma):
    """A noise 'predictor' that depends on the condition, x_t and the noise level (to check what is fed)."""
    cond, x_t = x[:, :3], x[:, 3:]
    return 0.3 * x_t + 0.1 * cond + 0.5 * gamma.view(-1, 1, 1, 1)


def test_ancestral_sampling_steps_by_hand():
    sched = DiffusionSchedule(num_steps=10, beta_start=1e-3, beta_end=0.3, schedule='linear')
    abar = sched.alphas_cumprod
    cond = torch.rand(2, 3, 4, 4) * 2 - 1
    x_T = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(3))
    gens = [torch.Generator().manual_seed(10 + i) for i in range(2)]
    out = sr3_diffusion.sample(_fake_net, cond, sched, steps=2, sampler='ancestral', clip=1.0, generators=gens,
                               x_T=x_T.clone())
    # by hand: respaced steps tau = [0, 9]; SR3's step = clipped x0, then the posterior mean and variance
    ref_gens = [torch.Generator().manual_seed(10 + i) for i in range(2)]
    x = x_T.double()
    for t, t_prev in ((9, 0), (0, None)):
        a, a_prev = float(abar[t]), (float(abar[t_prev]) if t_prev is not None else 1.0)
        beta = 1 - a / a_prev
        eps = _fake_net(torch.cat([cond.double(), x], 1), torch.full((2, ), math.sqrt(a), dtype=torch.float64))
        x0 = ((x - math.sqrt(1 - a) * eps) / math.sqrt(a)).clamp(-1, 1)
        mean = (math.sqrt(a_prev) * beta / (1 - a)) * x0 + (math.sqrt(1 - beta) * (1 - a_prev) / (1 - a)) * x
        x = mean
        if t_prev is not None:
            z = torch.stack([torch.randn(3, 4, 4, generator=g) for g in ref_gens]).double()
            x = x + math.sqrt((1 - a_prev) / (1 - a) * beta) * z
    assert torch.allclose(out.double(), x, atol=1e-5)
    # DDIM (eta 0), the same two steps: x_prev = sqrt(abar_prev) x0 + sqrt(1 - abar_prev) eps', then x0 at t = 0
    out = sr3_diffusion.sample(_fake_net, cond, sched, steps=2, sampler='ddim', clip=1.0, x_T=x_T.clone())
    x = x_T.double()
    for t, t_prev in ((9, 0), (0, None)):
        a = float(abar[t])
        eps = _fake_net(torch.cat([cond.double(), x], 1), torch.full((2, ), math.sqrt(a), dtype=torch.float64))
        x0 = ((x - math.sqrt(1 - a) * eps) / math.sqrt(a)).clamp(-1, 1)
        if t_prev is None:
            x = x0
        else:
            eps = (x - math.sqrt(a) * x0) / math.sqrt(1 - a)
            a_prev = float(abar[t_prev])
            x = math.sqrt(a_prev) * x0 + math.sqrt(1 - a_prev) * eps
    assert torch.allclose(out.double(), x, atol=1e-5)


@pytest.mark.parametrize('sampler', ['ancestral', 'ddim'])
def test_a_perfect_noise_predictor_samples_the_ground_truth(sampler):
    sched = sr3_diffusion.build_schedule({'num_steps': 200})
    x0 = torch.rand(2, 3, 4, 4) * 1.8 - 0.9
    cond = torch.zeros_like(x0)

    def oracle(x, gamma):  # the true noise of x_t at level gamma, given x0
        g = gamma.double().view(-1, 1, 1, 1)
        return ((x[:, 3:].double() - g * x0.double()) / (1 - g**2).sqrt()).float()

    out = sr3_diffusion.sample(oracle, cond, sched, steps=7, sampler=sampler,
                               generators=[torch.Generator().manual_seed(i) for i in range(2)])
    assert torch.allclose(out, x0, atol=1e-4)


def test_sampling_options_are_checked():
    assert sampling_options({})['sampler'] == 'ancestral' and sampling_options({})['steps'] == 100
    with pytest.raises(ValueError, match='val.sampler'):
        sampling_options({'sampler': 'paper'})
    with pytest.raises(ValueError, match='sampling_steps'):
        sampling_options({'sampling_steps': 0})
    with pytest.raises(ValueError, match='unknown key'):
        sr3_diffusion.build_schedule({'num_step': 10})


def test_tiny_models_lower_their_loss():
    torch.manual_seed(0)
    # stage 1: L1 on one fixed pair
    net = ICFSRNet(num_feat=4, n_blocks=1, input_size=32)
    low, gt = torch.rand(2, 3, 32, 32) * 0.2, torch.rand(2, 3, 32, 32)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    losses = []
    for _ in range(15):
        loss = F.l1_loss(net(low), gt)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] * 0.9
    # stage 2: SR3's noise loss, measured on fixed draws before and after training
    denet = _tiny_denet()
    sched = sr3_diffusion.build_schedule({'num_steps': 50})
    x0, cond = torch.rand(4, 3, 16, 16) * 2 - 1, torch.rand(4, 3, 16, 16) * 2 - 1
    g = torch.Generator().manual_seed(5)
    probe = []
    for _ in range(4):
        gam, _ = continuous_noise_levels(sched.alphas_cumprod, 4, True, g)
        noise = torch.randn(x0.shape, generator=g)
        probe.append((q_sample_continuous(x0, gam, noise), gam, noise))

    def probe_loss():
        with torch.no_grad():
            return sum(F.l1_loss(denet(torch.cat([cond, x], 1), gam), n).item() for x, gam, n in probe) / len(probe)

    before = probe_loss()
    opt = torch.optim.Adam(denet.parameters(), lr=3e-3)
    for _ in range(30):
        x_noisy, gam, noise = sr3_diffusion.training_batch(sched, x0)
        loss = F.l1_loss(denet(torch.cat([cond, x_noisy], 1), gam), noise)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert probe_loss() < before * 0.9


def test_non_256_inputs_are_resized_in_and_out():
    torch.manual_seed(0)
    net = ICFSRNet(num_feat=4, n_blocks=1, input_size=32).eval()
    x = torch.rand(1, 3, 20, 44)
    with torch.no_grad():
        out = net(x)
        ref = resize_to(net.enhance(resize_to(x, (32, 32))), (20, 44))
    assert out.shape == x.shape and torch.allclose(out, ref)
    with pytest.raises(ValueError, match='input_size'):
        ICFSRNet(num_feat=4, input_size=20)
    # stage 2: the condition is sampled at image_size and the result resized back
    from baselines.ic_fsrdenet.denet_model import DENetModel
    model = DENetModel.__new__(DENetModel)
    model.nets = {'net_g': _tiny_denet().eval()}
    model.schedule = sr3_diffusion.build_schedule({'num_steps': 20})
    model.sampling = sampling_options({'sampling_steps': 2})
    model.cond, model.names = torch.rand(1, 3, 24, 40), ['a.png']
    model.test()
    assert model.output.shape == (1, 3, 24, 40)
    first = model.output.clone()
    model.test()
    assert torch.equal(first, model.output)  # noise seeded by val.seed and the image name


def test_both_stages_through_train_and_test(tmp_path, monkeypatch):
    """Stage 1 trains; stage 2's dataset runs test.py (stage-1 results file) once, trains on its results, tests."""
    from lowlight3d.pipeline.test_pipeline import test_pipeline
    from lowlight3d.pipeline.train_pipeline import train_pipeline

    from conftest import write_smooth_images
    monkeypatch.chdir(tmp_path)  # test.py (a subprocess) writes the stage-1 results under the working folder
    sets = str(tmp_path / 'sets')
    for name, n, seed in (('train', 4, 1), ('val', 2, 2), ('test', 2, 3), ('unpaired', 2, 4)):
        write_smooth_images(osp.join(sets, name), n, seed=seed)
    with open(osp.join(sets, 'meta_test.txt'), 'w') as f:
        f.write('\n'.join(sorted(os.listdir(osp.join(sets, 'unpaired')))) + '\n')
    net1 = ['network_g.num_feat=4', 'network_g.n_blocks=1', 'network_g.input_size=32']
    short = ['logger.print_freq=1', 'logger.use_tb_logger=false']
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        train_pipeline(['-opt', osp.join(DEMO, 'train_ICFSRDENet_stage1_demo.yml'), '--cfg-options', 'name=s1', *net1,
                        f'datasets.train.dataroot_gt={sets}/train', f'datasets.val.dataroot_gt={sets}/val',
                        'datasets.train.gt_size=32', 'datasets.val.gt_size=32', 'train.total_iter=1',
                        'val.val_freq=1', 'logger.save_checkpoint_freq=1', *short], root_path=str(tmp_path))
    res = ['name=s1_results', 'path.pretrain_network_g=experiments/s1/models/net_g_latest.pth', *net1]
    for block, key, folder in (('test_train', 'dataroot_gt', 'train'), ('test_val', 'dataroot_gt', 'val'),
                               ('test_paired', 'dataroot_gt', 'test'), ('test_unpaired', 'dataroot_lq', 'unpaired')):
        res += [f'datasets.{block}.{key}={sets}/{folder}', f'datasets.{block}.gt_size=32']
    res.append(f'datasets.test_unpaired.meta_info_file={sets}/meta_test.txt')
    stage1 = '+datasets.{}.stage1_cfg_options=[' + ','.join(res) + ']'
    net2 = ['network_g.inner_channel=8', 'network_g.norm_groups=4', 'network_g.channel_mults=[1,2]',
            'network_g.image_size=32', 'diffusion.num_steps=20', 'val.sampling_steps=2']
    opt = train_pipeline(['-opt', osp.join(DEMO, 'train_ICFSRDENet_stage2_demo.yml'), '--cfg-options', 'name=s2',
                          *net2, f'datasets.train.dataroot_gt={sets}/train', f'datasets.val.dataroot_gt={sets}/val',
                          'datasets.train.gt_size=32', 'datasets.val.gt_size=32', 'datasets.train.crop_size=16',
                          'datasets.train.batch_size_per_gpu=2', stage1.format('train'), stage1.format('val'),
                          'train.total_iter=2', 'val.val_freq=2', 'logger.save_checkpoint_freq=2', *short],
                         root_path=str(tmp_path)).opt
    for folder in ('DemoFacesTrain', 'DemoFacesVal', 'DemoFacesTest', 'DemoFacesUnpaired'):
        assert len(os.listdir(tmp_path / 'results' / 's1_results' / 'visualization' / folder)) == 2 + 2 * (
            folder == 'DemoFacesTrain')
    log = open(next((tmp_path / 'experiments' / 's2').glob('train_*.log'))).read()
    assert log.count('ICFSRDENet: stage-1 results') == 1  # run once for all sets, then reused
    # an identical but rewritten stage-1 weight file (as resuming a finished run writes) does not trigger a rerun
    done = tmp_path / 'results' / 's1_results' / 'metrics.json'
    before = done.stat().st_mtime
    weights = tmp_path / 'experiments' / 's1' / 'models' / 'net_g_latest.pth'
    os.utime(weights, (before + 100, before + 100))
    summary = test_pipeline(['-opt', osp.join(DEMO, 'test_ICFSRDENet_demo.yml'), '--cfg-options', 'name=s2', *net2,
                             f'datasets.test_paired.dataroot_gt={sets}/test', 'datasets.test_paired.gt_size=32',
                             f'datasets.test_unpaired.dataroot_lq={sets}/unpaired', 'datasets.test_unpaired.gt_size=32',
                             f'datasets.test_unpaired.meta_info_file={sets}/meta_test.txt',
                             stage1.format('test_paired'),
                             stage1.format('test_unpaired'),
                             f"path.pretrain_network_g={opt['path']['models']}/net_g_latest.pth",
                             'val.metrics={psnr: {type: psnr}}'])
    assert summary['DemoFacesTest']['num_images'] == 2 and math.isfinite(summary['DemoFacesTest']['metrics']['psnr'])
    assert summary['DemoFacesUnpaired']['num_images'] == 2
    assert done.stat().st_mtime == before


def test_missing_stage1_results_fail_clearly(tmp_path, monkeypatch):
    from lowlight3d.data import build_dataset

    from conftest import write_smooth_images
    monkeypatch.chdir(tmp_path)
    write_smooth_images(str(tmp_path / 'gt'), 2)
    with pytest.raises(ValueError, match='base'):
        build_dataset({'type': 'ICFSRDENet.StageOneResultDataset', 'name': 'x'})
    with pytest.raises(FileNotFoundError, match='train stage 1 first'):
        build_dataset({'type': 'ICFSRDENet.StageOneResultDataset', 'name': 'DemoFacesTrain',
                       'base': 'PairedLowLightFaceDataset', 'dataroot_gt': str(tmp_path / 'gt'),
                       'stage1_test_options': 'options/demo/test_ICFSRDENet_stage1_results_demo.yml',
                       'stage1_cfg_options': ['path.pretrain_network_g=nowhere/net_g.pth']})


def test_benchmark_lists_train_stage1_first():
    from lowlight3d.pipeline.benchmark import load_benchmark_list
    from lowlight3d.utils.options import load_config
    for lst in ('options/demo/benchmark_demo.yml', 'options/real/benchmark_real.yml'):
        spec = load_benchmark_list(osp.join(REPO, lst))
        rows = [s for s in spec['stages'] if s['label'].startswith('IC-FSRDENet')]
        assert len(rows) == 1, lst
        stage2 = load_config(osp.join(REPO, rows[0]['train']))
        results = load_config(osp.join(REPO, stage2['datasets']['train']['stage1_test_options']))
        stage1 = [p for p in spec['prerequisites'] if 'ICFSRDENet_stage1' in p]
        assert len(stage1) == 1, lst
        name = load_config(osp.join(REPO, stage1[0]))['name']
        assert results['path']['pretrain_network_g'] == f'experiments/{name}/models/net_g_latest.pth'
