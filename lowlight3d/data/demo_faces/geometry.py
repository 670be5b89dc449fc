"""The shape of a demo face: :class:`FaceModel`, an implicit head made of smoothly blended SDF primitives."""
import math

import numpy as np

from lowlight3d.data.demo_faces.materials import face_albedo
from lowlight3d.data.demo_faces.sdf import _capsule, _cone_capsule, _ellipsoid, _smax, _smin, _sphere

__all__ = ['FaceModel']

_S = 0.0185  # world units per model unit ("cm")
_OFFSET_Y = 0.5  # model-space shift so the head is centred in the frame
_OFFSET_Z = 1.0


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

    def albedo(self, x, y, z):
        """Linear albedo, specular strength and shininess at surface points
        (:func:`~lowlight3d.data.demo_faces.materials.face_albedo`).

        Args:
            x (np.ndarray): World x of surface points.
            y (np.ndarray): World y.
            z (np.ndarray): World z.

        Returns:
            tuple: ``(albedo (3, N) float32 linear, spec (N,), shininess (N,), skin_weight (N,))``.
        """
        return face_albedo(self, x, y, z)
