"""Seeding and capturing every random number generator a training run uses (for exact resume).

Snapshots hold only tensors and plain Python values (ints, floats, tuples, dicts, ``None``), so a training
state loads with ``torch.load(..., weights_only=True)`` (no NumPy objects are pickled).
"""
import random

import numpy as np
import torch

__all__ = ['set_random_seed', 'get_rng_state', 'set_rng_state']


def set_random_seed(seed):
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def _numpy_state():
    """NumPy's legacy global state as plain types: the MT19937 key as an int64 tensor plus numbers."""
    name, key, pos, has_gauss, cached = np.random.get_state()
    return {'name': str(name), 'key': torch.from_numpy(key.astype(np.int64)), 'pos': int(pos),
            'has_gauss': int(has_gauss), 'cached_gaussian': float(cached)}


def _set_numpy_state(state):
    """Inverse of :func:`_numpy_state` (also accepts NumPy's own tuple)."""
    if isinstance(state, dict):
        key = np.asarray(state['key'].numpy() if torch.is_tensor(state['key']) else state['key'], dtype=np.uint32)
        state = (state['name'], key, state['pos'], state['has_gauss'], state['cached_gaussian'])
    np.random.set_state(state)


def get_rng_state():
    """Snapshot of all global generator states: tensors and plain Python values only (``weights_only``-safe)."""
    version, internal, gauss = random.getstate()
    state = {'python': (int(version), tuple(int(v) for v in internal), gauss), 'numpy': _numpy_state(),
             'torch': torch.get_rng_state()}
    if torch.cuda.is_available():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state):
    """Restore a snapshot made by :func:`get_rng_state` (CUDA states only if CUDA is present)."""
    version, internal, gauss = state['python']
    random.setstate((version, tuple(internal), gauss))
    _set_numpy_state(state['numpy'])
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])
