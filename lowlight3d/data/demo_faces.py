"""Built-in demo data set: procedurally rendered synthetic faces with exact depth and EG3D cameras.

Nothing is downloaded. Every face is an implicit 3D head (a smooth union of signed-distance primitives:
skull, face mass, cheeks, chin, brow ridges, nose, lips, ears, eye sockets with eyeballs and eyelids,
neck and a hair cap) rendered by vectorised sphere tracing in numpy.

Conventions (the same as EG3D; see the 3D-prior design note, sections 1.4 and 1.7):

* World: y up, the face looks towards +z, the head is centred near the origin and fits in the EG3D
  box ``[-0.5, 0.5]^3`` (chin to crown about 0.5 world units).
* Camera: OpenCV convention (x right, y down, z forward), on a sphere of radius ``CAMERA_RADIUS`` = 2.7
  around the origin and looking at the origin. ``yaw`` > 0 moves the camera towards +x, ``pitch`` > 0
  moves it below the face (same signs as EG3D's sampler; here the angles are plain spherical angles).
* Intrinsics are normalised by the image size: ``fx = fy = FOCAL`` (4.2647, diagonal FOV about 18.84
  degrees), ``cx = cy = 0.5``. Pixel ``(i, j)`` of an ``R x R`` image looks along camera direction
  ``((j + 0.5) / R - cx) / fx, ((i + 0.5) / R - cy) / fy, 1)``.
* Camera label: 25 float32 = cam2world 4x4 (row-major) followed by the 3x3 normalised intrinsics.
* Depth maps are **z-depth**: the distance along the camera z (optical) axis, in world units, float32,
  rendered exactly at the pixel-centre rays. Background pixels have depth **0** and mask 0. EG3D's
  volume renderer reports Euclidean ray distance instead: convert with :func:`zdepth_to_ray_distance`.
* Anti-aliasing: depth and mask are never anti-aliased. The RGB image is refined at edge pixels only
  (pixels whose colour differs from a 4-neighbour) by averaging the pixel-centre sample with four
  extra sub-pixel samples at offsets (+-0.25, +-0.25) pixel.

Each face is fully determined by a json-serialisable parameter dict (shape, appearance, lighting,
camera, background; see :func:`sample_face_params`), and :func:`face_params_for` derives that dict
from ``(seed, split, index)`` only, so results do not depend on the number of worker processes.
"""
import json
import math
import os
import os.path as osp
import shutil
import time

import cv2
import numpy as np

__all__ = [
    'GENERATOR_VERSION', 'CAMERA_RADIUS', 'FOCAL', 'FOV_DEG', 'SKIN_TONES_SRGB', 'camera_from_angles',
    'camera_label', 'camera_from_label', 'intrinsics_matrix', 'generate_rays', 'zdepth_to_ray_distance',
    'sphere_trace', 'render_sdf', 'FaceModel', 'sample_face_params', 'sample_lowlight_params',
    'mirror_params', 'face_params_for', 'render_face', 'make_demo_face', 'depth_to_vis', 'demo_dataset_meta',
    'is_demo_dataset_complete', 'write_unpaired_split', 'generate_demo_dataset'
]

GENERATOR_VERSION = '1.0'
CAMERA_RADIUS = 2.7
FOCAL = 2985.29 / 700.0  # 4.26470, EG3D FFHQ labels
FOV_DEG = 18.837  # diagonal field of view matching FOCAL (EG3D's FOV_to_intrinsics argument)
RAY_NEAR = 2.25  # EG3D FFHQ ray_start
RAY_FAR = 3.3  # EG3D FFHQ ray_end

# Monk Skin Tone scale swatches (sRGB, 1 = lightest, 10 = darkest) used as skin albedo anchors.
SKIN_TONES_SRGB = ((246, 237, 228), (243, 231, 219), (247, 234, 208), (234, 218, 186), (215, 189, 150),
                   (160, 126, 86), (130, 92, 67), (96, 65, 52), (58, 49, 42), (41, 36, 32))

_HAIR_SRGB = {
    'black': (28, 24, 22),
    'dark_brown': (55, 38, 28),
    'brown': (95, 65, 42),
    'light_brown': (140, 102, 66),
    'blonde': (196, 160, 108),
    'auburn': (125, 55, 30),
    'grey': (150, 148, 145),
}
_IRIS_SRGB = {
    'dark_brown': (50, 30, 18),
    'brown': (95, 58, 30),
    'hazel': (120, 95, 50),
    'green': (85, 115, 75),
    'blue': (80, 120, 165),
    'grey': (120, 130, 140),
}

_AA_THRESHOLD = 0.1  # summed |RGB| display difference to a 4-neighbour that marks an edge pixel
_SPLIT_CODES = {'train': 1, 'val': 2, 'test': 3, 'unpaired': 4}
_S = 0.0185  # world units per model unit ("cm")
_OFFSET_Y = 0.5  # model-space shift so the head is centred in the frame
_OFFSET_Z = 1.0


# ----------------------------------------------------------------------------------------------------------
# colour helpers
# ----------------------------------------------------------------------------------------------------------
def _srgb_to_linear(c):
    c = np.asarray(c, dtype=np.float64)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055)**2.4)


def _linear_to_srgb(c):
    c = np.clip(c, 0.0, 1.0)
    return np.where(c <= 0.0031308, c * 12.92, 1.055 * np.power(c, 1 / 2.4) - 0.055)


def _kelvin_to_rgb(kelvin):
    """Approximate white-balanced RGB (linear, max channel 1) of a black body at ``kelvin``."""
    table_k = np.array([2000, 2500, 3000, 3500, 4000, 5000, 6500, 8000, 10000], dtype=np.float64)
    table = np.array([[1.00, 0.54, 0.17], [1.00, 0.62, 0.30], [1.00, 0.71, 0.42], [1.00, 0.77, 0.54],
                      [1.00, 0.82, 0.64], [1.00, 0.89, 0.81], [1.00, 0.98, 0.98], [0.89, 0.92, 1.00],
                      [0.79, 0.85, 1.00]])
    rgb = np.array([np.interp(kelvin, table_k, table[:, c]) for c in range(3)])
    return _srgb_to_linear(rgb) / _srgb_to_linear(rgb).max()


def _tonemap(linear, exposure=1.0, white=4.0):
    """Extended Reinhard tone curve + sRGB encoding; returns float display values in [0, 1]."""
    x = np.maximum(linear * np.float32(exposure), 0)
    x = x * (1 + x / (white * white)) / (1 + x)
    return _linear_to_srgb(x).astype(np.float32)


# ----------------------------------------------------------------------------------------------------------
# cameras
# ----------------------------------------------------------------------------------------------------------
def intrinsics_matrix(focal=FOCAL, cx=0.5, cy=0.5):
    """Normalised 3x3 pinhole intrinsics (EG3D convention).

    Args:
        focal (float): Focal length divided by the image size.
        cx (float): Principal point x divided by the image width.
        cy (float): Principal point y divided by the image height.

    Returns:
        np.ndarray: (3, 3) float64 matrix ``[[f, 0, cx], [0, f, cy], [0, 0, 1]]``.
    """
    return np.array([[focal, 0.0, cx], [0.0, focal, cy], [0.0, 0.0, 1.0]], dtype=np.float64)


def camera_from_angles(yaw_deg, pitch_deg, radius=CAMERA_RADIUS, target=(0.0, 0.0, 0.0), focal=FOCAL):
    """Look-at camera on a sphere around ``target`` (OpenCV axes, EG3D world).

    The camera centre is ``target + radius * (cos(p) sin(y), -sin(p), cos(p) cos(y))``: yaw > 0 moves
    it towards +x (the face's left), pitch > 0 below the face. With yaw = pitch = 0 the cam2world rows
    are (1,0,0,0), (0,-1,0,0), (0,0,-1,2.7), (0,0,0,1) (EG3D canonical FFHQ camera).

    Args:
        yaw_deg (float): Horizontal angle in degrees.
        pitch_deg (float): Vertical angle in degrees.
        radius (float): Distance from ``target``.
        target (tuple): Point the camera looks at (world).
        focal (float): Normalised focal length.

    Returns:
        tuple: ``(cam2world (4, 4) float64, intrinsics (3, 3) float64)``.
    """
    yaw, pitch = math.radians(yaw_deg), math.radians(pitch_deg)
    target = np.asarray(target, dtype=np.float64)
    pos = target + radius * np.array([math.cos(pitch) * math.sin(yaw), -math.sin(pitch),
                                      math.cos(pitch) * math.cos(yaw)])
    fwd = target - pos
    fwd = fwd / np.linalg.norm(fwd)
    up = np.array([0.0, 1.0, 0.0])
    right = -np.cross(up, fwd)
    right = right / np.linalg.norm(right)
    down = np.cross(fwd, right)
    down = down / np.linalg.norm(down)
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, down, fwd, pos
    return c2w, intrinsics_matrix(focal)


