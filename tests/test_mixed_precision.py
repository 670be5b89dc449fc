"""train.amp / train.channels_last: option parsing, every model family in bf16 + NHWC, parity with float32, exact
resume, float32 contiguous checkpoints, and the batched teacher/student branches of the full method.

All networks have random weights (the feature extractors are the explicit random-weight VGG stand-ins); images are
tiny random tensors. bf16 runs need a CPU with native bf16 (this project's machines have AVX512-BF16/AMX); where
it is missing, the bf16 tests are skipped with that reason and the fallback test covers the float32 path.
"""
import copy
import logging

import pytest
import torch

import baselines  # noqa: F401  (registrations)
from lowlight3d.models.semi_supervised_distillation_model import _paired_call
from lowlight3d.pipeline.train_step_time import build_timing_model, random_batch
from lowlight3d.utils.precision import MixedPrecision, cpu_has_native_bf16, parse_amp

needs_bf16 = pytest.mark.skipif(not cpu_has_native_bf16(), reason='this CPU has no native bf16 (avx512_bf16/amx_bf16)')
FLOAT32 = ['train.amp=off', 'train.channels_last=false']


def test_parse_amp_accepts_the_three_modes_and_yaml_off():
    assert parse_amp('off') == parse_amp(False) == parse_amp(None) == 'off'
    assert parse_amp('BF16') == 'bf16' and parse_amp('fp16') == 'fp16'
    for bad in (True, 'fp8', 16):
        with pytest.raises(ValueError, match='off | bf16 | fp16'):
            parse_amp(bad)


def test_impossible_modes_are_clear_errors_and_bf16_falls_back_without_native_support(caplog):
    with pytest.raises(ValueError, match='fp16 needs a CUDA device'):
        MixedPrecision('fp16', device='cpu')
    with pytest.raises(ValueError, match='channels_last must be true or false'):
        MixedPrecision('off', channels_last='yes')
    with caplog.at_level(logging.INFO, logger='basicsr'):
        prec = MixedPrecision('bf16', True, 'cpu', native_bf16=False)
    assert prec.mode == 'off' and prec.dtype is None and prec.requested == 'bf16'
    assert sum('no native bf16' in r.getMessage() for r in caplog.records) == 1
    assert 'not available here' in prec.describe()
    native = MixedPrecision('bf16', True, 'cpu', native_bf16=True)
    assert native.mode == 'bf16' and native.dtype is torch.bfloat16


def test_every_shipped_training_file_resolves_to_the_fast_defaults_and_float32_on_request():
    from lowlight3d.pipeline.option_loading import load_options
    for path in ('options/demo/train_LowLight3D_demo.yml', 'options/real/train_LowLight3D_real.yml',
                 'options/demo/ablation/train_LowLight3D_V5_no_prior_demo.yml',
                 'options/train/LowLight3D/train_LowLight3D_FFHQ_CelebVLow.yml'):
        fast = load_options(path, is_train=True, cfg_options=['num_gpu=0'], root_path='/tmp')
        assert fast['train']['amp'] == 'bf16' and fast['train']['channels_last'] is True, path
        slow = load_options(path, is_train=True, cfg_options=['num_gpu=0'] + FLOAT32, root_path='/tmp')
        prec = MixedPrecision.from_options(slow, torch.device('cpu'))
        assert prec.mode == 'off' and not prec.channels_last, path


# one training file per model family: the method and its prior stages, the supervised model, every baseline
FAMILIES = [
    'options/demo/train_LowLight3D_demo.yml',  # SemiSupervisedDistillationModel (student, EMA teacher, VGG, D)
    'options/demo/train_TriplaneGenerator_demo.yml',
    'options/demo/train_TriplaneDDPM_demo.yml',
    'options/demo/train_LowLightUNet_demo.yml',  # SupervisedEnhancementModel
    'options/demo/train_EnlightenGAN_randomVGG_demo.yml',
    'options/demo/train_ZeroIG_demo.yml',
    'options/demo/train_UHDformer_demo.yml',
    'options/demo/train_DLIENet_teacher_demo.yml',
    'options/demo/train_HVICIDNet_randomVGG_demo.yml',
    'options/demo/train_ICFSRDENet_stage1_demo.yml',
    'options/demo/train_RDDM_demo.yml',
    'options/demo/train_LowFaceNet_standins_demo.yml',
]
# what a family needs beyond random batches: Low-FaceNet's face loss reads a gallery folder (its own tests cover it)
EXTRA = {'options/demo/train_LowFaceNet_standins_demo.yml': ['train.face_opt=~']}


