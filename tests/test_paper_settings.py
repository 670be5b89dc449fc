"""The paper-scale option files hold the paper's numbers (``docs/method.md`` sections 2-5): an edit that changes the
paper configuration fails here, by name.

Loss weights are the products of the paper's lambdas (eqs. 7-9): ``L = L1 + l3 * perceptual + l1 * (l4 * intra +
l5 * inter) + l2 * adv`` with ``l1 = 0.5, l2 = 0.01, l3 = 0.1, l4 = 0.5, l5 = 0.5``.
"""
import os.path as osp

import pytest

from lowlight3d.pipeline.inference_speed import prior_stage_options
from lowlight3d.utils.options import load_config

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TRAIN = osp.join(REPO, 'options', 'train', 'LowLight3D')
LAMBDA = {'l1': 0.5, 'l2': 0.01, 'l3': 0.1, 'l4': 0.5, 'l5': 0.5}
PAIRS, EPOCHS = 5000, 200  # paired FFHQ training images; enhancement epochs


def _load(name):
    return load_config(osp.join(TRAIN, name))


@pytest.fixture(scope='module')
def full():
    return _load('train_LowLight3D_FFHQ_CelebVLow.yml')


def test_full_method_loss_weights_are_the_products_of_the_lambdas(full):
    train = full['train']
    assert train['pixel_opt']['type'] == 'L1Loss' and train['pixel_opt']['loss_weight'] == 1.0
    assert train['perceptual_opt']['loss_weight'] == pytest.approx(LAMBDA['l3'])
    assert train['intra_opt']['loss_weight'] == pytest.approx(LAMBDA['l1'] * LAMBDA['l4'])
    assert train['inter_opt']['loss_weight'] == pytest.approx(LAMBDA['l1'] * LAMBDA['l5'])
    assert train['gan_opt']['type'] == 'ColorEdgeLSGANLoss'
    assert train['gan_opt']['loss_weight'] == pytest.approx(LAMBDA['l2'])
    # the paper's intra loss is softmax(d) itself: no temperature other than 1 at paper scale
    assert train['intra_opt'].get('temperature', 1.0) == 1.0
    for key in ('gan_start_iter', 'net_d_init_iters'):
        assert not train.get(key), f'{key} is not in the paper'
    assert train.get('net_d_iters', 1) == 1
    assert train['feature_extractor']['arch'] == 'vgg19'
    assert train['feature_extractor']['layers'] == ['relu1_1', 'relu2_1', 'relu3_1']
    assert train['feature_extractor']['weights'] is None, 'paper scale uses the ImageNet VGG19 (resolved weights)'


def test_full_method_optimisers_schedule_and_200_epochs(full):
    train, data = full['train'], full['datasets']['train']
    for key in ('optim_g', 'optim_d'):
        assert train[key]['type'] == 'Adam' and float(train[key]['lr']) == 1e-4
        assert list(train[key]['betas']) == [0.5, 0.999]
    assert train['scheduler']['type'] == 'CosineAnnealingRestartLR'
    assert train['scheduler']['periods'] == [train['total_iter']] and float(train['scheduler']['eta_min']) == 1e-6
    num_gpu = 1 if full.get('num_gpu') in (None, 'auto', 0) else int(full['num_gpu'])
    assert train['total_iter'] * data['batch_size_per_gpu'] * num_gpu == EPOCHS * PAIRS
    assert data['gt_size'] == 256 and data['use_hflip'] is True
    assert train['ema_decay'] == 0.999  # eq. 5 momentum (OPEN in the paper; our decision, docs/method.md)
    assert full['model_type'] == 'SemiSupervisedDistillationModel'
    assert full['network_g']['type'] == 'PriorGuidedEnhancer' and full['network_g']['fusion'] == 'prior3d'
    assert full['network_g']['padding_mode'] == 'replicate'  # our decision (issue 10: zero padding left a frame)
    assert full['network_d']['type'] == 'ColorEdgeDiscriminator'


def test_full_method_reads_the_prior_file_of_the_paper_ddpm_stage(full):
    """One prior file (issue 15.1): the enhancement run names the file the DDPM stage writes, never its editable
    option file; the stage that writes it is train_TriplaneDDPM_FFHQ.yml."""
    ddpm = _load('train_TriplaneDDPM_FFHQ.yml')
    assert full['prior']['file'] == f"experiments/{ddpm['name']}/models/prior_latest.pth"
    assert not {'ddpm_options', 'denoiser_weights', 'generator_weights'} & set(full['prior'])
    assert prior_stage_options(full['prior']) == osp.join(TRAIN, 'train_TriplaneDDPM_FFHQ.yml')
    assert full['prior']['seed'] == 0 and full['prior']['refresh'] == 'once'


