"""Prior-quality measurements (lowlight3d.pipeline.prior_quality, ``scripts/prior_quality.py``) on tiny networks.

The networks are randomly initialised stand-ins (the denoiser gets standardisation statistics from random
tri-planes); the tables' structure and the metrics' behaviour do not depend on training.
"""
import math

import numpy as np
import pytest
import torch

from lowlight3d.archs.triplane_ddpm_arch import TriplaneDDPM
from lowlight3d.archs.triplane_encoder_arch import TriplaneGenerator
from lowlight3d.pipeline import prior_quality as pq
from lowlight3d.utils.camera import look_at_label
from lowlight3d.utils.options import yaml_dump

GEN_KW = dict(encoder=dict(plane_channels=4, base_channels=8, channel_mults=[1, 2], num_up=1),
              renderer=dict(hidden=8, resolution=16, num_coarse=6, num_fine=6), input_size=32)
DDPM_KW = dict(plane_channels=4, base_channels=8, image_downsample=1)
TIMING_KEYS = ['scale', 'input', 'sampler', 'steps', 'flip_consistent', 'batch', 'cpu_s_per_image',
               'wall_s_per_image']
QUALITY_KEYS = ['sampler', 'steps', 'variance', 'clip', 'PSNR', 'SSIM', 'depth_MAE', 'cpu_s_per_image',
                'wall_s_per_image']


def _cams(n):
    return torch.stack([look_at_label(yaw, 0) for yaw in (-10, 0, 5, 10)[:n]])


def _write_tiny(tmp_path, objective='noise'):
    """A tiny DDPM option file with random-weight checkpoints of its generator and denoiser."""
    torch.manual_seed(0)
    gen, den = TriplaneGenerator(**GEN_KW).eval(), TriplaneDDPM(**DDPM_KW)
    with torch.no_grad():  # non-zero output layer, standardisation statistics from random tri-planes
        den.out[-1].weight.normal_(0, 0.02)
        den.set_statistics(den.make_x0(torch.randn(4, 3, 4, 16, 16) * 0.5, _cams(4)))
    gen_path, den_path = tmp_path / 'net_generator.pth', tmp_path / 'net_g.pth'
    torch.save({'params': gen.state_dict()}, gen_path)
    torch.save({'params': den.state_dict()}, den_path)
    opt = {'network_g': {'type': 'TriplaneDDPM', **DDPM_KW},
           'network_generator': {'type': 'TriplaneGenerator', **GEN_KW},
           'diffusion': {'num_steps': 100, 'schedule': 'scaled_linear', 'objective': objective},
           'path': {'pretrain_network_generator': str(gen_path)}}
    opt_path = tmp_path / 'tiny_ddpm.yml'
    opt_path.write_text(yaml_dump(opt))
    return str(opt_path), str(den_path), gen


@pytest.mark.parametrize('objective', ['noise', 'v'])
def test_settings_of_sampled_objectives(objective):
    got = pq.quality_settings(objective, ['ddim', 'paper'], [1, 5], ['beta', 'posterior'], [5.0, None])
    assert got == [('ddim', 1, '-', 5.0), ('ddim', 1, '-', None), ('ddim', 5, '-', 5.0), ('ddim', 5, '-', None),
                   ('paper', 1, 'beta', 5.0), ('paper', 1, 'beta', None), ('paper', 1, 'posterior', 5.0),
                   ('paper', 1, 'posterior', None), ('paper', 5, 'beta', 5.0), ('paper', 5, 'beta', None),
                   ('paper', 5, 'posterior', 5.0), ('paper', 5, 'posterior', None)]


def test_settings_of_a_regression_network_are_one_pass():
    assert pq.quality_settings('regression', ['ddim', 'paper'], [1, 5, 20], ['beta', 'posterior'],
                               [5.0, None]) == [('regression', 1, '-', None)]
    # an explicitly requested one-pass sampler is never clamped
    assert pq.quality_settings('noise', ['regression'], [1], clips=[5.0]) == [('regression', 1, '-', None)]


def test_a_perfect_prior_scores_infinite_psnr_and_zero_depth_error():
    torch.manual_seed(1)
    gen = TriplaneGenerator(**GEN_KW).eval()
    gt = torch.rand(2, 3, 32, 32)
    image, depth = pq.render_targets(gen, gt, _cams(2))
    assert image.shape == (2, 3, 16, 16) and depth.shape == (2, 1, 16, 16)
    assert depth.min() >= 0 and depth.max() <= 1
    perfect = pq.prior_metrics(image, depth, image, depth)
    assert math.isinf(perfect['PSNR']) and perfect['PSNR'] > 0
    assert perfect['SSIM'] == pytest.approx(1.0) and perfect['depth_MAE'] == 0.0
    worse = pq.prior_metrics(image * 0.5, depth * 0.5, image, depth)
    assert math.isfinite(worse['PSNR']) and worse['SSIM'] < 1.0 and worse['depth_MAE'] > 0.0


