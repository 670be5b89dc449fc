"""scripts/inference_speed.py: rows of ours (with and without the prior), ZERO-IG (forward and zero-shot), order."""
import os.path as osp

import pytest

from lowlight3d.archs import build_network
from lowlight3d.pipeline.complexity import count_parameters
from lowlight3d.pipeline.inference_speed import (
    DEFAULT_OPTIONS,
    TimedCall,
    main,
    prior_settings,
    time_interleaved,
    timed_calls_from_options,
)
from lowlight3d.utils.options import load_config

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
OURS = 'options/demo/train_LowLight3D_demo.yml'
ZERO_IG = 'options/demo/test_ZeroIG_demo.yml'


def test_default_option_files_exist():
    assert all(osp.isfile(osp.join(REPO, p)) for p in DEFAULT_OPTIONS)


def test_rounds_are_interleaved():
    order = []
    calls = [TimedCall(name, name, 0, lambda n=name: order.append(n)) for name in 'abc']
    times = time_interleaved(calls, warmup=1, repeat=2)
    assert order == list('abc') * 3
    assert [len(t) for t in times] == [2, 2, 2] and all(x >= 0 for t in times for x in t)
    with pytest.raises(ValueError):
        time_interleaved(calls, repeat=0)


def test_prior_settings_follow_the_prior_stage_then_the_method():
    ddpm, settings = prior_settings({'file': 'experiments/demo_TriplaneDDPM_v/models/prior_latest.pth',
                                     'cache': True, 'seed': 3, 'eta': 0.5})
    assert osp.isfile(ddpm)
    assert settings['steps'] == 10 and settings['sampler'] == 'ddim' and settings['flip_consistent'] is True
    assert settings['eta'] == 0.5 and not {'cache', 'seed', 'file'} & set(settings)


def test_a_prior_file_names_its_stage_by_the_experiment_folder():
    """``prior.file: experiments/<stage>/models/prior_latest.pth`` need not exist (random weights): the stage's
    option file is the one whose ``name`` is ``<stage>``."""
    ddpm, settings = prior_settings({'file': 'experiments/demo_TriplaneDDPM_v/models/prior_latest.pth', 'eta': 0.5,
                                     'fingerprint': 'abc'})
    assert ddpm == osp.join(REPO, 'options', 'demo', 'train_TriplaneDDPM_demo.yml')
    assert settings['steps'] == 10 and settings['eta'] == 0.5 and 'fingerprint' not in settings
    regressor, _ = prior_settings({'file': 'experiments/demo_TriplaneRegressor/models/prior_600.pth'})
    assert regressor.endswith('train_TriplaneRegressor_demo.yml')
    with pytest.raises(ValueError, match='name: no_such_stage'):
        prior_settings({'file': 'experiments/no_such_stage/models/prior_latest.pth'})
    with pytest.raises(ValueError, match='experiments/<stage name>/models'):
        prior_settings({'file': 'prior.pth'})


def test_rows_of_two_stand_in_option_sets(tmp_path, capsys):
    ours = timed_calls_from_options(OURS, size=32)
    assert len(ours) == 2 and 'prior maps given' in ours[0].what and '10 ddim steps' in ours[1].what
    net = build_network(load_config(osp.join(REPO, OURS))['network_g'])
    assert ours[0].params == count_parameters(net) < ours[1].params  # + denoiser and renderer
    assert len(timed_calls_from_options(ZERO_IG, size=32, zero_shot_steps=0)) == 1  # forward only
    out = tmp_path / 'speed.md'
    rows = main([OURS, ZERO_IG, '--size', '32', '--warmup', '0', '--repeat', '1', '--threads', '1',
                 '--zero-shot-steps', '1', '--out', str(out)])
    assert [r['method'] for r in rows] == ['demo_LowLight3D_randomVGG'] * 2 + ['demo_ZeroIG'] * 2
    assert 'zero-shot test time (1 optimisation steps' in rows[3]['what']
    assert all(r['ms_min'] == r['ms_median'] > 0 and r['threads'] == 1 for r in rows)
    text = out.read_text()
    assert 'RANDOM WEIGHTS' in text and text.count('| demo_') == 4
    assert '| method | what | params_M | ms_median | ms_min | threads |' in capsys.readouterr().out


def test_half_rows_and_prior_variants(capsys):
    """--half both doubles the rows (the half ones say so); --prior-steps x --prior-flip gives one prior row each."""
    from lowlight3d.pipeline.inference_speed import parse_prior_variants
    assert parse_prior_variants() is None
    assert parse_prior_variants([20, 4], ['on', 'off']) == [
        {'steps': 20, 'flip_consistent': True}, {'steps': 20, 'flip_consistent': False},
        {'steps': 4, 'flip_consistent': True}, {'steps': 4, 'flip_consistent': False}]
    assert parse_prior_variants(None, ['off']) == [{'flip_consistent': False}]
    rows = main([OURS, '--size', '32', '--warmup', '0', '--repeat', '1', '--threads', '1', '--half', 'both',
                 '--prior-steps', '2', '4', '--prior-flip', 'off'])
    whats = [r['what'] for r in rows]
    assert len(rows) == 6 and sum('--half' in w or '--half ignored' in w for w in whats) == 3
    assert sum('2 ddim steps' in w for w in whats) == 2 and sum('4 ddim steps' in w for w in whats) == 2
    assert not any('flip-consistent' in w for w in whats)
