"""Per-sample random generators: the only source of randomness of the datasets (exact resume, fixed test sets).

* Training samples draw from ``Generator(SeedSequence([seed, stream, 0, epoch, index]))``: the sample at
  ``(epoch, index)`` is the same whatever the worker, the batch order or a resume in the middle of an epoch.
* Validation/test samples draw from ``Generator(SeedSequence([seed, stream, 1, *sha256(name)]))``: they depend on
  the image name only, not on the index or the order, so every method is evaluated on identical inputs.

Names are hashed with SHA-256 (stable across processes and Python runs, unlike the salted built-in ``hash``).
"""
import hashlib

import numpy as np

__all__ = ['STREAM_PAIRED', 'STREAM_UNPAIRED', 'STREAM_PICK', 'STREAM_REAL_PAIR', 'name_entropy',
           'train_rng', 'eval_rng', 'check_seed']

#: Stream ids keep the draws of different consumers of one sample independent.
STREAM_PAIRED = 0
STREAM_UNPAIRED = 1
STREAM_PICK = 2
#: Whether a training pair is a real pair (``real_pairs`` of the paired set), and which one.
STREAM_REAL_PAIR = 3

_TRAIN_TAG = 0
_EVAL_TAG = 1


def check_seed(seed):
    """Validate a base seed (a non-negative integer; ``None`` means 0).

    Args:
        seed (int | None): The ``seed`` option.

    Returns:
        int: The seed.
    """
    if seed is None:
        return 0
    if isinstance(seed, bool) or int(seed) != seed or int(seed) < 0:
        raise ValueError(f"'seed' must be a non-negative integer, got {seed!r}")
    return int(seed)


def name_entropy(name):
    """Four 32-bit words from the SHA-256 of ``name`` (UTF-8).

    Args:
        name (str): An image name (file stem or relative path without extension).

    Returns:
        list[int]: Four integers in ``[0, 2**32)``.
    """
    digest = hashlib.sha256(str(name).encode('utf-8')).digest()
    return [int.from_bytes(digest[i:i + 4], 'little') for i in range(0, 16, 4)]


def train_rng(seed, epoch, index, stream=STREAM_PAIRED):
    """The generator of training sample ``index`` in ``epoch``.

    Args:
        seed (int): Base seed (non-negative).
        epoch (int): Epoch number set by ``set_epoch`` (non-negative).
        index (int): Dataset index as given to ``__getitem__`` (non-negative).
        stream (int): Which consumer draws (``STREAM_*``).

    Returns:
        np.random.Generator: A fresh generator.
    """
    return np.random.default_rng(np.random.SeedSequence([seed, stream, _TRAIN_TAG, int(epoch), int(index)]))


def eval_rng(seed, name, stream=STREAM_PAIRED):
    """The generator of validation/test image ``name`` (independent of index and order).

    Args:
        seed (int): Base seed (non-negative).
        name (str): Image name.
        stream (int): Which consumer draws (``STREAM_*``).

    Returns:
        np.random.Generator: A fresh generator.
    """
    return np.random.default_rng(np.random.SeedSequence([seed, stream, _EVAL_TAG, *name_entropy(name)]))
