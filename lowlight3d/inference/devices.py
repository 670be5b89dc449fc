"""Device and precision choice for inference: ``--device auto|cpu|cuda|mps`` and ``--half``.

* ``auto``: CUDA when available, else Apple's MPS, else the CPU.
* ``--half``: float16 autocast on CUDA; bfloat16 autocast on a CPU whose instruction set has native bf16
  (AVX512-BF16 / AMX, where it is faster); float32 otherwise (MPS, older CPUs), and the reason is reported.
"""
import torch

__all__ = ['DEVICE_CHOICES', 'resolve_device', 'half_dtype']

DEVICE_CHOICES = ('auto', 'cpu', 'cuda', 'mps')


def _mps_available():
    backend = getattr(torch.backends, 'mps', None)
    return bool(backend is not None and backend.is_available())


def resolve_device(name='auto'):
    """The ``torch.device`` for a ``--device`` choice; an unavailable device is an error saying what exists."""
    if name not in DEVICE_CHOICES:
        raise ValueError(f'--device must be one of {DEVICE_CHOICES}, got {name!r}')
    if name == 'auto':
        if torch.cuda.is_available():
            return torch.device('cuda')
        return torch.device('mps') if _mps_available() else torch.device('cpu')
    if name == 'cuda' and not torch.cuda.is_available():
        raise RuntimeError('--device cuda: no CUDA device is visible to torch (torch.cuda.is_available() is False); '
                           'use --device cpu or --device auto')
    if name == 'mps' and not _mps_available():
        raise RuntimeError('--device mps: Apple MPS is not available on this machine; use --device cpu or auto')
    return torch.device(name)


def _cpu_has_bf16():
    checker = getattr(getattr(torch, 'cpu', None), '_is_avx512_bf16_supported', None)
    try:
        return bool(checker()) if callable(checker) else False
    except Exception:  # private torch helper; absent or failing means "unknown": stay in float32
        return False


def half_dtype(device, half):
    """``(dtype or None, reason)``: the autocast dtype ``--half`` gives on ``device`` (None = float32)."""
    if not half:
        return None, 'float32'
    if device.type == 'cuda':
        return torch.float16, 'float16 autocast (CUDA)'
    if device.type == 'cpu' and _cpu_has_bf16():
        return torch.bfloat16, 'bfloat16 autocast (CPU with native bf16)'
    return None, f'float32 (--half ignored: no faster half type on {device.type} here)'
