"""Signed-distance geometry of the demo faces: SDF primitives, vectorised sphere tracing and ray casting."""
import numpy as np

from lowlight3d.data.demo_faces.cameras import generate_rays

__all__ = ['sphere_trace', 'render_sdf']


def _bound_interval(origin, dirs, center, radius):
    """Entry/exit ray distances of a bounding sphere (nan where missed)."""
    oc = (origin.astype(np.float64) - np.asarray(center, dtype=np.float64)).astype(np.float32)
    b = oc[0] * dirs[0] + oc[1] * dirs[1] + oc[2] * dirs[2]
    c = float(oc @ oc) - radius * radius
    disc = b * b - c
    hit = disc > 0
    s = np.sqrt(np.maximum(disc, 0))
    return np.where(hit, -b - s, np.nan), np.where(hit, -b + s, np.nan)


def sphere_trace(sdf, origin, dirs, t_near, t_far, max_steps=96, eps=2e-4, step_scale=0.95, accept=4e-3):
    """Vectorised sphere tracing with an early-stop active set.

    Args:
        sdf (callable): ``sdf(x, y, z) -> d`` on 1-D float32 world coordinate arrays; must return a
            (conservative) signed distance, negative inside.
        origin (np.ndarray): (3,) ray origin shared by all rays.
        dirs (np.ndarray): (3, N) unit directions.
        t_near (np.ndarray or float): Start distance per ray (rays with nan start are misses).
        t_far (np.ndarray or float): Give-up distance per ray.
        max_steps (int): Maximum number of marching steps.
        eps (float): Convergence threshold on the distance (world units).
        step_scale (float): Under-relaxation of every step (safety for approximate SDFs).
        accept (float): Rays that run out of steps count as hits if their last distance is below this.

    Returns:
        tuple: ``(t (N,) float32 ray distance, hit (N,) bool)``; ``t`` is 0 where ``hit`` is False.
    """
    n = dirs.shape[1]
    t = np.broadcast_to(np.asarray(t_near, dtype=np.float32), (n, )).copy()
    tf = np.broadcast_to(np.asarray(t_far, dtype=np.float32), (n, )).copy()
    hit = np.zeros(n, dtype=bool)
    idx = np.nonzero(np.isfinite(t) & np.isfinite(tf))[0]
    t = np.nan_to_num(t)
    ox, oy, oz = (np.float32(v) for v in origin)
    dx, dy, dz = dirs[0][idx], dirs[1][idx], dirs[2][idx]
    ta, fa = t[idx], tf[idx]
    last = np.full(n, np.inf, dtype=np.float32)
    for _ in range(max_steps):
        if idx.size == 0:
            break
        d = sdf(ox + ta * dx, oy + ta * dy, oz + ta * dz)
        done = d < eps
        if done.any():
            hit[idx[done]] = True
            t[idx[done]] = ta[done]
        ta = ta + d * np.float32(step_scale)
        gone = ta > fa
        keep = ~(done | gone)
        if not keep.all():
            idx, ta, fa, dx, dy, dz, d = idx[keep], ta[keep], fa[keep], dx[keep], dy[keep], dz[keep], d[keep]
        last[idx] = d
        t[idx] = ta
    if idx.size:
        ok = last[idx] < accept
        hit[idx[ok]] = True
    t[~hit] = 0
    return t, hit


def _normals(sdf, x, y, z, h=1e-3):
    """Central-difference SDF gradient, normalised; returns (3, N) float32."""
    h = np.float32(h)
    gx = sdf(x + h, y, z) - sdf(x - h, y, z)
    gy = sdf(x, y + h, z) - sdf(x, y - h, z)
    gz = sdf(x, y, z + h) - sdf(x, y, z - h)
    n = np.sqrt(gx * gx + gy * gy + gz * gz) + np.float32(1e-12)
    return np.stack([gx / n, gy / n, gz / n])


