"""Low-light faces with per-image annotations: a parsing mask, an identity label and unpaired contrast images.

What Low-FaceNet trains on (``docs/baselines.md`` section 5).  Per item:

* ``lq`` (and ``gt`` when the low-light domain is synthesised from normal-light faces), from a wrapped low-light
  dataset of this package (``low`` block: :class:`~lowlight3d.data.lowlight_face_dataset.UnpairedLowLightDataset`
  for real low-light files, :class:`~lowlight3d.data.lowlight_face_dataset.PairedLowLightFaceDataset` for inputs
  synthesised on the fly);
* ``mask``: ``H x W`` int64 labels of LaPa's 11 classes (:data:`~lowlight3d.data.facemesh_parsing.LAPA_CLASSES`),
  resized with nearest neighbours and flipped with the image (left/right classes swapped);
* ``identity``: the identity name (a string; the face loss maps it to its gallery index);
* ``pos`` / ``neg`` (when a ``contrast`` block is given): one normal-light and one low-light image drawn at random
  from the unpaired contrast folders, resized to the training size (a batch of N has N of each).

Folder layout (LaPa-Face as Low-FaceNet distributes it; any names work, the files are matched by their stem)::

    LaPa-Face/
      underexposed/Aaron_Eckhart_0001.jpg   low-light inputs          (low: {type: UnpairedLowLightDataset, ...})
      normal/Aaron_Eckhart_0001.jpg         normal-light versions     (the face loss's gallery; FaceMesh source)
      seg/Aaron_Eckhart_0001.png            uint8 labels 0-10         (parsing.dataroot_seg)
    Contrast/high/*.png, Contrast/low/*.png unpaired positives / negatives (contrast.positive / contrast.negative)

Options (besides ``low``): ``phase``, ``seed``, ``gt_size``, ``use_hflip``, ``skip_corrupt``, ``extensions``,
``recursive`` (defaults for every part);

* ``parsing``: either ``{dataroot_seg: <folder of <stem>.png masks>}`` or ``{cache: <folder>, facemesh_from:
  <folder of normal-light <stem>.* images> | ~}``: masks derived from mediapipe FaceMesh landmarks
  (:mod:`lowlight3d.data.facemesh_parsing`) and cached as ``<cache>/<stem>.png``; ``facemesh_from: ~`` derives
  them from the sample's own ground truth (synthesised pairs).  Missing masks are all derived when the dataset is
  built (``precompute: false`` defers each to its first use);
* ``identity``: ``{from: prefix | stem | csv, csv: <file,identity table>}`` [prefix]: ``prefix`` drops a trailing
  ``_<digits>`` from the stem (``Aaron_Eckhart_0001`` -> ``Aaron_Eckhart``), ``stem`` gives every file its own
  identity (the demo faces, UTKFace), ``csv`` reads ``file,identity`` rows (file name with or without extension);
* ``contrast``: ``{positive: {dataroot, meta_info_file?}, negative: {dataroot, meta_info_file?}}``.

Randomness follows :mod:`lowlight3d.data.seeding` (``(seed, epoch, index)`` in training, ``(seed, image name)`` in
val/test).
"""
import csv
import logging
import os.path as osp
import re

import cv2
import numpy as np
import torch
from torch.utils import data

from lowlight3d.data.facemesh_parsing import ParsingMaskCache, derive_parsing_masks, flip_parsing_mask
from lowlight3d.data.image_source import read_meta_info, scan_images
from lowlight3d.data.lowlight_face_dataset import UnpairedLowLightDataset
from lowlight3d.data.seeding import check_seed, eval_rng, train_rng
from lowlight3d.utils.img_io import IMAGE_EXTENSIONS
from lowlight3d.utils.registry import DATASET_REGISTRY, register

__all__ = ['IDENTITY_MODES', 'identity_of', 'identity_table', 'list_images', 'FaceParsingLowLightDataset',
           'STREAM_POSITIVE', 'STREAM_NEGATIVE']

logger = logging.getLogger('basicsr')

IDENTITY_MODES = ('prefix', 'stem', 'csv')
#: RNG streams of the contrast draws (distinct from those of :mod:`seeding` and the other datasets).
STREAM_POSITIVE, STREAM_NEGATIVE = 10, 11
_SHARED_KEYS = ('phase', 'seed', 'gt_size', 'use_hflip', 'skip_corrupt', 'extensions', 'recursive')
_PREFIX = re.compile(r'^(.*?)_\d+$')


def _stem(path):
    return osp.splitext(osp.basename(str(path)))[0]


def identity_of(path, mode='prefix'):
    """Identity name of an image file from its name (``prefix`` or ``stem``; see the module docstring)."""
    stem = _stem(path)
    if mode == 'stem':
        return stem
    if mode == 'prefix':
        match = _PREFIX.match(stem)
        return match.group(1) if match else stem
    raise ValueError(f"identity.from must be one of {IDENTITY_MODES}, got {mode!r}")


