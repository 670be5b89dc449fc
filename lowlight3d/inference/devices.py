"""Device and precision choice for inference: ``--device auto|cpu|cuda|mps`` and ``--half``.

* ``auto``: CUDA when available, else Apple's MPS, else the CPU.
* ``--half``: float16 autocast on CUDA; bfloat16 autocast on a CPU whose instruction set has native bf16
  (AVX512-BF16 / AMX, where it is faster); float32 otherwise (MPS, older CPUs), and the reason is reported.
* ``--precision auto`` (default): bf16 on such a CPU, float32 elsewhere; ``fp32`` forces float32 (see
  :func:`precision_dtype`).
"""
import torch

from lowlight3d.utils.precision import cpu_has_native_bf16

__all__ = ['DEVICE_CHOICES', 'PRECISION_CHOICES', 'resolve_device', 'half_dtype', 'precision_dtype']

DEVICE_CHOICES = ('auto', 'cpu', 'cuda', 'mps')
PRECISION_CHOICES = ('auto', 'fp32', 'half')


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


def half_dtype(device, half):
    """``(dtype or None, reason)``: the autocast dtype ``--half`` gives on ``device`` (None = float32)."""
    if not half:
        return None, 'float32'
    if device.type == 'cuda':
        return torch.float16, 'float16 autocast (CUDA)'
    if device.type == 'cpu' and cpu_has_native_bf16():
        return torch.bfloat16, 'bfloat16 autocast + channels_last (CPU with native bf16)'
    return None, f'float32 (--half ignored: no faster half type on {device.type} here)'


def precision_dtype(device, precision='auto'):
    """``(dtype or None, reason)`` of ``--precision auto|fp32|half``.

    ``auto`` (the default): bfloat16 on a CPU with native bf16, where it is 2-3x faster and its results differ from
    float32 by about 57 dB PSNR (demo model, 24 test faces; -0.01 dB against the ground truth); float32 everywhere
    else (CUDA too: float16 is ``--precision half``, as in GFPGAN). ``half``: :func:`half_dtype`. ``fp32``: float32.
    """
    if precision not in PRECISION_CHOICES:
        raise ValueError(f'--precision must be one of {PRECISION_CHOICES}, got {precision!r}')
    if precision == 'fp32':
        return None, 'float32 (--precision fp32)'
    if precision == 'half' or (device.type == 'cpu' and cpu_has_native_bf16()):
        return half_dtype(device, True)
    return None, f'float32 (--precision auto on {device.type}; --half for float16/bfloat16)'
