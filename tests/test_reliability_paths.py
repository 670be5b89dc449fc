"""Reliability, second round (issue 24): an experiment name cannot leave experiments/ or results/."""
import os
import os.path as osp

import pytest

import lowlight3d.pipeline.test_pipeline as testing  # (a bare test_pipeline name would be collected by pytest)
from lowlight3d.pipeline.train_pipeline import train_pipeline
from lowlight3d.utils.options import OptionError, check_experiment_name

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TRAIN_OPT = osp.join(REPO, 'options', 'demo', 'train_LowLightUNet_demo.yml')
TEST_OPT = osp.join(REPO, 'options', 'demo', 'test_LowLightUNet_demo.yml')
BAD_NAMES = ['../../victim', '../victim', 'a/b', '/tmp/abs_victim', '.', '..', 'a\\b', '', '   ']


@pytest.mark.parametrize('name', BAD_NAMES)
def test_a_name_must_be_one_folder_name(name):
    with pytest.raises(OptionError, match='name'):
        check_experiment_name(name, 'x.yml')


def test_plain_names_pass():
    for name in ('demo_LowLight3D_randomVGG', 'run-1.2', 'V1 supervised'):
        check_experiment_name(name)


@pytest.mark.parametrize('name', ['../../victim', '/tmp/lowlight3d_abs_victim', '.'])
def test_train_and_test_refuse_an_escaping_name_before_writing_anything(tmp_path, name):
    root = tmp_path / 'work' / 'inner'
    root.mkdir(parents=True)
    victim = tmp_path / 'victim'
    victim.mkdir()
    (victim / 'keep.tmp123').write_text('the user\'s file')
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(OptionError, match='not one folder name'):
        train_pipeline(['-opt', TRAIN_OPT, '--cfg-options', f'name={name}', 'train.total_iter=2', 'val.val_freq=0'],
                       root_path=str(root))
    with pytest.raises(OptionError, match='not one folder name'):
        testing.test_pipeline(['-opt', TEST_OPT, '--cfg-options', f'name={name}'], root_path=str(root))
    assert (victim / 'keep.tmp123').read_text() == 'the user\'s file'
    assert sorted(os.listdir(tmp_path)) == before and os.listdir(root) == []
    assert not osp.exists('/tmp/lowlight3d_abs_victim')
