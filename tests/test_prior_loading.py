"""``load_prior``: the ``prior: {file: ...}`` block of an enhancement stage -> one ``LoadedPrior`` handle.

The prior stage's checkpoints (here the tiny random prior of ``tests/test_semi_supervised_model.py``) become one
self-contained prior file; the block that points at it computes exactly the prior of the stage's own extractor, does
not read the prior stage's option file again, records a fingerprint and refuses a different prior when one is
pinned; the form before prior files is refused with the command that converts it.
"""
import os.path as osp
import shutil

import pytest
import torch

from lowlight3d.models.prior_extractor import PriorExtractor
from lowlight3d.models.prior_file import prior_record_fingerprint, save_prior_file
from lowlight3d.models.prior_loading import load_prior

from test_semi_supervised_model import DEMO, _tiny_prior


@pytest.fixture(scope='module')
def prior(tmp_path_factory):
    root = tmp_path_factory.mktemp('prior_file')
    opt_path, den, gen = _tiny_prior(str(root), osp.join(DEMO, 'train_TriplaneDDPM_demo.yml'))
    path = str(root / 'prior_latest.pth')
    record = save_prior_file(path, ddpm_options=opt_path, denoiser_weights=den, generator_weights=gen, steps=3)
    return {'root': root, 'opt_path': opt_path, 'den': den, 'gen': gen, 'file': path, 'record': record}


def test_the_file_gives_the_prior_of_the_stage_and_ignores_later_edits(prior):
    stage = PriorExtractor.from_options(prior['opt_path'], prior['den'], prior['gen'], steps=3)
    loaded = load_prior({'file': prior['file'], 'cache': False})
    lq = torch.rand(2, 3, 32, 32) * 0.3
    a, b = stage.extract(lq, seed=0), loaded.extractor.extract(lq, seed=0)
    assert loaded.seed == 0 and loaded.path == prior['file']
    assert torch.equal(a['render'], b['render']) and torch.equal(a['T'][1], b['T'][1])
    assert loaded.fingerprint == prior_record_fingerprint(prior['record'])
    assert loaded.record['denoiser']['options'] == prior['record']['denoiser']['options']
    assert prior['file'] in loaded.describe() and loaded.fingerprint in loaded.describe()
    # the stage's option file is edited (or deleted) afterwards: the file form does not read it
    moved = prior['opt_path'] + '.moved'
    shutil.move(prior['opt_path'], moved)
    try:
        again = load_prior({'file': prior['file'], 'cache': False})
        assert torch.equal(again.extractor.extract(lq, seed=0)['render'], b['render'])
    finally:
        shutil.move(moved, prior['opt_path'])


def test_block_settings_override_the_file_defaults_and_the_fingerprint_pins_the_prior(prior, tmp_path):
    loaded = load_prior({'file': prior['file'], 'steps': 2, 'seed': 5, 'cache': False})
    assert loaded.extractor.steps == 2 and loaded.seed == 5
    fp = prior_record_fingerprint(prior['record'])
    load_prior({'file': prior['file'], 'fingerprint': fp, 'cache': False})
    with pytest.raises(ValueError, match='fingerprint'):
        load_prior({'file': prior['file'], 'fingerprint': '0' * 64, 'cache': False})
    # a disk cache lives in a folder named after the file and its fingerprint
    cached = load_prior({'file': prior['file'], 'cache': 'disk', 'cache_dir': str(tmp_path)}).extractor
    assert osp.basename(cached.cache_dir) == f'prior_latest_{fp[:12]}' and cached.cache is None


def test_the_retired_form_a_missing_file_or_a_wrong_cache_are_refused(prior):
    with pytest.raises(ValueError, match=r'prior.denoiser_weights.*export_model.py --prior'):
        load_prior({'file': prior['file'], 'denoiser_weights': prior['den']})
    with pytest.raises(ValueError, match=r'prior.ddpm_options.*export_model.py --prior'):
        load_prior({'ddpm_options': prior['opt_path'], 'denoiser_weights': prior['den']})
    with pytest.raises(ValueError, match='prior.file is required'):
        load_prior({'steps': 2})
    with pytest.raises(FileNotFoundError, match='prior.file'):
        load_prior({'file': str(prior['root'] / 'nowhere.pth')})
    with pytest.raises(ValueError, match='cache must be'):
        load_prior({'file': prior['file'], 'cache': 'memory'})
    with pytest.raises(ValueError, match='needs prior.cache_dir'):
        load_prior({'file': prior['file'], 'cache': 'disk'})
