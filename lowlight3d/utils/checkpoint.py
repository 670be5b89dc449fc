"""Atomic checkpoint writing and device-independent loading.

A checkpoint is first written to a temporary file in the same folder, flushed to disk, then renamed over the
target (``os.replace`` is atomic on POSIX and Windows): an interrupted save never leaves a truncated file
where a valid one was expected, and ``--auto_resume`` never picks up half a state.

Every load goes through :func:`load_checkpoint`, i.e. ``torch.load(..., weights_only=True)``: weights, training
states (their RNG states are tensors and plain numbers, :mod:`lowlight3d.utils.rng`), prior cache entries, a
user's ``pretrain_network_*`` and downloaded weights.  An old training state or a foreign pickle gets a clear
error; a trusted one is converted once with ``python -m lowlight3d.utils.checkpoint --convert-trusted OLD NEW``.
"""
import argparse
import json
import os
import os.path as osp
import pickle
import re
import tempfile
from collections import Counter, OrderedDict

import torch

__all__ = ['atomic_save', 'atomic_write', 'atomic_write_text', 'atomic_write_json', 'is_atomic_temp_file',
           'load_checkpoint', 'strip_module_prefix', 'UnsafeCheckpointError', 'to_safe',
           'convert_trusted_checkpoint']


def atomic_save(obj, path, retries=3):
    """``torch.save(obj, path)`` atomically, retrying transient I/O errors.

    Args:
        obj: Picklable object (state dicts should hold CPU tensors).
        path (str): Target file; its folder is created if needed.
        retries (int): Attempts before the last error is raised.
    """
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    tmp = f'{path}.tmp{os.getpid()}'
    for attempt in range(retries):
        try:
            with open(tmp, 'wb') as f:
                torch.save(obj, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
            return
        except OSError:
            if osp.exists(tmp):
                os.remove(tmp)
            if attempt == retries - 1:
                raise


_TEMP_NAME = re.compile(r'(\.tmp\d*|^\..+\.part)$')


def is_atomic_temp_file(name):
    """Whether a file name is the temporary file of an interrupted :func:`atomic_save` (``<name>.tmp<pid>``) or
    :func:`atomic_write` (``.<name><random>.part``), which a kill during the save leaves behind."""
    return bool(_TEMP_NAME.search(name))


def atomic_write(path, write_fn, suffix='.part'):
    """Write a file through ``write_fn(tmp_path)`` and move it into place, so no half-written file remains.

    The temporary file lies in the target's folder (created if needed) and gets the usual permissions (``mkstemp``
    creates it 0600); it is removed when ``write_fn`` fails.

    Args:
        path (str): Target file.
        write_fn (callable): Writes the whole file to the path it is given.
        suffix (str): Ending of the temporary name (e.g. ``'.png'`` for writers that pick the format by it).

    Returns:
        str: ``path``.
    """
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.' + osp.basename(path), suffix=suffix, dir=folder)
    os.close(fd)
    try:
        write_fn(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)
    return path


def atomic_write_text(path, text, encoding='utf-8'):
    """Write ``text`` to ``path`` through :func:`atomic_write`; returns ``path``."""
    def write(tmp):
        with open(tmp, 'w', encoding=encoding) as f:
            f.write(text)
    return atomic_write(path, write)


def atomic_write_json(path, obj, indent=1):
    """Write ``obj`` as JSON to ``path`` through :func:`atomic_write`; returns ``path``."""
    def write(tmp):
        with open(tmp, 'w', encoding='utf-8') as f:
            json.dump(obj, f, indent=indent)
    return atomic_write(path, write)


class UnsafeCheckpointError(RuntimeError):
    """A checkpoint that ``torch.load(..., weights_only=True)`` refuses: Python objects besides tensors and plain
    values (an old lowlight3d training state with NumPy RNG states, or a file written by another program)."""


def _unpickler_detail(err):
    """The informative part of torch's weights-only error (``Unsupported global: GLOBAL numpy...`` or
    ``Unsupported operand ...``), else its first line."""
    text = str(err)
    match = re.search(r'Unsupported (global: GLOBAL \S+|operand \S+)', text)
    if match:
        return match.group(0)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


def load_checkpoint(path, what='checkpoint'):
    """Load a checkpoint onto the CPU with ``weights_only=True``, with an error that names the file.

    Only tensors and plain Python values (dicts, lists, tuples, numbers, strings, ``OrderedDict``, ``Counter``)
    are unpickled, so loading a file never runs code from it.  Every file the toolkit writes (weights, training
    states, prior cache entries) is of that form.

    Args:
        path (str): File written by :func:`atomic_save` (or any ``torch.save`` file of tensors).
        what (str): What the file is, for the error message.

    Raises:
        FileNotFoundError: The file does not exist.
        UnsafeCheckpointError: It holds other Python objects (old training state, foreign pickle); the message
            says how to convert a trusted file (:func:`convert_trusted_checkpoint`).
        RuntimeError: It is truncated or not a torch file.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'{what} not found: {path}')
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as err:
        detail = _unpickler_detail(err)
        if detail.startswith('Unsupported global'):
            raise UnsafeCheckpointError(
                f'{what} {path} holds Python objects other than tensors and plain values ({detail}), so it is not '
                'loaded (weights_only=True never runs code from a file). It is a training state written by an older '
                'lowlight3d (NumPy RNG state inside) or a file of another program. If you trust it, convert it once: '
                f'python -m lowlight3d.utils.checkpoint --convert-trusted {path} <new file>') from err
        raise RuntimeError(f'{what} {path} cannot be read ({detail}); it may be truncated or not a torch '
                           'checkpoint') from err
    except Exception as err:  # torch raises several types for a truncated/corrupt file
        raise RuntimeError(f'{what} {path} cannot be read ({type(err).__name__}: {err}); '
                           'it may be truncated or not a torch checkpoint') from err


def to_safe(obj):
    """``obj`` with NumPy arrays as tensors and NumPy scalars as Python numbers (``weights_only``-loadable).

    A NumPy legacy RNG state tuple ``('MT19937', key, pos, has_gauss, cached)`` becomes the dict form of
    :func:`lowlight3d.utils.rng.get_rng_state`.
    """
    import numpy as np
    if isinstance(obj, tuple) and len(obj) == 5 and obj[0] == 'MT19937' and isinstance(obj[1], np.ndarray):
        return {'name': 'MT19937', 'key': torch.from_numpy(obj[1].astype(np.int64)), 'pos': int(obj[2]),
                'has_gauss': int(obj[3]), 'cached_gaussian': float(obj[4])}
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(obj))
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        converted = {k: to_safe(v) for k, v in obj.items()}
        return type(obj)(converted) if type(obj) in (OrderedDict, Counter) else converted
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_safe(v) for v in obj)
    return obj


def convert_trusted_checkpoint(src, dst):
    """Re-save a TRUSTED old or foreign checkpoint in the safe form (:func:`to_safe`).

    This is the one place that unpickles arbitrary objects (``weights_only=False``); use it only on files you
    made or trust.  The result loads with :func:`load_checkpoint`.
    """
    obj = torch.load(src, map_location='cpu', weights_only=False)
    atomic_save(to_safe(obj), dst)
    load_checkpoint(dst, what='converted checkpoint')  # proves the result is safe
    return dst


def strip_module_prefix(state_dict):
    """Remove the ``module.`` prefix that (Distributed)DataParallel adds to parameter names."""
    return {(k[7:] if k.startswith('module.') else k): v for k, v in state_dict.items()}


def main(argv=None):
    """``python -m lowlight3d.utils.checkpoint --convert-trusted OLD NEW``: see :func:`convert_trusted_checkpoint`."""
    parser = argparse.ArgumentParser(description='Convert a trusted old/foreign checkpoint to a weights_only form.')
    parser.add_argument('--convert-trusted', nargs=2, metavar=('OLD', 'NEW'), required=True,
                        help='Unpickle OLD fully (only for files you trust) and write NEW with tensors/plain values.')
    args = parser.parse_args(argv)
    print(f'converted: {convert_trusted_checkpoint(*args.convert_trusted)}')


if __name__ == '__main__':
    main()
