"""The training pipeline: experiment layout, validation and best checkpoint, exact resume, folder safety, the
returned result."""
import json
import os
import os.path as osp

import pytest
import torch

from lowlight3d.pipeline.train_pipeline import LoopTiming, TrainResult, train_pipeline
from lowlight3d.utils.checkpoint import load_checkpoint

from conftest import tiny_train_overrides

TRAIN_OPT = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'options', 'demo',
                     'train_LowLightUNet_demo.yml')


def _train(root, sets, total_iter, name, *flags, overrides=()):
    return train_pipeline(
        ['-opt', TRAIN_OPT, *flags, '--cfg-options', *tiny_train_overrides(sets, total_iter, name), *overrides],
        root_path=str(root)).opt


def test_training_writes_the_basicsr_layout(tmp_path, tiny_image_sets):
    opt = _train(tmp_path, tiny_image_sets, 12, 'layout', overrides=['logger.use_tb_logger=true'])
    events = os.listdir(tmp_path / 'tb_logger' / 'layout')
    assert any(f.startswith('events.out.tfevents') for f in events)
    exp = opt['path']['experiments_root']
    models = set(os.listdir(osp.join(exp, 'models')))
    assert {'net_g_6.pth', 'net_g_12.pth', 'net_g_latest.pth', 'net_g_best.pth', 'best.json'} <= models
    assert set(os.listdir(osp.join(exp, 'training_states'))) == {'6.state', '12.state'}
    assert osp.isfile(osp.join(exp, 'curves.png')) and osp.getsize(osp.join(exp, 'curves.png')) > 1000
    assert any(f.startswith('train_layout_') and f.endswith('.log') for f in os.listdir(exp))
    saved = open(osp.join(exp, 'options.yml')).read()
    assert 'total_iter: 12' in saved and '# Command:' in saved
    history = json.load(open(osp.join(exp, 'history.json')))
    assert [m['iter'] for m in history['metrics']] == [6, 12]
    assert all(isinstance(m['psnr'], float) for m in history['metrics'])
    best = json.load(open(osp.join(exp, 'models', 'best.json')))
    assert best['value'] == max(m['psnr'] for m in history['metrics'])
    weights = torch.load(osp.join(exp, 'models', 'net_g_latest.pth'))
    assert set(weights) == {'params', 'params_ema'}
    assert not any(k.startswith('module.') for k in weights['params'])
    assert not [f for f in os.listdir(osp.join(exp, 'models')) if '.tmp' in f]  # atomic writes leave no temp


def test_loss_falls_on_a_learnable_task(tmp_path, tiny_image_sets):
    opt = _train(tmp_path, tiny_image_sets, 30, 'falls')
    history = json.load(open(osp.join(opt['path']['experiments_root'], 'history.json')))
    losses = [row['l_pixel'] for row in history['losses']]
    assert sum(losses[-3:]) / 3 < 0.8 * sum(losses[:3]) / 3
    assert history['loss_spikes'] == []  # a falling loss has no spike (lowlight3d/pipeline/loss_spikes.py)


def test_resume_matches_an_uninterrupted_run(tmp_path, tiny_image_sets):
    """Stopped after N=4 iterations, resumed to N+M=14: identical weights (and EMA) to a straight run.

    The interruption is simulated by deleting every checkpoint after iteration 4 of a 14-iteration run (what a
    crash between the checkpoints at 4 and 8 leaves), so both runs use the same option file and schedule.
    The resume starts mid-epoch (3 iterations per epoch), so the sampler must skip consumed batches.
    """
    every4 = ['logger.save_checkpoint_freq=4']
    straight = _train(tmp_path / 'a', tiny_image_sets, 14, 'straight', overrides=every4)
    crashed = _train(tmp_path / 'b', tiny_image_sets, 14, 'resumed', overrides=every4)
    for folder in (crashed['path']['training_states'], crashed['path']['models']):
        for name in os.listdir(folder):
            if name.split('.')[0].split('_')[-1] in ('8', '12', '14', 'latest', 'best'):
                os.remove(osp.join(folder, name))
    assert sorted(os.listdir(crashed['path']['training_states'])) == ['4.state']
    resumed = _train(tmp_path / 'b', tiny_image_sets, 14, 'resumed', '--auto_resume', overrides=every4)
    a = load_checkpoint(osp.join(straight['path']['training_states'], '14.state'))
    b = load_checkpoint(osp.join(resumed['path']['training_states'], '14.state'))
    assert a['epoch'] == b['epoch'] and a['iter'] == b['iter'] == 14
    for label in ('net_g', 'net_g_ema'):
        for key, value in a['networks'][label].items():
            assert torch.allclose(value, b['networks'][label][key], atol=1e-6, rtol=0), (label, key)
    assert a['optimizers']['optim_g']['state'][0]['step'] == b['optimizers']['optim_g']['state'][0]['step']
    assert a['schedulers'][0]['last_epoch'] == b['schedulers'][0]['last_epoch']
    assert a['best_metric_results'] == b['best_metric_results']


