"""The semi-supervised distillation model: one CPU iteration of the full method and of each Table 2 variant
(built from their option files), the teacher's EMA, the student at test time, the prior cache, a falling loss.

Stand-ins: the 3D prior networks are tiny and randomly initialised (saved as checkpoints, standardisation
statistics from random tri-planes); the VGG19 of the perceptual / distillation losses is the random-weight
stand-in (``weights: random_for_tests``) that the demo files use.  Nothing here depends on trained weights.
"""
import os
import os.path as osp
import warnings

import pytest
import torch
from torch.utils.data import default_collate

from lowlight3d.data import build_dataset
from lowlight3d.models import build_model
from lowlight3d.pipeline.option_loading import load_options
from lowlight3d.utils.options import load_config

from conftest import write_smooth_images
from prior_helpers import tiny_prior

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO = osp.join(REPO, 'options', 'demo')
FULL = osp.join(DEMO, 'train_LowLight3D_demo.yml')
VARIANTS = ['V1_supervised_only', 'V2_pseudo_labels', 'V3_no_intra', 'V4_no_inter', 'V5_no_prior',
            'V6_regression_prior', 'V7_concat_fusion']
def _tiny_prior(folder, base):
    """Option file + random checkpoints of a tiny prior stage inheriting ``base`` (DDPM or regressor)."""
    return tiny_prior(folder, base)


def prior_setup(root, kinds=('ddpm', 'regressor')):
    """``{'priors': {kind: (option file, denoiser, generator)}, 'prior_files': {kind: prior file}}`` of tiny random
    prior stages in ``root`` (the option files' ``prior.file`` form, and the deprecated stage form)."""
    from lowlight3d.models.prior_file import save_prior_file
    bases = {'ddpm': 'train_TriplaneDDPM_demo.yml', 'regressor': 'train_TriplaneRegressor_demo.yml'}
    out = {'priors': {}, 'prior_files': {}}
    for kind in kinds:
        opt_path, den, gen = out['priors'][kind] = _tiny_prior(root, osp.join(DEMO, bases[kind]))
        out['prior_files'][kind] = osp.join(root, f'{kind}_prior.pth')
        save_prior_file(out['prior_files'][kind], ddpm_options=opt_path, denoiser_weights=den, generator_weights=gen)
    return out


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp('semi')
    write_smooth_images(str(root / 'paired'), 4, size=32, seed=1)
    write_smooth_images(str(root / 'unpaired'), 4, size=32, seed=2)
    return {'root': str(root), **prior_setup(str(root))}


def _options(path, setup, is_train=True, extra=()):
    """Options of a demo file shrunk to tiny networks, tiny images and the tiny random prior (+ ``extra``)."""
    raw = load_config(path)
    root = setup['root']
    cfg = ['network_g.base_channels=4', 'network_d.ndf=4', 'train.feature_extractor.layers=[relu1_1,relu2_1]',
           f'datasets.train.paired.dataroot_gt={root}/paired', f'datasets.train.unpaired.dataroot_lq={root}/unpaired',
           'datasets.train.unpaired.meta_info_file=~', 'datasets.train.gt_size=32',
           'datasets.train.batch_size_per_gpu=2', f'datasets.val.dataroot_gt={root}/paired']
    if 'gan_start_iter' in (raw.get('train') or {}):  # the demo's warm-up; tests start from the paper's schedule
        cfg += ['train.gan_start_iter=0', 'train.net_d_init_iters=0']
    if raw.get('prior'):
        kind = 'regressor' if 'Regressor' in raw['prior']['file'] else 'ddpm'
        cfg += [f"prior.file={setup['prior_files'][kind]}", '+prior.steps=2']
    return load_options(path, is_train=is_train, cfg_options=cfg + list(extra), root_path=root)


def _batch(opt, n=2):
    dataset = build_dataset(opt['datasets']['train'])
    return default_collate([dataset[i] for i in range(n)])


def _model(path, setup, extra=()):
    opt = _options(path, setup, extra=extra)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # the random VGG stand-in warns, as it should
        model = build_model(opt)
    return model, opt


def _params(net):
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