def _weights(model):
    return {label: {k: v.detach().clone() for k, v in model.bare(net).state_dict().items()}
            for label, net in model.nets.items()}


@needs_bf16
@pytest.mark.parametrize('path', FAMILIES, ids=lambda p: p.split('/')[-1][6:-9])
def test_every_model_family_trains_in_bf16_channels_last(path):
    model, opt = build_timing_model(path, EXTRA.get(path, []))
    assert model.precision.mode == 'bf16' and model.precision.channels_last
    trained = [label for label, net in model.nets.items() if any(p.requires_grad for p in net.parameters())]
    first = model.bare(model.nets[trained[0]])
    conv = next(m for m in first.modules() if isinstance(m, torch.nn.Conv2d) and m.weight.dim() == 4
                and m.weight.shape[-1] > 1)
    assert conv.weight.is_contiguous(memory_format=torch.channels_last) and conv.weight.dtype == torch.float32
    dtypes = []
    handle = conv.register_forward_hook(lambda _m, _i, out: dtypes.append(out.dtype))
    before = _weights(model)
    data = random_batch(2, 32, torch.Generator().manual_seed(0))
    total = int(opt['train']['total_iter'])
    for it in (total - 1, total):
        model.train_step(data, it)
    handle.remove()
    assert dtypes and set(dtypes) == {torch.bfloat16}  # autocast was on
    logs = model.get_current_log()
    assert logs and all(torch.isfinite(torch.as_tensor(v)) for v in logs.values()), logs
    after = _weights(model)
    assert any(not torch.equal(before[label][k], after[label][k]) for label in trained for k in before[label])
    for label, net in model.nets.items():  # parameters, EMA copies and optimiser states stay float32
        assert all(p.dtype == torch.float32 for p in net.parameters()), label
    for optimizer in model.optimizers.values():
        for state in optimizer.state.values():
            assert all(v.dtype == torch.float32 for v in state.values() if torch.is_tensor(v) and v.dim() > 0)
    for label in model.nets:  # checkpoints: float32 and contiguous whatever the training's memory format
        for v in model.network_state_dict(label).values():
            assert v.is_contiguous() and (v.dtype == torch.float32 or not v.is_floating_point())


def _train_unet(cfg, steps, data):
    model, opt = build_timing_model('options/demo/train_LowLightUNet_demo.yml', cfg)
    model.nets['net_g'].load_state_dict(_INIT)
    losses = []
    for it in range(1, steps + 1):
        model.train_step(data[it % len(data)], it)
        losses.append(float(model.get_current_log()['l_total']))
    return model, losses


_INIT = None


@needs_bf16
def test_bf16_training_tracks_float32():
    """A tiny U-Net trained 30 steps from the same weights on the same batches: the bf16 loss curve stays within
    5 % of the float32 one at every step and both fall (measured: at most 1.1 % apart; loss 0.408 -> 0.040 in both)."""
    global _INIT
    torch.manual_seed(0)
    ref, _ = build_timing_model('options/demo/train_LowLightUNet_demo.yml', FLOAT32)
    _INIT = copy.deepcopy(ref.nets['net_g'].state_dict())
    gen = torch.Generator().manual_seed(1)
    data = []
    for _ in range(4):
        gt = torch.nn.functional.avg_pool2d(torch.rand(4, 3, 32, 32, generator=gen), 5, 1, 2)
        data.append({'lq': gt * 0.15, 'gt': gt, 'lq_path': ['a'] * 4, 'gt_path': ['a'] * 4})
    _, fp32 = _train_unet(FLOAT32, 30, data)
    _, bf16 = _train_unet([], 30, data)
    rel = [abs(a - b) / a for a, b in zip(fp32, bf16)]
    assert max(rel) < 0.05, rel
    assert fp32[-1] < 0.8 * fp32[0] and bf16[-1] < 0.8 * bf16[0]