def test_existing_experiment_is_not_silently_reused(tmp_path, tiny_image_sets):
    _train(tmp_path, tiny_image_sets, 2, 'reuse')
    with pytest.raises(FileExistsError, match='--auto_resume'):
        _train(tmp_path, tiny_image_sets, 2, 'reuse')
    _train(tmp_path, tiny_image_sets, 2, 'reuse', '--force')
    archived = [d for d in os.listdir(tmp_path / 'experiments') if d.startswith('reuse_archived_')]
    assert len(archived) == 1


def test_auto_resume_of_a_finished_run_trains_no_more(tmp_path, tiny_image_sets):
    opt = _train(tmp_path, tiny_image_sets, 6, 'finished')
    before = load_checkpoint(osp.join(opt['path']['training_states'], '6.state'))
    _train(tmp_path, tiny_image_sets, 6, 'finished', '--auto_resume')
    after = load_checkpoint(osp.join(opt['path']['training_states'], '6.state'))
    for key, value in before['networks']['net_g'].items():
        assert torch.equal(value, after['networks']['net_g'][key])


def test_train_pipeline_returns_what_it_trained_and_the_loop_timing(tmp_path, tiny_image_sets):
    """The result says what the call trained and what its loop cost (the numbers timing.json records); resuming a
    finished run trains nothing, returns no timing and keeps the file of the run that trained."""
    args = ['-opt', TRAIN_OPT, '--cfg-options', *tiny_train_overrides(tiny_image_sets, 2, 'result')]
    result = train_pipeline(args, root_path=str(tmp_path))
    assert isinstance(result, TrainResult) and result.opt['name'] == 'result'
    assert (result.start_iter, result.final_iter, result.iterations, result.trained) == (0, 2, 2, True)
    timing = result.timing
    assert isinstance(timing, LoopTiming) and timing.iterations == 2 and timing.threads == torch.get_num_threads()
    assert timing.cpu_s >= timing.first_iter_cpu_s >= 0 and timing.wall_s >= timing.first_iter_wall_s >= 0
    assert timing.steady_cpu_s_per_iter == timing.cpu_s - timing.first_iter_cpu_s  # one iteration after warm-up
    saved = osp.join(result.opt['path']['experiments_root'], 'timing.json')
    with open(saved) as f:
        assert json.load(f) == timing.to_json()
    again = train_pipeline(args[:2] + ['--auto_resume'] + args[2:], root_path=str(tmp_path))
    assert (again.start_iter, again.final_iter, again.trained, again.timing) == (2, 2, False, None)
    with open(saved) as f:
        assert json.load(f) == timing.to_json()


def test_bad_options_fail_clearly(tmp_path, tiny_image_sets):
    with pytest.raises(KeyError, match='Known names'):
        _train(tmp_path, tiny_image_sets, 2, 'bad', overrides=['network_g.type=NoSuchNet'])
    with pytest.raises(FileNotFoundError, match='no_such_folder'):
        _train(tmp_path, tiny_image_sets, 2, 'bad2', overrides=['datasets.train.dataroot_gt=/no_such_folder'])
