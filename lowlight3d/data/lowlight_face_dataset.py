"""Low-light face datasets: synthetic pairs, real unpaired low-light images, and the two combined.

* :class:`PairedLowLightFaceDataset`: normal-light faces (folder, meta_info list or LMDB); the low-light input is
  synthesised on the fly by :class:`~lowlight3d.data.lowlight_degradation.LowLightDegradation` (our stand-in
  for FRR-Net's unknown degradation; see that module).
* :class:`UnpairedLowLightDataset`: real low-light images, no ground truth.
* :class:`SemiSupervisedLowLightDataset`: one paired sample (the paper's ``I_p``, ``I_p^gt``) plus one unpaired
  sample (``I_u``) per item.

Randomness (see :mod:`lowlight3d.data.seeding`): ``__getitem__`` never touches a global random state.  In the
``train`` phase a sample is a function of ``(seed, epoch, index)``: call :meth:`set_epoch` at every epoch start.
In ``val``/``test`` it is a function of ``(seed, image name)`` only (no flip), so every method sees identical
inputs whatever the order.  ``__getitem__`` accepts indices beyond ``len(dataset)``: the image is
``index % len`` and the seed uses the full index, so an enlarged sampler that passes un-wrapped indices gets
different degradations for the repeats of one image.

Common options (keys of the ``opt`` dict; defaults in brackets):

* ``name`` [class name], ``phase`` ['train'] (``'train'`` | ``'val'`` | ``'test'``),
* ``io_backend`` [auto: ``lmdb`` when the root ends in ``.lmdb``, else ``disk``] (``{type: disk | lmdb}``),
* ``meta_info_file`` [None], ``extensions`` [png, jpg, jpeg, bmp, tif, tiff, webp, ppm, pgm],
  ``recursive`` [False],
* ``gt_size`` [256]: output size (int, or ``[h, w]``); ``None`` keeps the size.  Images are resized (aspect ratio
  not kept; area interpolation when shrinking, bicubic otherwise),
* ``use_hflip`` [True]: random horizontal flip, train phase only,
* ``seed`` [0], ``skip_corrupt`` [False]: an unreadable image raises :class:`ImageReadError` naming it, or, when
  true, every image is read once when the set is built and the unreadable ones are left out of it (the set
  shrinks; one :class:`CorruptImageWarning` names them; ``dataset.skipped`` lists ``{file, reason}``, which
  ``test.py`` reports).  No image is ever replaced by another one (that would score an image twice).

Returned tensors are float32 ``C x H x W`` RGB in ``[0, 1]``.
"""
import json
import logging
import warnings

import cv2
import numpy as np
import torch
from torch.utils import data

from lowlight3d.data.image_source import ImageSource
from lowlight3d.data.lowlight_degradation import LowLightDegradation
from lowlight3d.data.seeding import (
    STREAM_PAIRED,
    STREAM_PICK,
    STREAM_REAL_PAIR,
    STREAM_UNPAIRED,
    check_seed,
    eval_rng,
    train_rng,
)
from lowlight3d.utils.img_io import IMAGE_EXTENSIONS, ImageReadError
from lowlight3d.utils.registry import DATASET_REGISTRY, register

__all__ = [
    'PairedLowLightFaceDataset', 'UnpairedLowLightDataset', 'SemiSupervisedLowLightDataset', 'CorruptImageWarning'
]

logger = logging.getLogger('basicsr')

_PHASES = ('train', 'val', 'test')


class CorruptImageWarning(RuntimeWarning):
    """An unreadable image was skipped because ``skip_corrupt`` is set."""