@needs_bf16
def test_bf16_resume_is_exact():
    """4 straight iterations == 2 iterations, a training state through torch.save, 2 more in a new model."""
    data = random_batch(2, 32, torch.Generator().manual_seed(3))
    torch.manual_seed(0)
    straight, _ = build_timing_model('options/demo/train_LowLight3D_demo.yml')
    init = {label: copy.deepcopy(straight.bare(net).state_dict()) for label, net in straight.nets.items()}
    for it in range(1, 5):
        straight.train_step(data, it)
    torch.manual_seed(0)
    first, _ = build_timing_model('options/demo/train_LowLight3D_demo.yml')
    for label, net in first.nets.items():
        first.bare(net).load_state_dict(init[label])
    for it in range(1, 3):
        first.train_step(data, it)
    state = first.training_state(0, 2)
    assert state['precision']['amp'] == 'bf16'
    torch.manual_seed(123)
    second, _ = build_timing_model('options/demo/train_LowLight3D_demo.yml')
    second.resume_training(copy.deepcopy(state))
    for it in range(3, 5):
        second.train_step(data, it)
    for label in straight.nets:
        a, b = straight.network_state_dict(label), second.network_state_dict(label)
        assert all(torch.equal(a[k], b[k]) for k in a), label


def test_paired_call_equals_two_calls_for_the_student_and_the_features():
    """The full method's batched branches (student, teacher, features): same outputs as separate calls."""
    from lowlight3d.archs import build_network
    torch.manual_seed(0)
    net = build_network({'type': 'PriorGuidedEnhancer', 'base_channels': 8, 'blocks_per_level': 1}).eval()
    x_a, x_b = torch.rand(2, 3, 32, 32), torch.rand(3, 3, 32, 32)

    def prior(n):
        return {'T': [torch.rand(n, 3, 32, 32) for _ in range(3)], 'D': [torch.rand(n, 1, 32, 32) for _ in range(3)]}
    p_a, p_b = prior(2), prior(3)
    with torch.no_grad():
        out_a, out_b = _paired_call(net, (x_a, p_a), (x_b, p_b))
        assert torch.allclose(out_a, net(x_a, p_a), atol=1e-5) and torch.allclose(out_b, net(x_b, p_b), atol=1e-5)
        assert out_a.shape[0] == 2 and out_b.shape[0] == 3
        no_prior = _paired_call(net, (x_a, None), (x_b, None))
        assert torch.allclose(no_prior[1], net(x_b, None), atol=1e-5)
        vgg = build_network({'type': 'FrozenVGGFeatureExtractor', 'arch': 'vgg19', 'weights': 'random_for_tests',
                             'layers': ['relu1_1', 'relu2_1']})
        f_a, f_b = _paired_call(vgg, (x_a, ), (x_b, ))
        assert all(torch.allclose(u, v, atol=1e-5) for u, v in zip(f_b, vgg(x_b)))
        # inputs that cannot be joined (other sizes; one prior missing) take two calls
        odd = _paired_call(net, (x_a, None), (torch.rand(1, 3, 16, 16), None))
        assert odd[1].shape[-1] == 16
        mixed = _paired_call(net, (x_a, p_a), (x_b, None))
        assert torch.allclose(mixed[1], net(x_b, None), atol=1e-5)


def test_nonfinite_loss_skips_the_step_and_a_streak_stops_the_run():
    """A NaN loss is not back-propagated and its step is skipped (the weights stay finite and unchanged); a finite
    loss afterwards trains normally; MAX_NONFINITE_ITERATIONS NaN iterations in a row raise FloatingPointError."""
    from lowlight3d.utils.precision import MAX_NONFINITE_ITERATIONS
    prec = MixedPrecision('off', False, torch.device('cpu'))
    net = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    before = [p.detach().clone() for p in net.parameters()]
    prec.backward(net(torch.ones(1, 2)).sum() * float('nan'))
    prec.step(opt)
    prec.update()
    assert prec.nonfinite_streak == 1
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))
    prec.backward(net(torch.ones(1, 2)).sum())
    prec.step(opt)
    prec.update()
    assert prec.nonfinite_streak == 0
    assert not torch.equal(before[1], net.bias) and all(torch.isfinite(p).all() for p in net.parameters())
    with pytest.raises(FloatingPointError, match='NaN or infinite'):
        for _ in range(MAX_NONFINITE_ITERATIONS):
            opt.zero_grad()
            prec.backward(net(torch.ones(1, 2)).sum() * float('inf'))
            prec.step(opt)
            prec.update()
