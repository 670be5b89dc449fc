"""Checkpoints of older layouts: each network declares how it reads them, and one loader applies that.

A network (or a building block) whose layout changed mixes in :class:`UpgradableCheckpoint` and overrides

* :meth:`~UpgradableCheckpoint.legacy_renames`: ``(old, new)`` key prefixes of renamed sub-modules;
* :meth:`~UpgradableCheckpoint.upgrade_state_dict`: anything else, in place (a check that raises naming the option
  to set, a marker that a checkpoint predates);
* :meth:`~UpgradableCheckpoint.mismatch_hint`: one sentence for a checkpoint that does not fit (e.g. the other
  up-sampling mode), shown by :func:`load_weights_checked`.

``net.load_state_dict`` applies the upgrades (the mixin's ``_load_from_state_dict`` runs before each module
loads), so BasicSR code and plain PyTorch read old checkpoints too.  :func:`load_weights_checked`, the loader of
the training models and of inference, compares keys before loading to give a short error, so it upgrades first
(:func:`upgrade_checkpoint`) and asks the hints when the keys still disagree.
"""
from collections import OrderedDict

import torch.nn as nn

__all__ = ['UpgradableCheckpoint', 'rename_legacy_keys', 'upgrade_checkpoint', 'load_weights_checked']


def rename_legacy_keys(state_dict, prefix, renames):
    """Rename checkpoint keys in place.

    Args:
        state_dict (dict): The state dict being loaded.
        prefix (str): The module's prefix in it.
        renames (Iterable[tuple[str, str]]): ``(old, new)`` key prefixes relative to the module, e.g.
            ``('ups.0.0.', 'ups.0.conv.')`` for an up-sampler that became ``Upsample2x``.
    """
    for old, new in renames:
        for key in [k for k in state_dict if k.startswith(prefix + old)]:
            target = prefix + new + key[len(prefix + old):]
            if target not in state_dict:
                state_dict[target] = state_dict.pop(key)


class UpgradableCheckpoint:
    """Mixin of an ``nn.Module`` that reads checkpoints of its older layouts (see the module docstring)."""

    def legacy_renames(self):
        """list[tuple[str, str]]: ``(old, new)`` key prefixes, relative to this module, of renamed sub-modules."""
        return []

    def upgrade_state_dict(self, state_dict, prefix=''):
        """Bring a checkpoint's state dict to this module's layout, in place (default: :meth:`legacy_renames`).

        Args:
            state_dict (dict): The whole state dict being loaded. prefix (str): This module's prefix in it.

        Raises:
            ValueError: The checkpoint cannot be used by this module as built (the message names the option).
        """
        rename_legacy_keys(state_dict, prefix, self.legacy_renames())

    def mismatch_hint(self, state_dict, prefix, block):
        """One sentence on why ``state_dict`` does not fit this module, or ``''``.

        Args:
            state_dict (dict): The upgraded state dict. prefix (str): This module's prefix in it.
            block (str): The option block of the network (``network_g``), for the sentence.
        """
        return ''

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        self.upgrade_state_dict(state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def _upgradable_modules(net):
    return [(f'{name}.' if name else '', m) for name, m in net.named_modules() if isinstance(m, UpgradableCheckpoint)]


def upgrade_checkpoint(net, state):
    """A copy of ``state`` brought to ``net``'s layout by every :class:`UpgradableCheckpoint` module in it.

    Args:
        net (nn.Module): The network. state (dict): A state dict (no ``module.`` prefix).

    Returns:
        OrderedDict: The upgraded copy.
    """
    state = OrderedDict(state)
    for prefix, module in _upgradable_modules(net):
        module.upgrade_state_dict(state, prefix)
    return state


def _block_of(label):
    """``net_g`` / ``net_g_ema`` -> ``network_g`` (the option block a hint names)."""
    return 'network_' + label[4:].replace('_ema', '') if label.startswith('net_') else label


def load_weights_checked(net: nn.Module, state, path, label, strict=True, max_keys=5):
    """``net.load_state_dict(state)`` after the upgrades, with a short error: the file and the first mismatching keys.

    torch's own error lists every key (kilobytes for a wrong network); this one names ``path``, how many keys are
    missing / unexpected / of another shape, the first ``max_keys`` of each, and the modules' hints.

    Args:
        net (nn.Module): Network to load into. state (dict): Its state dict (no ``module.`` prefix).
        path (str): The file, for messages. label (str): The network's label (``net_g``), for messages.
        strict (bool): Raise on missing or unexpected keys (shape mismatches always raise).
        max_keys (int): How many keys of each kind are named.

    Returns:
        tuple[list, list]: ``(missing, unexpected)`` keys (non-empty only when not ``strict``).

    Raises:
        RuntimeError: The checkpoint does not fit the network.
        ValueError: A module refuses the checkpoint (:meth:`UpgradableCheckpoint.upgrade_state_dict`).
    """
    state = upgrade_checkpoint(net, state)
    own = net.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f'{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}' for k in own
              if k in state and hasattr(state[k], 'shape') and tuple(state[k].shape) != tuple(own[k].shape)]

    def first(keys):
        return f"{len(keys)} (first: {', '.join(map(str, keys[:max_keys]))}{', ...' if len(keys) > max_keys else ''})"

    if shapes or (strict and (missing or unexpected)):
        parts = [f'missing {first(missing)}' if missing else '',
                 f'unexpected {first(unexpected)}' if unexpected else '',
                 f'different shape {first(shapes)}' if shapes else '']
        hints = [m.mismatch_hint(state, prefix, _block_of(label)) for prefix, m in _upgradable_modules(net)]
        hint = next((h for h in hints if h), 'Is it a checkpoint of another network or of other network options?')
        raise RuntimeError(f'{path} does not fit {label} ({type(net).__name__}, {len(own)} tensors; the file has '
                           f"{len(state)}): {'; '.join(p for p in parts if p)}. {hint}")
    net.load_state_dict(state, strict=False)
    return missing, unexpected