def test_one_timing_row(tmp_path):
    opt_path, _, _ = _write_tiny(tmp_path)
    rows = pq.timing_rows({'tiny': opt_path}, [2], [1], [False])
    assert len(rows) == 1 and list(rows[0]) == TIMING_KEYS
    row = rows[0]
    assert (row['scale'], row['input'], row['sampler'], row['steps'], row['flip_consistent'], row['batch']) == \
        ('tiny', '32^2', 'ddim', 2, False, 1)
    assert row['cpu_s_per_image'] >= 0 and row['wall_s_per_image'] > 0


def test_complexity_rows_of_a_tiny_file(tmp_path):
    opt_path, _, _ = _write_tiny(tmp_path)
    rows = pq.complexity_rows(opt_path, size=32, steps=(1, 10))
    assert [r['what'] for r in rows] == ['denoiser step (U-Net + fusion)', 'condition extractor (once)',
                                         'render 16^2', 'full sampling S=1', 'full sampling S=10']
    assert all(list(r) == ['what', 'params_M', 'GFLOPs', 'GMACs'] for r in rows)
    step, cond, render = (r['GFLOPs'] for r in rows[:3])
    assert rows[4]['GFLOPs'] == pytest.approx(cond + 10 * step + render) and step > 0


@pytest.mark.parametrize('objective, settings', [('noise', 2), ('regression', 1)])
def test_quality_rows_end_to_end(tmp_path, monkeypatch, objective, settings):
    opt_path, den_path, gen = _write_tiny(tmp_path, objective)
    torch.manual_seed(2)
    gt = torch.rand(2, 3, 32, 32)
    monkeypatch.setattr(pq, 'load_quality_batch', lambda opt, n: (gt * 0.2, gt, _cams(2)))
    rows = pq.quality_rows(opt_path, den_path, [2], ['ddim', 'paper'], max_images=2)
    assert len(rows) == settings and all(list(r) == QUALITY_KEYS for r in rows)
    for row in rows:
        assert math.isfinite(row['PSNR']) and 0 < row['depth_MAE'] <= 1 and row['wall_s_per_image'] > 0
    image, depth = pq.render_targets(gen, gt, _cams(2))  # the targets come from the generator's checkpoint
    assert pq.prior_metrics(image, depth, image, depth)['depth_MAE'] == 0.0


def test_the_script_is_a_thin_entry_point():
    import os.path as osp
    script = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'scripts', 'prior_quality.py')
    source = open(script).read()
    assert 'from lowlight3d.pipeline.prior_quality import' in source and '_load' not in source
    assert len(source.splitlines()) < 40


class _PyramidMesh:
    """A stand-in for FaceMeshDepth: a square pyramid (apex nearest) over the centre of the image."""

    triangles = np.array([[0, 1, 4], [1, 2, 4], [2, 3, 4], [3, 0, 4]])

    def landmarks(self, rgb):
        return np.array([[0.1, 0.1, 0.2], [0.9, 0.1, 0.2], [0.9, 0.9, 0.2], [0.1, 0.9, 0.2], [0.5, 0.5, -0.2]])


def test_facemesh_depth_agreement_by_hand():
    """Guidance that is an affine, nearer-is-brighter copy of the FaceMesh depth agrees perfectly; its inverse has
    correlation -1; a constant has none."""
    from lowlight3d.data.mediapipe_depth import landmarks_to_depth
    from lowlight3d.pipeline.prior_quality import facemesh_depth_agreement
    mesh = _PyramidMesh()
    r = 16
    fm = torch.from_numpy(landmarks_to_depth(mesh.landmarks(None), r, r, mesh.triangles))
    gt = torch.rand(2, 3, 32, 32)
    good = (3.0 - fm)[None, None].repeat(2, 1, 1, 1) * 0.5
    out = facemesh_depth_agreement(good, gt, mesh)
    assert out['fm_faces'] == 2
    assert out['fm_corr'] == pytest.approx(1.0, abs=1e-6) and out['fm_err'] == pytest.approx(0.0, abs=1e-6)
    inv = facemesh_depth_agreement(fm[None, None].repeat(2, 1, 1, 1), gt, mesh)
    assert inv['fm_corr'] == pytest.approx(-1.0, abs=1e-6)
    flat = facemesh_depth_agreement(torch.ones(2, 1, r, r), gt, mesh)
    assert flat['fm_corr'] == 0.0 and flat['fm_err'] > 0.1