EXPECTED_LOSSES = {
    'full': {'l_pixel', 'l_perceptual', 'l_intra', 'l_inter', 'l_gan'},
    'V1_supervised_only': {'l_pixel', 'l_perceptual'},
    'V2_pseudo_labels': {'l_pixel', 'l_perceptual', 'l_pseudo_label', 'l_gan'},
    'V3_no_intra': {'l_pixel', 'l_perceptual', 'l_inter', 'l_gan'},
    'V4_no_inter': {'l_pixel', 'l_perceptual', 'l_intra', 'l_gan'},
    'V5_no_prior': {'l_pixel', 'l_perceptual', 'l_intra', 'l_inter', 'l_gan'},
    'V6_regression_prior': {'l_pixel', 'l_perceptual', 'l_intra', 'l_inter', 'l_gan'},
    'V7_concat_fusion': {'l_pixel', 'l_perceptual', 'l_intra', 'l_inter', 'l_gan'},
}


@pytest.mark.parametrize('variant', ['full'] + VARIANTS)
def test_one_iteration_of_every_variant(variant, setup):
    path = FULL if variant == 'full' else osp.join(DEMO, 'ablation', f'train_LowLight3D_{variant}_demo.yml')
    model, opt = _model(path, setup)
    model.feed_data(_batch(opt))
    student_before = _params(model.nets['net_g'])
    d_before = _params(model.nets['net_d']) if 'net_d' in model.nets else None
    model.optimize_parameters(1)
    logs = model.get_current_log()
    losses = {k for k in logs if k.startswith('l_') and k not in ('l_total', 'l_d_real', 'l_d_fake')}
    assert losses == EXPECTED_LOSSES[variant]
    assert all(torch.isfinite(torch.tensor(v)) for v in logs.values())
    after = _params(model.nets['net_g'])
    assert any(not torch.equal(student_before[k], after[k]) for k in after)  # the student learned
    if d_before is not None:
        d_after = _params(model.nets['net_d'])
        assert 'l_d_real' in logs and any(not torch.equal(d_before[k], v) for k, v in d_after.items())
    else:
        assert variant == 'V1_supervised_only' and 'net_d' not in model.nets
    assert (model.prior is None) == (variant == 'V5_no_prior')
    names = {type(m).__name__ for m in model.nets['net_g'].modules()}
    if variant == 'V7_concat_fusion':
        assert 'ConcatResidualFusion' in names and 'PriorFusionModule' not in names
    else:
        assert 'PriorFusionModule' in names and 'ConcatResidualFusion' not in names


def test_teacher_is_the_ema_of_the_student_and_carries_no_gradient(setup):
    model, opt = _model(FULL, setup)
    model.feed_data(_batch(opt))
    teacher_before = _params(model.nets['net_g_ema'])
    model.optimize_parameters(1)
    eta = model.ema_decay
    student = _params(model.nets['net_g'])
    for name, value in _params(model.nets['net_g_ema']).items():
        if value.is_floating_point():  # eq. 5: theta_t = eta * theta_t + (1 - eta) * theta_s
            assert torch.allclose(value, eta * teacher_before[name] + (1 - eta) * student[name], atol=1e-6), name
    assert all(not p.requires_grad for p in model.nets['net_g_ema'].parameters())


def test_testing_uses_the_student_with_its_prior(setup):
    model, opt = _model(FULL, setup)
    batch = _batch(opt)
    for it in range(1, 3):
        model.feed_data(batch)
        model.optimize_parameters(it)
    model.feed_data({'lq': batch['lq'], 'lq_path': batch['lq_path']})
    model.test()
    student, teacher = model.nets['net_g'].eval(), model.nets['net_g_ema']
    with torch.no_grad():
        expected = student(batch['lq'], model.prior_p)
        assert not torch.allclose(teacher(batch['lq'], model.prior_p), expected)
    assert torch.allclose(model.output, expected)


def test_the_prior_is_sampled_once_per_image(setup, monkeypatch):
    model, opt = _model(FULL, setup)
    calls = []
    original = model.prior._compute
    monkeypatch.setattr(model.prior, '_compute', lambda *a: calls.append(a[0].shape[0]) or original(*a))
    batch = _batch(opt)
    for it in (1, 2):
        model.feed_data(batch)
        model.optimize_parameters(it)
    assert calls == [2, 2]  # paired (refresh: once) and unpaired images once each, then cached


