"""Prior extraction: pyramid shapes, seeded determinism, exact flip consistency, cache, loading from checkpoints.

Networks are randomly initialised stand-ins (with standardisation statistics set from random tri-planes); the
behaviour checked here does not depend on training.
"""
import pytest
import torch

from lowlight3d.archs.triplane_ddpm_arch import TriplaneDDPM
from lowlight3d.archs.triplane_encoder_arch import TriplaneGenerator
from lowlight3d.models.prior_extractor import PriorExtractor
from lowlight3d.utils.camera import look_at_label

GEN_KW = dict(encoder=dict(plane_channels=4, base_channels=8, channel_mults=[1, 2], num_up=1),
              renderer=dict(hidden=8, resolution=16, num_coarse=6, num_fine=6), input_size=32)
DDPM_KW = dict(plane_channels=4, base_channels=8, image_downsample=1)


def _networks():
    torch.manual_seed(0)
    gen, den = TriplaneGenerator(**GEN_KW), TriplaneDDPM(**DDPM_KW)
    with torch.no_grad():  # non-zero output so that the sample depends on the image
        den.out[-1].weight.normal_(0, 0.02)
        planes = torch.randn(4, 3, 4, 16, 16) * 0.5
        cams = torch.stack([look_at_label(y, 0) for y in (-10, 0, 5, 10)])
        den.set_statistics(den.make_x0(planes, cams))
    return gen, den


def _extractor(**kw):
    gen, den = _networks()
    return PriorExtractor.from_networks(den, gen, {'num_steps': 100, 'schedule': 'scaled_linear'},
                                        **{'steps': 4, **kw})


def test_prior_pyramid_shapes_and_ranges():
    lq = torch.rand(2, 3, 48, 48) * 0.2
    out = _extractor().extract(lq, seed=0)
    assert [t.shape[-1] for t in out['T']] == [16, 8, 4] and [d.shape[-1] for d in out['D']] == [16, 8, 4]
    assert out['T'][0].shape == (2, 3, 16, 16) and out['D'][0].shape == (2, 1, 16, 16)
    assert torch.equal(out['T'][0], out['render']) and torch.equal(out['D'][0], out['depth'])
    assert torch.allclose(out['T'][1], torch.nn.functional.avg_pool2d(out['render'], 2))
    assert out['D'][0].min() >= 0 and out['D'][0].max() <= 1 and out['camera'].shape == (2, 25)


def test_extraction_is_deterministic_and_batch_independent():
    ext = _extractor(sampler='paper')
    lq = torch.rand(3, 3, 32, 32) * 0.3
    a = ext.extract(lq, seed=3)
    b = ext.extract(lq, seed=3)
    c = ext.extract(lq, seed=4)
    assert torch.equal(a['render'], b['render']) and not torch.allclose(a['render'], c['render'])
    single = ext.extract(lq[1:2], seed=3)
    assert torch.allclose(single['render'][0], a['render'][1], atol=1e-3)  # float noise of batched convs


def test_flip_consistency_is_exact():
    lq = torch.rand(2, 3, 32, 32) * 0.3
    ext = _extractor()
    a, b = ext.extract(lq, seed=1), ext.extract(lq.flip(-1), seed=1)
    for key in ('render', 'depth', 'opacity'):
        assert torch.allclose(a[key].flip(-1), b[key], atol=1e-5), key
    plain = _extractor(flip_consistent=False)
    flipped = plain.extract(lq.flip(-1), seed=1)['render']
    assert not torch.allclose(plain.extract(lq, seed=1)['render'].flip(-1), flipped, atol=1e-4)


def test_cache_avoids_resampling_and_persists(tmp_path, monkeypatch):
    ext = _extractor(cache=True, cache_dir=str(tmp_path))
    lq = torch.rand(2, 3, 32, 32) * 0.3
    calls = []
    original = ext._compute
    monkeypatch.setattr(ext, '_compute', lambda *a: calls.append(a[0].shape[0]) or original(*a))
    first = ext.extract(lq, seed=0)
    again = ext.extract(lq, seed=0)
    assert calls == [2] and torch.equal(first['render'], again['render'])
    flipped = ext.extract(lq.flip(-1), seed=0)  # a mirror is served from its image's entry, flipped
    assert calls == [2] and torch.equal(flipped['render'], first['render'].flip(-1))
    kept = ext.extract(lq * 0.5, seed=0, identity=lq)  # keyed by another tensor: that entry, whatever the input
    assert calls == [2] and torch.equal(kept['render'], first['render'])
    assert len(list(tmp_path.glob('*.pt'))) == 2
    fresh = _extractor(cache_dir=str(tmp_path))
    assert torch.equal(fresh.extract(lq, seed=0)['render'], first['render'])
    ext.extract(lq, seed=1)  # another seed is another entry
    ext.extract(lq, seed=0, namespace='other')  # and another namespace
    ext.extract(lq, seed=0, use_cache=False)
    assert calls == [2, 2, 2, 2]


