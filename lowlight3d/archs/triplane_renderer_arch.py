"""EG3D-style tri-plane volume renderer (re-implemented from the description in ``docs/prior3d.md`` section 1).

Pipeline per ray: stratified depths in ``[ray_start, ray_end]`` (+ uniform jitter) -> bilinear features of the 3
planes at the projected points, averaged -> MLP ``C -> hidden -> 1 + 3`` (raw density, colour) -> importance
sampling from the coarse weights -> both sample sets merged and re-decoded -> volume rendering to colour, depth
and accumulated opacity.

* ``plane_axes='eg3d'``: planes sample ``(x, y)``, ``(x, z)``, ``(z, x)`` (EG3D's projection, required for
  tri-planes made by EG3D-space encoders); ``'xyz'``: ``(x, y)``, ``(x, z)``, ``(z, y)`` (a true tri-plane).
  ``u`` is the grid_sample width coordinate, ``v`` the height coordinate; world points are scaled by
  ``2 / box_warp`` so the box ``[-box_warp/2, box_warp/2]^3`` maps to ``[-1, 1]^3``.
* Density: ``sigma = softplus(raw + density_bias)`` (EG3D: bias -1); colour ``sigmoid * 1.002 - 0.001``.
* Randomness: in ``train()`` mode the coarse depths are jittered and the fine depths are drawn by inverse CDF
  with random ``u``; in ``eval()`` mode (or ``deterministic=True``) there is no jitter and ``u`` is evenly spaced,
  so a render is a deterministic function of planes and camera (the prior must be reproducible; EG3D jitters at
  test time too, which ``jitter_at_test=True`` restores).
* Outputs: ``image`` colour in ``[0, 1]`` (no background colour: empty rays are black), ``depth`` Euclidean ray
  distance (EG3D), ``zdepth`` = depth * cos(angle to the optical axis), ``opacity`` accumulated weights.
"""
import torch
import torch.nn.functional as F
from torch import nn

from lowlight3d.utils.camera import RAY_FAR, RAY_NEAR, camera_rays, canonical_label
from lowlight3d.utils.registry import ARCH_REGISTRY, register

__all__ = ['TriplaneRenderer', 'PLANE_AXES', 'project_onto_planes', 'sample_triplane', 'mirror_triplane',
           'depth_guidance']

#: (u, v) world-axis indices of planes 0, 1, 2 for each convention.
PLANE_AXES = {
    'eg3d': ((0, 1), (0, 2), (2, 0)),
    'xyz': ((0, 1), (0, 2), (2, 1)),
}


def _check_axes(plane_axes):
    if plane_axes not in PLANE_AXES:
        raise ValueError(f"plane_axes must be one of {sorted(PLANE_AXES)} ('eg3d' for tri-planes of EG3D-space "
                         f"encoders, 'xyz' for the toolkit's own generator), got {plane_axes!r}")
    return PLANE_AXES[plane_axes]


def project_onto_planes(points, plane_axes='xyz', box_warp=1.0):
    """Plane coordinates of world points.

    Args:
        points (torch.Tensor): ``(B, N, 3)`` world points.
        plane_axes (str): ``'eg3d'`` or ``'xyz'``.
        box_warp (float): Side of the cube covered by the planes.

    Returns:
        torch.Tensor: ``(B, 3, N, 2)`` (u, v) in ``[-1, 1]`` inside the box.
    """
    axes = _check_axes(plane_axes)
    p = points * (2.0 / box_warp)
    return torch.stack([p[..., list(ax)] for ax in axes], dim=1)


def sample_triplane(planes, points, plane_axes='xyz', box_warp=1.0):
    """Bilinear features of the three planes at world points, averaged over the planes.

    Args:
        planes (torch.Tensor): ``(B, 3, C, R, R)``.
        points (torch.Tensor): ``(B, N, 3)`` world points.
        plane_axes (str): Plane convention.
        box_warp (float): Side of the cube covered by the planes.

    Returns:
        torch.Tensor: ``(B, N, C)`` mean features (zero outside the box: zero padding).
    """
    if planes.ndim != 5 or planes.shape[1] != 3:
        raise ValueError(f'tri-planes must have shape (B, 3, C, R, R), got {tuple(planes.shape)}')
    b, _, c, h, w = planes.shape
    uv = project_onto_planes(points, plane_axes, box_warp).reshape(b * 3, 1, -1, 2)
    feats = F.grid_sample(planes.reshape(b * 3, c, h, w), uv.to(planes.dtype), mode='bilinear',
                          padding_mode='zeros', align_corners=False)  # (B*3, C, 1, N)
    return feats.reshape(b, 3, c, -1).mean(dim=1).transpose(1, 2)


