"""Built-in demo data set: procedurally rendered synthetic faces with exact depth and EG3D cameras.

Nothing is downloaded. Every face is an implicit 3D head (a smooth union of signed-distance primitives:
skull, face mass, cheeks, chin, brow ridges, nose, lips, ears, eye sockets with eyeballs and eyelids,
neck and a hair cap) rendered by vectorised sphere tracing in numpy.

Conventions (the same as EG3D; see ``docs/prior3d.md`` sections 1.4 and 1.7):

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

Layout of this sub-package (one concept per module; ``_`` names are shared between its modules only):

* :mod:`~lowlight3d.data.demo_faces.cameras`: constants, look-at cameras, labels, pixel rays, depth conversion;
* :mod:`~lowlight3d.data.demo_faces.sdf`: SDF primitives, sphere tracing, :func:`render_sdf`;
* :mod:`~lowlight3d.data.demo_faces.geometry`: :class:`FaceModel` (the head's shape);
* :mod:`~lowlight3d.data.demo_faces.colour` and :mod:`~lowlight3d.data.demo_faces.materials`: colour helpers and
  the face's albedo / specular layers;
* :mod:`~lowlight3d.data.demo_faces.parameters`: random face parameters from ``(seed, split, index)``;
* :mod:`~lowlight3d.data.demo_faces.rendering`: shading, anti-aliasing, sensor noise, :func:`render_face`;
* :mod:`~lowlight3d.data.demo_faces.dataset_writer`: the data set on disk, :func:`generate_demo_dataset`.

The public names of these modules are re-exported here (``from lowlight3d.data.demo_faces import
generate_demo_dataset``).
"""
from lowlight3d.data.demo_faces.cameras import (  # noqa: F401 (module-level names, not in __all__)
                                                CAMERA_RADIUS,
                                                FOCAL,
                                                FOV_DEG,
                                                RAY_FAR,
                                                RAY_NEAR,
                                                camera_from_angles,
                                                camera_from_label,
                                                camera_label,
                                                generate_rays,
                                                intrinsics_matrix,
                                                zdepth_to_ray_distance,
)
from lowlight3d.data.demo_faces.dataset_writer import (
                                                demo_dataset_meta,
                                                generate_demo_dataset,
                                                is_demo_dataset_complete,
                                                write_unpaired_split,
)
from lowlight3d.data.demo_faces.geometry import FaceModel
from lowlight3d.data.demo_faces.parameters import (
                                                GENERATOR_VERSION,
                                                SKIN_TONES_SRGB,
                                                face_params_for,
                                                mirror_params,
                                                sample_face_params,
                                                sample_lowlight_params,
)
from lowlight3d.data.demo_faces.rendering import depth_to_vis, make_demo_face, render_face
from lowlight3d.data.demo_faces.sdf import render_sdf, sphere_trace

__all__ = [
    'GENERATOR_VERSION', 'CAMERA_RADIUS', 'FOCAL', 'FOV_DEG', 'SKIN_TONES_SRGB', 'camera_from_angles',
    'camera_label', 'camera_from_label', 'intrinsics_matrix', 'generate_rays', 'zdepth_to_ray_distance',
    'sphere_trace', 'render_sdf', 'FaceModel', 'sample_face_params', 'sample_lowlight_params',
    'mirror_params', 'face_params_for', 'render_face', 'make_demo_face', 'depth_to_vis', 'demo_dataset_meta',
    'is_demo_dataset_complete', 'write_unpaired_split', 'generate_demo_dataset'
]
