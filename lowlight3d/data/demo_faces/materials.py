"""Materials of a demo face: albedo, specular strength and shininess of skin, brows, lips, eyes and hair.

Every layer is painted in model space (``|x|`` folded, so a symmetric face gets a symmetric albedo) on top of the
previous ones, in this order: skin (low-frequency variation, blush, darker eyelids), painted eyebrows, nostrils,
lips and the mouth line, the eyelash line, then the eyeballs (sclera, iris, pupil, lid shadow) and the hair.
"""
import numpy as np

from lowlight3d.data.demo_faces.colour import _srgb_to_linear
from lowlight3d.data.demo_faces.sdf import _smoothstep

__all__ = ['face_albedo']


def _linear_colour(srgb):
    """(3, 1) float32 linear colour of an sRGB triple in [0, 1]."""
    return np.asarray(_srgb_to_linear(srgb), dtype=np.float32)[:, None]


def _skin_layer(model, p, xf, Y, Z):
    """Skin albedo with low-frequency variation (symmetric because it uses ``|x|``), cheek blush and darker
    eyelids / under-eye; returns (3, N) float32."""
    skin_c = _linear_colour(p['skin_srgb'])
    var = (np.sin(xf * np.float32(0.9) + Y * np.float32(0.7)) * np.sin(Z * np.float32(0.8) - Y * np.float32(0.5)))
    var = var + np.float32(0.5) * np.sin(xf * np.float32(2.7) - Y * np.float32(3.1) + Z * np.float32(1.3))
    col = skin_c * (np.float32(1.0) + np.float32(0.04) * var)[None]
    # cheek blush
    blush = np.exp(-(((xf - np.float32(3.8))**2 + (Y + np.float32(1.0))**2) / np.float32(4.0)))
    blush = blush * _smoothstep(4.0, 7.0, Z)
    col = col * (1 - np.float32(p['blush']) * blush[None] * np.array([[0.0], [0.35], [0.3]], dtype=np.float32))
    # darker eyelids / under-eye
    ex, ey, ez = model.eye_c
    rr = ((xf - np.float32(ex))**2 + ((Y - np.float32(ey)) * np.float32(1.3))**2)
    shade_eye = np.exp(-rr / np.float32(3.0)) * _smoothstep(5.0, 7.5, Z)
    return col * (1 - np.float32(0.12) * shade_eye)[None]


def _paint_brows(model, col, brow_c, xf, Y, Z, skin):
    """Painted eyebrows over ``col``; returns ``(col, brow weight (N,))``."""
    ex = model.eye_c[0]
    by = np.float32(3.35 + model.s['brow_height'])
    u = (xf - np.float32(ex)) / np.float32(2.3)
    arch = by + np.float32(0.35) * (1 - u * u) - np.float32(0.1) * u
    thick = np.float32(0.5) * (1 - np.float32(0.45) * np.clip(u, -1, 1)) * np.float32(model.s['brow_thickness'])
    inside = (1 - _smoothstep(0.6, 1.0, np.abs(Y - arch) / thick)) * (1 - _smoothstep(0.85, 1.1, np.abs(u)))
    inside = inside * _smoothstep(5.0, 7.0, Z) * (1 - _smoothstep(0.0, 0.3, -skin))
    strands = np.float32(0.85) + np.float32(0.15) * np.sin(xf * np.float32(41.0) + Y * np.float32(17.0))
    wb = np.clip(inside * strands * np.float32(0.95), 0, 1)
    return col * (1 - wb)[None] + brow_c * wb[None], wb


def _paint_nostrils(model, col, xf, Y, Z):
    """Dark nostrils over ``col``."""
    (nx, ny, nz), (nrx, nry, nrz) = model.nostril
    nd = ((xf - np.float32(nx)) / np.float32(nrx * 1.1))**2 + ((Y - np.float32(ny)) / np.float32(nry * 1.2))**2 + \
        ((Z - np.float32(nz)) / np.float32(nrz * 1.1))**2
    wn = 1 - _smoothstep(0.6, 1.1, nd)
    return col * (1 - np.float32(0.7) * wn)[None]


