"""Rendering of the demo faces: background, shading (soft shadows, ambient occlusion, specular), edge
anti-aliasing, sensor noise of the low-light faces and the display tone curve."""
import math

import cv2
import numpy as np

from lowlight3d.data.demo_faces.cameras import RAY_FAR, RAY_NEAR, _rays, camera_from_angles, camera_label
from lowlight3d.data.demo_faces.colour import _kelvin_to_rgb, _srgb_to_linear, _tonemap
from lowlight3d.data.demo_faces.geometry import FaceModel
from lowlight3d.data.demo_faces.parameters import face_params_for
from lowlight3d.data.demo_faces.sdf import _bound_interval, _normals, render_sdf, sphere_trace

__all__ = ['render_face', 'make_demo_face', 'depth_to_vis']

_AA_THRESHOLD = 0.1  # summed |RGB| display difference to a 4-neighbour that marks an edge pixel


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


def _edge_pixels(img, exposure):
    """Flat indices of the pixels whose display colour differs from a 4-neighbour by more than the threshold."""
    size = img.shape[-1]
    disp = _tonemap(img, exposure)
    diff = np.zeros((size, size), dtype=np.float32)
    dd = np.abs(disp[:, 1:, :] - disp[:, :-1, :]).sum(0)
    diff[1:, :] = np.maximum(diff[1:, :], dd)
    diff[:-1, :] = np.maximum(diff[:-1, :], dd)
    dd = np.abs(disp[:, :, 1:] - disp[:, :, :-1]).sum(0)
    diff[:, 1:] = np.maximum(diff[:, 1:], dd)
    diff[:, :-1] = np.maximum(diff[:, :-1], dd)
    return np.nonzero(diff.reshape(-1) > _AA_THRESHOLD)[0]


def _antialias_edges(model, params, geo, img, c2w, k, edge):
    """``img`` (3, H, W) with the ``edge`` pixels replaced by the mean of their centre and 4 sub-pixel samples."""
    size = img.shape[-1]
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
    return img.reshape(3, size, size)


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
        edge = _edge_pixels(img, params['light']['exposure'])
        if edge.size:
            img = _antialias_edges(model, params, geo, img, c2w, k, edge)
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
