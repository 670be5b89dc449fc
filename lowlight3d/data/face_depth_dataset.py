"""Normal-light faces with depth, mask and EG3D camera: training data of the 3D feature generator and of the
tri-plane DDPM.

Layout (the demo faces, ``lowlight3d.data.demo_faces``): ``<split>/gt/<name>.png``, ``<split>/depth/<name>.npy``
(float32 z-depth, background 0), ``<split>/mask/<name>.png`` and ``<split>/cameras.json`` (``name -> 25 floats``).

Options (defaults in brackets), besides those of
:class:`~lowlight3d.data.lowlight_face_dataset.PairedLowLightFaceDataset`
(``dataroot_gt``, ``phase``, ``seed``, ``gt_size`` [256], ``use_hflip`` [True], ``io_backend``, ``meta_info_file``):

* ``depth_source`` [null]: where depth comes from: ``files`` (``dataroot_depth``: ``<name>.npy`` z-depth maps, e.g.
  the demo faces' exact depth, or depth maps cached by an external tool), ``mediapipe`` (FaceMesh depth of the
  normal-light image, :mod:`lowlight3d.data.mediapipe_depth`; relative depth: use ``MaskedDepthLoss``
  ``fit: scale_shift``) or null (no depth: the depth loss is off).
* ``depth_cache_dir`` (required with ``mediapipe``): ``<name>.npy`` maps computed once (at the output size
  ``gt_size``, before any flip) and reused; mediapipe (optional extra, ``pip install mediapipe==0.10.14``) is
  only imported when some map is not cached yet.  Images without a detected face get ``has_depth`` false.
* ``dataroot_depth``, ``dataroot_mask`` [null]: folders of depth maps and foreground masks (mask default:
  ``depth > 0`` when depth is known, else all ones; with ``mediapipe`` that is the landmarks' hull, face only:
  use an ``inside_only`` opacity loss or give masks).
* ``camera_file`` [null]: json ``name -> 25 floats``; without it every image gets the canonical FFHQ camera.
* ``triplane_dir`` [null]: externally computed tri-planes, ``<name>.pt`` per image holding ``planes`` ``(3, C, R, R)``
  and ``camera`` ``(25,)`` (format: :mod:`lowlight3d.data.external_triplanes`); returned as ``planes`` and
  ``camera`` (the file's camera overrides ``camera_file``).  Every image must have a file (checked at start).
* ``triplane_axes`` [``eg3d``]: plane convention of those files (``eg3d`` for EG3D-space encoders, ``xyz``), used
  to mirror them.
* ``lowlight`` [False]: also return ``lq``, synthesised from the (resized, possibly flipped) ground truth by the
  same :class:`~lowlight3d.data.lowlight_degradation.LowLightDegradation` with the same draws as
  ``PairedLowLightFaceDataset`` (same ``seed``/epoch/index -> identical ``lq``); ``degradation`` as there.

A horizontal flip (train phase) flips image, depth and mask and mirrors the camera (``S P S``) and the external
tri-planes (``x -> -x``, :func:`~lowlight3d.data.external_triplanes.mirror_planes`), so that rendering the returned
planes from the returned camera gives the flip of the un-flipped render.  Per-sample
randomness comes from (seed, epoch, index) in training and (seed, name) otherwise
(:mod:`lowlight3d.data.seeding`).
"""
import json
import os.path as osp

import cv2
import numpy as np
import torch

from lowlight3d.data.external_triplanes import ExternalTriplaneDir, mirror_planes
from lowlight3d.data.lowlight_degradation import LowLightDegradation
from lowlight3d.data.lowlight_face_dataset import _LowLightBase, img_to_tensor, resize_image
from lowlight3d.data.mediapipe_depth import DepthCache, FaceMeshDepth
from lowlight3d.data.seeding import STREAM_PAIRED
from lowlight3d.utils.camera import canonical_label, mirror_label
from lowlight3d.utils.registry import DATASET_REGISTRY, register

__all__ = ['FaceDepthDataset', 'DEPTH_SOURCES']

#: Supported ``depth_source`` values.
DEPTH_SOURCES = ('files', 'mediapipe', None)


