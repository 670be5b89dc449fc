"""Archs of the toolkit at tiny size: shapes for any input size, gradients, building from options."""
import pytest
import torch

from lowlight3d.archs import build_network
from lowlight3d.archs.arch_util import pad_to_multiple


@pytest.mark.parametrize('size', [(32, 32), (37, 50), (5, 9)])
def test_lowlight_unet_any_size(size):
    net = build_network({'type': 'LowLightUNet', 'num_feat': 4, 'num_levels': 3})
    x = torch.rand(2, 3, *size, requires_grad=True)
    y = net(x)
    assert y.shape == x.shape
    y.mean().backward()
    assert x.grad is not None and all(p.grad is not None for p in net.parameters())


def test_pad_to_multiple_round_trip():
    x = torch.arange(2 * 3 * 5 * 7, dtype=torch.float32).reshape(2, 3, 5, 7)
    padded, (h, w) = pad_to_multiple(x, 4)
    assert padded.shape == (2, 3, 8, 8) and (h, w) == (5, 7)
    assert torch.equal(padded[..., :h, :w], x)
    same, _ = pad_to_multiple(torch.rand(1, 1, 8, 8), 4)
    assert same.shape == (1, 1, 8, 8)


def test_no_batch_norm_and_residual_identity_at_init():
    net = build_network({'type': 'LowLightUNet', 'num_feat': 4})
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in net.modules())
    for p in net.tail.parameters():
        torch.nn.init.zeros_(p)
    x = torch.rand(1, 3, 16, 16)
    assert torch.allclose(net(x), x)