def test_the_full_model_reduces_its_supervised_loss(setup):
    model, opt = _model(FULL, setup)
    batch = _batch(opt)
    pixel = []
    for it in range(1, 16):
        model.feed_data(batch)
        model.optimize_parameters(it)
        pixel.append(model.get_current_log()['l_pixel'])
    assert sum(pixel[-3:]) / 3 < 0.8 * sum(pixel[:3]) / 3, pixel


def test_missing_prior_weights_fail_clearly(setup):
    raw_cfg = ['prior.file=experiments/nowhere/models/prior_latest.pth']
    opt = load_options(FULL, is_train=True, cfg_options=raw_cfg, root_path=setup['root'])
    with pytest.raises(FileNotFoundError, match='prior.file.*nowhere.*Train the prior stage first'):
        build_model(opt)
    both = load_options(FULL, is_train=True, root_path=setup['root'], cfg_options=[
        f"prior.file={setup['prior_files']['ddpm']}", f"+prior.ddpm_options={setup['priors']['ddpm'][0]}"])
    with pytest.raises(ValueError, match='prior.ddpm_options: a prior is named by prior.file only'):
        build_model(both)


def test_unpaired_losses_need_unpaired_batches(setup):
    model, opt = _model(FULL, setup)
    batch = _batch(opt)
    model.feed_data({k: v for k, v in batch.items() if not k.startswith('lq_unpaired')})
    with pytest.raises(KeyError, match='SemiSupervisedLowLightDataset'):
        model.optimize_parameters(1)


def test_the_disk_cache_folder_names_the_prior_and_its_entries_the_settings(setup, tmp_path):
    """One folder per prior file (named after it and its fingerprint); within it the entries of other sampling
    settings never mix (their keys hash the extractor's fingerprint, which covers every setting)."""
    from lowlight3d.models.prior_loading import load_prior
    block = {'file': setup['prior_files']['ddpm'], 'cache': 'disk', 'cache_dir': str(tmp_path)}
    a = load_prior({**block, 'steps': 2})
    b = load_prior({**block, 'steps': 3})
    again = load_prior({**block, 'steps': 2, 'seed': 5})
    assert a.fingerprint == b.fingerprint
    assert a.extractor.cache_dir == b.extractor.cache_dir == again.extractor.cache_dir
    assert osp.basename(a.extractor.cache_dir) == f"ddpm_prior_{a.fingerprint[:12]}" and again.seed == 5
    assert a.extractor.fingerprint != b.extractor.fingerprint
    lq = torch.rand(1, 3, 32, 32)
    ra = a.extractor.extract(lq, seed=0)['render']
    assert len(os.listdir(a.extractor.cache_dir)) == 1
    rb = b.extractor.extract(lq, seed=0)['render']
    assert len(os.listdir(a.extractor.cache_dir)) == 2 and not torch.equal(ra, rb)
    assert torch.equal(a.extractor.extract(lq, seed=0)['render'], ra)


@pytest.mark.parametrize('schedule', [[], ['+train.gan_start_iter=3', '+train.net_d_init_iters=2',
                                             '+train.net_d_iters=2']], ids=['paper', 'gan_schedule'])