@register(DATASET_REGISTRY)
class FaceDepthDataset(_LowLightBase):
    """Normal-light face + optional depth/mask + camera (+ optional synthetic low-light input).

    Returns from ``__getitem__``:
        dict: ``gt`` (3 x H x W in [0, 1]), ``mask`` (1 x H x W in {0, 1}), ``camera`` (25,), ``has_depth`` (bool
        tensor), ``depth`` (1 x H x W z-depth, 0 where unknown), ``gt_path``, ``lq_path`` (= ``gt_path``),
        ``lq`` with ``lowlight: true`` and ``planes`` (3 x C x R x R) with ``triplane_dir``.
    """

    def __init__(self, opt):
        super().__init__(opt, 'dataroot_gt', STREAM_PAIRED)
        self.depth_source = self.opt.get('depth_source')
        if self.depth_source not in DEPTH_SOURCES:
            raise ValueError(f'{self.name}: depth_source must be one of {DEPTH_SOURCES}, got {self.depth_source!r}')
        self.depth_root = self.opt.get('dataroot_depth')
        if self.depth_source == 'files' and not (self.depth_root and osp.isdir(self.depth_root)):
            raise FileNotFoundError(f"{self.name}: depth_source: files needs dataroot_depth, a folder of <name>.npy "
                                    f"z-depth maps; got {self.depth_root!r}")
        self.depth_cache, self.face_mesh = None, None
        if self.depth_source == 'mediapipe':
            if not self.opt.get('depth_cache_dir'):
                raise ValueError(f'{self.name}: depth_source: mediapipe needs depth_cache_dir, a folder where the '
                                 'FaceMesh depth maps are cached (<name>.npy, computed once)')
            self.depth_cache = DepthCache(self.opt['depth_cache_dir'])
            if not all(self.depth_cache.has(n) for n in self.source.names):
                self.face_mesh = FaceMeshDepth()  # raises ImportError with the pip command when mediapipe is missing
        self.mask_root = self.opt.get('dataroot_mask')
        self.cameras = None
        if self.opt.get('camera_file'):
            path = self.opt['camera_file']
            if not osp.isfile(path):
                raise FileNotFoundError(f"{self.name}: camera_file {path!r} does not exist (a json of name -> 25 "
                                        'EG3D camera numbers, e.g. datasets/demo_faces/train/cameras.json)')
            with open(path) as f:
                self.cameras = {k: np.asarray(v, dtype=np.float32) for k, v in json.load(f).items()}
            missing = [n for n in self.source.names if n not in self.cameras]
            if missing:
                raise KeyError(f'{self.name}: {len(missing)} images have no camera in {path} (first: {missing[0]})')
        self.triplanes = None
        if self.opt.get('triplane_dir'):
            self.triplanes = ExternalTriplaneDir(self.opt['triplane_dir'], self.source.names,
                                                 self.opt.get('triplane_axes', 'eg3d'), where=self.name)
        self.lowlight = bool(self.opt.get('lowlight', False))
        self.degradation = LowLightDegradation.from_opt(self.opt.get('degradation') or {}) if self.lowlight else None

    def _read_depth(self, name):
        path = osp.join(self.depth_root, name + '.npy')
        if not osp.isfile(path):
            raise FileNotFoundError(f'{self.name}: no depth map {path} for image {name!r}')
        return np.load(path).astype(np.float32)

    def _face_mesh(self):
        if self.face_mesh is None:  # a map went missing after start-up
            self.face_mesh = FaceMeshDepth()
        return self.face_mesh

    def _read_mask(self, name):
        path = osp.join(self.mask_root, name + '.png')
        mask = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
        if mask is None:
            raise FileNotFoundError(f'{self.name}: cannot read mask {path} for image {name!r}')
        return (mask > 127).astype(np.float32)

    def _resize_map(self, arr):
        if self.size is None or tuple(arr.shape) == tuple(self.size):
            return arr
        return cv2.resize(arr, (self.size[1], self.size[0]), interpolation=cv2.INTER_NEAREST)

    def __getitem__(self, index):
        seed_index, i = self._check_index(index)
        j, gt = self._load(i)
        name = self.source.names[j]
        rng = self._sample_rng(seed_index if self.is_train else None, name)
        gt = resize_image(gt, self.size)
        flip = rng.random() < 0.5 and self.is_train and self.use_hflip  # drawn as in PairedLowLightFaceDataset
        depth = None
        if self.depth_source == 'files':
            depth = self._resize_map(self._read_depth(name))
        elif self.depth_source == 'mediapipe':
            depth = self._resize_map(self.depth_cache.get(name, lambda: self._face_mesh().depth(gt)))
            depth = depth if depth.any() else None  # no face found: no depth for this image
        if self.mask_root:
            mask = self._resize_map(self._read_mask(name))
        elif depth is not None:
            mask = (depth > 0).astype(np.float32)
        else:
            mask = np.ones(gt.shape[:2], dtype=np.float32)
        camera = torch.from_numpy(self.cameras[name].copy()) if self.cameras is not None else canonical_label(1)[0]
        planes = None
        if self.triplanes is not None:
            planes, camera = self.triplanes.load(name)
        if flip:
            gt, mask = gt[:, ::-1], mask[:, ::-1]
            depth = depth[:, ::-1] if depth is not None else None
            camera = mirror_label(camera[None])[0]
            planes = mirror_planes(planes, self.triplanes.plane_axes) if planes is not None else None
        out = {
            'gt': img_to_tensor(np.ascontiguousarray(gt)),
            'mask': torch.from_numpy(np.ascontiguousarray(mask))[None],
            'depth': torch.from_numpy(np.ascontiguousarray(depth))[None] if depth is not None else
            torch.zeros(1, *gt.shape[:2]),
            'has_depth': torch.tensor(depth is not None),
            'camera': camera.float(),
            'gt_path': self.source.path(j),
            'lq_path': self.source.path(j),
        }
        if planes is not None:
            out['planes'] = planes
        if self.lowlight:
            lq, _ = self.degradation(np.ascontiguousarray(gt), rng)
            out['lq'] = img_to_tensor(lq)
        return out
