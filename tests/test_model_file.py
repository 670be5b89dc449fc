"""Self-contained model files and prior files: export from option files, load with weights_only, round trips.

The loaded model must give exactly what the training model gives in test mode (``test.py``'s path): the EMA copy
for a supervised model with EMA, the student + its 3D prior for ours, the zero-shot optimisation for ZERO-IG.
"""
import os.path as osp

import pytest
import torch

from lowlight3d.inference.loaded_model import LoadedModel, load_model
from lowlight3d.inference.model_file import (
    ModelFileError,
    check_model_record,
    export_model,
    load_model_file,
    save_model_file,
)
from lowlight3d.models import build_model
from lowlight3d.models.prior_extractor import PriorExtractor
from lowlight3d.models.prior_file import (
    PriorFileError,
    extractor_from_prior,
    load_prior_file,
    prior_record_fingerprint,
    save_prior_file,
)
from lowlight3d.pipeline.option_loading import load_options

from inference_helpers import DEMO, tiny_ours_overrides, tiny_prior_stage, tiny_unet_options


def _training_output(opt_path, cfg, x, name='face'):
    """The training model's test-mode result (as test.py computes it)."""
    model = build_model(load_options(opt_path, is_train=False, cfg_options=cfg))
    model.feed_data({'lq': x, 'lq_path': [f'{name}.png']})
    model.test()
    return model.output.clamp(0, 1)


def test_unet_round_trip_uses_the_ema_weights_and_equals_the_training_model(tmp_path):
    opt_path, ckpt = tiny_unet_options(str(tmp_path))
    record = export_model(opt_path)
    assert record['network'] == 'net_g_ema' and record['prior'] is None and record['face_size'] == 256
    path = save_model_file(record, str(tmp_path / 'unet_model.pth'))
    loaded = torch.load(path, map_location='cpu', weights_only=True)  # plain tensors and values only
    assert loaded['format'] == 'lowlight3d-model-1'
    ema = torch.load(ckpt, weights_only=True)['params_ema']
    assert all(torch.equal(loaded['params'][k], ema[k]) for k in ema)
    x = torch.rand(2, 3, 40, 56) * 0.3
    unet = load_model(path)
    assert unet.procedure is None  # a network call: no training model is built for inference
    assert torch.equal(unet.enhance(x), _training_output(opt_path, [], x))


def test_our_method_round_trip_embeds_the_prior_and_equals_the_training_model(tmp_path):
    cfg = tiny_ours_overrides(str(tmp_path))
    opt_path = osp.join(DEMO, 'test_LowLight3D_demo.yml')
    record = export_model(opt_path, cfg_options=cfg)
    assert record['network'] == 'net_g' and record['prior']['sampling']['steps'] == 2
    path = save_model_file(record, str(tmp_path / 'ours.pth'))
    model = LoadedModel(load_model_file(path))
    assert model.uses_prior and model.tileable and model.procedure is None
    x = torch.rand(1, 3, 32, 32) * 0.3
    assert torch.allclose(model.enhance(x), _training_output(opt_path, cfg, x), atol=1e-6)


def test_zero_shot_method_carries_its_test_time_settings(tmp_path):
    opt_path = osp.join(DEMO, 'test_ZeroIG_demo.yml')
    cfg = ['path.pretrain_network_g=~', 'test_opt.steps=2', 'network_g.enhancer_channels=8',
           'network_g.denoiser_channels=8']
    record = export_model(opt_path, cfg_options=cfg)
    assert record['per_image_steps'] == 2 and record['options']['test_opt']['steps'] == 2
    path = save_model_file(record, str(tmp_path / 'zeroig.pth'))
    model = load_model(path)
    assert not model.tileable and model.procedure is not None  # per-image optimisation: the model's test()
    x = torch.rand(1, 3, 24, 24) * 0.3
    assert torch.allclose(model.enhance(x, ['face']), _training_output(opt_path, cfg, x, 'face'), atol=1e-6)


