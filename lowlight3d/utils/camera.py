"""EG3D cameras as torch tensors: the 25-d label, rays, mirror cameras and projection back to a valid pose.

Conventions (EG3D, see ``docs/prior3d.md`` sections 1.4 and 1.7): OpenCV camera axes (x right, y down, z forward),
world y up with the face looking towards +z; label = cam2world 4x4 flattened row-major followed by the 3x3
intrinsics normalised by the image size (``fx = fy = FFHQ_FOCAL``, ``cx = cy = 0.5``).  Pure math: used by the
tri-plane renderer (archs) and by the face datasets (data), so it lives in ``utils``.
"""
import math

import torch

__all__ = [
    'FFHQ_FOCAL', 'FFHQ_RADIUS', 'RAY_NEAR', 'RAY_FAR', 'intrinsics_tensor', 'look_at_label', 'canonical_label',
    'split_label', 'make_label', 'mirror_label', 'project_label', 'camera_rays'
]

FFHQ_FOCAL = 2985.29 / 700.0  # 4.26470: EG3D FFHQ labels
FFHQ_RADIUS = 2.7
RAY_NEAR = 2.25
RAY_FAR = 3.3


def intrinsics_tensor(focal=FFHQ_FOCAL, cx=0.5, cy=0.5, dtype=torch.float32):
    """Normalised 3x3 pinhole intrinsics ``[[f, 0, cx], [0, f, cy], [0, 0, 1]]``."""
    return torch.tensor([[focal, 0.0, cx], [0.0, focal, cy], [0.0, 0.0, 1.0]], dtype=dtype)


def make_label(cam2world, intrinsics):
    """Pack ``cam2world (B, 4, 4)`` and ``intrinsics (B, 3, 3)`` into labels ``(B, 25)``."""
    return torch.cat([cam2world.reshape(-1, 16), intrinsics.reshape(-1, 9)], dim=1)


def split_label(label):
    """Unpack labels ``(B, 25)`` into ``(cam2world (B, 4, 4), intrinsics (B, 3, 3))``.

    Raises:
        ValueError: If the last dimension is not 25.
    """
    if label.ndim != 2 or label.shape[1] != 25:
        raise ValueError(f'camera labels must have shape (B, 25) (EG3D: cam2world 4x4 + intrinsics 3x3), '
                         f'got {tuple(label.shape)}')
    return label[:, :16].reshape(-1, 4, 4), label[:, 16:].reshape(-1, 3, 3)


def look_at_label(yaw_deg, pitch_deg, radius=FFHQ_RADIUS, target=(0.0, 0.0, 0.0), focal=FFHQ_FOCAL):
    """Label of a look-at camera on a sphere around ``target`` (same formula as the demo faces).

    The centre is ``target + radius * (cos p sin y, -sin p, cos p cos y)``: yaw > 0 moves the camera towards +x,
    pitch > 0 below the face; yaw = pitch = 0 with target 0 is the EG3D canonical FFHQ camera.

    Args:
        yaw_deg (float): Horizontal angle in degrees.
        pitch_deg (float): Vertical angle in degrees.
        radius (float): Distance to ``target``.
        target (tuple): Look-at point.
        focal (float): Normalised focal length.

    Returns:
        torch.Tensor: ``(25,)`` float32 label.
    """
    yaw, pitch = math.radians(yaw_deg), math.radians(pitch_deg)
    tgt = torch.tensor(target, dtype=torch.float64)
    pos = tgt + radius * torch.tensor([math.cos(pitch) * math.sin(yaw), -math.sin(pitch),
                                       math.cos(pitch) * math.cos(yaw)], dtype=torch.float64)
    fwd = (tgt - pos) / torch.linalg.norm(tgt - pos)
    up = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)
    right = -torch.linalg.cross(up, fwd)
    right = right / torch.linalg.norm(right)
    down = torch.linalg.cross(fwd, right)
    c2w = torch.eye(4, dtype=torch.float64)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, down / torch.linalg.norm(down), fwd, pos
    return make_label(c2w[None], intrinsics_tensor(focal, dtype=torch.float64)[None])[0].float()


def canonical_label(batch=1, device=None):
    """The EG3D canonical frontal FFHQ camera, ``(batch, 25)``: camera at (0, 0, 2.7) looking at the origin."""
    return look_at_label(0.0, 0.0).to(device).expand(batch, 25).clone()


