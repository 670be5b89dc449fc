"""Seeding and capturing every random number generator a training run uses (for exact resume)."""
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


def get_rng_state():
    """Snapshot of all global generator states (CPU tensors / plain Python objects, picklable)."""
    state = {'python': random.getstate(), 'numpy': np.random.get_state(), 'torch': torch.get_rng_state()}
    if torch.cuda.is_available():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state):
    """Restore a snapshot made by :func:`get_rng_state` (CUDA states only if CUDA is present)."""
    random.setstate(state['python'])
    np.random.set_state(state['numpy'])
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])
