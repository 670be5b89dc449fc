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
