"""DLIENet baseline: network sizes, AdaIN and every loss term by hand, both training stages, any-size inference."""
import json
import math
import os
import os.path as osp
import warnings

import pytest
import torch
import torch.nn.functional as F

import baselines  # noqa: F401  (registrations)
from baselines.dlienet.dlienet_arch import DLIENetStudent, DLIENetTeacher, adain
from baselines.dlienet.dlienet_loss import DLIENetFeatureMapL1Loss
from baselines.dlienet.dlienet_model import resolve_teacher_weights

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO = osp.join(REPO, 'options', 'demo')
TEACHER_OPT = osp.join(DEMO, 'train_DLIENet_teacher_demo.yml')
STUDENT_OPT = osp.join(DEMO, 'train_DLIENet_student_demo.yml')
TEST_OPT = osp.join(DEMO, 'test_DLIENet_demo.yml')
TINY = ['network_g.num_feat=24', 'network_teacher.num_feat=24']  # GroupNorm(12) and the SE reduction 16 still fit


def _count(net):
    return sum(p.numel() for p in net.parameters())


def test_parameter_counts_of_the_original():
    assert _count(DLIENetTeacher(96)) == 3_460_833
    assert _count(DLIENetStudent(96)) == 781_803
    assert _count(DLIENetStudent(32)) == 87_419 and _count(DLIENetStudent(64)) == 348_019  # baselines.md 4
    with pytest.raises(ValueError, match='divisible by groups'):
        DLIENetTeacher(40)
    with pytest.raises(ValueError, match='multiple of 4'):
        DLIENetStudent(30)


def test_adain_by_hand():
    torch.manual_seed(0)
    content, style = torch.randn(2, 3, 4, 5), torch.randn(2, 3, 6, 2) * 3 + 1
    out = adain(content, style, eps=1e-5)
    for n in range(2):
        for c in range(3):
            x, s = content[n, c].flatten().tolist(), style[n, c].flatten().tolist()
            mx, ms = sum(x) / len(x), sum(s) / len(s)
            sx = math.sqrt(sum((v - mx)**2 for v in x) / (len(x) - 1)) + 1e-5  # unbiased std + eps
            ss = math.sqrt(sum((v - ms)**2 for v in s) / (len(s) - 1)) + 1e-5
            expected = [(v - mx) / sx * ss + ms for v in x]
            assert out[n, c].flatten().tolist() == pytest.approx(expected, rel=1e-4, abs=1e-5)
    # the result carries the style's statistics
    assert torch.allclose(out.mean((2, 3)), style.mean((2, 3)), atol=1e-5)
    assert torch.allclose(out.std((2, 3)), style.std((2, 3)), rtol=1e-3)
    with pytest.raises(ValueError, match='same batch size and channels'):
        adain(content, style[:, :2])


def test_feature_map_l1_by_hand():
    a = [torch.tensor([[[[1.0, -2.0]]]]), torch.zeros(1, 1, 2, 2)]
    b = [torch.tensor([[[[0.0, 2.0]]]]), torch.ones(1, 1, 2, 2)]
    # 0.05 * (mean(|1|, |-4|) + mean of four |-1|) = 0.05 * (2.5 + 1)
    assert DLIENetFeatureMapL1Loss(0.05)(a, b).item() == pytest.approx(0.175)
    student = torch.zeros(1, 1, 1, 2, requires_grad=True)
    DLIENetFeatureMapL1Loss()([student], [torch.ones(1, 1, 1, 2, requires_grad=True)]).backward()
    assert student.grad.tolist() == [[[[-0.5, -0.5]]]]
    with pytest.raises(ValueError, match="teacher's num_feat"):
        DLIENetFeatureMapL1Loss()([torch.zeros(1, 8, 2, 2)], [torch.zeros(1, 16, 2, 2)])
    with pytest.raises(ValueError, match='same non-empty number'):
        DLIENetFeatureMapL1Loss()([a[0]], b)