def _paint_lips(model, col, lip_c, xf, Y, Z, skin, lips):
    """Lip colour and the dark mouth line over ``col``; returns ``(col, lip weight (N,))``."""
    wl = 1 - _smoothstep(-0.05, 0.25, lips - skin)
    wl = wl * (1 - _smoothstep(0.0, 0.2, lips))
    col = col * (1 - wl)[None] + lip_c * wl[None]
    mouth = 1 - _smoothstep(0.05, 0.2, np.abs(Y - np.float32(model.mouth_y)))
    mouth = mouth * (1 - _smoothstep(0.75, 1.0, xf / np.float32(2.3 * model.s['mouth_width']))) * \
        _smoothstep(7.0, 8.5, Z)
    return col * (1 - np.float32(0.75) * mouth)[None], wl


def _paint_lashes(model, col, xf, skin, lids, up):
    """The eyelash line at the upper lid margin over ``col``."""
    ex = model.eye_c[0]
    lash = (1 - _smoothstep(0.05, 0.22, np.abs(up))) * (1 - _smoothstep(0.0, 0.15, np.abs(lids - skin) +
                                                                            np.maximum(lids, 0)))
    lash = lash * (1 - _smoothstep(0.0, 0.25, np.abs(xf - np.float32(ex)) - np.float32(model.eye_r * 0.9)))
    return col * (1 - np.float32(0.85) * lash)[None] + np.float32(0.01) * lash[None]


def _paint_eyes(model, p, iris_c, col, spec, shin, skin_w, X, Y, Z, is_eye):
    """Eyeballs (sclera, iris ring and texture, pupil, lid shadow) at the points ``is_eye``, in place."""
    ex, ey, ez = model.eye_c
    X_, Y_, Z_ = X[is_eye], Y[is_eye], Z[is_eye]
    sx = np.where(X_ < 0, np.float32(-ex), np.float32(ex))
    vx, vy, vz = X_ - sx, Y_ - np.float32(ey), Z_ - np.float32(ez)
    vn = np.sqrt(vx * vx + vy * vy + vz * vz) + np.float32(1e-6)
    g = np.array([p['gaze'][0], p['gaze'][1], 1.0])
    gx, gy, gz = (np.float32(v) for v in g / np.linalg.norm(g))
    cosang = (vx * gx + vy * gy + vz * gz) / vn
    ang = np.arccos(np.clip(cosang, -1, 1))
    sclera = _linear_colour(p['sclera_srgb'])
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


def _paint_hair(hair_c, col, spec, shin, skin_w, xf, Y, Z, wh):
    """Streaked hair blended with weight ``wh`` (across the smooth skin/hair junction), in place."""
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


def face_albedo(model, x, y, z):
    """Linear albedo, specular strength and shininess of a :class:`~lowlight3d.data.demo_faces.geometry.FaceModel`
    at surface points (the layers of the module docstring).

    Args:
        model (FaceModel): The face (its ``params['appearance']`` and shape constants).
        x (np.ndarray): World x of surface points.
        y (np.ndarray): World y.
        z (np.ndarray): World z.

    Returns:
        tuple: ``(albedo (3, N) float32 linear, spec (N,), shininess (N,), skin_weight (N,))``.
    """
    p = model.params['appearance']
    X, Y, Z, xf, eye, lids, skin, lips, hair, up, lo = model._parts(x, y, z)
    n = x.shape[0]
    lip_c = _linear_colour(p['lip_srgb'])
    hair_c = _linear_colour(p['hair_srgb'])
    iris_c = _linear_colour(p['iris_srgb'])
    brow_c = hair_c * np.float32(0.6) + np.float32(0.004)

    col = _skin_layer(model, p, xf, Y, Z)
    col, wb = _paint_brows(model, col, brow_c, xf, Y, Z, skin)
    col = _paint_nostrils(model, col, xf, Y, Z)
    col, wl = _paint_lips(model, col, lip_c, xf, Y, Z, skin, lips)
    col = _paint_lashes(model, col, xf, skin, lids, up)

    spec = np.full(n, 0.06, dtype=np.float32) + np.float32(0.2) * wl
    shin = np.full(n, 24.0, dtype=np.float32)
    skin_w = (1 - wl) * (1 - wb)

    is_eye = eye <= np.minimum(skin, hair)
    if is_eye.any():
        _paint_eyes(model, p, iris_c, col, spec, shin, skin_w, X, Y, Z, is_eye)
    wh = _smoothstep(0.25, -0.25, hair - skin) * (~is_eye)
    if wh.any():
        _paint_hair(hair_c, col, spec, shin, skin_w, xf, Y, Z, wh)
    return col, spec, shin, skin_w
