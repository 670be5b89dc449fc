"""Cameras of the demo faces (EG3D convention): look-at cameras, 25-d labels, pixel rays and depth conversion."""
import math

import numpy as np

__all__ = ['CAMERA_RADIUS', 'FOCAL', 'FOV_DEG', 'RAY_NEAR', 'RAY_FAR', 'intrinsics_matrix', 'camera_from_angles',
           'camera_label', 'camera_from_label', 'generate_rays', 'zdepth_to_ray_distance']

CAMERA_RADIUS = 2.7
FOCAL = 2985.29 / 700.0  # 4.26470, EG3D FFHQ labels
FOV_DEG = 18.837  # diagonal field of view matching FOCAL (EG3D's FOV_to_intrinsics argument)
RAY_NEAR = 2.25  # EG3D FFHQ ray_start
RAY_FAR = 3.3  # EG3D FFHQ ray_end


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