@pytest.mark.parametrize('size', [(17, 23), (9, 31), (5, 3), (32, 32)])
def test_any_size_inference_crops_the_padding(size):
    torch.manual_seed(0)
    for net in (DLIENetTeacher(24).eval(), DLIENetStudent(24).eval()):
        x = torch.rand(1, 3, *size)
        with torch.no_grad():
            y = net(x)
            out = net(x * 2 - 1, distill=True)
        assert y.shape == x.shape and 0 <= y.min() and y.max() <= 1
        assert torch.allclose(y, (out.image.clamp(-1, 1) + 1) / 2)
        h8, w8 = max(2, -(-size[0] // 8)), max(2, -(-size[1] // 8))
        assert out.att2.shape == out.bot1.shape == (1, 24, h8, w8)
        if size[0] > 8 and size[1] > 8:  # the result is the padded image's result, cropped back
            padded = F.pad(x, (0, 8 * w8 - size[1], 0, 8 * h8 - size[0]), mode='reflect')
            with torch.no_grad():
                assert torch.allclose(net(padded)[..., :size[0], :size[1]], y, atol=1e-6)


def _model(path, is_train, extra=()):
    from lowlight3d.models import build_model
    from lowlight3d.pipeline.option_loading import load_options
    return build_model(load_options(path, is_train=is_train, root_path='/tmp', cfg_options=list(extra)))


def _batch(size=16, n=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {'lq': torch.rand(n, 3, size, size, generator=g) * 0.2, 'gt': torch.rand(n, 3, size, size, generator=g)}


def test_teacher_loss_terms_by_hand():
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        model = _model(TEACHER_OPT, True, ['network_g.num_feat=24', 'train.feature_extractor.layers=[conv1_2,conv2_2]',
                                           'train.perceptual_opt.layer_weights=[1,2]'])
    net, vgg = model.nets['net_g'], model.features
    batch = _batch()
    lq, gt = batch['lq'] * 2 - 1, batch['gt'] * 2 - 1
    with torch.no_grad():
        y_low, y_gt = net(lq, distill=True).image, net(gt, distill=True).image
        f_gt = vgg(batch['gt'])

        def perc(y):
            return 1e-4 * sum(w * ((a - b)**2).mean() for w, a, b in zip([1, 2], vgg((y + 1) / 2), f_gt))
        expected = {'l_pixel': (y_low - gt).abs().mean(), 'l_pixel_gt': (y_gt - gt).abs().mean(),
                    'l_perceptual': perc(y_low), 'l_perceptual_gt': perc(y_gt)}
    model.feed_data(batch)
    model.optimize_parameters(1)
    logs = model.get_current_log()
    for key, value in expected.items():
        assert logs[key] == pytest.approx(value.item(), rel=1e-4), key
    assert logs['l_total'] == pytest.approx(sum(v.item() for v in expected.values()), rel=1e-4)
    assert model.uses_random_features  # the demo teacher's VGG19 is the labelled random stand-in
    no_gt = _model(TEACHER_OPT, True, ['network_g.num_feat=24', 'train.gt_reconstruction=false',
                                       'train.perceptual_opt=null'])
    no_gt.feed_data(batch)
    no_gt.optimize_parameters(1)
    assert set(no_gt.get_current_log()) >= {'l_pixel'} and 'l_pixel_gt' not in no_gt.get_current_log()


def _teacher_file(tmp_path, num_feat=24):
    torch.manual_seed(1)
    teacher = DLIENetTeacher(num_feat)
    path = osp.join(str(tmp_path), 'experiments', 'my_teacher', 'models', 'net_g_latest.pth')
    os.makedirs(osp.dirname(path), exist_ok=True)
    torch.save({'params': teacher.state_dict()}, path)
    return teacher, path


def test_student_loss_terms_by_hand(tmp_path):
    teacher, path = _teacher_file(tmp_path)
    model = _model(STUDENT_OPT, True, [*TINY, f'path.pretrain_network_teacher={path}'])
    assert 'net_teacher' not in model.nets  # frozen and kept out of the checkpoints
    assert all(not p.requires_grad for p in model.teacher.parameters())
    assert torch.equal(model.teacher.encoder.convs[0].weight, teacher.encoder.convs[0].weight)
    batch = _batch()
    lq, gt = batch['lq'] * 2 - 1, batch['gt'] * 2 - 1
    with torch.no_grad():
        s, t = model.nets['net_g'](lq, distill=True), teacher.eval()(lq, distill=True)
        expected = {
            'l_pixel': 1.0 * (s.image - gt).abs().mean(),
            'l_soft': 0.005 * (s.image - t.image).abs().mean(),
            'l_feature': 0.05 * ((s.bot2 - t.bot2).abs().mean() + (s.bot1 - t.bot1).abs().mean()),
            'l_attention': 0.1 * ((s.att2 - t.att2).abs().mean() + (s.att1 - t.att1).abs().mean()),
        }
    before = {k: v.clone() for k, v in model.teacher.state_dict().items()}
    model.feed_data(batch)
    model.optimize_parameters(1)
    logs = model.get_current_log()
    for key, value in expected.items():
        assert logs[key] == pytest.approx(value.item(), rel=1e-4), key
    assert all(torch.equal(before[k], v) for k, v in model.teacher.state_dict().items())  # teacher untouched
    assert model.extra_state()['teacher_sha1'] and len(model.extra_state()['teacher_sha1']) == 40


def test_student_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="train the teacher stage \\(experiment 'demo_DLIENet_teacher"):
        missing = 'experiments/demo_DLIENet_teacher_randomVGG/models/no_such_file.pth'
        _model(STUDENT_OPT, True, [*TINY, f'path.pretrain_network_teacher={missing}'])
    with pytest.raises(ValueError, match='pretrain_network_teacher is required'):
        resolve_teacher_weights(None)
    _, path = _teacher_file(tmp_path, num_feat=48)
    with pytest.raises(ValueError, match="must have the teacher's width"):
        _model(STUDENT_OPT, True, ['network_g.num_feat=24', 'network_teacher.num_feat=48',
                                   f'path.pretrain_network_teacher={path}'])
    with pytest.raises(ValueError, match='unknown loss block|does not use this loss block'):
        _model(STUDENT_OPT, True, [*TINY, '+train.perceptual_opt={type: L1Loss}'])
    model = _model(TEST_OPT, False, ['network_g.num_feat=24', 'path.pretrain_network_g=null',
                                     'path.pretrain_network_teacher=experiments/missing.pth'])
    assert model.teacher is None  # testing never needs the teacher
    model.feed_data({'lq': torch.rand(1, 3, 21, 13)})
    model.test()
    assert model.get_current_visuals()['result'].shape == (1, 3, 21, 13)


def test_one_iteration_of_each_stage(tmp_path, tiny_image_sets):
    from lowlight3d.pipeline.train_pipeline import train_pipeline
    sets, root = tiny_image_sets, str(tmp_path)
    common = [f'datasets.train.dataroot_gt={sets}/train', f'datasets.val.dataroot_gt={sets}/val',
              'datasets.train.gt_size=32', 'datasets.val.gt_size=32', 'datasets.train.batch_size_per_gpu=2',
              'train.total_iter=1', 'train.scheduler.periods=[1]', 'logger.print_freq=1', 'logger.use_tb_logger=false',
              'val.val_freq=1', 'logger.save_checkpoint_freq=1']
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        teacher = train_pipeline(['-opt', TEACHER_OPT, '--cfg-options', 'name=dl_teacher', 'network_g.num_feat=24',
                                  *common], root_path=root).opt
    teacher_file = osp.join(teacher['path']['models'], 'net_g_latest.pth')
    assert osp.isfile(teacher_file)
    # the student reads the teacher from the teacher's experiment (relative to the run's root folder)
    student = train_pipeline(['-opt', STUDENT_OPT, '--cfg-options', 'name=dl_student', *TINY,
                              'path.pretrain_network_teacher=experiments/dl_teacher/models/net_g_latest.pth', *common],
                             root_path=root).opt
    for opt, keys in ((teacher, {'l_pixel', 'l_pixel_gt', 'l_perceptual', 'l_perceptual_gt'}),
                      (student, {'l_pixel', 'l_soft', 'l_feature', 'l_attention'})):
        with open(osp.join(opt['path']['experiments_root'], 'history.json')) as f:
            logged = json.load(f)['losses']
        assert len(logged) == 1 and keys <= set(logged[0]) and math.isfinite(logged[0]['l_total'])
    saved = torch.load(osp.join(student['path']['models'], 'net_g_latest.pth'), weights_only=False)
    assert set(saved) == {'params'} and _count_state(saved['params']) == _count(DLIENetStudent(24))
    assert not any('teacher' in name for name in os.listdir(student['path']['models']))


def _count_state(state):
    return sum(v.numel() for k, v in state.items())


def test_benchmark_lists_train_the_teacher_first():
    from lowlight3d.pipeline.benchmark import load_benchmark_list
    from lowlight3d.utils.options import load_config
    for lst in ('options/demo/benchmark_demo.yml', 'options/real/benchmark_real.yml'):
        spec = load_benchmark_list(osp.join(REPO, lst))
        rows = [s for s in spec['stages'] if s['label'].startswith('DLIENet')]
        assert len(rows) == 1, lst
        student = load_config(osp.join(REPO, rows[0]['train']))
        teachers = [load_config(osp.join(REPO, p)) for p in spec['prerequisites']]
        teachers = [t['name'] for t in teachers if t['model_type'] == 'DLIENet.TeacherModel']
        assert len(teachers) == 1, lst
        assert student['path']['pretrain_network_teacher'] == f'experiments/{teachers[0]}/models/net_g_latest.pth'
