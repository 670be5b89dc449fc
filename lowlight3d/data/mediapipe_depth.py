"""Dense face depth maps from mediapipe FaceMesh landmarks (``docs/prior3d.md`` section 3.1), cached per image.

mediapipe is an optional extra (``pip install mediapipe==0.10.14``, or ``pip install -e .[mediapipe]``): 0.10.14 is
the last release that ships the FaceMesh models in its wheel (legacy ``mediapipe.solutions.face_mesh``) and works
with numpy 2; wheels exist for Python 3.10-3.12.  It is imported only when a depth map has to be computed.

Depth map of a normal-light face image (``H x W``, float32):

1. FaceMesh (``static_image_mode``, one face, ``refine_landmarks`` -> 478 landmarks) gives per landmark ``x``,
   ``y`` (fractions of the image width / height) and a relative ``z`` in the same unit as ``x`` (fraction of the
   image width, origin near the head centre, smaller = closer to the camera).
2. The FaceMesh triangles (the 3-cycles of ``FACEMESH_TESSELATION``'s edges, :func:`mesh_triangles`: 854
   triangles over landmarks 0..467, with holes at the eyes and the mouth; Delaunay of the landmarks' image positions
   when the tesselation is unavailable) are rasterised at the pixel centres ``((j + 0.5) / W, (i + 0.5) / H)`` with
   barycentric interpolation of ``z`` and a z-buffer (:func:`rasterize_depth`); uncovered pixels are background.
   The z-buffer resolves the folds of turned faces (Delaunay of the 2-D positions makes a saw-tooth silhouette on
   the far cheek there).
3. ``z`` becomes a z-depth-like map in world units with the EG3D FFHQ framing (:func:`landmarks_to_depth`):
   ``depth = FFHQ_RADIUS + (FFHQ_RADIUS / FFHQ_FOCAL) * z`` (camera 2.7 from the head centre, an image width of
   about 0.63 world units there), background 0, as the demo faces' exact depth.  This is an approximation (no pose,
   no perspective): train with ``MaskedDepthLoss`` ``fit: scale_shift``.  No face found -> all zeros.

Only forehead-to-chin and cheek-to-cheek are covered (no hair, ears or neck).
"""
import os
import os.path as osp
import warnings

import numpy as np

from lowlight3d.utils.camera import FFHQ_FOCAL, FFHQ_RADIUS
from lowlight3d.utils.checkpoint import atomic_write

__all__ = ['MEDIAPIPE_REQUIREMENT', 'import_mediapipe', 'mesh_triangles', 'rasterize_depth', 'landmarks_to_depth',
           'FaceMeshDepth', 'DepthCache']

#: The pip requirement of the optional extra.
MEDIAPIPE_REQUIREMENT = 'mediapipe==0.10.14'


def import_mediapipe():
    """Import mediapipe and check that it has the legacy FaceMesh solution.

    Returns:
        module: The ``mediapipe`` module.

    Raises:
        ImportError: mediapipe is missing or is a release without ``solutions.face_mesh`` (with the fix).
    """
    try:
        import mediapipe
    except ImportError as err:
        raise ImportError(f'depth_source: mediapipe needs the optional package mediapipe: pip install '
                          f'{MEDIAPIPE_REQUIREMENT} (Python 3.10-3.12; or pip install -e .[mediapipe]); '
                          f'import failed: {err}') from err
    if not hasattr(getattr(mediapipe, 'solutions', None), 'face_mesh'):
        raise ImportError(f'mediapipe {getattr(mediapipe, "__version__", "?")} has no solutions.face_mesh (removed '
                          f'in later releases): pip install {MEDIAPIPE_REQUIREMENT}')
    return mediapipe