def mirror_triplane(planes, plane_axes='xyz'):
    """Tri-planes of the scene mirrored by ``x -> -x`` (exact with ``align_corners=False``).

    Args:
        planes (torch.Tensor): ``(B, 3, C, R, R)``.
        plane_axes (str): ``'eg3d'`` (flip planes 0, 1 along W and plane 2 along H) or ``'xyz'`` (flip planes 0, 1
            along W; plane 2 ``(z, y)`` has no x).

    Returns:
        torch.Tensor: Mirrored planes.
    """
    _check_axes(plane_axes)
    p0, p1, p2 = planes.unbind(1)
    p0, p1 = p0.flip(-1), p1.flip(-1)
    if plane_axes == 'eg3d':
        p2 = p2.flip(-2)
    return torch.stack([p0, p1, p2], dim=1)


def depth_guidance(depth, opacity, near=RAY_NEAR, far=RAY_FAR):
    """Depth map for the enhancer: ``(far - depth) / (far - near)`` clamped to [0, 1], times the opacity.

    Args:
        depth (torch.Tensor): Ray-distance depth.
        opacity (torch.Tensor): Accumulated opacity (same shape).
        near (float): Near plane.
        far (float): Far plane.

    Returns:
        torch.Tensor: Values in ``[0, 1]``; near = bright, background = 0.
    """
    return ((far - depth) / (far - near)).clamp(0, 1) * opacity.clamp(0, 1)


def _sample_pdf(bins, weights, n, deterministic, generator=None):
    """Inverse-CDF sampling of ``n`` depths per ray from piecewise-constant weights over ``bins`` edges."""
    pdf = weights / weights.sum(-1, keepdim=True)
    cdf = torch.cumsum(pdf, -1)
    cdf = torch.cat([torch.zeros_like(cdf[..., :1]), cdf], -1)  # (M, nb+1)
    if deterministic:
        u = torch.linspace(0.0, 1.0, n + 2, dtype=bins.dtype, device=bins.device)[1:-1].expand(cdf.shape[0], n)
    else:
        u = torch.rand(cdf.shape[0], n, dtype=bins.dtype, device=bins.device, generator=generator)
    u = u.contiguous()
    idx = torch.searchsorted(cdf, u, right=True)
    lo = (idx - 1).clamp(0, cdf.shape[-1] - 1)
    hi = idx.clamp(0, cdf.shape[-1] - 1)
    cdf_lo, cdf_hi = cdf.gather(-1, lo), cdf.gather(-1, hi)
    bin_lo, bin_hi = bins.gather(-1, lo), bins.gather(-1, hi)
    denom = cdf_hi - cdf_lo
    denom = torch.where(denom < 1e-5, torch.ones_like(denom), denom)
    return bin_lo + (u - cdf_lo) / denom * (bin_hi - bin_lo)