def test_bad_files_and_prior_stages_fail_clearly(tmp_path):
    bad = tmp_path / 'bad.pth'
    torch.save({'format': 'something-else'}, bad)
    with pytest.raises(ModelFileError, match='export_model.py'):
        load_model_file(str(bad))
    opt_path, _, _ = tiny_prior_stage(str(tmp_path))
    with pytest.raises(ModelFileError, match='--prior'):
        export_model(opt_path)
    with pytest.raises(ModelFileError, match='options.network_g'):
        check_model_record({'format': 'lowlight3d-model-1', 'name': 'x', 'model_type': 'y', 'options': {},
                            'network': 'net_g', 'params': {}, 'face_size': 256, 'per_image_steps': 0})
    with pytest.raises(ValueError, match='exactly one'):
        load_model()


def test_prior_file_round_trip_and_fingerprint(tmp_path):
    opt_path, den, gen = tiny_prior_stage(str(tmp_path))
    path = str(tmp_path / 'prior.pth')
    record = save_prior_file(path, ddpm_options=opt_path, denoiser_weights=den, generator_weights=gen, seed=3)
    loaded = load_prior_file(path)
    assert prior_record_fingerprint(loaded) == prior_record_fingerprint(record)
    assert loaded['sampling']['steps'] == 2 and loaded['sampling']['seed'] == 3
    extractor, seed = extractor_from_prior(loaded)
    reference = PriorExtractor.from_options(opt_path, den, gen)
    assert seed == 3 and extractor.fingerprint == reference.fingerprint
    x = torch.rand(1, 3, 32, 32) * 0.3
    assert torch.allclose(extractor.extract(x, seed=3)['render'], reference.extract(x, seed=3)['render'])
    changed = dict(loaded, sampling={**loaded['sampling'], 'steps': 5})
    assert prior_record_fingerprint(changed) != prior_record_fingerprint(loaded)
    broken = dict(loaded, renderer={'options': loaded['renderer']['options'], 'params': {}})
    with pytest.raises(PriorFileError, match='renderer.params'):
        save_prior_file(str(tmp_path / 'broken.pth'), broken)


def test_every_model_whose_test_is_its_own_declares_how_it_infers():
    """A model class that overrides ``test()`` says in the same class body whether it is still one network call
    (``NETWORK_INFERENCE``), so inference never runs the network alone for a method whose test is a procedure."""
    from lowlight3d.models.base_model import BaseModel
    from lowlight3d.utils.registry import MODEL_REGISTRY, load_plugins
    load_plugins()
    classes = {cls for cls in MODEL_REGISTRY._obj_map.values() if isinstance(cls, type) and issubclass(cls, BaseModel)}
    assert len(classes) >= 10
    for cls in classes:
        owner = next(c for c in cls.__mro__ if 'test' in vars(c))
        if owner is not BaseModel:
            assert 'NETWORK_INFERENCE' in vars(owner), f'{owner.__name__} overrides test() without NETWORK_INFERENCE'
    by_name = {cls.__name__: cls.NETWORK_INFERENCE for cls in classes}
    assert by_name['SemiSupervisedDistillationModel'] and by_name['SupervisedEnhancementModel']
    assert not by_name['ZeroIGModel'] and not by_name['RDDMModel'] and not by_name['DENetModel']


def test_weights_are_given_to_an_option_file_without_a_path_block(tmp_path):
    """``export_model(opt, weights=...)`` on a test file that has no ``path`` block (the benchmark's composed test
    files) sets the weights instead of failing on an unknown key."""
    opt_path, ckpt = tiny_unet_options(str(tmp_path))
    bare = tmp_path / 'no_path.yml'
    bare.write_text(''.join(line for line in open(opt_path) if not line.startswith('path:')))
    record = export_model(str(bare), weights=ckpt)
    ema = torch.load(ckpt, weights_only=True)['params_ema']
    assert record['source']['weights'] == ckpt and all(torch.equal(record['params'][k], ema[k]) for k in ema)