def test_from_options_loads_checkpoints(tmp_path):
    gen, den = _networks()
    torch.save({'params': gen.state_dict()}, tmp_path / 'gen.pth')
    torch.save({'params': den.state_dict(), 'params_ema': den.state_dict()}, tmp_path / 'ddpm.pth')
    opt = {'network_g': {'type': 'TriplaneDDPM', **DDPM_KW},
           'network_generator': {'type': 'TriplaneGenerator', **GEN_KW},
           'diffusion': {'num_steps': 100, 'schedule': 'scaled_linear'}, 'prior': {'steps': 4},
           'path': {'pretrain_network_generator': str(tmp_path / 'gen.pth')}}
    ext = PriorExtractor.from_options(opt, str(tmp_path / 'ddpm.pth'))
    lq = torch.rand(1, 3, 32, 32)
    assert torch.allclose(ext.extract(lq)['render'], _extractor().extract(lq)['render'], atol=1e-6)


def test_regression_extractor_is_one_deterministic_pass_picked_from_the_options(tmp_path):
    gen, den = _networks()
    torch.save({'params': gen.state_dict()}, tmp_path / 'gen.pth')
    torch.save({'params': den.state_dict()}, tmp_path / 'regressor.pth')
    opt = {'network_g': {'type': 'TriplaneDDPM', **DDPM_KW},
           'network_generator': {'type': 'TriplaneGenerator', **GEN_KW},
           'diffusion': {'num_steps': 100, 'schedule': 'scaled_linear', 'objective': 'regression'},
           'prior': {'steps': 4, 'flip_consistent': False},
           'path': {'pretrain_network_generator': str(tmp_path / 'gen.pth')}}
    ext = PriorExtractor.from_options(opt, str(tmp_path / 'regressor.pth'))  # no prior.sampler: 'regression'
    assert ext.sampler == 'regression' and ext.schedule.objective == 'regression'
    lq = torch.rand(2, 3, 32, 32) * 0.3
    calls = []
    original = ext.denoiser.denoise
    ext.denoiser.denoise = lambda x, t, f: calls.append((x.abs().max().item(), t.tolist())) or original(x, t, f)
    a, b = ext.extract(lq, seed=0), ext.extract(lq, seed=7)
    assert calls == [(0.0, [0, 0]), (0.0, [0, 0])]  # one pass per extraction, on x = 0 at t = 0
    assert torch.equal(a['render'], b['render']) and torch.equal(a['depth'], b['depth'])
    assert a['render'].shape == (2, 3, 16, 16) and a['camera'].shape == (2, 25)
    assert [t.shape[-1] for t in a['T']] == [16, 8, 4] and a['D'][2].shape == (2, 1, 4, 4)
    with torch.no_grad():
        x0 = den(torch.zeros(2, den.in_channels, 16, 16), torch.zeros(2, dtype=torch.long), lq)
        planes, cams = den.split_x0(x0)
        ref = gen.renderer(planes, cams, deterministic=True)['image']
    assert torch.allclose(a['render'], ref, atol=1e-5)
    for wrong in ('ddim', 'paper'):
        with pytest.raises(ValueError, match='objective'):
            PriorExtractor.from_options(opt, str(tmp_path / 'regressor.pth'), sampler=wrong)
    opt['diffusion']['objective'] = 'noise'
    with pytest.raises(ValueError, match='objective'):
        PriorExtractor.from_options(opt, str(tmp_path / 'regressor.pth'), sampler='regression')


def test_paper_variance_is_plumbed_from_the_prior_options(tmp_path):
    lq = torch.rand(1, 3, 32, 32) * 0.3
    beta = _extractor(sampler='paper', flip_consistent=False)
    post = _extractor(sampler='paper', flip_consistent=False, variance='posterior')
    assert beta.variance == 'beta' and post.variance == 'posterior'
    a, b = beta.extract(lq, seed=2)['render'], post.extract(lq, seed=2)['render']
    assert not torch.allclose(a, b) and torch.equal(b, post.extract(lq, seed=2)['render'])
    with pytest.raises(ValueError, match='variance'):
        _extractor(variance='big')


def test_prior_maps_are_made_in_one_format():
    """``prior_pyramid`` pools 2x2 between levels, ``uniform_prior`` repeats one pair, ``prior_maps`` checks the
    count, ``prior_on`` keeps only T and D."""
    from lowlight3d.archs.prior_maps import PRIOR_LEVELS, prior_maps, prior_on, prior_pyramid, uniform_prior
    render, depth = torch.rand(1, 3, 8, 8), torch.rand(1, 1, 8, 8)
    pyr = prior_pyramid(render, depth)
    assert [t.shape[-1] for t in pyr['T']] == [8, 4, 2] and len(pyr['D']) == PRIOR_LEVELS
    assert torch.allclose(pyr['T'][1][0, :, 0, 0], render[0, :, :2, :2].mean(dim=(1, 2)))
    assert torch.allclose(pyr['D'][2], torch.nn.functional.avg_pool2d(depth, 4))
    same = uniform_prior(render, depth)
    assert all(t is render for t in same['T']) and all(d is depth for d in same['D'])
    with pytest.raises(ValueError, match='3 image maps and 3 depth maps, got 2 and 3'):
        prior_maps([render] * 2, [depth] * 3)
    moved = prior_on({**pyr, 'render': render, 'opacity': depth}, 'cpu')
    assert set(moved) == {'T', 'D'} and torch.equal(moved['T'][2], pyr['T'][2])
