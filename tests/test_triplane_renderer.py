"""Tri-plane renderer geometry: known density -> expected depth, mirror camera = flipped image, camera helpers."""
import math

import numpy as np
import pytest
import torch

from lowlight3d.archs.triplane_renderer_arch import (
    TriplaneRenderer,
    depth_guidance,
    mirror_triplane,
    project_onto_planes,
    sample_triplane,
)
from lowlight3d.data.demo_faces import camera_from_angles, camera_label, generate_rays
from lowlight3d.utils.camera import (
    camera_rays,
    canonical_label,
    look_at_label,
    mirror_label,
    project_label,
    split_label,
)


def _slab_renderer(plane_axes, z0=0.1, res=64):
    """Planes + decoder whose density is ~0 for z > z0 and very large for z < z0 (inside the box)."""
    r = TriplaneRenderer(plane_channels=2, hidden=4, plane_axes=plane_axes, resolution=16, num_coarse=32,
                         num_fine=32, density_bias=-30.0).eval()
    coords = (torch.arange(res) + 0.5) / res * 2 - 1  # texel centres in [-1, 1]
    step = (coords < 2 * z0).float()
    planes = torch.zeros(1, 3, 2, res, res)
    planes[0, 0, 1] = 1.0  # colour channel only
    if plane_axes == 'xyz':  # plane 1 = (x, z): z is v (rows); plane 2 = (z, y): z is u (columns)
        planes[0, 1, 0] = step[:, None].expand(res, res)
        planes[0, 2, 0] = step[None, :].expand(res, res)
    else:  # eg3d plane 2 = (z, x): z is u
        planes[0, 1, 0] = step[:, None].expand(res, res)
        planes[0, 2, 0] = step[None, :].expand(res, res)
    with torch.no_grad():
        lin1, lin2 = r.decoder[0], r.decoder[2]
        lin1.weight.zero_()
        lin1.weight[0, 0] = 10.0
        lin2.weight.zero_()
        lin2.weight[0, 0] = 30.0
        lin2.bias[0] = -30.0 * math.log(2.0)  # raw density 0 where the feature is 0
    return r, planes


@pytest.mark.parametrize('plane_axes', ['xyz', 'eg3d'])
def test_slab_density_renders_expected_depth(plane_axes):
    z0 = 0.1
    r, planes = _slab_renderer(plane_axes, z0)
    cam = canonical_label(1)
    with torch.no_grad():
        out = r(planes, cam, resolution=16)
    # canonical camera at z = 2.7 looking down -z: the slab face z = z0 is at z-depth 2.6 for every pixel
    # (all rays stay inside |x|, |y| < 0.5 at that depth), and rays end inside the box at z = -0.5 (depth 3.2)
    assert torch.allclose(out['zdepth'], torch.full_like(out['zdepth'], 2.7 - z0), atol=0.02)
    assert (out['opacity'] > 0.99).all()
    _, dirs, zscale = camera_rays(cam, 16)
    assert torch.allclose(out['depth'][0, 0].reshape(-1), (2.7 - z0) / zscale[0], atol=0.02)
    assert (out['depth'] > out['zdepth'] - 1e-6).all()


def test_empty_planes_give_far_depth_and_zero_opacity():
    r, planes = _slab_renderer('xyz')
    with torch.no_grad():
        out = r(torch.zeros_like(planes), canonical_label(1), resolution=8)
    assert (out['opacity'] < 1e-3).all()
    assert (out['image'] < 1e-3).all()
    assert torch.allclose(out['depth'], torch.full_like(out['depth'], r.ray_end), atol=0.05)
    assert (depth_guidance(out['depth'], out['opacity']) < 1e-3).all()


