"""Issue 15, point 1: the ``prior: {file: ...}`` form of the enhancement stage's prior block.

The prior stage's checkpoints (here the tiny random prior of ``tests/test_semi_supervised_model.py``) become one
self-contained prior file; the block that points at it computes exactly the prior of the deprecated form, does not
read the prior stage's option file again, records a fingerprint and refuses a different prior when one is pinned.
"""
import os.path as osp
import shutil

import pytest
import torch

from lowlight3d.models.prior_file import prior_record_fingerprint, save_prior_file
from lowlight3d.models.semi_supervised_distillation_model import build_prior_extractor

from test_semi_supervised_model import DEMO, _tiny_prior


@pytest.fixture(scope='module')
def prior(tmp_path_factory):
    root = tmp_path_factory.mktemp('prior_file')
    opt_path, den, gen = _tiny_prior(str(root), osp.join(DEMO, 'train_TriplaneDDPM_demo.yml'))
    path = str(root / 'prior_latest.pth')
    record = save_prior_file(path, ddpm_options=opt_path, denoiser_weights=den, generator_weights=gen, steps=3)
    return {'root': root, 'opt_path': opt_path, 'den': den, 'gen': gen, 'file': path, 'record': record}


def test_file_form_gives_the_prior_of_the_stage_options_and_ignores_later_edits(prior):
    old, seed_old = build_prior_extractor({'ddpm_options': prior['opt_path'], 'denoiser_weights': prior['den'],
                                           'generator_weights': prior['gen'], 'steps': 3, 'cache': False})
    new, seed_new = build_prior_extractor({'file': prior['file'], 'cache': False})
    lq = torch.rand(2, 3, 32, 32) * 0.3
    a, b = old.extract(lq, seed=0), new.extract(lq, seed=0)
    assert seed_old == seed_new == 0
    assert torch.equal(a['render'], b['render']) and torch.equal(a['T'][1], b['T'][1])
    assert new.prior_fingerprint == prior_record_fingerprint(prior['record'])
    assert 'prior file' in new.prior_source
    # the stage's option file is edited (or deleted) afterwards: the file form does not read it
    moved = prior['opt_path'] + '.moved'
    shutil.move(prior['opt_path'], moved)
    try:
        again, _ = build_prior_extractor({'file': prior['file'], 'cache': False})
        assert torch.equal(again.extract(lq, seed=0)['render'], b['render'])
    finally:
        shutil.move(moved, prior['opt_path'])


def test_block_settings_override_the_file_defaults_and_the_fingerprint_pins_the_prior(prior, tmp_path):
    ext, seed = build_prior_extractor({'file': prior['file'], 'steps': 2, 'seed': 5, 'cache': False})
    assert ext.steps == 2 and seed == 5
    fp = prior_record_fingerprint(prior['record'])
    build_prior_extractor({'file': prior['file'], 'fingerprint': fp, 'cache': False})
    with pytest.raises(ValueError, match='fingerprint'):
        build_prior_extractor({'file': prior['file'], 'fingerprint': '0' * 64, 'cache': False})
    # a disk cache of the file form lives in a folder named after the file and its fingerprint
    cached, _ = build_prior_extractor({'file': prior['file'], 'cache': 'disk', 'cache_dir': str(tmp_path)})
    assert osp.basename(cached.cache_dir) == f'prior_latest_{fp[:12]}' and cached.cache is None


def test_file_and_stage_options_together_or_a_missing_file_are_refused(prior):
    with pytest.raises(ValueError, match='prior.file and prior.denoiser_weights'):
        build_prior_extractor({'file': prior['file'], 'denoiser_weights': prior['den']})
    with pytest.raises(FileNotFoundError, match='prior.file'):
        build_prior_extractor({'file': str(prior['root'] / 'nowhere.pth')})