def _parse_size(value):
    """``gt_size`` option -> ``(h, w)`` or ``None``."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise ValueError(f"'gt_size' must be an int, [h, w] or null, got {value!r}")
        h, w = int(value[0]), int(value[1])
    else:
        h = w = int(value)
    if h <= 0 or w <= 0:
        raise ValueError(f"'gt_size' must be positive, got {value!r}")
    return h, w


def resize_image(img, size):
    """Resize an ``H x W x C`` float image to ``size`` = ``(h, w)`` (``None``: unchanged).

    Area interpolation when both sides shrink, bicubic otherwise (clipped to ``[0, 1]``).

    Args:
        img (np.ndarray): float32 image in ``[0, 1]``.
        size (tuple[int, int] | None): Target ``(h, w)``.

    Returns:
        np.ndarray: The resized float32 image.
    """
    if size is None or tuple(img.shape[:2]) == tuple(size):
        return img
    h, w = size
    interp = cv2.INTER_AREA if (h <= img.shape[0] and w <= img.shape[1]) else cv2.INTER_CUBIC
    out = cv2.resize(img, (w, h), interpolation=interp)
    if out.ndim == 2:
        out = out[:, :, None]
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def img_to_tensor(img):
    """``H x W x 3`` float32 numpy image -> contiguous float32 ``3 x H x W`` tensor.

    Args:
        img (np.ndarray): The image.

    Returns:
        torch.Tensor: The tensor.
    """
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1), dtype=np.float32))


class _LowLightBase(data.Dataset):
    """Shared option handling, seeding, reading with skip-on-corrupt, resize and flip."""

    #: Indices >= len select image ``index % len`` with their own seed (read by the training sampler).
    accepts_index_beyond_len = True

    def __init__(self, opt, root_key, stream):
        super().__init__()
        self.opt = dict(opt)
        self.name = self.opt.get('name') or type(self).__name__
        self.phase = self.opt.get('phase', 'train')
        if self.phase not in _PHASES:
            raise ValueError(f"{self.name}: 'phase' must be one of {_PHASES}, got {self.phase!r}")
        self.seed = check_seed(self.opt.get('seed', 0))
        self.size = _parse_size(self.opt.get('gt_size', 256))
        self.use_hflip = bool(self.opt.get('use_hflip', True))
        self.skip_corrupt = bool(self.opt.get('skip_corrupt', False))
        self.stream = stream
        self.epoch = 0
        self.source = ImageSource(self.opt.get(root_key),
                                  io_backend=self.opt.get('io_backend'),
                                  meta_info_file=self.opt.get('meta_info_file'),
                                  extensions=self.opt.get('extensions') or IMAGE_EXTENSIONS,
                                  recursive=bool(self.opt.get('recursive', False)),
                                  skip_missing=self.skip_corrupt,
                                  option_name=f'{self.name}: {root_key}')
        #: Files left out by ``skip_corrupt``: ``[{'file': path, 'reason': message}]``.
        self.skipped = []
        if self.skip_corrupt:
            self._drop_unreadable()

    def _drop_unreadable(self):
        """Read every image once and leave the unreadable ones out of the set (``skip_corrupt``)."""
        bad = []
        for j in range(len(self.source)):
            try:
                self.source.read(j)
            except ImageReadError as err:
                bad.append(j)
                self.skipped.append({'file': self.source.path(j), 'reason': str(err)})
        if not bad:
            return
        if len(bad) == len(self.source):
            raise ImageReadError(self.source.root, f'{self.name}: no readable image (all {len(bad)} failed)')
        self.source.drop(bad)
        msg = (f'{self.name}: left out {len(bad)} unreadable image(s) (skip_corrupt), the set has '
               f"{len(self.source)}: {'; '.join(s['reason'] for s in self.skipped)}")
        warnings.warn(msg, CorruptImageWarning, stacklevel=3)
        logger.warning(msg)

    @property
    def is_train(self):
        """bool: Whether samples are random per (epoch, index) rather than fixed per image name."""
        return self.phase == 'train'

    def set_epoch(self, epoch):
        """Set the epoch that seeds training samples (call at every epoch start, before iterating).

        Args:
            epoch (int): Non-negative epoch number.
        """
        if int(epoch) < 0:
            raise ValueError(f'epoch must be non-negative, got {epoch}')
        self.epoch = int(epoch)

    def __len__(self):
        return len(self.source)

    def _sample_rng(self, index, name, stream=None):
        """The generator of one sample: (seed, epoch, index) in train, (seed, name) in val/test."""
        stream = self.stream if stream is None else stream
        if self.is_train:
            return train_rng(self.seed, self.epoch, index, stream)
        return eval_rng(self.seed, name, stream)

    def _load(self, i):
        """Read image ``i``: ``(i, image)`` (unreadable images were left out at build time with ``skip_corrupt``;
        one that became unreadable since raises :class:`ImageReadError` naming it, never another image instead)."""
        return i, self.source.read(i)

    def _check_index(self, index):
        """Validate an index: ``(seed_index, index % len)``, where ``seed_index`` is the non-negative index."""
        index = int(index)
        if index < 0:
            index += len(self)
            if index < 0:
                raise IndexError(f'{self.name}: index out of range')
        return index, index % len(self)

    def _prepare(self, img, rng):
        """Resize, then draw the flip (always drawn, so ``use_hflip`` does not shift later draws).

        Returns:
            tuple[np.ndarray, bool]: The image and whether it was flipped horizontally.
        """
        img = resize_image(img, self.size)
        flip = bool(rng.random() < 0.5) and self.is_train and self.use_hflip
        if flip:
            img = np.ascontiguousarray(img[:, ::-1])
        return img, flip


@register(DATASET_REGISTRY)
class PairedLowLightFaceDataset(_LowLightBase):
    """Normal-light faces with a low-light input synthesised on the fly (the paper's ``I_p`` / ``I_p^gt``).

    The degradation is our stand-in for FRR-Net's unknown recipe (see
    :mod:`lowlight3d.data.lowlight_degradation`), applied to the resized (and, in training, possibly flipped)
    ground truth.

    Args:
        opt (dict): Options.  Besides the common ones of this module:

            * ``dataroot_gt`` (required): folder or ``.lmdb`` of normal-light faces.
            * ``degradation`` [absent / null / {} = all defaults]: per-step option blocks of
              :class:`~lowlight3d.data.lowlight_degradation.LowLightDegradation` (a block's keys override its
              defaults; ``null`` disables the step).
            * ``return_params`` [False]: also return ``degradation_params``, the drawn parameters as a JSON string.
            * ``real_pairs`` [absent: none]: real low-light photos with real references mixed into the training
              pairs (ours, not the paper's): ``{prob, dataroot_lq, dataroot_gt, meta_info_file, io_backend}``, the
              last four options of :class:`~lowlight3d.data.real_paired_dataset.RealPairedLowLightDataset`.  In
              the train phase each item is, with probability ``prob`` (in ``(0, 1]``), a real pair drawn uniformly
              from that set (``gt_size``, ``use_hflip``, ``seed`` as here) instead of a synthesised one; the draw
              uses its own stream, so the synthesised items are unchanged by it.  Ignored in val/test (test sets
              stay what they are).  Such items have ``real_pair`` True (False for the others).

    Returns from ``__getitem__``:
        dict: ``lq``, ``gt`` (float32 3 x H x W RGB in [0, 1]), ``lq_path``, ``gt_path`` (both the ground-truth
        path: the synthetic input has no file; BasicSR names saved images after ``lq_path``), ``hflip`` (the
        sample is the horizontal mirror of the file; used to key cached per-image 3D priors), and
        ``degradation_params`` when asked.
    """

    def __init__(self, opt):
        super().__init__(opt, 'dataroot_gt', STREAM_PAIRED)
        self.degradation = LowLightDegradation.from_opt(self.opt.get('degradation') or {})
        self.return_params = bool(self.opt.get('return_params', False))
        self.real_pairs, self.real_pair_prob = self._build_real_pairs(self.opt.get('real_pairs'))

    def _build_real_pairs(self, block):
        """The ``real_pairs`` option: ``(RealPairedLowLightDataset | None, prob)`` (see the class docstring)."""
        if block is None:
            return None, 0.0
        where = f'{self.name}: real_pairs'
        if not isinstance(block, dict):
            raise ValueError(f'{where} must be a mapping {{prob, dataroot_lq, dataroot_gt, meta_info_file}}, '
                             f'got {block!r}')
        allowed = {'prob', 'dataroot_lq', 'dataroot_gt', 'meta_info_file', 'io_backend'}
        unknown = sorted(set(block) - allowed)
        if unknown:
            raise ValueError(f'{where}: unknown key(s) {unknown}; known: {sorted(allowed)}')
        prob = block.get('prob')
        if isinstance(prob, bool) or not isinstance(prob, (int, float)) or not 0 < prob <= 1:
            raise ValueError(f'{where}.prob must be a number in (0, 1] (the share of training items that are real '
                             f'pairs), got {prob!r}')
        from lowlight3d.data.real_paired_dataset import RealPairedLowLightDataset  # it imports this module
        shared = {k: self.opt[k] for k in _SHARED_KEYS if k in self.opt and k != 'return_params'}
        real = RealPairedLowLightDataset({**shared, **{k: v for k, v in block.items() if k != 'prob'},
                                          'name': f'{self.name}.real_pairs'})
        return real, float(prob)

    def _real_pair(self, seed_index):
        """The real pair of training item ``seed_index``, or None when the item is synthesised."""
        if self.real_pairs is None or not self.is_train:
            return None
        rng = train_rng(self.seed, self.epoch, seed_index, STREAM_REAL_PAIR)
        if rng.random() >= self.real_pair_prob:
            return None
        j = int(rng.integers(len(self.real_pairs)))
        self.real_pairs.set_epoch(self.epoch)
        # image j, with the flip drawn from (seed, epoch, this item's index): a repeat of one pair may flip otherwise
        sample = self.real_pairs.get_sample(j + len(self.real_pairs) * seed_index)
        sample['real_pair'] = True
        if self.return_params:
            sample['degradation_params'] = json.dumps({'real_pair': True})
        return sample

    def get_sample(self, index, rng=None):
        """Build one sample.

        Args:
            index (int): Dataset index (may exceed ``len``; see the module docstring).
            rng (np.random.Generator, optional): Overrides the per-sample generator (used by the
                semi-supervised dataset); by default derived from (seed, epoch, index) or (seed, name).

        Returns:
            dict: See the class docstring.
        """
        seed_index, i = self._check_index(index)
        real = self._real_pair(seed_index)
        if real is not None:
            return real
        if rng is None and self.is_train:
            rng = self._sample_rng(seed_index, None)
        j, gt = self._load(i)
        if rng is None:
            rng = self._sample_rng(None, self.source.names[j])
        path = self.source.path(j)
        try:
            gt, flipped = self._prepare(gt, rng)
            lq, params = self.degradation(gt, rng)
        except Exception as err:
            raise RuntimeError(f"{self.name}: failed to synthesise the low-light input of '{path}' "
                               f'(index {index}, epoch {self.epoch}): {err}') from err
        out = {'lq': img_to_tensor(lq), 'gt': img_to_tensor(gt), 'lq_path': path, 'gt_path': path, 'hflip': flipped}
        if self.real_pairs is not None:
            out['real_pair'] = False
        if self.return_params:
            out['degradation_params'] = json.dumps(params, sort_keys=True)
        return out

    def __getitem__(self, index):
        return self.get_sample(index)


@register(DATASET_REGISTRY)
class UnpairedLowLightDataset(_LowLightBase):
    """Real low-light images without ground truth (the paper's ``I_u``).

    Args:
        opt (dict): Options.  Besides the common ones of this module: ``dataroot_lq`` (required), a folder or
            ``.lmdb`` of low-light images.  ``gt_size`` is the output size of ``lq`` (the name is kept for
            symmetry with the paired set).

    Returns from ``__getitem__``:
        dict: ``lq`` (float32 3 x H x W RGB in [0, 1]), ``lq_path`` and ``hflip``.
    """

    def __init__(self, opt):
        super().__init__(opt, 'dataroot_lq', STREAM_UNPAIRED)

    def get_sample(self, index, rng=None):
        """Build one sample.

        Args:
            index (int): Dataset index (may exceed ``len``).
            rng (np.random.Generator, optional): Overrides the per-sample generator.

        Returns:
            dict: ``lq`` and ``lq_path``.
        """
        seed_index, i = self._check_index(index)
        if rng is None and self.is_train:
            rng = self._sample_rng(seed_index, None)
        j, lq = self._load(i)
        if rng is None:
            rng = self._sample_rng(None, self.source.names[j])
        lq, flipped = self._prepare(lq, rng)
        return {'lq': img_to_tensor(lq), 'lq_path': self.source.path(j), 'hflip': flipped}

    def __getitem__(self, index):
        return self.get_sample(index)


_SHARED_KEYS = ('phase', 'seed', 'gt_size', 'use_hflip', 'skip_corrupt', 'extensions', 'recursive', 'return_params')


@register(DATASET_REGISTRY)
class SemiSupervisedLowLightDataset(data.Dataset):
    """A synthetic pair plus a real unpaired low-light image per item (``I_p``, ``I_p^gt``, ``I_u``).

    Length = length of the paired set.  The unpaired image of item ``index`` is drawn from
    ``(seed, epoch, index)`` in training and from ``(seed, paired image name)`` in val/test.

    Args:
        opt (dict): Options, in either layout:

            * sub-blocks: ``paired: {dataroot_gt, degradation, meta_info_file, io_backend, ...}`` (options of
              :class:`PairedLowLightFaceDataset`) and ``unpaired: {dataroot_lq, meta_info_file, io_backend, ...}``
              (options of :class:`UnpairedLowLightDataset`);
            * flat: the paired options at top level, plus ``dataroot_lq``, ``meta_info_file_lq`` and
              ``io_backend_lq`` for the unpaired set.

            Top-level ``phase``, ``seed``, ``gt_size``, ``use_hflip``, ``skip_corrupt``, ``extensions``,
            ``recursive`` and ``return_params`` are defaults for both parts (a sub-block may override them).

    Returns from ``__getitem__``:
        dict: ``lq``, ``gt``, ``lq_path``, ``gt_path``, ``hflip`` (paired), ``lq_unpaired``, ``lq_unpaired_path``,
        ``lq_unpaired_hflip``.
    """

    accepts_index_beyond_len = True

    def __init__(self, opt):
        super().__init__()
        opt = dict(opt)
        self.opt = opt
        self.name = opt.get('name') or type(self).__name__
        shared = {k: opt[k] for k in _SHARED_KEYS if k in opt}
        if 'paired' in opt:
            paired_opt = {**shared, **dict(opt['paired'] or {})}
        else:
            paired_opt = {
                k: v
                for k, v in opt.items() if k not in ('unpaired', 'dataroot_lq', 'meta_info_file_lq', 'io_backend_lq')
            }
        if 'unpaired' in opt:
            unpaired_opt = {**shared, **dict(opt['unpaired'] or {})}
        else:
            unpaired_opt = {
                **shared, 'dataroot_lq': opt.get('dataroot_lq'),
                'meta_info_file': opt.get('meta_info_file_lq'),
                'io_backend': opt.get('io_backend_lq')
            }
        paired_opt.setdefault('name', f'{self.name}.paired')
        unpaired_opt.setdefault('name', f'{self.name}.unpaired')
        self.paired = PairedLowLightFaceDataset(paired_opt)
        self.unpaired = UnpairedLowLightDataset(unpaired_opt)
        self.phase = self.paired.phase
        self.seed = check_seed(opt.get('seed', self.paired.seed))
        self.epoch = 0

    def set_epoch(self, epoch):
        """Set the epoch of both parts (call at every epoch start).

        Args:
            epoch (int): Non-negative epoch number.
        """
        self.paired.set_epoch(epoch)
        self.unpaired.set_epoch(epoch)
        self.epoch = int(epoch)

    def __len__(self):
        return len(self.paired)

    def __getitem__(self, index):
        sample = self.paired.get_sample(index)
        if self.phase == 'train':
            seed_index = self.paired._check_index(index)[0]
            pick_rng = train_rng(self.seed, self.epoch, seed_index, STREAM_PICK)
            rng_u = train_rng(self.seed, self.epoch, seed_index, STREAM_UNPAIRED)
        else:
            name = self.paired.source.names[self.paired._check_index(index)[1]]
            pick_rng = eval_rng(self.seed, name, STREAM_PICK)
            rng_u = eval_rng(self.seed, name, STREAM_UNPAIRED)
        j = int(pick_rng.integers(len(self.unpaired)))
        unpaired = self.unpaired.get_sample(j, rng=rng_u)
        sample['lq_unpaired'] = unpaired['lq']
        sample['lq_unpaired_path'] = unpaired['lq_path']
        sample['lq_unpaired_hflip'] = unpaired['hflip']
        return sample
