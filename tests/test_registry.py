"""Registries: registration rules, helpful unknown-type errors, user plug-ins, the registry listing."""
import subprocess
import sys

import pytest
import torch

import lowlight3d  # noqa: F401
from lowlight3d.archs import build_network
from lowlight3d.utils.registry import (
    ARCH_REGISTRY,
    LOSS_REGISTRY,
    REGISTRIES,
    build_from_registry,
    import_custom_modules,
    register,
)

USER_ARCH = '''
import torch
from lowlight3d.utils.registry import ARCH_REGISTRY, register


@register(ARCH_REGISTRY)
class MyUserTestArch(torch.nn.Module):
    """A user's arch living outside the package."""

    def __init__(self, gain=2.0):
        super().__init__()
        self.gain = gain

    def forward(self, x):
        return x * self.gain
'''


def test_toolkit_registers_on_import():
    assert 'LowLightUNet' in ARCH_REGISTRY
    assert 'SupervisedEnhancementModel' in REGISTRIES['model']
    for metric in ('psnr', 'ssim', 'lpips', 'niqe', 'brisque'):
        assert metric in REGISTRIES['metric'], metric
    for dataset in ('PairedLowLightFaceDataset', 'UnpairedLowLightDataset', 'SemiSupervisedLowLightDataset'):
        assert dataset in REGISTRIES['dataset'], dataset


def test_same_object_may_register_twice_but_not_a_different_one():

    class Twice(torch.nn.Module):
        pass

    register(ARCH_REGISTRY)(Twice)
    register(ARCH_REGISTRY)(Twice)  # re-import / running an *_arch.py file directly: fine
    assert ARCH_REGISTRY.get('Twice') is Twice

    def make_other():

        class Twice(torch.nn.Module):  # same name, defined elsewhere
            extra = 1

        return Twice

    other = make_other()
    with pytest.raises(KeyError, match='already registered'):
        register(ARCH_REGISTRY)(other)
    register(ARCH_REGISTRY, name='Other.Twice')(other)  # a qualified name avoids the clash
    assert ARCH_REGISTRY.get('Other.Twice') is other
    del ARCH_REGISTRY._obj_map['Twice'], ARCH_REGISTRY._obj_map['Other.Twice']


def test_unknown_type_lists_known_names_and_suggests():
    with pytest.raises(KeyError) as err:
        build_network({'type': 'LowLightUnet'}, where='network_g')
    text = str(err.value)
    assert "Did you mean 'LowLightUNet'" in text and 'network_g.type' in text
    assert 'Known names:' in text and 'RRDBNet' in text and 'custom_imports' in text


def test_build_does_not_mutate_options_and_names_bad_arguments():
    opt = {'type': 'L1Loss', 'loss_weight': 0.5}
    loss = build_from_registry(LOSS_REGISTRY, opt, where='train.pixel_opt')
    assert opt == {'type': 'L1Loss', 'loss_weight': 0.5} and loss.loss_weight == 0.5
    with pytest.raises(TypeError, match='train.pixel_opt'):
        build_from_registry(LOSS_REGISTRY, {'type': 'L1Loss', 'no_such_arg': 1}, where='train.pixel_opt')


def test_custom_imports_pick_up_a_user_arch(tmp_path, monkeypatch):
    (tmp_path / 'my_user_pkg').mkdir()
    (tmp_path / 'my_user_pkg' / '__init__.py').write_text('')
    (tmp_path / 'my_user_pkg' / 'my_arch.py').write_text(USER_ARCH)
    monkeypatch.chdir(tmp_path)
    import_custom_modules(['my_user_pkg.my_arch'])
    net = build_network({'type': 'MyUserTestArch', 'gain': 3.0})
    assert torch.equal(net(torch.ones(1)), torch.tensor([3.0]))
    with pytest.raises(ImportError, match='custom_imports'):
        import_custom_modules(['no_such_module_xyz'])


def test_baselines_found_through_the_plugin_entry_point():
    """In a fresh interpreter (other test files may already have imported ``baselines``): importing lowlight3d
    does not import the baselines by name; ``load_plugins`` finds them through the entry point and their
    ``Method.Name`` archs are then in the registry."""
    code = ('import sys, lowlight3d\n'
            'from lowlight3d.utils.registry import ARCH_REGISTRY, load_plugins\n'
            'before = "baselines" in sys.modules, "EnlightenGAN.Generator" in ARCH_REGISTRY\n'
            'load_plugins()\n'
            'print(before, "baselines" in sys.modules, "EnlightenGAN.Generator" in ARCH_REGISTRY)\n')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ['(False,', 'False)', 'True', 'True'], out


def test_list_command_prints_every_registry():
    out = subprocess.run([sys.executable, '-m', 'lowlight3d.list'], capture_output=True, text=True, check=True).stdout
    for kind in ('arch', 'model', 'loss', 'dataset', 'metric'):
        assert f'\n{kind} (' in '\n' + out
    assert 'LowLightUNet' in out and 'lowlight3d.archs.lowlight_unet_arch' in out