def mirror_label(label):
    """Camera of the horizontally mirrored image: ``S P S`` with ``S = diag(-1, 1, 1, 1)``, ``cx -> 1 - cx``.

    Rendering a scene mirrored by ``x -> -x`` from ``mirror_label(c)`` gives the horizontal flip of rendering the
    scene from ``c``.

    Args:
        label (torch.Tensor): ``(B, 25)`` labels.

    Returns:
        torch.Tensor: ``(B, 25)`` mirrored labels.
    """
    c2w, k = split_label(label)
    s = torch.diag(torch.tensor([-1.0, 1.0, 1.0, 1.0], dtype=label.dtype, device=label.device))
    c2w = s @ c2w @ s
    k = k.clone()
    k[:, 0, 2] = 1.0 - k[:, 0, 2]
    k[:, 0, 1] = -k[:, 0, 1]
    return make_label(c2w, k)


def project_label(label, radius=FFHQ_RADIUS, intrinsics=None, target=(0.0, 0.0, 0.0)):
    """Turn a predicted (noisy) label into a valid camera.

    The rotation is projected onto SO(3) (SVD), the camera centre is put back on the sphere of ``radius`` around
    ``target`` (the optical axis is kept), the last row is ``(0, 0, 0, 1)`` and the intrinsics are replaced by
    ``intrinsics`` (default EG3D FFHQ).

    Args:
        label (torch.Tensor): ``(B, 25)``.
        radius (float): Camera distance to ``target``; ``None`` keeps the predicted position.
        intrinsics (torch.Tensor, optional): ``(3, 3)`` intrinsics.
        target (tuple): Look-at point of the camera sphere.

    Returns:
        torch.Tensor: ``(B, 25)`` float32 labels.
    """
    c2w, _ = split_label(label.double())
    u, _, vh = torch.linalg.svd(c2w[:, :3, :3])
    det = torch.linalg.det(u @ vh)
    fix = torch.ones(label.shape[0], 3, dtype=u.dtype, device=u.device)
    fix[:, 2] = torch.sign(det)
    rot = u @ torch.diag_embed(fix) @ vh
    pos = c2w[:, :3, 3]
    if radius is not None:
        tgt = torch.tensor(target, dtype=pos.dtype, device=pos.device)
        pos = tgt - rot[:, :, 2] * radius  # on the optical axis through the target
    out = torch.eye(4, dtype=torch.float64, device=label.device).repeat(label.shape[0], 1, 1)
    out[:, :3, :3], out[:, :3, 3] = rot, pos
    k = intrinsics_tensor(dtype=torch.float64) if intrinsics is None else intrinsics.double()
    return make_label(out, k.to(label.device).expand(label.shape[0], 3, 3)).float()


def camera_rays(label, height, width=None):
    """World rays through the pixel centres (row-major), EG3D convention.

    Pixel ``(i, j)`` has ``u = (j + 0.5) / W``, ``v = (i + 0.5) / H`` and camera direction
    ``((u - cx - skew * y) / fx, (v - cy) / fy, 1)``, rotated by cam2world and normalised.

    Args:
        label (torch.Tensor): ``(B, 25)`` camera labels.
        height (int): Image height.
        width (int, optional): Image width (default ``height``).

    Returns:
        tuple: ``origins (B, H*W, 3)``, ``dirs (B, H*W, 3)`` unit vectors and ``zscale (B, H*W)`` = cosine between
        ray and optical axis (z-depth = ray distance * zscale).
    """
    width = height if width is None else width
    c2w, k = split_label(label)
    dtype, device = label.dtype, label.device
    v = (torch.arange(height, dtype=dtype, device=device) + 0.5) / height
    u = (torch.arange(width, dtype=dtype, device=device) + 0.5) / width
    vv, uu = torch.meshgrid(v, u, indexing='ij')
    uu, vv = uu.reshape(1, -1), vv.reshape(1, -1)
    fx, fy, cx, cy, sk = k[:, 0, 0:1], k[:, 1, 1:2], k[:, 0, 2:3], k[:, 1, 2:3], k[:, 0, 1:2]
    y = (vv - cy) / fy
    x = (uu - cx - sk * y) / fx
    dirs_cam = torch.stack([x, y, torch.ones_like(x)], dim=-1)
    norm = dirs_cam.norm(dim=-1, keepdim=True)
    dirs = (dirs_cam / norm) @ c2w[:, :3, :3].transpose(1, 2)
    origins = c2w[:, None, :3, 3].expand_as(dirs)
    return origins, dirs, 1.0 / norm[..., 0]