@pytest.mark.parametrize('plane_axes', ['xyz', 'eg3d'])
def test_mirror_camera_on_mirrored_planes_equals_flipped_image(plane_axes):
    torch.manual_seed(0)
    r = TriplaneRenderer(plane_channels=4, hidden=8, plane_axes=plane_axes, resolution=12, num_coarse=8,
                         num_fine=8).eval()
    planes = torch.randn(2, 3, 4, 16, 16)
    cams = torch.stack([look_at_label(20, 5), look_at_label(-12, -7)])
    with torch.no_grad():
        a = r(planes, cams)
        b = r(mirror_triplane(planes, plane_axes), mirror_label(cams))
    for key in ('image', 'depth', 'opacity'):
        assert torch.allclose(a[key].flip(-1), b[key], atol=1e-5), key
    # without mirroring the planes the render is different (the test can fail)
    with torch.no_grad():
        c = r(planes, mirror_label(cams))
    assert not torch.allclose(a['image'].flip(-1), c['image'], atol=1e-3)


def test_plane_projection_conventions():
    p = torch.tensor([[[0.1, 0.2, 0.3]]])
    assert torch.allclose(project_onto_planes(p, 'eg3d')[0, :, 0], torch.tensor([[.2, .4], [.2, .6], [.6, .2]]))
    assert torch.allclose(project_onto_planes(p, 'xyz')[0, :, 0], torch.tensor([[.2, .4], [.2, .6], [.6, .4]]))
    with pytest.raises(ValueError, match='plane_axes'):
        project_onto_planes(p, 'yzx')
    # bilinear sampling at a texel centre returns the texel value (mean over the 3 planes)
    planes = torch.zeros(1, 3, 1, 4, 4)
    planes[0, 0, 0, 1, 2] = 3.0  # plane (x, y): column 2 <-> u in (0, 0.5), row 1 <-> v in (-0.5, 0)
    pt = torch.tensor([[[0.125, -0.125, 0.9]]])  # u = 0.25, v = -0.25 -> texel centre (row 1, col 2)
    assert torch.allclose(sample_triplane(planes, pt), torch.tensor([[[1.0]]]))


def test_camera_helpers_match_demo_faces():
    for yaw, pitch in ((0, 0), (20, -10), (-25, 15)):
        ref = camera_label(*camera_from_angles(yaw, pitch))
        assert np.allclose(look_at_label(yaw, pitch).numpy(), ref, atol=1e-6)
    c2w, k = camera_from_angles(15, 5)
    origin, dirs, zscale = generate_rays(c2w, k, 6)
    o, d, z = camera_rays(torch.from_numpy(camera_label(c2w, k))[None], 6)
    assert np.allclose(d[0].numpy(), dirs.T, atol=1e-6) and np.allclose(z[0].numpy(), zscale, atol=1e-6)
    assert np.allclose(o[0, 0].numpy(), origin, atol=1e-6)
    # mirror of a yaw camera is the camera at -yaw; projection repairs a perturbed label
    assert torch.allclose(mirror_label(look_at_label(20, 5)[None])[0], look_at_label(-20, 5), atol=1e-6)
    noisy = look_at_label(10, 3)[None] + 0.05 * torch.randn(1, 25, generator=torch.Generator().manual_seed(0))
    fixed = project_label(noisy)
    rot = split_label(fixed)[0][0, :3, :3]
    assert torch.allclose(rot @ rot.T, torch.eye(3), atol=1e-5)
    assert abs(split_label(fixed)[0][0, :3, 3].norm().item() - 2.7) < 1e-4
    assert torch.allclose(project_label(look_at_label(10, 3)[None]), look_at_label(10, 3)[None], atol=1e-5)


def test_train_mode_jitters_eval_mode_is_deterministic():
    torch.manual_seed(1)
    r = TriplaneRenderer(plane_channels=4, hidden=8, resolution=8, num_coarse=6, num_fine=6)
    planes = torch.randn(1, 3, 4, 8, 8)
    with torch.no_grad():
        a, b = r(planes)['image'], r(planes)['image']
        r.eval()
        c, d = r(planes)['image'], r(planes)['image']
    assert not torch.equal(a, b)
    assert torch.equal(c, d)
    # chunked (no-grad) and unchunked rendering agree
    r.chunk_rays = 5
    with torch.no_grad():
        assert torch.allclose(r(planes)['image'], c, atol=1e-6)
