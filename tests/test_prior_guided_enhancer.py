"""PriorGuidedEnhancer and its fusion modules at base 8: shapes, prior handling, gradients, init, training."""
import pytest
import torch

from lowlight3d.archs import build_network
from lowlight3d.archs.prior_fusion_arch import ConcatResidualFusion, LayerNorm2d, PriorFusionModule
from lowlight3d.pipeline.complexity import count_flops, example_inputs


def _net(fusion='prior3d', **kwargs):
    opt = {'type': 'PriorGuidedEnhancer', 'base_channels': 8, 'blocks_per_level': 1, 'fusion': fusion, **kwargs}
    return build_network(opt)


def _prior(batch, sizes, requires_grad=False, seed=0):
    gen = torch.Generator().manual_seed(seed)
    maps = {'T': [torch.rand(batch, 3, *s, generator=gen) for s in sizes],
            'D': [torch.rand(batch, 1, *s, generator=gen) for s in sizes]}
    for m in maps['T'] + maps['D']:
        m.requires_grad_(requires_grad)
    return maps


@pytest.mark.parametrize('fusion', ['prior3d', 'concat'])
@pytest.mark.parametrize('position', ['decoder', 'encoder'])
@pytest.mark.parametrize('with_prior', [True, False])
def test_odd_sizes_and_prior_of_other_size(fusion, position, with_prior):
    net = _net(fusion, fusion_position=position)
    x = torch.rand(2, 3, 37, 50)
    prior = _prior(2, [(16, 16), (8, 8), (4, 4)]) if with_prior else None  # not the input's size, square
    assert net(x, prior).shape == x.shape
    assert net(torch.rand(1, 3, 5, 9)).shape == (1, 3, 5, 9)


def test_prior_none_equals_all_zero_prior():
    torch.manual_seed(0)
    net = _net('prior3d').eval()
    with torch.no_grad():  # make the zero-initialised convs non-zero so a zero prior really passes through them
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    x = torch.rand(2, 3, 21, 30)
    zeros = {'T': [torch.zeros(2, 3, s, s) for s in (12, 6, 3)], 'D': [torch.zeros(2, 1, s, s) for s in (12, 6, 3)]}
    with torch.no_grad():
        assert torch.equal(net(x), net(x, zeros))
        assert not torch.allclose(net(x), net(x, _prior(2, [(12, 12), (6, 6), (3, 3)])))


@pytest.mark.parametrize('fusion', ['prior3d', 'concat'])
def test_gradients_reach_every_prior_map(fusion):
    torch.manual_seed(0)
    net = _net(fusion)
    x = torch.rand(2, 3, 24, 20)
    if fusion == 'prior3d':
        # documented property: at init the depth paths are zero-initialised, so D gets exactly zero gradient ...
        prior = _prior(2, [(12, 12), (6, 6), (3, 3)], requires_grad=True)
        net(x, prior).abs().mean().backward()
        assert all(t.grad.abs().sum() > 0 for t in prior['T'])
        assert all(torch.count_nonzero(d.grad) == 0 for d in prior['D'])
        # ... and after one optimiser step the zero-initialised convs have moved and D takes part
        torch.optim.Adam(net.parameters(), lr=1e-3).step()
        net.zero_grad()
    prior = _prior(2, [(12, 12), (6, 6), (3, 3)], requires_grad=True)
    net(x, prior).abs().mean().backward()
    for key in ('T', 'D'):
        for k, m in enumerate(prior[key]):
            assert m.grad is not None and m.grad.abs().sum() > 0, f'{fusion}: no gradient to {key}{k + 1}'


def test_prior_fusion_module_at_init():
    torch.manual_seed(0)
    module = PriorFusionModule(8, mlp_ratio=1.5)
    feat, t, d = torch.randn(2, 8, 6, 7), torch.rand(2, 3, 6, 7), torch.rand(2, 1, 6, 7)
    # step-2 scale/shift and step-6 gamma/beta are zero at init: identity modulation, output independent of D
    assert all(torch.count_nonzero(m) == 0 for m in module.depth_modulation(d) + module.prior_affine(t, d))
    out = module(feat, t, d)
    assert torch.allclose(out, module(feat, t, torch.rand(2, 1, 6, 7)))
    assert not torch.allclose(out, module(feat, torch.rand(2, 3, 6, 7), d))  # T acts from the start
    assert module.mlp1[0].out_channels == 12 and module.mlp2[0].out_channels == 12  # hidden = mlp_ratio * C
    # both units are residual: with the last conv of each MLP zeroed the module is exactly the identity
    for mlp in (module.mlp1, module.mlp2):
        torch.nn.init.zeros_(mlp[-1].weight)
        torch.nn.init.zeros_(mlp[-1].bias)
    assert torch.equal(module(feat, t, d), feat)


def test_prior_fusion_module_hand_computed_affine():
    """Unit 2 with gamma = -1 (bias of the affine conv) makes R = beta = 0, so out = Fm + MLP2(b3 * b4) of zeros."""
    torch.manual_seed(0)
    module = PriorFusionModule(4)
    with torch.no_grad():
        module.affine[-1].bias[:4] = -1.0  # gamma = -1, beta = 0 everywhere
    feat, t, d = torch.randn(1, 4, 5, 5), torch.rand(1, 3, 5, 5), torch.rand(1, 1, 5, 5)
    out = module(feat, t, d)
    zero = torch.zeros(1, 4, 5, 5)
    const = module.mlp2(module.branch3(zero) * module.branch4(zero))  # the same at every pixel
    fm = out - const
    # Fm of unit 1, recomputed by hand from the documented equations (D modulation is the identity at init)
    f = module.conv1(torch.nn.functional.silu(module.norm1(feat)))
    tc = module.image_proj(t)
    attn = torch.sigmoid(module.channel_attention[3](torch.relu(module.channel_attention[1](tc.mean((2, 3), True)))))
    expected_fm = feat + module.mlp1(torch.cat([attn * f, attn * tc], 1))
    assert torch.allclose(fm, expected_fm, atol=1e-5)


