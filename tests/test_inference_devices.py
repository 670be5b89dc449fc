"""--device and --half: auto resolves to what exists, an absent device is a clear error, half precision falls back
to float32 where it would not be faster (and the result is unchanged then)."""
import pytest
import torch

from lowlight3d.inference.devices import half_dtype, resolve_device


def test_device_choices():
    assert resolve_device('cpu') == torch.device('cpu')
    assert resolve_device('auto').type in ('cpu', 'cuda', 'mps')
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match='--device cpu'):
            resolve_device('cuda')
    with pytest.raises(ValueError, match='--device must be one of'):
        resolve_device('tpu')


def test_half_precision_choice():
    assert half_dtype(torch.device('cpu'), False) == (None, 'float32')
    assert half_dtype(torch.device('cuda'), True)[0] == torch.float16
    dtype, reason = half_dtype(torch.device('cpu'), True)
    assert dtype in (None, torch.bfloat16) and ('bfloat16' in reason or 'float32' in reason)
    assert half_dtype(torch.device('mps'), True)[0] is None


def test_precision_auto_is_bf16_only_on_a_cpu_with_native_bf16(monkeypatch):
    from lowlight3d.inference import devices
    from lowlight3d.inference.devices import precision_dtype
    monkeypatch.setattr(devices, 'cpu_has_native_bf16', lambda: True)
    assert precision_dtype(torch.device('cpu'))[0] == torch.bfloat16
    assert precision_dtype(torch.device('cuda'))[0] is None  # fp16 only on request
    assert precision_dtype(torch.device('cuda'), 'half')[0] == torch.float16
    assert precision_dtype(torch.device('cpu'), 'fp32') == (None, 'float32 (--precision fp32)')
    monkeypatch.setattr(devices, 'cpu_has_native_bf16', lambda: False)
    dtype, reason = precision_dtype(torch.device('cpu'))
    assert dtype is None and 'float32' in reason
    with pytest.raises(ValueError, match='--precision must be one of'):
        precision_dtype(torch.device('cpu'), 'fp8')


def test_prior_steps_and_flip_overrides_of_a_loaded_model(tmp_path):
    """``--prior_steps 4 --prior_flip off`` (the fast setting at paper scale) reach the loaded model's prior; the
    defaults keep the model file's."""
    import os.path as osp

    from lowlight3d.inference.loaded_model import LoadedModel
    from lowlight3d.inference.model_file import export_model

    from inference_helpers import DEMO, tiny_ours_overrides
    record = export_model(osp.join(DEMO, 'test_LowLight3D_demo.yml'), cfg_options=tiny_ours_overrides(str(tmp_path)))
    default = LoadedModel(record)
    fast = LoadedModel(record, prior_steps=4, prior_flip=False)
    assert default.prior.flip_consistent and default.prior.steps == 2  # the tiny prior file's settings
    assert not fast.prior.flip_consistent and fast.prior.steps == 4
    x = torch.rand(1, 3, 32, 32) * 0.2
    assert fast.enhance(x).shape == (1, 3, 32, 32)
