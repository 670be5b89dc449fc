"""Externally computed tri-planes (EG3D-space encoders such as GOAE, TriPlaneNet or an LP3D port): file format,
validation and mirroring (``docs/prior3d.md`` sections 1.2 and 2).

File format, one file per image, ``<triplane_dir>/<image stem>.pt`` (``torch.save`` of a dict):

* ``planes``: float tensor ``(3, C, R, R)`` (any float dtype; fp16 halves the disk use), planes in the order and
  axis convention of the encoder (EG3D: channel blocks 0-31, 32-63, 64-95 of the backbone output are planes
  0, 1, 2, i.e. ``planes = backbone_out.view(3, 32, R, R)``);
* ``camera``: ``(25,)`` EG3D label of the image (cam2world 4x4 row-major + normalised intrinsics 3x3), the camera
  the encoder was given (EG3D "in the wild" preprocessing);
* ``plane_axes`` (optional str): ``'eg3d'`` or ``'xyz'``; when present it must equal the dataset's
  ``triplane_axes``.

The decoder weights that render these planes (EG3D's ``OSGDecoder``) are converted by
:mod:`lowlight3d.archs.eg3d_conversion` (next to the renderer they fill).  This module only reads tensors; the toolkit
ships no external weights.
"""
import os.path as osp

import torch

__all__ = ['TRIPLANE_AXES', 'read_triplane_file', 'mirror_planes', 'ExternalTriplaneDir']

#: Plane conventions (see ``lowlight3d.archs.triplane_renderer_arch.PLANE_AXES``).
TRIPLANE_AXES = ('eg3d', 'xyz')


def _check_axes(plane_axes, where):
    if plane_axes not in TRIPLANE_AXES:
        raise ValueError(f"{where}: plane axes must be one of {TRIPLANE_AXES} ('eg3d' for tri-planes of EG3D-space "
                         f"encoders), got {plane_axes!r}")


def read_triplane_file(path, plane_axes='eg3d'):
    """Read and validate one external tri-plane file.

    Args:
        path (str): ``<stem>.pt`` file (format in the module docstring).
        plane_axes (str): Convention the caller expects; a ``plane_axes`` tag in the file must match it.

    Returns:
        tuple: ``planes`` float32 ``(3, C, R, R)`` and ``camera`` float32 ``(25,)``.

    Raises:
        FileNotFoundError: The file does not exist.
        ValueError: Unreadable file, missing keys, wrong shapes/dtypes, non-finite values or a plane-axes mismatch.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'tri-plane file {path} does not exist')
    try:
        data = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as err:  # torch raises several types for corrupt or non-tensor pickles
        raise ValueError(f'tri-plane file {path} cannot be read ({type(err).__name__}: {err}); write it with '
                         "torch.save({'planes': tensor, 'camera': tensor}, path)") from err
    if not isinstance(data, dict) or 'planes' not in data or 'camera' not in data:
        keys = list(data) if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"tri-plane file {path} must hold a dict with 'planes' (3, C, R, R) and 'camera' (25,); "
                         f'got {keys}')
    planes, camera = data['planes'], data['camera']
    if not torch.is_tensor(planes) or not planes.is_floating_point() or planes.ndim != 4 or planes.shape[0] != 3 \
            or planes.shape[2] != planes.shape[3]:
        desc = f'{planes.dtype} {tuple(planes.shape)}' if torch.is_tensor(planes) else type(planes).__name__
        raise ValueError(f"tri-plane file {path}: 'planes' must be a float tensor (3, C, R, R) (3 square planes of C "
                         f'channels; EG3D: backbone output .view(3, 32, 256, 256)), got {desc}')
    camera = torch.as_tensor(camera)
    if camera.shape != (25, ) or not camera.is_floating_point():
        raise ValueError(f"tri-plane file {path}: 'camera' must be a float tensor of shape (25,) (EG3D label: "
                         f'cam2world 4x4 + intrinsics 3x3), got {camera.dtype} {tuple(camera.shape)}')
    tag = data.get('plane_axes')
    if tag is not None and tag != plane_axes:
        raise ValueError(f"tri-plane file {path} says plane_axes {tag!r} but the dataset reads {plane_axes!r} planes; "
                         'set the dataset option triplane_axes')
    planes, camera = planes.float(), camera.float()
    if not (torch.isfinite(planes).all() and torch.isfinite(camera).all()):
        raise ValueError(f'tri-plane file {path} holds NaN or infinite values')
    return planes.contiguous(), camera.contiguous()


def mirror_planes(planes, plane_axes='eg3d'):
    """Tri-planes of the scene mirrored by ``x -> -x`` (the horizontal flip of the image).

    Same operation as :func:`lowlight3d.archs.triplane_renderer_arch.mirror_triplane` (kept here because data may
    not import archs; a test checks that both agree): ``'eg3d'`` flips planes 0 ``(x, y)`` and 1 ``(x, z)`` along
    the width and plane 2 ``(z, x)`` along the height; ``'xyz'`` flips planes 0 and 1 along the width only.

    Args:
        planes (torch.Tensor): ``(..., 3, C, R, R)``.
        plane_axes (str): ``'eg3d'`` or ``'xyz'``.

    Returns:
        torch.Tensor: Mirrored planes (a new tensor).
    """
    _check_axes(plane_axes, 'mirror_planes')
    p0, p1, p2 = planes.unbind(-4)
    p2 = p2.flip(-2) if plane_axes == 'eg3d' else p2
    return torch.stack([p0.flip(-1), p1.flip(-1), p2], dim=-4)


class ExternalTriplaneDir:
    """A folder of ``<stem>.pt`` tri-plane files for a list of images.

    Args:
        folder (str): The folder.
        names (list[str]): Image stems that must all have a file (checked at construction).
        plane_axes (str): Convention of the planes (``'eg3d'`` for EG3D-space encoders).
        where (str): Owner's name for error messages (e.g. the dataset name).
    """

    def __init__(self, folder, names, plane_axes='eg3d', where='triplane_dir'):
        _check_axes(plane_axes, where)
        if not folder or not osp.isdir(folder):
            raise FileNotFoundError(f'{where}: triplane_dir {folder!r} is not a folder (expected <image stem>.pt '
                                    "files holding {'planes': (3, C, R, R), 'camera': (25,)})")
        self.folder, self.plane_axes, self.where = folder, plane_axes, where
        missing = [n for n in names if not osp.isfile(self.path(n))]
        if missing:
            raise FileNotFoundError(f'{where}: {len(missing)} of {len(names)} images have no tri-plane file in '
                                    f'{folder} (first missing: {self.path(missing[0])})')

    def path(self, name):
        """File of image ``name``."""
        return osp.join(self.folder, name + '.pt')

    def load(self, name):
        """``(planes (3, C, R, R), camera (25,))`` of image ``name`` (validated)."""
        path = self.path(name)
        if not osp.isfile(path):
            raise FileNotFoundError(f'{self.where}: no tri-plane file {path} for image {name!r} in triplane_dir '
                                    f'{self.folder}')
        return read_triplane_file(path, self.plane_axes)