def identity_table(mode='prefix', csv_path=None):
    """A function ``path -> identity name`` for ``mode`` (``csv``: rows ``file,identity``; a header is allowed).

    Raises:
        ValueError / FileNotFoundError / KeyError: Unknown mode, missing table, or a file the table lacks.
    """
    if mode not in IDENTITY_MODES:
        raise ValueError(f"identity.from must be one of {IDENTITY_MODES}, got {mode!r}")
    if mode != 'csv':
        return lambda path: identity_of(path, mode)
    if not csv_path or not osp.isfile(csv_path):
        raise FileNotFoundError(f"identity.from: csv needs identity.csv, an existing 'file,identity' table; got "
                                f'{csv_path!r}')
    table = {}
    with open(csv_path, newline='', encoding='utf-8') as f:
        for row in csv.reader(f):
            if len(row) < 2 or not row[0].strip() or row[0].strip().lower() in ('file', 'filename', 'image'):
                continue
            table[_stem(row[0].strip())] = row[1].strip()

    def lookup(path):
        """The identity of ``path`` in the table."""
        try:
            return table[_stem(path)]
        except KeyError:
            raise KeyError(f'{csv_path} has no identity for {osp.basename(str(path))} (rows are file,identity; '
                           'the file is matched by its name without extension)') from None

    return lookup


def list_images(root, meta_info_file=None, extensions=IMAGE_EXTENSIONS):
    """Full paths of the images of ``root`` (sorted), or of those a ``meta_info_file`` lists."""
    names = read_meta_info(meta_info_file) if meta_info_file else scan_images(root, extensions)
    if not names:
        raise FileNotFoundError(f'No image in {root!r}')
    return [osp.join(root, n) for n in names]


def _index_by_stem(root, extensions):
    return {_stem(n): osp.join(root, n) for n in scan_images(root, extensions)}