@register(ARCH_REGISTRY)
class TriplaneRenderer(nn.Module):
    """Tri-plane neural volume renderer with a light MLP decoder (colour + density).

    Args:
        plane_channels (int): Channels per plane ``C`` (paper 32).
        hidden (int): Hidden width of the decoder MLP (EG3D 64).
        plane_axes (str): ``'xyz'`` (default, own generator) or ``'eg3d'`` (external EG3D-space tri-planes).
        box_warp (float): Side of the world cube covered by the planes (EG3D 1).
        resolution (int): Default render size (paper 128).
        num_coarse (int): Stratified samples per ray (EG3D 48).
        num_fine (int): Importance samples per ray (EG3D 48; 0 disables the fine pass).
        ray_start (float): Near distance (EG3D FFHQ 2.25).
        ray_end (float): Far distance (EG3D FFHQ 3.3).
        density_bias (float): Added to the raw density before softplus (EG3D -1).
        jitter_at_test (bool): Also jitter / randomly importance-sample in eval mode (EG3D behaviour).
        chunk_rays (int): Rays per decoder chunk when no gradient is needed (bounds memory); 0 = all at once.
    """

    def __init__(self, plane_channels=32, hidden=64, plane_axes='xyz', box_warp=1.0, resolution=128, num_coarse=48,
                 num_fine=48, ray_start=RAY_NEAR, ray_end=RAY_FAR, density_bias=-1.0, jitter_at_test=False,
                 chunk_rays=8192):
        super().__init__()
        _check_axes(plane_axes)
        if num_coarse < 2:
            raise ValueError(f'num_coarse must be >= 2, got {num_coarse}')
        if not ray_end > ray_start > 0:
            raise ValueError(f'need 0 < ray_start < ray_end, got {ray_start}, {ray_end}')
        self.plane_channels, self.plane_axes, self.box_warp = int(plane_channels), plane_axes, float(box_warp)
        self.resolution, self.num_coarse, self.num_fine = int(resolution), int(num_coarse), int(num_fine)
        self.ray_start, self.ray_end, self.density_bias = float(ray_start), float(ray_end), float(density_bias)
        self.jitter_at_test, self.chunk_rays = bool(jitter_at_test), int(chunk_rays)
        self.decoder = nn.Sequential(nn.Linear(plane_channels, hidden), nn.Softplus(), nn.Linear(hidden, 4))
        for m in self.decoder:
            if isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    # ------------------------------------------------------------------ point queries
    def query(self, planes, points):
        """Raw density and colour at world points.

        Args:
            planes (torch.Tensor): ``(B, 3, C, R, R)``.
            points (torch.Tensor): ``(B, N, 3)``.

        Returns:
            tuple: ``sigma_raw (B, N)`` (before ``density_bias`` and softplus) and ``rgb (B, N, 3)`` in
            ``[-0.001, 1.001]``.
        """
        if planes.shape[2] != self.plane_channels:
            raise ValueError(f'the renderer expects {self.plane_channels} channels per plane, got planes of shape '
                             f'{tuple(planes.shape)}; set plane_channels of the renderer to match the generator')
        out = self.decoder(sample_triplane(planes, points, self.plane_axes, self.box_warp))
        rgb = torch.sigmoid(out[..., 1:]) * (1 + 2 * 0.001) - 0.001
        return out[..., 0], rgb

    def density(self, sigma_raw):
        """Activated density ``softplus(raw + density_bias)``."""
        return F.softplus(sigma_raw + self.density_bias)

    # ------------------------------------------------------------------ rendering
    @staticmethod
    def composite(sigma, rgb, depths):
        """Volume rendering over the intervals between sorted samples (midpoint values, EG3D ray marcher).

        Args:
            sigma (torch.Tensor): ``(M, S)`` activated densities.
            rgb (torch.Tensor): ``(M, S, 3)``.
            depths (torch.Tensor): ``(M, S)`` sorted depths.

        Returns:
            tuple: ``rgb (M, 3)``, ``depth (M,)``, ``opacity (M,)``, ``weights (M, S-1)``.
        """
        deltas = depths[:, 1:] - depths[:, :-1]
        sig = (sigma[:, 1:] + sigma[:, :-1]) / 2
        col = (rgb[:, 1:] + rgb[:, :-1]) / 2
        mid = (depths[:, 1:] + depths[:, :-1]) / 2
        alpha = 1 - torch.exp(-sig * deltas)
        trans = torch.cumprod(torch.cat([torch.ones_like(alpha[:, :1]), 1 - alpha + 1e-10], -1), -1)[:, :-1]
        weights = alpha * trans
        opacity = weights.sum(-1)
        color = (weights[..., None] * col).sum(1)
        depth = (weights * mid).sum(-1) / opacity.clamp_min(1e-10)
        depth = torch.where(opacity > 1e-10, depth, torch.full_like(depth, float('inf')))
        depth = torch.minimum(torch.maximum(depth, depths.min(-1).values), depths.max(-1).values)
        return color, depth, opacity, weights

    def _render_rays(self, planes, origins, dirs, random):
        """Render ``(B, N)`` rays; returns rgb (B, N, 3), depth (B, N), opacity (B, N)."""
        b, n, _ = dirs.shape
        m = b * n
        t = torch.linspace(self.ray_start, self.ray_end, self.num_coarse, dtype=dirs.dtype, device=dirs.device)
        t = t.expand(m, self.num_coarse)
        if random:
            step = (self.ray_end - self.ray_start) / (self.num_coarse - 1)
            t = t + torch.rand_like(t) * step
        o, d = origins.reshape(m, 1, 3), dirs.reshape(m, 1, 3)

        def decode(depths):
            pts = (o + d * depths[..., None]).reshape(b, -1, 3)
            sraw, rgb = self.query(planes, pts)
            return self.density(sraw).reshape(m, -1), rgb.reshape(m, -1, 3)

        sigma, rgb = decode(t)
        if self.num_fine > 0:
            with torch.no_grad():
                _, _, _, w = self.composite(sigma, rgb, t)
                w = F.max_pool1d(w[:, None], 2, 1, padding=1)
                w = F.avg_pool1d(w, 2, 1)[:, 0] + 0.01  # (m, S-1)
                mids = (t[:, 1:] + t[:, :-1]) / 2
                t_fine = _sample_pdf(mids, w[:, 1:-1], self.num_fine, not random).detach()
            sigma_f, rgb_f = decode(t_fine)
            t_all, order = torch.sort(torch.cat([t, t_fine], -1), -1)
            sigma = torch.cat([sigma, sigma_f], -1).gather(-1, order)
            rgb = torch.cat([rgb, rgb_f], 1).gather(1, order[..., None].expand(-1, -1, 3))
            t = t_all
        color, depth, opacity, _ = self.composite(sigma, rgb, t)
        return color.reshape(b, n, 3), depth.reshape(b, n), opacity.reshape(b, n)

    def forward(self, planes, cameras=None, resolution=None, deterministic=None):
        """Render tri-planes from cameras.

        Args:
            planes (torch.Tensor): ``(B, 3, C, R, R)``.
            cameras (torch.Tensor, optional): ``(B, 25)`` EG3D labels; default the canonical FFHQ camera.
            resolution (int, optional): Render size (default ``self.resolution``).
            deterministic (bool, optional): Override the train/eval rule for jitter and importance sampling.

        Returns:
            dict: ``image (B, 3, H, W)`` in ``[0, 1]`` (clamped), ``depth``, ``zdepth``, ``opacity`` ``(B, 1, H, W)``.
        """
        b = planes.shape[0]
        res = int(resolution or self.resolution)
        if cameras is None:
            cameras = canonical_label(b, planes.device)
        cameras = cameras.to(planes.dtype)
        if cameras.shape[0] != b:
            raise ValueError(f'{b} tri-planes but {cameras.shape[0]} cameras')
        if deterministic is None:
            random = self.training or self.jitter_at_test
        else:
            random = not deterministic
        origins, dirs, zscale = camera_rays(cameras, res)
        n = dirs.shape[1]
        chunk = self.chunk_rays if (self.chunk_rays > 0 and not torch.is_grad_enabled()) else n
        outs = [self._render_rays(planes, origins[:, i:i + chunk], dirs[:, i:i + chunk], random)
                for i in range(0, n, chunk)]
        color, depth, opacity = (torch.cat(parts, 1) for parts in zip(*outs))
        image = color.transpose(1, 2).reshape(b, 3, res, res).clamp(0, 1)
        depth = depth.reshape(b, 1, res, res)
        return {
            'image': image,
            'depth': depth,
            'zdepth': depth * zscale.reshape(b, 1, res, res),
            'opacity': opacity.reshape(b, 1, res, res),
        }

    def example_inputs(self, size):
        """Tri-planes ``(1, 3, C, size, size)`` and the canonical camera (for complexity measurements)."""
        return torch.randn(1, 3, self.plane_channels, size, size) * 0.1, canonical_label(1)