def test_layer_norm_2d_normalises_each_pixel_over_channels():
    x = torch.randn(2, 6, 3, 4) * 5 + 2
    y = LayerNorm2d(6)(x)
    assert torch.allclose(y.mean(1), torch.zeros(2, 3, 4), atol=1e-5)
    assert torch.allclose(y.var(1, unbiased=False), torch.ones(2, 3, 4), atol=1e-3)


def test_concat_fusion_is_a_residual_block():
    module = ConcatResidualFusion(8)
    assert module.body[0].in_channels == 8 + 3 + 1 and module.body[0].out_channels == 8
    torch.nn.init.zeros_(module.body[-1].weight)
    torch.nn.init.zeros_(module.body[-1].bias)
    feat = torch.randn(1, 8, 4, 4)
    assert torch.equal(module(feat, torch.rand(1, 3, 4, 4), torch.rand(1, 1, 4, 4)), feat)


@pytest.mark.parametrize('fusion', ['prior3d', 'concat'])
def test_no_batch_norm_and_residual_output(fusion):
    net = _net(fusion)
    assert not any(isinstance(m, (torch.nn.modules.batchnorm._BatchNorm, torch.nn.GroupNorm,
                                  torch.nn.modules.instancenorm._InstanceNorm)) for m in net.modules())
    assert len(net.fusions) == 3
    torch.nn.init.zeros_(net.tail.weight)
    torch.nn.init.zeros_(net.tail.bias)
    x = torch.rand(1, 3, 13, 11)
    assert torch.allclose(net(x, _prior(1, [(8, 8), (4, 4), (2, 2)])), x)


def test_flat_prior_and_complexity_inputs():
    net = _net('prior3d').eval()
    inputs = example_inputs(net, 32)
    assert [tuple(t.shape) for t in inputs] == [(1, 3, 32, 32), (1, 3, 16, 16), (1, 3, 8, 8), (1, 3, 4, 4),
                                                (1, 1, 16, 16), (1, 1, 8, 8), (1, 1, 4, 4)]
    with torch.no_grad():
        flat = net(*inputs)
        assert torch.equal(flat, net(inputs[0], net.unflatten_prior(inputs[1:])))
    assert count_flops(net, inputs) > 0


def test_bad_configuration_and_prior_raise_clear_errors():
    with pytest.raises(ValueError, match='fusion must be one of'):
        _net('attention')
    with pytest.raises(ValueError, match='fusion_position'):
        _net('prior3d', fusion_position='middle')
    net = _net('prior3d')
    x = torch.rand(1, 3, 16, 16)
    bad = _prior(1, [(8, 8), (4, 4), (2, 2)])
    bad['D'][1] = torch.rand(1, 3, 4, 4)
    with pytest.raises(ValueError, match=r"prior\['D'\]\[1\]"):
        net(x, bad)
    with pytest.raises(ValueError, match='3 maps'):
        net(x, {'T': bad['T'][:2], 'D': bad['D']})
    with pytest.raises(ValueError, match='expected'):
        PriorFusionModule(4)(torch.rand(1, 4, 5, 5), torch.rand(1, 3, 4, 4), torch.rand(1, 1, 5, 5))


@pytest.mark.parametrize('fusion', ['prior3d', 'concat'])
def test_adam_steps_reduce_l1(fusion):
    torch.manual_seed(0)
    net = _net(fusion)
    x = torch.rand(2, 3, 16, 16) * 0.2
    target = (x * 4).clamp(0, 1)
    prior = _prior(2, [(8, 8), (4, 4), (2, 2)])
    optim = torch.optim.Adam(net.parameters(), lr=2e-3)
    losses = []
    for _ in range(25):
        loss = (net(x, prior) - target).abs().mean()
        optim.zero_grad()
        loss.backward()
        optim.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses


def test_input_curve_enhances_the_gamma_curved_input_with_the_same_weights():
    from lowlight3d.archs.gamma_curve_enhancer_arch import GammaCurveEnhancer
    torch.manual_seed(0)
    plain = build_network({'type': 'PriorGuidedEnhancer', 'base_channels': 8, 'blocks_per_level': 1})
    curved = build_network({'type': 'PriorGuidedEnhancer', 'base_channels': 8, 'blocks_per_level': 1,
                            'input_curve': 0.4})
    curved.load_state_dict(plain.state_dict())  # no parameter or buffer of its own: checkpoints are interchangeable
    assert set(curved.state_dict()) == set(plain.state_dict())
    x = torch.rand(2, 3, 20, 24) * 0.05
    brightened = GammaCurveEnhancer(target_mean=0.4)(x)
    assert GammaCurveEnhancer.mean_luma(brightened) == pytest.approx([0.4, 0.4], abs=1e-3)
    with torch.no_grad():
        torch.testing.assert_close(curved(x), plain(brightened))
        # residual: at zero tail weights the output IS the gamma curve's result
        torch.nn.init.zeros_(curved.tail.weight)
        torch.nn.init.zeros_(curved.tail.bias)
        torch.testing.assert_close(curved(x), brightened)
    with pytest.raises(ValueError, match=r'input_curve \(network_g.input_curve'):
        build_network({'type': 'PriorGuidedEnhancer', 'base_channels': 8, 'input_curve': 1.5})