def render_sdf(sdf, cam2world, intrinsics, size, bound_center=(0.0, 0.0, 0.0), bound_radius=0.45,
               offset=(0.0, 0.0), max_steps=96, eps=2e-4, with_normals=True):
    """Ray-cast an arbitrary SDF from a pinhole camera (geometry only).

    Args:
        sdf (callable): ``sdf(x, y, z) -> d`` on 1-D float32 world coordinate arrays.
        cam2world (np.ndarray): (4, 4) OpenCV cam2world.
        intrinsics (np.ndarray): (3, 3) normalised intrinsics.
        size (int or tuple): Image size ``R`` or ``(H, W)``.
        bound_center (tuple): Centre of a sphere that contains the whole surface.
        bound_radius (float): Radius of that sphere (rays that miss it are background).
        offset (tuple): Sub-pixel offset of the rays in pixels.
        max_steps (int): Maximum marching steps.
        eps (float): Hit threshold (world units).
        with_normals (bool): Also return unit normals at the hits.

    Returns:
        dict: ``depth`` (H, W) float32 z-depth (0 = background), ``ray_dist`` (H, W) float32 ray distance
        (0 = background), ``mask`` (H, W) bool, ``points`` (3, M) float32 world hit points (row-major order
        of the hit pixels), ``normals`` (3, M) float32 (if requested), ``dirs`` (3, M) hit ray directions,
        ``hit_index`` (M,) flat pixel indices.
    """
    h, w = (size, size) if np.isscalar(size) else size
    origin, dirs, zscale = generate_rays(cam2world, intrinsics, (h, w), offset)
    t0, t1 = _bound_interval(origin, dirs, bound_center, bound_radius)
    t0 = np.maximum(t0, 0)
    t, hit = sphere_trace(sdf, origin, dirs, t0, t1, max_steps=max_steps, eps=eps)
    hi = np.nonzero(hit)[0]
    th = t[hi]
    pts = origin[:, None] + dirs[:, hi] * th[None]
    out = {
        'depth': (t * zscale).reshape(h, w).astype(np.float32),
        'ray_dist': t.reshape(h, w).astype(np.float32),
        'mask': hit.reshape(h, w),
        'points': pts.astype(np.float32),
        'dirs': dirs[:, hi],
        'hit_index': hi,
    }
    if with_normals:
        out['normals'] = _normals(sdf, *out['points'])
    return out


# ----------------------------------------------------------------------------------------------------------
# SDF primitives (model space, separate coordinate arrays)
# ----------------------------------------------------------------------------------------------------------
def _ellipsoid(x, y, z, rx, ry, rz):
    ax, ay, az = x / np.float32(rx), y / np.float32(ry), z / np.float32(rz)
    k0 = np.sqrt(ax * ax + ay * ay + az * az)
    bx, by, bz = ax / np.float32(rx), ay / np.float32(ry), az / np.float32(rz)
    k1 = np.sqrt(bx * bx + by * by + bz * bz) + np.float32(1e-6)
    return k0 * (k0 - 1) / k1


def _sphere(x, y, z, r):
    return np.sqrt(x * x + y * y + z * z) - np.float32(r)


def _capsule(x, y, z, a, b, r):
    bax, bay, baz = (np.float32(b[i] - a[i]) for i in range(3))
    pax, pay, paz = x - np.float32(a[0]), y - np.float32(a[1]), z - np.float32(a[2])
    hh = np.clip((pax * bax + pay * bay + paz * baz) / np.float32(bax * bax + bay * bay + baz * baz), 0, 1)
    qx, qy, qz = pax - bax * hh, pay - bay * hh, paz - baz * hh
    return np.sqrt(qx * qx + qy * qy + qz * qz) - np.float32(r)


def _cone_capsule(x, y, z, a, b, ra, rb):
    """Capsule whose radius goes linearly from ``ra`` at ``a`` to ``rb`` at ``b`` (approximate SDF)."""
    bax, bay, baz = (np.float32(b[i] - a[i]) for i in range(3))
    pax, pay, paz = x - np.float32(a[0]), y - np.float32(a[1]), z - np.float32(a[2])
    hh = np.clip((pax * bax + pay * bay + paz * baz) / np.float32(bax * bax + bay * bay + baz * baz), 0, 1)
    qx, qy, qz = pax - bax * hh, pay - bay * hh, paz - baz * hh
    return np.sqrt(qx * qx + qy * qy + qz * qz) - (np.float32(ra) + np.float32(rb - ra) * hh)


def _smin(a, b, k):
    """Polynomial smooth minimum (symmetric in a and b)."""
    k = np.float32(k)
    h = np.maximum(k - np.abs(a - b), 0) / k
    return np.minimum(a, b) - h * h * k * np.float32(0.25)


def _smax(a, b, k):
    return -_smin(-a, -b, k)


def _smoothstep(e0, e1, x):
    t = np.clip((x - np.float32(e0)) / np.float32(e1 - e0), 0, 1)
    return t * t * (3 - 2 * t)