def test_resume_matches_an_uninterrupted_run(setup, tmp_path, schedule):
    """8 iterations straight vs. stopped after 4 (mid-epoch) and resumed: same student, teacher, discriminator.

    The in-memory prior cache travels in the training state, so the resumed run sees the same priors.  With the
    GAN schedule, the stop falls in the discriminator-only phase (iterations 3-5, then the student every 2nd).
    """
    from lowlight3d.pipeline.train_pipeline import train_pipeline
    from lowlight3d.utils.checkpoint import load_checkpoint
    opt = _options(FULL, setup)  # the tiny overrides, as --cfg-options
    root = setup['root']
    cfg = ['network_g.base_channels=4', 'network_d.ndf=4', 'train.feature_extractor.layers=[relu1_1,relu2_1]',
           f'datasets.train.paired.dataroot_gt={root}/paired', f'datasets.train.unpaired.dataroot_lq={root}/unpaired',
           'datasets.train.unpaired.meta_info_file=~', 'datasets.train.gt_size=32',
           'datasets.train.batch_size_per_gpu=3', f'datasets.val.dataroot_gt={root}/paired', 'datasets.val.gt_size=32',
           f"prior.file={opt['prior']['file']}", '+prior.steps=2', 'train.total_iter=8',
           'train.scheduler.periods=[8]', 'logger.save_checkpoint_freq=4', 'val.val_freq=100', 'logger.print_freq=4',
           'logger.use_tb_logger=false', *schedule]

    def train(folder, name, *flags):
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            return train_pipeline(['-opt', FULL, *flags, '--cfg-options', f'name={name}', *cfg],
                                  root_path=str(folder)).opt

    straight = train(tmp_path / 'a', 'straight')
    crashed = train(tmp_path / 'b', 'resumed')
    for folder in (crashed['path']['training_states'], crashed['path']['models']):
        for name in os.listdir(folder):
            if name.split('.')[0].split('_')[-1] in ('8', 'latest', 'best'):
                os.remove(osp.join(folder, name))
    assert sorted(os.listdir(crashed['path']['training_states'])) == ['4.state']
    resumed = train(tmp_path / 'b', 'resumed', '--auto_resume')
    a = load_checkpoint(osp.join(straight['path']['training_states'], '8.state'))
    b = load_checkpoint(osp.join(resumed['path']['training_states'], '8.state'))
    assert a['iter'] == b['iter'] == 8 and len(a['model_extra']['prior_cache']) > 0
    for label in ('net_g', 'net_g_ema', 'net_d'):
        for key, value in a['networks'][label].items():
            assert torch.allclose(value, b['networks'][label][key], atol=1e-5, rtol=0), (label, key)


# ---------------------------------------------------------------- per-term gradient norms, GAN schedule

TERMS = ('pixel', 'perceptual', 'intra', 'inter', 'gan')


def _changed(before, net):
    return any(not torch.equal(before[k], v) for k, v in _params(net).items())


def test_gradient_norms_per_term_at_the_configured_frequency(setup):
    torch.manual_seed(0)
    model, opt = _model(FULL, setup, ['+logger.grad_norm_freq=2'])
    batch = _batch(opt)
    model.feed_data(batch)
    model.optimize_parameters(1)
    assert not any(k.startswith(('grad_', 'share_')) for k in model.get_current_log())
    model.optimize_parameters(2)
    logs = model.get_current_log()
    assert {f'grad_{t}' for t in TERMS} | {f'share_{t}' for t in TERMS} | {'grad_total'} <= set(logs)
    assert all(logs[f'grad_{t}'] > 0 for t in TERMS)
    assert sum(logs[f'share_{t}'] for t in TERMS) == pytest.approx(1.0)
    assert logs['grad_total'] <= sum(logs[f'grad_{t}'] for t in TERMS) * (1 + 1e-6)
    # measuring changes nothing in training: same weights as a model that never measures
    torch.manual_seed(0)
    other, _ = _model(FULL, setup, ['+logger.grad_norm_freq=0'])
    other.feed_data(batch)
    for it in (1, 2):
        other.optimize_parameters(it)
        assert not any(k.startswith('grad_') for k in other.get_current_log())
    for label in ('net_g', 'net_g_ema', 'net_d'):
        for key, value in _params(other.nets[label]).items():
            assert torch.equal(value, _params(model.nets[label])[key]), (label, key)


def test_gan_schedule_is_a_function_of_the_iteration(setup):
    model, _ = _model(FULL, setup, ['+train.gan_start_iter=3', '+train.net_d_init_iters=2', '+train.net_d_iters=2'])
    # iterations 1-2: warm-up without GAN; 3-4: discriminator only; from 5 the student steps on even iterations
    assert [model.gan_schedule(i) for i in range(1, 9)] == [
        (False, True), (False, True), (True, False), (True, False), (True, False), (True, True), (True, False),
        (True, True)]
    paper, _ = _model(FULL, setup)
    assert all(paper.gan_schedule(i) == (True, True) for i in range(1, 5))  # the defaults: the paper
    v1, _ = _model(osp.join(DEMO, 'ablation', 'train_LowLight3D_V1_supervised_only_demo.yml'), setup,
                   ['+train.gan_start_iter=3', '+train.net_d_iters=2'])
    assert all(v1.gan_schedule(i) == (False, True) for i in range(1, 5))  # no gan_opt: the options do nothing