def mesh_triangles(edges):
    """Triangles of a triangle mesh given by its edges (every 3-cycle of the edge graph).

    Args:
        edges (Iterable[tuple[int, int]]): Undirected edges (e.g. mediapipe's ``FACEMESH_TESSELATION``).

    Returns:
        np.ndarray: ``(M, 3)`` int64 vertex indices, sorted.
    """
    adjacency = {}
    for a, b in edges:
        if a != b:
            adjacency.setdefault(int(a), set()).add(int(b))
            adjacency.setdefault(int(b), set()).add(int(a))
    tris = {tuple(sorted((a, b, c))) for a in adjacency for b in adjacency[a] for c in adjacency[a] & adjacency[b]}
    return np.array(sorted(tris), dtype=np.int64).reshape(-1, 3)


def rasterize_depth(uvz, height, width, triangles=None):
    """Rasterise a triangle mesh given in normalised image coordinates, interpolating ``z`` barycentrically.

    Args:
        uvz (np.ndarray): ``(N, 3)`` vertices: ``u`` (fraction of the width), ``v`` (fraction of the height), ``z``.
        height (int): Map height.
        width (int): Map width.
        triangles (np.ndarray, optional): ``(M, 3)`` vertex indices; default the Delaunay triangulation of the
            ``(u * W, v * H)`` positions (it covers their convex hull).

    Returns:
        tuple: ``z`` ``(H, W)`` float32 (0 outside) and ``mask`` ``(H, W)`` bool (pixel centre inside a triangle;
        where triangles overlap the smallest ``z``, the closest, wins).
    """
    uvz = np.asarray(uvz, dtype=np.float64)
    if uvz.ndim != 2 or uvz.shape[1] != 3 or len(uvz) < 3:
        raise ValueError(f'rasterize_depth needs (N >= 3, 3) vertices (u, v, z), got shape {uvz.shape}')
    xy = uvz[:, :2] * np.array([width, height], dtype=np.float64)
    if triangles is None:
        from scipy.spatial import Delaunay
        triangles = Delaunay(xy).simplices
    zbuf = np.full((height, width), np.inf)
    for tri in np.asarray(triangles, dtype=np.int64):
        (x0, y0), (x1, y1), (x2, y2) = xy[tri]
        det = (y1 - y2) * (x0 - x2) + (x2 - x1) * (y0 - y2)
        if abs(det) < 1e-12:
            continue
        j0, j1 = max(int(np.floor(min(x0, x1, x2) - 0.5)), 0), min(int(np.ceil(max(x0, x1, x2) - 0.5)), width - 1)
        i0, i1 = max(int(np.floor(min(y0, y1, y2) - 0.5)), 0), min(int(np.ceil(max(y0, y1, y2) - 0.5)), height - 1)
        if j0 > j1 or i0 > i1:
            continue
        px, py = np.meshgrid(np.arange(j0, j1 + 1) + 0.5, np.arange(i0, i1 + 1) + 0.5)
        w0 = ((y1 - y2) * (px - x2) + (x2 - x1) * (py - y2)) / det
        w1 = ((y2 - y0) * (px - x2) + (x0 - x2) * (py - y2)) / det
        w2 = 1.0 - w0 - w1
        inside = (w0 >= -1e-9) & (w1 >= -1e-9) & (w2 >= -1e-9)
        z = w0 * uvz[tri[0], 2] + w1 * uvz[tri[1], 2] + w2 * uvz[tri[2], 2]
        region = zbuf[i0:i1 + 1, j0:j1 + 1]
        np.copyto(region, z, where=inside & (z < region))
    mask = np.isfinite(zbuf)
    return np.where(mask, zbuf, 0.0).astype(np.float32), mask


