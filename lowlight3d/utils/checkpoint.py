"""Atomic checkpoint writing and device-independent loading.

A checkpoint is first written to a temporary file in the same folder, flushed to disk, then renamed over the
target (``os.replace`` is atomic on POSIX and Windows): an interrupted save never leaves a truncated file
where a valid one was expected, and ``--auto_resume`` never picks up half a state.
"""
import os
import os.path as osp

import torch

__all__ = ['atomic_save', 'load_checkpoint', 'strip_module_prefix']


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


def load_checkpoint(path, what='checkpoint'):
    """Load a checkpoint onto the CPU, with an error that names the file when it is missing or corrupt.

    Args:
        path (str): File written by :func:`atomic_save` (or any ``torch.save`` file).
        what (str): What the file is, for the error message.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'{what} not found: {path}')
    try:
        return torch.load(path, map_location='cpu', weights_only=False)
    except Exception as err:  # torch raises several types for a truncated/corrupt file
        raise RuntimeError(f'{what} {path} cannot be read ({type(err).__name__}: {err}); '
                           'it may be truncated or not a torch checkpoint') from err


def strip_module_prefix(state_dict):
    """Remove the ``module.`` prefix that (Distributed)DataParallel adds to parameter names."""
    return {(k[7:] if k.startswith('module.') else k): v for k, v in state_dict.items()}