def camera_label(cam2world, intrinsics):
    """Pack a camera into the EG3D 25-d label.

    Args:
        cam2world (np.ndarray): (4, 4) OpenCV cam2world matrix.
        intrinsics (np.ndarray): (3, 3) normalised intrinsics.

    Returns:
        np.ndarray: (25,) float32 = flattened cam2world (row-major) followed by flattened intrinsics.
    """
    return np.concatenate([np.asarray(cam2world).reshape(16), np.asarray(intrinsics).reshape(9)]).astype(np.float32)


def camera_from_label(label):
    """Unpack an EG3D 25-d camera label.

    Args:
        label (array-like): 25 numbers.

    Returns:
        tuple: ``(cam2world (4, 4) float64, intrinsics (3, 3) float64)``.
    """
    label = np.asarray(label, dtype=np.float64).reshape(25)
    return label[:16].reshape(4, 4).copy(), label[16:].reshape(3, 3).copy()


def generate_rays(cam2world, intrinsics, size, offset=(0.0, 0.0)):
    """Per-pixel world rays of a pinhole camera (EG3D ray convention).

    Args:
        cam2world (np.ndarray): (4, 4) cam2world.
        intrinsics (np.ndarray): (3, 3) normalised intrinsics.
        size (int or tuple): Image size ``R`` or ``(H, W)``.
        offset (tuple): Sub-pixel offset ``(dx, dy)`` in pixels added to the pixel centres.

    Returns:
        tuple: ``(origin (3,) float32, dirs (3, H*W) float32 unit world directions, zscale (H*W,) float32)``
        where ``zscale`` = cos of the angle between the ray and the optical axis, so that
        z-depth = ray distance * zscale. Pixels are in row-major order.
    """
    h, w = (size, size) if np.isscalar(size) else size
    return _rays(cam2world, intrinsics, h, w, offset)


