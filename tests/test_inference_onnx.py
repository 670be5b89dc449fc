"""ONNX export with dynamic height and width and its parity with PyTorch through onnxruntime; per-image
optimisation (ZERO-IG zero-shot) is refused with the reason."""
import os.path as osp

import pytest

from lowlight3d.inference.loaded_model import LoadedModel
from lowlight3d.inference.model_file import export_model
from lowlight3d.inference.onnx_export import OnnxExportError, export_onnx, onnx_parity

from inference_helpers import DEMO, tiny_ours_overrides, tiny_unet_options


def test_unet_onnx_parity_at_other_sizes(tmp_path):
    opt_path, _ = tiny_unet_options(str(tmp_path))
    model = LoadedModel(export_model(opt_path))
    path = export_onnx(model, str(tmp_path / 'unet.onnx'), 32, 32)['path']
    parity = onnx_parity(model, path, sizes=((40, 72), (64, 48)))
    assert parity['max_abs'] < 1e-4


def test_our_enhancer_exports_with_the_prior_maps_as_inputs(tmp_path):
    cfg = tiny_ours_overrides(str(tmp_path))
    model = LoadedModel(export_model(osp.join(DEMO, 'test_LowLight3D_demo.yml'), cfg_options=cfg))
    info = export_onnx(model, str(tmp_path / 'ours.onnx'), 32, 32)
    assert info['inputs'] == ['input', 'T1', 'T2', 'T3', 'D1', 'D2', 'D3']
    assert onnx_parity(model, info['path'], sizes=((40, 56), ))['max_abs'] < 1e-4


def test_zero_shot_optimisation_cannot_be_exported(tmp_path):
    cfg = ['path.pretrain_network_g=~', 'test_opt.steps=2', 'network_g.enhancer_channels=8',
           'network_g.denoiser_channels=8']
    model = LoadedModel(export_model(osp.join(DEMO, 'test_ZeroIG_demo.yml'), cfg_options=cfg))
    with pytest.raises(OnnxExportError, match='per-image optimisation'):
        export_onnx(model, str(tmp_path / 'zeroig.onnx'))