@register(DATASET_REGISTRY)
class FaceParsingLowLightDataset(data.Dataset):
    """Low-light faces with parsing masks, identity names and unpaired contrast images (module docstring).

    Args:
        opt (dict): Options (module docstring).

    Returns from ``__getitem__``:
        dict: ``lq``, ``lq_path``, ``gt`` / ``gt_path`` when the low-light domain has them, ``mask`` (int64
        ``H x W``), ``identity`` (str), and ``pos``, ``neg``, ``pos_path``, ``neg_path`` with a ``contrast`` block.
    """

    accepts_index_beyond_len = True

    def __init__(self, opt):
        super().__init__()
        from lowlight3d.data import build_dataset
        opt = dict(opt)
        self.opt = opt
        self.name = opt.get('name') or type(self).__name__
        if not isinstance(opt.get('low'), dict) or 'type' not in opt['low']:
            raise ValueError(f"{self.name}: the option block 'low' (with its type: UnpairedLowLightDataset or "
                             'PairedLowLightFaceDataset) is required; see FaceParsingLowLightDataset')
        shared = {k: opt[k] for k in _SHARED_KEYS if k in opt}
        self.extensions = opt.get('extensions') or IMAGE_EXTENSIONS
        self.low = build_dataset({**shared, **opt['low'], 'name': opt['low'].get('name', f'{self.name}.low')},
                                 where=f'{self.name}.low')
        self.phase = getattr(self.low, 'phase', opt.get('phase', 'train'))
        self.seed = check_seed(opt.get('seed', 0))
        self.size = getattr(self.low, 'size', None)
        self.epoch = 0
        ident = dict(opt.get('identity') or {})
        self.identity_mode = ident.get('from', 'prefix')
        self.identity = identity_table(self.identity_mode, ident.get('csv'))
        self._setup_parsing(dict(opt.get('parsing') or {}))
        self._setup_contrast(opt.get('contrast'), shared)

    # ------------------------------------------------------------------ parsing masks
    def _setup_parsing(self, popt):
        self.seg_root = popt.get('dataroot_seg')
        self.cache = None
        if self.seg_root:
            if not osp.isdir(self.seg_root):
                raise FileNotFoundError(f'{self.name}: parsing.dataroot_seg {self.seg_root!r} is not a folder')
            return
        if not popt.get('cache'):
            raise ValueError(f'{self.name}: the parsing block needs dataroot_seg (a folder of <stem>.png label '
                             'masks) or cache (a folder for masks derived from mediapipe FaceMesh), e.g. '
                             'parsing: {cache: datasets/cache/parsing, facemesh_from: ~}')
        self.cache = ParsingMaskCache(popt['cache'])
        self._parser = None  # FaceMeshParser, built on first use (per process)
        self.facemesh_from = popt.get('facemesh_from')
        self._sources = _index_by_stem(self.facemesh_from, self.extensions) if self.facemesh_from else None
        if self._sources is None and not hasattr(self.low, 'degradation'):
            logger.warning(f'{self.name}: parsing masks are derived from the low-light files themselves (FaceMesh '
                           'often misses faces in the dark, giving all-background masks); set '
                           'parsing.facemesh_from to the folder of their normal-light versions')
        if popt.get('precompute', True):
            files = [self._mask_source(j) for j in range(len(self.low))]
            report = derive_parsing_masks(files, self.cache.folder, names=[_stem(self._key(j))
                                                                          for j in range(len(self.low))])
            if report['computed']:
                logger.info(f"{self.name}: derived {report['computed']} FaceMesh parsing masks into "
                            f"{self.cache.folder} ({len(report['no_face'])} without a face: all background)")

    def _key(self, j):
        """The file whose stem names image ``j`` (its low-light file, or the ground truth it is synthesised from)."""
        return self.low.source.path(j)

    def _mask_source(self, j):
        """The normal-light image FaceMesh reads for image ``j``."""
        stem = _stem(self._key(j))
        if self._sources is None:
            return self._key(j)
        if stem not in self._sources:
            raise FileNotFoundError(f"{self.name}: no normal-light image named '{stem}.*' in parsing.facemesh_from "
                                    f'({self.facemesh_from}) to derive its parsing mask from')
        return self._sources[stem]

    def _read_mask(self, path):
        stem = _stem(path)
        if self.seg_root:
            file = osp.join(self.seg_root, stem + '.png')
            mask = cv2.imread(file, cv2.IMREAD_UNCHANGED)
            if mask is None:
                raise FileNotFoundError(f'{self.name}: parsing mask {file} is missing or unreadable (LaPa layout: '
                                        'seg/<image stem>.png, uint8 labels 0-10)')
            if mask.ndim == 3:
                mask = mask[:, :, 0]
            return mask
        if not self.cache.has(stem):
            j = [_stem(self._key(i)) for i in range(len(self.low))].index(stem)
            if self._parser is None:
                from lowlight3d.data.facemesh_parsing import FaceMeshParser
                self._parser = FaceMeshParser()
            derive_parsing_masks([self._mask_source(j)], self.cache.folder, parser=self._parser, names=[stem])
        return self.cache.read(stem)

    # ------------------------------------------------------------------ contrast images
    def _setup_contrast(self, copt, shared):
        self.positive = self.negative = None
        if not copt:
            return
        for key in ('positive', 'negative'):
            block = copt.get(key)
            if not isinstance(block, dict) or not block.get('dataroot'):
                raise ValueError(f"{self.name}: contrast.{key}.dataroot (a folder of unpaired "
                                 f"{'normal' if key == 'positive' else 'low'}-light images) is required")
            reader = UnpairedLowLightDataset({**shared, 'dataroot_lq': block['dataroot'],
                                              'meta_info_file': block.get('meta_info_file'),
                                              'gt_size': list(self.size) if self.size else None,
                                              'name': f'{self.name}.contrast_{key}'})
            setattr(self, key, reader)

    def _draw(self, reader, stream, index, name):
        rng = (train_rng(self.seed, self.epoch, index, stream) if self.phase == 'train' else
               eval_rng(self.seed, name, stream))
        sample = reader.get_sample(int(rng.integers(len(reader))), rng=rng)
        return sample['lq'], sample['lq_path']

    # ------------------------------------------------------------------ dataset protocol
    def set_epoch(self, epoch):
        """Set the epoch of every part (call at every epoch start)."""
        for part in (self.low, self.positive, self.negative):
            if part is not None and hasattr(part, 'set_epoch'):
                part.set_epoch(epoch)
        self.epoch = int(epoch)

    def __len__(self):
        return len(self.low)

    def __getitem__(self, index):
        sample = dict(self.low[index])
        key = sample.get('gt_path') or sample['lq_path']
        h, w = sample['lq'].shape[-2:]
        mask = self._read_mask(key)
        if mask.shape != (h, w):
            mask = cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST)
        if sample.get('hflip'):
            mask = flip_parsing_mask(mask)
        sample['mask'] = torch.from_numpy(np.ascontiguousarray(mask).astype(np.int64))
        sample['identity'] = self.identity(key)
        if self.positive is not None:
            seed_index = int(index) if int(index) >= 0 else int(index) + len(self)
            name = _stem(sample['lq_path'])
            sample['pos'], sample['pos_path'] = self._draw(self.positive, STREAM_POSITIVE, seed_index, name)
            sample['neg'], sample['neg_path'] = self._draw(self.negative, STREAM_NEGATIVE, seed_index, name)
        sample.pop('degradation_params', None)
        return sample