def _rays(cam2world, intrinsics, h, w, offset=(0.0, 0.0), pixels=None):
    k = np.asarray(intrinsics, dtype=np.float64)
    # numerators are exact half-integers, so mirrored pixels get exactly negated directions when cx = 0.5
    jj = (np.arange(w, dtype=np.float64) + 0.5 + offset[0] - w * k[0, 2]) / w
    ii = (np.arange(h, dtype=np.float64) + 0.5 + offset[1] - h * k[1, 2]) / h
    if pixels is None:
        yc = np.repeat(ii / k[1, 1], w)
        xj = np.tile(jj, h)
    else:
        yc = ii[pixels // w] / k[1, 1]
        xj = jj[pixels % w]
    xc = (xj - k[0, 1] * yc) / k[0, 0]
    n = np.sqrt(xc * xc + yc * yc + 1.0)
    dc = np.stack([xc / n, yc / n, 1.0 / n])
    rot = np.asarray(cam2world, dtype=np.float64)[:3, :3]
    dirs = rot @ dc
    origin = np.asarray(cam2world, dtype=np.float64)[:3, 3]
    return origin.astype(np.float32), dirs.astype(np.float32), (1.0 / n).astype(np.float32)


def zdepth_to_ray_distance(depth, intrinsics=None):
    """Convert a z-depth map to Euclidean ray distance (what EG3D's renderer calls depth).

    Args:
        depth (np.ndarray): (H, W) z-depth; zeros (background) stay zero.
        intrinsics (np.ndarray, optional): (3, 3) normalised intrinsics; default EG3D FFHQ.

    Returns:
        np.ndarray: (H, W) float32 ray distances.
    """
    k = intrinsics_matrix() if intrinsics is None else np.asarray(intrinsics, dtype=np.float64)
    h, w = depth.shape
    jj = ((np.arange(w) + 0.5) / w - k[0, 2])
    ii = ((np.arange(h) + 0.5) / h - k[1, 2]) / k[1, 1]
    xc = (jj[None, :] - k[0, 1] * ii[:, None]) / k[0, 0]
    n = np.sqrt(xc * xc + ii[:, None]**2 + 1.0)
    return (depth * n).astype(np.float32)


# ----------------------------------------------------------------------------------------------------------
# sphere tracing of an arbitrary SDF
# ----------------------------------------------------------------------------------------------------------
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


# ----------------------------------------------------------------------------------------------------------
# the face model
# ----------------------------------------------------------------------------------------------------------
class FaceModel:
    """Implicit synthetic head built from shape/appearance parameters.

    Model space is in "cm"-like units (1 unit = 0.02 world units), y up, face towards +z. The model is
    exactly left-right symmetric (bit-for-bit, by folding ``|x|``) when ``shape['asymmetry'] == 0``.

    Args:
        params (dict): Parameter dict as returned by :func:`sample_face_params`.
    """

    def __init__(self, params):
        self.params = params
        s = params['shape']
        self.s = s
        a = float(s.get('asymmetry', 0.0))
        self._asym = a
        # derived constants (model units)
        hw, hh, jw = s['head_width'], s['head_height'], s['jaw_width']
        self.cranium = ((0.0, 3.6, -1.0), (7.3 * hw, 9.0 * hh, 9.8))
        self.face = ((0.0, -2.5 - s['chin_length'] * 0.5, 2.6), (6.2 * hw, 6.9 + s['chin_length'] * 0.5, 6.2))
        self.jaw = ((5.6 * jw, -3.5, -0.3), (2.4 * jw, -8.5 - s['chin_length'], 5.9), 1.3)
        self.cheek = ((4.2 * hw, 0.2, 6.0), (2.2 * s['cheek_fullness'], 1.6, 1.8 * s['cheek_fullness']))
        self.chin = ((0.0, -8.4 - s['chin_length'], 7.2), (2.2 * jw, 1.6, 1.8))
        ex, ey = s['eye_spacing'], 2.0
        re = s['eye_size']
        self.eye_c = (ex, ey, 6.95)
        self.eye_r = re
        self.brow = ((0.4, 3.7 + s['brow_height'], 8.2), (ex + 1.8, 3.55 + s['brow_height'], 7.2),
                     0.95 * s['brow_prominence'])
        self.socket = ((ex, ey + 0.1, 8.0), (1.9, 1.35, 1.35))
        nl, nw, npj = s['nose_length'], s['nose_width'], s['nose_projection']
        self.nose_bridge = ((0.0, 2.4, 8.45), (0.0, 2.4 - 4.0 * nl, 8.6 + 1.9 * npj), 0.42 * nw, 0.7 * nw)
        self.nose_tip = ((0.0, 2.1 - 4.4 * nl, 8.9 + 1.4 * npj), 0.95 * nw)
        self.nose_ala = ((1.25 * nw, 2.4 - 5.0 * nl, 8.8 + 0.4 * npj), 0.62 * nw)
        self.nostril = ((0.6 * nw, 2.2 - 5.1 * nl, 8.9 + 0.9 * npj), (0.32 * nw, 0.22, 0.45))
        ly, lf, mw = -4.4 - 0.3 * s['chin_length'], s['lip_fullness'], s['mouth_width']
        self.mouth_y = ly - 0.6 * lf
        self.lip_up = ((0.0, ly, 8.75), (2.3 * mw, 0.55 * lf, 0.72))
        self.lip_lo = ((0.0, ly - 1.15 * lf, 8.55), (2.05 * mw, 0.65 * lf, 0.78))
        self.ear = ((7.25 * hw, 1.2, -0.6), (1.0, 3.0 * s['ear_size'], 1.9 * s['ear_size']))
        self.neck = ((0.0, -6.0, -2.6), (0.0, -24.0, -3.4), 5.4 * s['neck_width'])
        hs = params['hair']
        th = hs['thickness']
        (cx, cy, cz), (rx, ry, rz) = self.cranium
        self.hair_ell = ((cx, cy + 0.25 * hs['volume'], cz - 0.5 * th), (rx + th, ry + th * 0.7 + hs['volume'],
                                                                          rz + th))
        self.hair_plane = (hs['hairline'], hs['slope'])
        self.hair_long = hs['length']
        L = self.hair_long
        self._hair_back = ((0.0, 1.0 - 4.0 * L, -3.0), (self.hair_ell[1][0] + 0.6, 8.0 + 4.0 * L, 6.5))
        # lids: (tilt, offset) planes; upper lid covers y' > edge, lower lid covers y' < edge
        op = s['eye_open']
        a, b = 0.6, 0.45
        e_up, e_lo = 0.5 * op + 0.12, -(0.45 * op + 0.12)
        self.lid_up = (a, e_up * math.cos(a) - (re + 0.13) * math.sin(a))
        self.lid_lo = (b, e_lo * math.cos(b) + (re + 0.13) * math.sin(b))

    # -- coordinates ------------------------------------------------------------------------------------
    def _to_model(self, x, y, z):
        inv = np.float32(1.0 / _S)
        X = x * inv
        Y = y * inv + np.float32(_OFFSET_Y)
        Z = z * inv + np.float32(_OFFSET_Z)
        if self._asym != 0.0:
            a = np.float32(self._asym)
            X, Y = X + a * np.float32(0.06) * Y, Y + a * np.float32(0.04) * X
        return X, Y, Z

    # -- geometry ---------------------------------------------------------------------------------------
    def _eye_parts(self, xf, Y, Z):
        ex, ey, ez = self.eye_c
        px, py, pz = xf - np.float32(ex), Y - np.float32(ey), Z - np.float32(ez)
        eye = _sphere(px, py, pz, self.eye_r)
        lid_sphere = _sphere(px, py, pz, self.eye_r + 0.13)
        a, o = self.lid_up
        up = np.float32(o) - (py * np.float32(math.cos(a)) - pz * np.float32(math.sin(a)))
        b, o2 = self.lid_lo
        lo = (py * np.float32(math.cos(b)) + pz * np.float32(math.sin(b))) - np.float32(o2)
        lid_up = np.maximum(lid_sphere, up)
        lid_lo = np.maximum(lid_sphere, lo)
        return eye, np.minimum(lid_up, lid_lo), up, lo

    def _skin(self, xf, Y, Z, lids):
        def ell(spec, x, y, z):
            (cx, cy, cz), (rx, ry, rz) = spec
            return _ellipsoid(x - np.float32(cx), y - np.float32(cy), z - np.float32(cz), rx, ry, rz)

        d = ell(self.cranium, xf, Y, Z)
        d = _smin(d, ell(self.face, xf, Y, Z), 4.0)
        a, b, r = self.jaw
        d = _smin(d, _capsule(xf, Y, Z, a, b, r), 2.5)
        d = _smin(d, ell(self.cheek, xf, Y, Z), 2.5)
        d = _smin(d, ell(self.chin, xf, Y, Z), 1.8)
        a, b, r = self.brow
        d = _smin(d, _capsule(xf, Y, Z, a, b, r), 1.4)
        d = _smax(d, -ell(self.socket, xf, Y, Z), 0.9)
        d = _smin(d, lids, 0.35)
        a, b, r0, r1 = self.nose_bridge
        nose = _cone_capsule(xf, Y, Z, a, b, r0, r1)
        c, r = self.nose_tip
        nose = _smin(nose, _sphere(xf - np.float32(c[0]), Y - np.float32(c[1]), Z - np.float32(c[2]), r), 1.0)
        c, r = self.nose_ala
        nose = _smin(nose, _sphere(xf - np.float32(c[0]), Y - np.float32(c[1]), Z - np.float32(c[2]), r), 0.9)
        nose = _smax(nose, -ell(self.nostril, xf, Y, Z), 0.25)
        d = _smin(d, nose, 0.8)
        lips = _smin(ell(self.lip_up, xf, Y, Z), ell(self.lip_lo, xf, Y, Z), 0.15)
        d = _smin(d, lips, 0.55)
        d = _smin(d, ell(self.ear, xf, Y, Z), 0.6)
        a, b, r = self.neck
        d = _smin(d, _capsule(xf, Y, Z, a, b, r), 2.5)
        return d, lips

    def _hair(self, xf, Y, Z):
        (cx, cy, cz), (rx, ry, rz) = self.hair_ell
        d = _ellipsoid(xf - np.float32(cx), Y - np.float32(cy), Z - np.float32(cz), rx, ry, rz)
        yh, slope = self.hair_plane
        nrm = np.float32(1.0 / math.sqrt(1 + slope * slope))
        cut = -((Y - np.float32(yh)) + np.float32(slope) * (np.float32(8.0) - Z)) * nrm
        d = _smax(d, cut, 1.2)
        if self.hair_long > 0.05:
            (bcx, bcy, bcz), (brx, bry, brz) = self._hair_back
            back = _ellipsoid(xf - np.float32(bcx), Y - np.float32(bcy), Z - np.float32(bcz), brx, bry, brz)
            back = np.maximum(back, (Z - np.float32(1.5)) * np.float32(0.8))
            d = _smin(d, back, 1.0)
        return d

    def _parts(self, x, y, z):
        X, Y, Z = self._to_model(x, y, z)
        xf = np.abs(X)
        eye, lids, up, lo = self._eye_parts(xf, Y, Z)
        skin, lips = self._skin(xf, Y, Z, lids)
        hair = self._hair(xf, Y, Z)
        return X, Y, Z, xf, eye, lids, skin, lips, hair, up, lo

    def sdf(self, x, y, z):
        """Signed distance in world units.

        Args:
            x (np.ndarray): World x coordinates (1-D float32).
            y (np.ndarray): World y coordinates.
            z (np.ndarray): World z coordinates.

        Returns:
            np.ndarray: Conservative signed distances (negative inside).
        """
        X, Y, Z = self._to_model(x, y, z)
        xf = np.abs(X)
        d = self._bound(xf, Y, Z)
        near = np.nonzero(d < np.float32(self._bound_margin))[0]
        if near.size:
            d[near] = self._full_sdf(xf[near], Y[near], Z[near])
        return d * np.float32(_S)

    def _full_sdf(self, xf, Y, Z):
        eye, lids, _, _ = self._eye_parts(xf, Y, Z)
        skin, _ = self._skin(xf, Y, Z, lids)
        return _smin(np.minimum(skin, eye), self._hair(xf, Y, Z), 0.6)

    _bound_margin = 1.0

    def _bound(self, xf, Y, Z):
        """Cheap lower bound of the distance (model units): inflated big primitives that contain the head."""
        def ell(spec, pad):
            (cx, cy, cz), (rx, ry, rz) = spec
            return _ellipsoid(xf - np.float32(cx), Y - np.float32(cy), Z - np.float32(cz), rx + pad, ry + pad, rz + pad)

        d = np.minimum(ell(self.cranium, 1.6), ell(self.hair_ell, 1.6))
        d = np.minimum(d, ell(self.face, 3.4))
        d = np.minimum(d, ell(self.ear, 1.2))
        a, b, r = self.neck
        d = np.minimum(d, _capsule(xf, Y, Z, a, b, r + 2.0))
        if self.hair_long > 0.05:
            d = np.minimum(d, ell(self._hair_back, 1.6))
        return d

    __call__ = sdf

    # -- appearance -------------------------------------------------------------------------------------
    def albedo(self, x, y, z):
        """Linear albedo, specular strength and shininess at surface points.

        Args:
            x (np.ndarray): World x of surface points.
            y (np.ndarray): World y.
            z (np.ndarray): World z.

        Returns:
            tuple: ``(albedo (3, N) float32 linear, spec (N,), shininess (N,), skin_weight (N,))``.
        """
        p = self.params['appearance']
        X, Y, Z, xf, eye, lids, skin, lips, hair, up, lo = self._parts(x, y, z)
        n = x.shape[0]
        skin_c = np.asarray(_srgb_to_linear(p['skin_srgb']), dtype=np.float32)[:, None]
        lip_c = np.asarray(_srgb_to_linear(p['lip_srgb']), dtype=np.float32)[:, None]
        hair_c = np.asarray(_srgb_to_linear(p['hair_srgb']), dtype=np.float32)[:, None]
        iris_c = np.asarray(_srgb_to_linear(p['iris_srgb']), dtype=np.float32)[:, None]
        brow_c = hair_c * np.float32(0.6) + np.float32(0.004)

        # skin with low-frequency variation (symmetric because it uses |x|)
        var = (np.sin(xf * np.float32(0.9) + Y * np.float32(0.7)) * np.sin(Z * np.float32(0.8) - Y * np.float32(0.5)))
        var = var + np.float32(0.5) * np.sin(xf * np.float32(2.7) - Y * np.float32(3.1) + Z * np.float32(1.3))
        col = skin_c * (np.float32(1.0) + np.float32(0.04) * var)[None]
        # cheek blush
        blush = np.exp(-(((xf - np.float32(3.8))**2 + (Y + np.float32(1.0))**2) / np.float32(4.0)))
        blush = blush * _smoothstep(4.0, 7.0, Z)
        col = col * (1 - np.float32(p['blush']) * blush[None] * np.array([[0.0], [0.35], [0.3]], dtype=np.float32))
        # darker eyelids / under-eye
        ex, ey, ez = self.eye_c
        rr = ((xf - np.float32(ex))**2 + ((Y - np.float32(ey)) * np.float32(1.3))**2)
        shade_eye = np.exp(-rr / np.float32(3.0)) * _smoothstep(5.0, 7.5, Z)
        col = col * (1 - np.float32(0.12) * shade_eye)[None]
        # eyebrows (painted)
        by = np.float32(3.35 + self.s['brow_height'])
        u = (xf - np.float32(ex)) / np.float32(2.3)
        arch = by + np.float32(0.35) * (1 - u * u) - np.float32(0.1) * u
        thick = np.float32(0.5) * (1 - np.float32(0.45) * np.clip(u, -1, 1)) * np.float32(self.s['brow_thickness'])
        inside = (1 - _smoothstep(0.6, 1.0, np.abs(Y - arch) / thick)) * (1 - _smoothstep(0.85, 1.1, np.abs(u)))
        inside = inside * _smoothstep(5.0, 7.0, Z) * (1 - _smoothstep(0.0, 0.3, -skin))
        strands = np.float32(0.85) + np.float32(0.15) * np.sin(xf * np.float32(41.0) + Y * np.float32(17.0))
        wb = np.clip(inside * strands * np.float32(0.95), 0, 1)
        col = col * (1 - wb)[None] + brow_c * wb[None]
        # nostrils (dark)
        (nx, ny, nz), (nrx, nry, nrz) = self.nostril
        nd = ((xf - np.float32(nx)) / np.float32(nrx * 1.1))**2 + ((Y - np.float32(ny)) / np.float32(nry * 1.2))**2 + \
            ((Z - np.float32(nz)) / np.float32(nrz * 1.1))**2
        wn = 1 - _smoothstep(0.6, 1.1, nd)
        col = col * (1 - np.float32(0.7) * wn)[None]
        # lips
        wl = 1 - _smoothstep(-0.05, 0.25, lips - skin)
        wl = wl * (1 - _smoothstep(0.0, 0.2, lips))
        col = col * (1 - wl)[None] + lip_c * wl[None]
        mouth = 1 - _smoothstep(0.05, 0.2, np.abs(Y - np.float32(self.mouth_y)))
        mouth = mouth * (1 - _smoothstep(0.75, 1.0, xf / np.float32(2.3 * self.s['mouth_width']))) * \
            _smoothstep(7.0, 8.5, Z)
        col = col * (1 - np.float32(0.75) * mouth)[None]
        # eyelash line at the upper lid margin
        lash = (1 - _smoothstep(0.05, 0.22, np.abs(up))) * (1 - _smoothstep(0.0, 0.15, np.abs(lids - skin) +
                                                                                np.maximum(lids, 0)))
        lash = lash * (1 - _smoothstep(0.0, 0.25, np.abs(xf - np.float32(ex)) - np.float32(self.eye_r * 0.9)))
        col = col * (1 - np.float32(0.85) * lash)[None] + np.float32(0.01) * lash[None]

        spec = np.full(n, 0.06, dtype=np.float32) + np.float32(0.2) * wl
        shin = np.full(n, 24.0, dtype=np.float32)
        skin_w = (1 - wl) * (1 - wb)

        # eyes
        is_eye = eye <= np.minimum(skin, hair)
        if is_eye.any():
            X_, Y_, Z_ = X[is_eye], Y[is_eye], Z[is_eye]
            sx = np.where(X_ < 0, np.float32(-ex), np.float32(ex))
            vx, vy, vz = X_ - sx, Y_ - np.float32(ey), Z_ - np.float32(ez)
            vn = np.sqrt(vx * vx + vy * vy + vz * vz) + np.float32(1e-6)
            g = np.array([p['gaze'][0], p['gaze'][1], 1.0])
            gx, gy, gz = (np.float32(v) for v in g / np.linalg.norm(g))
            cosang = (vx * gx + vy * gy + vz * gz) / vn
            ang = np.arccos(np.clip(cosang, -1, 1))
            sclera = np.asarray(_srgb_to_linear(p['sclera_srgb']), dtype=np.float32)[:, None]
            ir = np.float32(0.50)
            pr = np.float32(0.22 * p['pupil'])
            ring = _smoothstep(0.38, 0.5, ang)
            icol = iris_c * (np.float32(1.15) - np.float32(0.5) * ring)[None] * \
                (np.float32(0.85) + np.float32(0.3) * np.sin(np.arctan2(vy, vx) * np.float32(17.0)))[None]
            w_iris = 1 - _smoothstep(ir - 0.03, ir + 0.03, ang)
            w_pupil = 1 - _smoothstep(pr - 0.03, pr + 0.03, ang)
            ec = sclera * (1 - w_iris)[None] + icol * w_iris[None]
            ec = ec * (1 - w_pupil)[None] + np.float32(0.004) * w_pupil[None]
            # shadow of the lids on the eyeball
            ec = ec * (np.float32(0.55) + np.float32(0.45) * _smoothstep(-0.5, 0.2, -np.abs(vy)))[None]
            col[:, is_eye] = ec
            spec[is_eye] = 0.6
            shin[is_eye] = 180.0
            skin_w[is_eye] = 0

        # hair (blended across the smooth skin/hair junction)
        wh = _smoothstep(0.25, -0.25, hair - skin) * (~is_eye)
        if wh.any():
            hm = wh > 0
            hx, hy, hz = xf[hm], Y[hm], Z[hm]
            theta = np.arctan2(hx, hz)
            streak = np.float32(0.88) + np.float32(0.08) * np.sin(theta * np.float32(37.0) + hy * np.float32(0.9)) + \
                np.float32(0.06) * np.sin(theta * np.float32(113.0) - hy * np.float32(2.3)) + \
                np.float32(0.04) * np.sin(theta * np.float32(251.0) + hy * np.float32(5.1) + hz)
            w = wh[hm][None]
            col[:, hm] = col[:, hm] * (1 - w) + hair_c * streak[None] * w
            spec[hm] = spec[hm] * (1 - w[0]) + np.float32(0.12) * w[0]
            shin[hm] = shin[hm] * (1 - w[0]) + np.float32(14.0) * w[0]
            skin_w[hm] = skin_w[hm] * (1 - w[0])
        return col, spec, shin, skin_w


# ----------------------------------------------------------------------------------------------------------
# parameters
# ----------------------------------------------------------------------------------------------------------
def _srgb_tuple(c):
    return [round(float(v), 5) for v in c]


def _skin_from_tone(u, undertone):
    """Skin albedo (sRGB, 0-1) at position ``u`` in [0, 1] along the Monk scale (0 = lightest)."""
    tones = _srgb_to_linear(np.asarray(SKIN_TONES_SRGB, dtype=np.float64) / 255.0)
    pos = np.clip(u, 0, 1) * (len(tones) - 1)
    i = min(int(pos), len(tones) - 2)
    f = pos - i
    lin = tones[i] * (1 - f) + tones[i + 1] * f
    lin = lin * np.array([1.0 + 0.06 * undertone, 1.0, 1.0 - 0.08 * undertone])
    return _linear_to_srgb(lin)


def sample_face_params(rng, skin_tone=None, yaw_range=25.0, pitch_range=15.0):
    """Draw the parameters of one normal-light synthetic face.

    Args:
        rng (np.random.Generator or int): Random generator or seed.
        skin_tone (float, optional): Position in [0, 1] on the Monk skin-tone scale (0 = lightest,
            1 = darkest); drawn uniformly if None.
        yaw_range (float): Yaw is uniform in ``[-yaw_range, yaw_range]`` degrees.
        pitch_range (float): Pitch is uniform in ``[-pitch_range, pitch_range]`` degrees.

    Returns:
        dict: json-serialisable parameters with keys ``shape``, ``hair``, ``appearance``, ``light``,
        ``camera`` (``yaw_deg``, ``pitch_deg``), ``background`` and ``version``.
    """
    rng = np.random.default_rng(rng)
    U = lambda a, b: float(rng.uniform(a, b))  # noqa: E731
    shape = {
        'head_width': U(0.92, 1.08),
        'head_height': U(0.95, 1.05),
        'jaw_width': U(0.88, 1.12),
        'chin_length': U(-0.5, 0.5),
        'cheek_fullness': U(0.85, 1.2),
        'eye_spacing': U(3.05, 3.4),
        'eye_size': U(1.12, 1.22),
        'eye_open': U(0.7, 1.0),
        'brow_height': U(-0.2, 0.3),
        'brow_prominence': U(0.85, 1.15),
        'brow_thickness': U(0.7, 1.25),
        'nose_length': U(0.88, 1.15),
        'nose_width': U(0.85, 1.25),
        'nose_projection': U(0.85, 1.15),
        'lip_fullness': U(0.8, 1.3),
        'mouth_width': U(0.88, 1.15),
        'ear_size': U(0.9, 1.1),
        'neck_width': U(0.9, 1.1),
        'asymmetry': float(np.clip(rng.normal(0, 0.15), -0.3, 0.3)),
    }
    tone = U(0, 1) if skin_tone is None else float(skin_tone)
    undertone = U(-1, 1)
    skin = _skin_from_tone(tone, undertone)
    dark = tone > 0.45
    hair_names = list(_HAIR_SRGB)
    hw = np.array([3, 3, 2, 1.5, 1, 0.7, 0.8]) if not dark else np.array([6, 3, 1, 0.3, 0.1, 0.1, 0.6])
    hair_name = hair_names[int(rng.choice(len(hair_names), p=hw / hw.sum()))]
    iris_names = list(_IRIS_SRGB)
    iw = np.array([2, 3, 1.5, 1, 1.5, 0.5]) if not dark else np.array([6, 3, 0.5, 0.1, 0.1, 0.1])
    iris_name = iris_names[int(rng.choice(len(iris_names), p=iw / iw.sum()))]
    hair_col = np.asarray(_HAIR_SRGB[hair_name]) / 255.0 * U(0.85, 1.15)
    lip_lin = _srgb_to_linear(skin) * np.array([0.95, 0.6, 0.62]) * U(0.75, 1.0)
    hair = {
        'style': 'long' if rng.uniform() < 0.35 else 'short',
        'thickness': U(0.5, 1.8),
        'volume': U(0.0, 0.8),
        'hairline': U(6.6, 8.2),
        'slope': U(0.55, 0.85),
    }
    hair['length'] = U(0.4, 1.0) if hair['style'] == 'long' else 0.0
    appearance = {
        'skin_tone': tone,
        'undertone': undertone,
        'skin_srgb': _srgb_tuple(skin),
        'lip_srgb': _srgb_tuple(_linear_to_srgb(lip_lin)),
        'hair_color': hair_name,
        'hair_srgb': _srgb_tuple(np.clip(hair_col, 0, 1)),
        'iris_color': iris_name,
        'iris_srgb': _srgb_tuple(np.asarray(_IRIS_SRGB[iris_name]) / 255.0),
        'sclera_srgb': _srgb_tuple(np.array([0.93, 0.9, 0.88]) * U(0.9, 1.0)),
        'pupil': U(0.85, 1.2),
        'blush': U(0.0, 0.5),
        'gaze': [U(-0.12, 0.12), U(-0.08, 0.08)],
    }
    az = math.radians(U(-60, 60))
    el = math.radians(U(-5, 45))
    light = {
        'dir': [math.cos(el) * math.sin(az), math.sin(el), math.cos(el) * math.cos(az)],
        'kelvin': U(3200, 7500),
        'intensity': U(2.2, 3.0),
        'ambient': U(0.35, 0.6),
        'ambient_kelvin': U(5000, 9000),
        'specular': U(0.6, 1.4),
        'exposure': U(0.9, 1.15),
    }
    camera = {'yaw_deg': U(-yaw_range, yaw_range), 'pitch_deg': U(-pitch_range, pitch_range)}
    hue = U(0, 1)
    base = np.array(cv2.cvtColor(np.uint8([[[int(hue * 179), int(U(20, 90)), int(U(90, 210))]]]),
                                 cv2.COLOR_HSV2RGB)[0, 0] / 255.0)
    other = np.clip(base * U(0.45, 0.8), 0, 1)
    ga = U(0, 2 * math.pi)
    background = {
        'color0': _srgb_tuple(base),
        'color1': _srgb_tuple(other),
        'grad': [0.9 * math.cos(ga), 0.9 * math.sin(ga)],
        'glow_center': [U(-0.4, 0.4), U(-0.4, 0.2)],
        'glow': U(0.0, 0.25),
    }
    return {
        'version': GENERATOR_VERSION,
        'shape': shape,
        'hair': hair,
        'appearance': appearance,
        'light': light,
        'camera': camera,
        'background': background,
        'lowlight': None,
    }


def sample_lowlight_params(rng, skin_tone=None):
    """Draw parameters of a "real-like" low-light face (no ground truth).

    One of three scenarios is chosen: ``underexposed`` (ordinary light, very low exposure), ``dim_colored``
    (a weak tungsten/sodium/blue light, almost no ambient) or ``side_light`` (hard light from the side with
    deep shadows). Sensor-like noise parameters are added under ``lowlight``.

    Args:
        rng (np.random.Generator or int): Random generator or seed.
        skin_tone (float, optional): See :func:`sample_face_params`.

    Returns:
        dict: Parameters as :func:`sample_face_params` with ``lowlight`` filled in.
    """
    rng = np.random.default_rng(rng)
    p = sample_face_params(rng, skin_tone=skin_tone)
    scenario = ['underexposed', 'dim_colored', 'side_light'][int(rng.integers(3))]
    L = p['light']
    if scenario == 'underexposed':
        L['exposure'] = float(rng.uniform(0.05, 0.14))
    elif scenario == 'dim_colored':
        L['kelvin'] = float(rng.choice([1900.0, 2300.0, 2800.0, 12000.0]))
        L['ambient'] = float(rng.uniform(0.02, 0.08))
        L['ambient_kelvin'] = float(rng.uniform(2500, 12000))
        L['exposure'] = float(rng.uniform(0.08, 0.2))
    else:
        side = 1.0 if rng.uniform() < 0.5 else -1.0
        az = math.radians(side * rng.uniform(65, 100))
        el = math.radians(rng.uniform(-10, 35))
        L['dir'] = [math.cos(el) * math.sin(az), math.sin(el), math.cos(el) * math.cos(az)]
        L['ambient'] = float(rng.uniform(0.0, 0.04))
        L['intensity'] = float(rng.uniform(2.0, 3.5))
        L['exposure'] = float(rng.uniform(0.12, 0.3))
    bg = p['background']
    dim = float(rng.uniform(0.15, 0.5))
    bg['color0'] = _srgb_tuple(np.asarray(bg['color0']) * dim)
    bg['color1'] = _srgb_tuple(np.asarray(bg['color1']) * dim)
    p['lowlight'] = {
        'scenario': scenario,
        'photons': float(rng.uniform(80, 400)),  # photo-electrons at linear value 1
        'read_noise': float(rng.uniform(0.002, 0.012)),
        'chroma_gain': [float(v) for v in rng.uniform(0.85, 1.15, 3)],
        'seed': int(rng.integers(2**31)),
    }
    return p


def mirror_params(params):
    """Parameters of the horizontally mirrored scene (yaw, light, background, asymmetry flipped).

    Rendering the result gives the horizontally flipped image (exactly for a symmetric face).

    Args:
        params (dict): Face parameters.

    Returns:
        dict: A mirrored deep copy.
    """
    p = json.loads(json.dumps(params))
    p['camera']['yaw_deg'] = -p['camera']['yaw_deg']
    p['light']['dir'][0] = -p['light']['dir'][0]
    p['shape']['asymmetry'] = -p['shape']['asymmetry']
    p['background']['grad'][0] = -p['background']['grad'][0]
    p['background']['glow_center'][0] = -p['background']['glow_center'][0]
    p['appearance']['gaze'][0] = -p['appearance']['gaze'][0]
    return p


def _face_seed(seed, split, index):
    return np.random.SeedSequence([int(seed), _SPLIT_CODES[split], int(index)])


def face_params_for(seed, split, index):
    """Deterministic parameters of face ``index`` of ``split`` for a data set ``seed``.

    Skin tones follow a low-discrepancy sequence over the index (plus jitter), so that even small
    subsets cover the whole range from very light to very dark.

    Args:
        seed (int): Data-set seed.
        split (str): ``train``, ``val``, ``test`` or ``unpaired`` (different identities per split).
        index (int): Face index within the split.

    Returns:
        dict: Face parameters (low-light parameters for ``unpaired``).
    """
    rng = np.random.default_rng(_face_seed(seed, split, index))
    golden = 0.6180339887498949
    tone = (index * golden + 0.137 * _SPLIT_CODES[split] + 0.31 * (seed % 97) + rng.uniform(-0.05, 0.05)) % 1.0
    if split == 'unpaired':
        return sample_lowlight_params(rng, skin_tone=tone)
    return sample_face_params(rng, skin_tone=tone)


# ----------------------------------------------------------------------------------------------------------
# rendering
# ----------------------------------------------------------------------------------------------------------
def _background(params, size, offset=(0.0, 0.0), pixels=None):
    """Background colour (linear, (3, H*W) or (3, len(pixels))) in image space."""
    bg = params['background']
    h = w = size
    u = ((np.arange(w) + 0.5 + offset[0] - 0.5 * w) / w).astype(np.float32)
    v = ((np.arange(h) + 0.5 + offset[1] - 0.5 * h) / h).astype(np.float32)
    if pixels is None:
        u, v = np.tile(u, h), np.repeat(v, w)
    else:
        u, v = u[pixels % w], v[pixels // w]
    gx, gy = (np.float32(g) for g in bg['grad'])
    tt = np.clip(np.float32(0.5) + gx * u + gy * v, 0, 1)
    c0 = np.asarray(_srgb_to_linear(bg['color0']), dtype=np.float32)[:, None]
    c1 = np.asarray(_srgb_to_linear(bg['color1']), dtype=np.float32)[:, None]
    col = c0 * (1 - tt)[None] + c1 * tt[None]
    cx, cy = (np.float32(c) for c in bg['glow_center'])
    r2 = (u - cx)**2 + (v - cy)**2
    col = col * (1 + np.float32(bg['glow']) * np.float32(4.0) * np.exp(-r2 / np.float32(0.08)))[None]
    return col.astype(np.float32)


def _soft_shadow(sdf, x, y, z, L, steps=20, tmin=0.004, tmax=0.35, k=10.0):
    """Soft shadow factor in [0, 1] by marching towards the light."""
    n = x.shape[0]
    res = np.ones(n, dtype=np.float32)
    t = np.full(n, tmin, dtype=np.float32)
    idx = np.arange(n)
    lx, ly, lz = (np.float32(v) for v in L)
    for _ in range(steps):
        if idx.size == 0:
            break
        ta = t[idx]
        d = sdf(x[idx] + lx * ta, y[idx] + ly * ta, z[idx] + lz * ta)
        res[idx] = np.minimum(res[idx], np.float32(k) * d / ta)
        t[idx] = ta + np.clip(d, 0.002, 0.05)
        keep = (res[idx] > 0.01) & (t[idx] < tmax)
        idx = idx[keep]
    res = np.clip(res, 0, 1)
    return res * res * (3 - 2 * res)


def _ambient_occlusion(sdf, x, y, z, nrm):
    occ = np.zeros(x.shape[0], dtype=np.float32)
    w = np.float32(1.0)
    for h in (0.006, 0.016, 0.032):
        h = np.float32(h)
        d = sdf(x + nrm[0] * h, y + nrm[1] * h, z + nrm[2] * h)
        occ += (h - d) * w
        w *= np.float32(0.75)
    return np.clip(1 - np.float32(11.0) * occ, 0.15, 1)


def _shade(model, params, geo):
    """Linear radiance (3, M) at the hit points of ``geo``."""
    L = params['light']
    x, y, z = geo['points']
    nrm = geo['normals']
    ldir = np.asarray(L['dir'], dtype=np.float64)
    ldir = (ldir / np.linalg.norm(ldir)).astype(np.float32)
    alb, spec, shin, skin_w = model.albedo(x, y, z)
    ndl = nrm[0] * ldir[0] + nrm[1] * ldir[1] + nrm[2] * ldir[2]
    # wrapped diffuse on skin (cheap subsurface look), plain Lambert elsewhere
    wrap = np.float32(0.25) * skin_w
    diff = np.maximum((ndl + wrap) / (1 + wrap), 0)
    sh = _soft_shadow(model.sdf, x + nrm[0] * np.float32(0.002), y + nrm[1] * np.float32(0.002),
                      z + nrm[2] * np.float32(0.002), ldir)
    ao = _ambient_occlusion(model.sdf, x, y, z, nrm)
    lcol = (_kelvin_to_rgb(L['kelvin']) * L['intensity']).astype(np.float32)[:, None]
    acol = (_kelvin_to_rgb(L['ambient_kelvin']) * L['ambient']).astype(np.float32)[:, None]
    sky = (np.float32(0.65) + np.float32(0.35) * nrm[1]) * ao
    vx, vy, vz = -geo['dirs']
    hx, hy, hz = ldir[0] + vx, ldir[1] + vy, ldir[2] + vz
    hn = np.sqrt(hx * hx + hy * hy + hz * hz) + np.float32(1e-6)
    ndh = np.maximum((nrm[0] * hx + nrm[1] * hy + nrm[2] * hz) / hn, 0)
    ndv = np.clip(nrm[0] * vx + nrm[1] * vy + nrm[2] * vz, 0, 1)
    fres = np.float32(0.6) + np.float32(0.4) * (1 - ndv)**5
    specular = spec * fres * np.power(ndh, shin) * (shin + 8) / np.float32(8 * math.pi) * np.float32(L['specular'])
    direct = (diff * sh)[None] * lcol
    rad = alb * (direct + acol * sky[None]) + (specular * sh * (ndl > 0))[None] * lcol
    return rad.astype(np.float32), skin_w.astype(np.float32)


def _render_linear(params, size, antialias=True, model=None):
    """Linear radiance image, z-depth and mask."""
    model = FaceModel(params) if model is None else model
    cam = params['camera']
    c2w, k = camera_from_angles(cam['yaw_deg'], cam['pitch_deg'])

    geo = render_sdf(model.sdf, c2w, k, size)
    col = _background(params, size)
    skin = np.zeros(size * size, dtype=np.float32)
    if geo['hit_index'].size:
        col[:, geo['hit_index']], skin[geo['hit_index']] = _shade(model, params, geo)
    img = col.reshape(3, size, size)
    if antialias:
        disp = _tonemap(img, params['light']['exposure'])
        diff = np.zeros((size, size), dtype=np.float32)
        dd = np.abs(disp[:, 1:, :] - disp[:, :-1, :]).sum(0)
        diff[1:, :] = np.maximum(diff[1:, :], dd)
        diff[:-1, :] = np.maximum(diff[:-1, :], dd)
        dd = np.abs(disp[:, :, 1:] - disp[:, :, :-1]).sum(0)
        diff[:, 1:] = np.maximum(diff[:, 1:], dd)
        diff[:, :-1] = np.maximum(diff[:, :-1], dd)
        edge = np.nonzero(diff.reshape(-1) > _AA_THRESHOLD)[0]
        if edge.size:
            # all 4 sub-pixel samples of all edge pixels in one batch; marching starts just before the nearest
            # hit among the 3x3 neighbouring pixel-centre rays (or at the bounding sphere if none hit)
            tmin = cv2.erode(np.where(geo['mask'], geo['ray_dist'], np.float32(np.inf)).astype(np.float32),
                             np.ones((3, 3), np.uint8), borderType=cv2.BORDER_REPLICATE).reshape(-1)[edge]
            offs = ((-0.25, -0.25), (0.25, -0.25), (-0.25, 0.25), (0.25, 0.25))
            dirs, bgs = [], []
            for off in offs:
                origin, d, _ = _rays(c2w, k, size, size, off, edge)
                dirs.append(d)
                bgs.append(_background(params, size, off, edge))
            dirs = np.concatenate(dirs, 1)
            sub = np.concatenate(bgs, 1)
            t0, t1 = _bound_interval(origin, dirs, (0.0, 0.0, 0.0), 0.45)
            tm = np.tile(tmin, len(offs)) - np.float32(0.01)
            t0 = np.where(np.isfinite(tm) & np.isfinite(t0), np.maximum(t0, tm), t0)
            t, hit = sphere_trace(model.sdf, origin, dirs, np.maximum(t0, 0), t1)
            hi = np.nonzero(hit)[0]
            if hi.size:
                pts = (origin[:, None] + dirs[:, hi] * t[hi][None]).astype(np.float32)
                g2 = {'points': pts, 'dirs': dirs[:, hi], 'hit_index': hi, 'normals': _normals(model.sdf, *pts)}
                sub[:, hi] = _shade(model, params, g2)[0]
            acc = img.reshape(3, -1)[:, edge].copy()
            for j in range(len(offs)):
                acc += sub[:, j * edge.size:(j + 1) * edge.size]
            img = img.reshape(3, -1).copy()
            img[:, edge] = acc / np.float32(len(offs) + 1)
            img = img.reshape(3, size, size)
    return img.transpose(1, 2, 0), geo['depth'], geo['mask'], camera_label(c2w, k), skin.reshape(size, size)


def render_face(params, size=256, antialias=True):
    """Render one synthetic face.

    Args:
        params (dict): Parameters from :func:`sample_face_params`, :func:`sample_lowlight_params` or
            :func:`face_params_for`. Low-light parameters (``params['lowlight']`` set) add Poisson-Gaussian
            sensor noise after the (low) exposure.
        size (int): Output height = width in pixels (even sizes keep mirror symmetry exact).
        antialias (bool): Refine RGB at edge pixels with 4 extra sub-pixel samples.

    Returns:
        dict: ``image`` (H, W, 3) uint8 RGB, ``depth`` (H, W) float32 z-depth (0 = background),
        ``mask`` (H, W) bool foreground, ``skin`` (H, W) float32 skin weight in [0, 1] (skin of face, ears and
        neck; 0 on eyes, lips, brows, hair and background), ``camera`` (25,) float32 EG3D label, ``params``
        (the input dict).
    """
    lin, depth, mask, label, skin = _render_linear(params, size, antialias)
    exposure = params['light']['exposure']
    ll = params.get('lowlight')
    if ll:
        rng = np.random.default_rng(ll['seed'])
        x = np.maximum(lin * np.float32(exposure), 0) * np.asarray(ll['chroma_gain'], dtype=np.float32)
        # noise in the linear (raw-like) domain: shot noise + read noise, then a mild tone curve
        x = rng.poisson(x * ll['photons']).astype(np.float32) / np.float32(ll['photons'])
        x = x + rng.normal(0, ll['read_noise'], x.shape).astype(np.float32)
        x = x / np.asarray(ll['chroma_gain'], dtype=np.float32)
        disp = _tonemap(x, 1.0)
    else:
        disp = _tonemap(lin, exposure)
    img = np.clip(np.round(disp * 255), 0, 255).astype(np.uint8)
    return {'image': img, 'depth': depth, 'mask': mask, 'skin': skin, 'camera': label, 'params': params}


def make_demo_face(seed, split, index, size=256, antialias=True):
    """Render face ``index`` of ``split`` deterministically (see :func:`face_params_for`).

    Args:
        seed (int): Data-set seed.
        split (str): ``train``, ``val``, ``test`` or ``unpaired``.
        index (int): Face index.
        size (int): Image size.
        antialias (bool): Edge anti-aliasing of the RGB image.

    Returns:
        dict: As :func:`render_face`.
    """
    return render_face(face_params_for(seed, split, index), size=size, antialias=antialias)


def depth_to_vis(depth, mask=None):
    """8-bit visualisation of a z-depth map (near = bright, background = black).

    Uses the EG3D sampling range: ``(3.3 - d) / (3.3 - 2.25)``, scaled to 255.

    Args:
        depth (np.ndarray): (H, W) z-depth (0 = background).
        mask (np.ndarray, optional): Foreground mask; default ``depth > 0``.

    Returns:
        np.ndarray: (H, W) uint8.
    """
    mask = depth > 0 if mask is None else mask
    v = np.clip((RAY_FAR - depth) / (RAY_FAR - RAY_NEAR), 0, 1) * mask
    return np.round(v * 255).astype(np.uint8)


# ----------------------------------------------------------------------------------------------------------
# data set on disk
# ----------------------------------------------------------------------------------------------------------
_PAIRED_SPLITS = ('train', 'val', 'test')
_META_KEYS = ('generator', 'version', 'seed', 'size', 'counts', 'antialias')

_README = """lowlight3d built-in demo data set: synthetic faces (no download, no real people)
===================================================================================

Generated by lowlight3d.data.demo_faces (generator version {version}) with seed {seed}, {size}x{size} px.
Counts: {counts}.
Regenerate with:  python scripts/make_demo_data.py --root <this folder> --seed {seed} --size {size} ...

Every face is a procedurally built implicit 3D head (signed-distance primitives) with random shape, skin tone
(Monk scale 1-10, evenly covered), hair, eye colour, pose (yaw +-25 deg, pitch +-15 deg) and lighting, rendered by
sphere tracing. Geometry is exact, so the depth maps are exact.

Layout
------
  {{train,val,test}}/gt/00000.png        normal-light RGB images (ground truth; the low-light inputs are
                                       synthesised on the fly by the data pipeline)
  {{train,val,test}}/depth/00000.npy     float32 (H, W) z-depth = distance along the camera's optical (z) axis,
                                       world units; background = 0
  {{train,val,test}}/mask/00000.png      foreground (head) mask, 0/255 (= depth > 0)
  {{train,val,test}}/depth_vis/00000.png 8-bit view of the depth: (3.3 - depth) / 1.05, background black
  {{train,val,test}}/cameras.json        {{"00000": [25 floats], ...}} EG3D camera labels
  {{train,val,test}}/params.json         {{"00000": {{shape/appearance/light/camera/background parameters}}, ...}}
  unpaired/lq/00000.png                low-light faces WITHOUT ground truth (other identities; dim, coloured or
                                       hard side light, low exposure, Poisson-Gaussian sensor noise), standing in
                                       for real unpaired low-light photos
  unpaired/cameras.json, params.json   provenance only (real photos would not have them)
  meta.json                            generator version, seed, size, counts; written LAST (no meta = incomplete)

Cameras (EG3D / OpenCV convention)
----------------------------------
label = cam2world 4x4 (row-major, OpenCV axes: x right, y down, z forward) followed by the normalised 3x3
intrinsics (fx = fy = 4.2647, cx = cy = 0.5; diagonal FOV ~18.84 deg). The camera is on a sphere of radius 2.7
around the world origin and looks at the origin; the world is y-up and the face looks towards +z. EG3D's renderer
reports Euclidean ray distance; ray distance = z-depth * sqrt(1 + ((u - cx) / fx)^2 + ((v - cy) / fy)^2) with
u = (col + 0.5) / W, v = (row + 0.5) / H (lowlight3d.data.demo_faces.zdepth_to_ray_distance).
"""


def demo_dataset_meta(num_train=240, num_val=24, num_test=24, num_unpaired=120, size=256, seed=0, antialias=True):
    """The ``meta.json`` content that identifies a demo data set (without the creation time).

    Args:
        num_train (int): Number of training faces.
        num_val (int): Number of validation faces.
        num_test (int): Number of test faces.
        num_unpaired (int): Number of unpaired low-light faces.
        size (int): Image size.
        seed (int): Data-set seed.
        antialias (bool): Edge anti-aliasing of the RGB images.

    Returns:
        dict: json-serialisable meta data.
    """
    return {
        'generator': 'lowlight3d.data.demo_faces',
        'version': GENERATOR_VERSION,
        'seed': int(seed),
        'size': int(size),
        'counts': {'train': int(num_train), 'val': int(num_val), 'test': int(num_test),
                   'unpaired': int(num_unpaired)},
        'antialias': bool(antialias),
        'depth': 'z-depth along the camera optical axis (world units), float32, background 0',
        'camera': {'convention': 'EG3D/OpenCV cam2world 4x4 + normalised intrinsics 3x3', 'radius': CAMERA_RADIUS,
                   'focal': FOCAL, 'fov_deg': FOV_DEG, 'look_at': [0.0, 0.0, 0.0]},
    }


def _same_meta(a, b):
    return isinstance(a, dict) and all(a.get(k) == b.get(k) for k in _META_KEYS)


def _expected_files(root, meta):
    files = []
    for split, n in meta['counts'].items():
        if n <= 0:
            continue
        kinds = ('gt', 'depth', 'mask', 'depth_vis') if split in _PAIRED_SPLITS else ('lq', )
        for i in range(n):
            for kind in kinds:
                ext = '.npy' if kind == 'depth' else '.png'
                files.append(osp.join(root, split, kind, f'{i:05d}{ext}'))
        files += [osp.join(root, split, 'cameras.json'), osp.join(root, split, 'params.json')]
    return files + [osp.join(root, 'README.txt'), osp.join(root, 'meta.json')]


def _read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _write_json(path, obj):
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        json.dump(obj, f, indent=1)
    os.replace(tmp, path)


def _write_png(path, rgb_or_gray):
    tmp = path[:-4] + '.tmp.png'
    img = rgb_or_gray[..., ::-1] if rgb_or_gray.ndim == 3 else rgb_or_gray
    if not cv2.imwrite(tmp, np.ascontiguousarray(img)):
        raise OSError(f'could not write {tmp}')
    os.replace(tmp, path)


def _write_npy(path, arr):
    tmp = path + '.tmp'
    with open(tmp, 'wb') as f:
        np.save(f, arr)
    os.replace(tmp, path)


def is_demo_dataset_complete(root, **kwargs):
    """Whether ``root`` holds a complete demo data set generated with these settings.

    Args:
        root (str): Data-set folder.
        **kwargs: Settings as accepted by :func:`demo_dataset_meta`.

    Returns:
        bool: True if ``meta.json`` matches and every expected file exists.
    """
    meta = demo_dataset_meta(**kwargs)
    return _same_meta(_read_json(osp.join(root, 'meta.json')), meta) and \
        all(osp.exists(p) for p in _expected_files(root, meta))


def _render_and_write(task):
    """Worker: render one face and write its files (skips faces whose files all exist)."""
    root, split, index, size, seed, antialias = task
    name = f'{index:05d}'
    if split in _PAIRED_SPLITS:
        targets = {k: osp.join(root, split, k, name + ('.npy' if k == 'depth' else '.png'))
                   for k in ('gt', 'depth', 'mask', 'depth_vis')}
    else:
        targets = {'lq': osp.join(root, split, 'lq', name + '.png')}
    if all(osp.exists(p) for p in targets.values()):
        return 0
    out = make_demo_face(seed, split, index, size=size, antialias=antialias)
    if split in _PAIRED_SPLITS:
        _write_npy(targets['depth'], out['depth'])
        _write_png(targets['mask'], out['mask'].astype(np.uint8) * 255)
        _write_png(targets['depth_vis'], depth_to_vis(out['depth'], out['mask']))
        _write_png(targets['gt'], out['image'])
    else:
        _write_png(targets['lq'], out['image'])
    return 1


def _dataset_paths(root, meta):
    paths = {'root': root, 'meta': osp.join(root, 'meta.json'), 'readme': osp.join(root, 'README.txt')}
    for split, n in meta['counts'].items():
        if n <= 0:
            continue
        kinds = ('gt', 'depth', 'mask', 'depth_vis') if split in _PAIRED_SPLITS else ('lq', )
        for kind in kinds:
            paths[f'{split}_{kind}'] = osp.join(root, split, kind)
        paths[f'{split}_cameras'] = osp.join(root, split, 'cameras.json')
        paths[f'{split}_params'] = osp.join(root, split, 'params.json')
    return paths


def _pool_context():
    import multiprocessing as mp
    methods = mp.get_all_start_methods()
    return mp.get_context('fork' if 'fork' in methods else 'spawn')


def write_unpaired_split(root, num_unpaired, test_fraction=1 / 3):
    """Split the unpaired low-light faces into a training list and a test list (BasicSR meta_info files).

    The last ``round(num_unpaired * test_fraction)`` faces (at least 1) are the test set, the others train the
    unpaired branch of semi-supervised methods, so no method is trained on the images it is scored on.  The lists
    ``unpaired/meta_train.txt`` and ``unpaired/meta_test.txt`` are (re)written atomically when they differ.

    Returns:
        dict: ``unpaired_meta_train`` and ``unpaired_meta_test`` paths (empty when there are no unpaired faces).
    """
    if num_unpaired <= 0:
        return {}
    n_test = max(1, int(round(num_unpaired * test_fraction)))
    names = [f'{i:05d}.png' for i in range(num_unpaired)]
    out = {}
    for split, subset in (('train', names[:-n_test]), ('test', names[-n_test:])):
        path = osp.join(root, 'unpaired', f'meta_{split}.txt')
        text = ''.join(f'{n}\n' for n in subset)
        if not osp.isfile(path) or open(path).read() != text:
            with open(path + '.tmp', 'w') as f:
                f.write(text)
            os.replace(path + '.tmp', path)
        out[f'unpaired_meta_{split}'] = path
    return out


def generate_demo_dataset(root='datasets/demo_faces', num_train=240, num_val=24, num_test=24, num_unpaired=120,
                          size=256, seed=0, overwrite=False, num_workers=2, antialias=True, verbose=False):
    """Generate (once) the built-in synthetic demo data set.

    Layout (see the ``README.txt`` written into ``root``): ``{train,val,test}/gt/00000.png`` normal-light
    ground truth, ``{split}/depth/00000.npy`` float32 z-depth (background 0), ``{split}/mask/00000.png``,
    ``{split}/depth_vis/00000.png``, ``{split}/cameras.json`` (name -> 25 floats), ``{split}/params.json``,
    ``unpaired/lq/00000.png`` low-light faces without ground truth, ``README.txt`` and ``meta.json``.

    Behaviour:

    * ``meta.json`` is written last, so an interrupted run is detected as incomplete; re-running resumes it
      (every file is written atomically, and faces whose files exist are skipped).
    * Same settings and all files present: no-op (nothing is rendered).
    * A data set with different settings (or a non-empty foreign folder) in ``root``: ``FileExistsError``
      unless ``overwrite=True``, which deletes the old splits and regenerates.
    * Results are identical for any ``num_workers``: face ``i`` of a split depends only on
      ``(seed, split, i)`` (see :func:`face_params_for`).

    Args:
        root (str): Output folder.
        num_train (int): Training faces.
        num_val (int): Validation faces.
        num_test (int): Test faces.
        num_unpaired (int): Unpaired low-light faces.
        size (int): Image height = width.
        seed (int): Data-set seed.
        overwrite (bool): Replace a data set generated with different settings.
        num_workers (int): Worker processes (0 or 1 = render in this process).
        antialias (bool): Edge anti-aliasing of the RGB images.
        verbose (bool): Print progress.

    Returns:
        dict: Paths: ``root``, ``meta``, ``readme`` and ``{split}_{kind}`` for kinds ``gt``, ``depth``, ``mask``,
        ``depth_vis`` (folders), ``cameras``, ``params`` (files) of train/val/test, and ``unpaired_lq``,
        ``unpaired_cameras``, ``unpaired_params``, ``unpaired_meta_train`` / ``unpaired_meta_test`` (see
        :func:`write_unpaired_split`). Splits with count 0 are left out.
    """
    kw = dict(num_train=num_train, num_val=num_val, num_test=num_test, num_unpaired=num_unpaired, size=size,
              seed=seed, antialias=antialias)
    meta = demo_dataset_meta(**kw)
    paths = _dataset_paths(root, meta)
    if is_demo_dataset_complete(root, **kw):
        paths.update(write_unpaired_split(root, meta['counts'].get('unpaired', 0)))
        return paths
    meta_path, progress_path = osp.join(root, 'meta.json'), osp.join(root, '.generating.json')
    old_meta, progress = _read_json(meta_path), _read_json(progress_path)
    ours = ('train', 'val', 'test', 'unpaired')
    # same settings (files deleted from a finished set, or an interrupted run): keep what exists, render the rest
    resume = _same_meta(old_meta, meta) or (old_meta is None and _same_meta(progress, meta))
    if not resume:
        stale = old_meta is not None or progress is not None or \
            any(osp.exists(osp.join(root, d)) and os.listdir(osp.join(root, d)) for d in ours)
        if stale and not overwrite:
            found = {k: old_meta.get(k) for k in _META_KEYS} if isinstance(old_meta, dict) else old_meta
            raise FileExistsError(f'{root} holds a different data set (meta.json: {found}); pass overwrite=True '
                                  '(--overwrite) to replace it, or choose another root')
        for d in ours:
            if osp.isdir(osp.join(root, d)):
                shutil.rmtree(osp.join(root, d))
    os.makedirs(root, exist_ok=True)
    if osp.exists(meta_path):
        os.remove(meta_path)
    _write_json(progress_path, meta)
    for split, n in meta['counts'].items():
        if n > 0:
            for kind in (('gt', 'depth', 'mask', 'depth_vis') if split in _PAIRED_SPLITS else ('lq', )):
                os.makedirs(osp.join(root, split, kind), exist_ok=True)

    tasks = [(root, split, i, size, seed, antialias) for split, n in meta['counts'].items() for i in range(n)]
    t0 = time.time()
    done = 0
    if num_workers and num_workers > 1 and len(tasks) > 1:
        with _pool_context().Pool(min(num_workers, len(tasks))) as pool:
            for k, r in enumerate(pool.imap_unordered(_render_and_write, tasks, chunksize=4)):
                done += r
                if verbose and (k + 1) % 50 == 0:
                    print(f'  {k + 1}/{len(tasks)} faces ({time.time() - t0:.1f} s)', flush=True)
    else:
        for k, task in enumerate(tasks):
            done += _render_and_write(task)
            if verbose and (k + 1) % 50 == 0:
                print(f'  {k + 1}/{len(tasks)} faces ({time.time() - t0:.1f} s)', flush=True)

    for split, n in meta['counts'].items():
        if n <= 0:
            continue
        cams, prms = {}, {}
        for i in range(n):
            p = face_params_for(seed, split, i)
            c2w, k = camera_from_angles(p['camera']['yaw_deg'], p['camera']['pitch_deg'])
            cams[f'{i:05d}'] = [float(v) for v in camera_label(c2w, k)]
            prms[f'{i:05d}'] = p
        _write_json(paths[f'{split}_cameras'], cams)
        _write_json(paths[f'{split}_params'], prms)
    with open(paths['readme'] + '.tmp', 'w') as f:
        f.write(_README.format(version=GENERATOR_VERSION, seed=seed, size=size, counts=json.dumps(meta['counts'])))
    os.replace(paths['readme'] + '.tmp', paths['readme'])
    full = dict(meta, created=time.strftime('%Y-%m-%dT%H:%M:%S'), rendered=done,
                seconds=round(time.time() - t0, 2))
    _write_json(meta_path, full)
    if osp.exists(progress_path):
        os.remove(progress_path)
    paths.update(write_unpaired_split(root, meta['counts'].get('unpaired', 0)))
    if verbose:
        print(f'rendered {done} faces in {time.time() - t0:.1f} s into {root}')
    return paths