def test_prior_ddpm_schedule_optimiser_and_objective():
    ddpm = _load('train_TriplaneDDPM_FFHQ.yml')
    assert ddpm['diffusion']['num_steps'] == 1000 and ddpm['diffusion']['schedule'] == 'linear'
    assert float(ddpm['diffusion']['beta_start']) == 1e-4 and float(ddpm['diffusion']['beta_end']) == 0.02
    assert ddpm['diffusion'].get('objective', 'noise') == 'noise', 'eq. 6 predicts the noise at paper scale'
    train = ddpm['train']
    assert train['total_iter'] == 1_000_000
    assert train['optim_g']['type'] == 'Adam' and float(train['optim_g']['lr']) == 4e-5
    assert list(train['optim_g']['betas']) == [0.9, 0.99]
    assert train['scheduler']['type'] == 'CosineAnnealingRestartLR'
    assert train['scheduler']['periods'] == [1_000_000] and float(train['scheduler']['eta_min']) == 2e-6
    assert train['noise_opt']['type'] == 'MSELoss'


def _off(opt, *blocks):
    return all(opt['train'].get(b) is None for b in blocks)


@pytest.mark.parametrize('variant,check', [
    ('V1_supervised_only', lambda o, f: _off(o, 'intra_opt', 'inter_opt', 'gan_opt')),
    ('V2_pseudo_labels', lambda o, f: _off(o, 'intra_opt', 'inter_opt')
     and o['train']['pseudo_label_opt']['loss_weight'] == LAMBDA['l1']
     and o['train']['gan_opt'] == f['train']['gan_opt']),
    ('V3_no_intra', lambda o, f: _off(o, 'intra_opt') and o['train']['inter_opt'] == f['train']['inter_opt']),
    ('V4_no_inter', lambda o, f: _off(o, 'inter_opt') and o['train']['intra_opt'] == f['train']['intra_opt']),
    ('V5_no_prior', lambda o, f: o.get('prior') is None),
    ('V6_regression_prior', lambda o, f: set(o['prior']) == set(f['prior'])
     and load_config(prior_stage_options(o['prior']))['diffusion']['objective'] == 'regression'),
    ('V7_concat_fusion', lambda o, f: o['network_g']['fusion'] == 'concat'),
])
def test_each_ablation_changes_only_its_part(full, variant, check):
    opt = _load(osp.join('ablation', f'train_LowLight3D_{variant}.yml'))
    assert check(opt, full), variant
    # everything else is the full method's: optimisers, schedule, data, the other losses
    for key in ('optim_g', 'scheduler', 'total_iter', 'pixel_opt', 'perceptual_opt', 'ema_decay'):
        assert opt['train'][key] == full['train'][key], (variant, key)
    assert opt['datasets'] == full['datasets']


def test_paper_benchmark_list_has_table_1_and_table_2_at_the_option_files_iterations():
    """``make benchmark-paper``: every Table 1 method and V1-V7, each at its own option file's iterations."""
    from lowlight3d.pipeline.benchmark import OWN_ITERATIONS, load_benchmark_list, plan_iterations
    spec = load_benchmark_list(osp.join(REPO, 'options', 'benchmark_paper.yml'))
    labels = [s['label'] for s in spec['stages']]
    for method in ('EnlightenGAN', 'ZERO-IG', 'UHDformer', 'DLIENet', 'Low-FaceNet', 'IC-FSRDENet', 'RDDM', 'Ours'):
        assert method in labels, method
    for v in range(1, 8):
        assert sum(label.startswith(f'V{v} ') for label in labels) == 1, v
    assert spec['total_iter'] == OWN_ITERATIONS and spec['seeds'] == [0] and not spec['budget_s']
    ours = next(s for s in spec['stages'] if s['label'] == 'Ours')
    plan = plan_iterations(ours, spec, spec['seeds'])
    assert plan == {'total_iter': 125000, 'source': 'option file', 'probe': None, 'budget_s': None}
    v1 = next(s for s in spec['stages'] if s['label'].startswith('V1 '))
    assert plan_iterations(v1, spec, spec['seeds'])['total_iter'] == 125000
    # the paper-scale test sets of every Table 2 row are the full method's
    full_test = load_config(osp.join(REPO, ours['test']))['datasets']
    composed = load_config(osp.join(REPO, v1['test_sets']))['datasets']
    assert {k: v['name'] for k, v in composed.items()} == \
        {k: v['name'] for k, v in full_test.items() if k.startswith('test')}
    for pre in ('TriplaneDDPM_FFHQ', 'TriplaneRegressor_FFHQ'):
        assert any(pre in p for p in spec['prerequisites']), pre