def landmarks_to_depth(uvz, height, width, triangles=None, distance=FFHQ_RADIUS,
                       width_world=FFHQ_RADIUS / FFHQ_FOCAL):
    """FaceMesh landmarks -> z-depth-like map in world units (module docstring), background 0.

    Args:
        uvz (np.ndarray): ``(N, 3)`` landmarks (``x``, ``y``, ``z`` as FaceMesh returns them).
        height (int): Map height.
        width (int): Map width.
        triangles (np.ndarray, optional): ``(M, 3)`` mesh triangles (default Delaunay, see :func:`rasterize_depth`).
        distance (float): Depth of ``z = 0`` (camera to head centre; EG3D FFHQ 2.7).
        width_world (float): World size of one image width at that distance (2.7 / 4.2647 = 0.633).

    Returns:
        np.ndarray: ``(H, W)`` float32 depth (``> 0`` on the face, 0 elsewhere).
    """
    z, mask = rasterize_depth(uvz, height, width, triangles)
    depth = np.maximum(distance + width_world * z, 1e-3)
    return np.where(mask, depth, 0.0).astype(np.float32)


class FaceMeshDepth:
    """mediapipe FaceMesh -> dense depth maps (the FaceMesh graph is created on first use, per process).

    Args:
        refine_landmarks (bool): 478 landmarks (with irises) instead of 468.
        min_detection_confidence (float): FaceMesh face-detection threshold.
    """

    def __init__(self, refine_landmarks=True, min_detection_confidence=0.5):
        self.mp = import_mediapipe()
        self.refine_landmarks, self.min_detection_confidence = bool(refine_landmarks), float(min_detection_confidence)
        self._mesh = None
        tess = getattr(self.mp.solutions.face_mesh, 'FACEMESH_TESSELATION', None)
        self.triangles = mesh_triangles(tess) if tess else None

    def __getstate__(self):
        state = dict(self.__dict__)
        state['_mesh'], state['mp'] = None, None  # neither pickles; rebuilt in the worker
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.mp = import_mediapipe()

    def landmarks(self, rgb):
        """``(N, 3)`` float64 landmarks of the first face of an ``H x W x 3`` RGB image, or None without a face.

        Args:
            rgb (np.ndarray): uint8 RGB, or float RGB in ``[0, 1]``.
        """
        if rgb.dtype != np.uint8:
            rgb = (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)
        if self._mesh is None:
            self._mesh = self.mp.solutions.face_mesh.FaceMesh(
                static_image_mode=True, max_num_faces=1, refine_landmarks=self.refine_landmarks,
                min_detection_confidence=self.min_detection_confidence)
        with warnings.catch_warnings():  # protobuf's deprecation warning, once per call of mediapipe 0.10.14
            warnings.filterwarnings('ignore', message='SymbolDatabase.GetPrototype', category=UserWarning)
            result = self._mesh.process(np.ascontiguousarray(rgb))
        faces = getattr(result, 'multi_face_landmarks', None)
        if not faces:
            return None
        return np.array([(p.x, p.y, p.z) for p in faces[0].landmark], dtype=np.float64)

    def depth(self, rgb):
        """``(H, W)`` float32 depth map of an RGB image (all zeros when no face is found)."""
        pts = self.landmarks(rgb)
        if pts is None:
            return np.zeros(rgb.shape[:2], dtype=np.float32)
        return landmarks_to_depth(pts, rgb.shape[0], rgb.shape[1], self.triangles)


class DepthCache:
    """``<folder>/<name>.npy`` depth maps, written once and atomically (temporary file + rename).

    Args:
        folder (str): Cache folder (created).
    """

    def __init__(self, folder):
        if not folder:
            raise ValueError('a depth cache needs a folder')
        self.folder = folder
        os.makedirs(folder, exist_ok=True)

    def path(self, name):
        """Cache file of image ``name``."""
        return osp.join(self.folder, name + '.npy')

    def has(self, name):
        """Whether ``name`` is cached."""
        return osp.isfile(self.path(name))

    def get(self, name, compute):
        """The cached map of ``name``; computed by ``compute()`` and stored when missing."""
        path = self.path(name)
        if osp.isfile(path):
            return np.load(path).astype(np.float32)
        depth = np.asarray(compute(), dtype=np.float32)

        def write(tmp):
            with open(tmp, 'wb') as f:  # a file object: np.save would append .npy to a path
                np.save(f, depth)

        atomic_write(path, write)
        return depth