def test_gan_start_iter_warms_up_the_student_without_the_discriminator(setup):
    model, opt = _model(FULL, setup, ['+train.gan_start_iter=2'])
    model.feed_data(_batch(opt))
    g0, d0 = _params(model.nets['net_g']), _params(model.nets['net_d'])
    model.optimize_parameters(1)
    logs = model.get_current_log()
    assert 'l_gan' not in logs and 'l_d_real' not in logs and 'l_pixel' in logs
    assert _changed(g0, model.nets['net_g']) and not _changed(d0, model.nets['net_d'])
    model.optimize_parameters(2)
    logs = model.get_current_log()
    assert {'l_gan', 'l_d_real', 'l_d_fake'} <= set(logs) and _changed(d0, model.nets['net_d'])


def test_net_d_init_iters_and_net_d_iters_hold_the_student(setup):
    model, opt = _model(FULL, setup, ['+train.net_d_init_iters=2', '+train.net_d_iters=2'])
    model.feed_data(_batch(opt))
    g0, t0 = _params(model.nets['net_g']), _params(model.nets['net_g_ema'])
    d_prev = _params(model.nets['net_d'])
    for it, student_steps in ((1, False), (2, False), (3, False), (4, True)):
        model.optimize_parameters(it)
        logs = model.get_current_log()
        assert _changed(d_prev, model.nets['net_d']), it  # the discriminator trains every iteration
        d_prev = _params(model.nets['net_d'])
        assert _changed(g0, model.nets['net_g']) == student_steps, it
        assert _changed(t0, model.nets['net_g_ema']) == student_steps, it  # the EMA follows student steps
        assert ('l_pixel' in logs) == student_steps and 'l_d_real' in logs, it


@pytest.mark.parametrize('key, value', [('train.net_d_iters', 0), ('train.net_d_init_iters', -1),
                                        ('train.gan_start_iter', 1.5), ('train.gan_start_iter', 'late')])
def test_bad_gan_schedule_values_fail_clearly(setup, key, value):
    with pytest.raises(ValueError, match=rf'{key} .*must be an integer'):
        _model(FULL, setup, [f'+{key}={value}'])


def test_gan_start_iter_as_a_fraction_follows_total_iter(setup):
    """The demo's warm-up (``gan_start_iter: 0.75``) is a fraction of ``train.total_iter``, so a budget that sets
    the iterations (make benchmark-real) keeps the adversarial term in the last quarter."""
    model, opt = _model(FULL, setup, ['train.gan_start_iter=0.75', 'train.total_iter=40'])
    assert model.gan_start_iter == 30
    model, _ = _model(FULL, setup, ['train.gan_start_iter=0.5', 'train.total_iter=7'])
    assert model.gan_start_iter == 3
    raw = load_config(FULL)['train']
    assert raw['gan_start_iter'] == 0.75 and raw['net_d_init_iters'] == 20  # the demo default (issue 10)


def test_grad_clip_bounds_the_student_gradient_and_logs_its_norm(setup, monkeypatch):
    """``train.grad_clip``: the student's global gradient norm is at most the bound when the optimiser steps, the
    norm before clipping is logged as ``grad_norm_g``; a huge bound changes nothing (same weights as no clipping);
    a bad value fails clearly."""
    torch.manual_seed(0)
    model, opt = _model(FULL, setup, ['+train.grad_clip=1e-3'])
    batch = _batch(opt)
    model.feed_data(batch)
    optim = model.optimizers['optim_g']
    seen = []
    step = optim.step
    monkeypatch.setattr(optim, 'step', lambda *a, **k: (seen.append(torch.nn.utils.get_total_norm(
        [p.grad for p in model.nets['net_g'].parameters() if p.grad is not None])), step(*a, **k))[1])
    model.optimize_parameters(1)
    logs = model.get_current_log()
    assert logs['grad_norm_g'] > 1e-3 and seen[0] == pytest.approx(1e-3, rel=1e-3)
    # a bound far above the norm: identical to no clipping
    results = []
    for extra in (['+train.grad_clip=1e9'], []):
        torch.manual_seed(0)
        m, _ = _model(FULL, setup, extra)
        m.feed_data(batch)
        m.optimize_parameters(1)
        results.append(_params(m.nets['net_g']))
    assert all(torch.equal(results[0][k], results[1][k]) for k in results[0])
    with pytest.raises(ValueError, match='train.grad_clip must be a positive number'):
        _model(FULL, setup, ['+train.grad_clip=-1'])
