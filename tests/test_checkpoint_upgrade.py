"""The one weight loader and the checkpoint upgrades each network declares (archs/checkpoint_upgrade.py)."""
import pytest
import torch
from torch import nn

from lowlight3d.archs.checkpoint_upgrade import UpgradableCheckpoint, load_weights_checked


def test_an_arch_declares_its_own_checkpoint_upgrades_and_hints():
    """The one loader asks each module: a plug-in arch renames old keys (through ``load_state_dict`` too) and gives
    its own hint when a checkpoint does not fit; without a hint the message says what to check."""
    class Plugin(UpgradableCheckpoint, nn.Module):

        def __init__(self, width=4):
            super().__init__()
            self.body = nn.Conv2d(3, width, 1)

        def legacy_renames(self):
            return [('conv.', 'body.')]

        def mismatch_hint(self, state_dict, prefix, block):
            theirs = state_dict.get(prefix + 'body.weight')
            if theirs is not None and theirs.shape[0] != self.body.out_channels:
                return f'set {block}.width: {theirs.shape[0]}.'
            return ''

    torch.manual_seed(0)
    old = {k.replace('body.', 'conv.', 1): v for k, v in Plugin().state_dict().items()}
    net = Plugin()
    net.load_state_dict(old)
    assert torch.equal(net.body.weight, old['conv.weight'])
    wrapped = nn.Sequential(Plugin())  # a prefix: the renames are relative to the module
    load_weights_checked(wrapped, {f'0.{k}': v for k, v in old.items()}, 'old.pth', 'net_g')
    assert torch.equal(wrapped[0].body.weight, old['conv.weight'])
    with pytest.raises(RuntimeError, match=r'old.pth does not fit net_g .*set network_g.width: 8\.'):
        load_weights_checked(Plugin(), Plugin(width=8).state_dict(), 'old.pth', 'net_g')
    with pytest.raises(RuntimeError, match='another network or of other network options'):
        load_weights_checked(nn.Conv2d(3, 4, 3), Plugin().state_dict(), 'other.pth', 'net_g')
