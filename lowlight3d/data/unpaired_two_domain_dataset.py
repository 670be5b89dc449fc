"""Two unpaired domains per item: a low-light image ``lq`` and an independently drawn normal-light image ``ref``.

Unpaired GAN training (EnlightenGAN) needs a low-light image and a normal-light image that are *not* a pair.  The
low-light domain is any dataset of this package that yields ``lq``: real low-light photos
(:class:`~lowlight3d.data.lowlight_face_dataset.UnpairedLowLightDataset`) or low-light inputs synthesised from
normal-light faces (:class:`~lowlight3d.data.lowlight_face_dataset.PairedLowLightFaceDataset`, whose ``gt`` is then
dropped).  The normal-light domain is a folder (or LMDB / meta_info list) of normal-light faces.  When both domains
come from the same faces, an item never gets the ground truth of its own low-light image: ``ref`` is redrawn among
the other images.

Randomness follows :mod:`lowlight3d.data.seeding`: the choice of ``ref`` and its flip come from
``(seed, epoch, index)`` in training and from ``(seed, low-light image name)`` in val/test, never from a global RNG.
"""
import os.path as osp

from torch.utils import data

from lowlight3d.data.lowlight_face_dataset import UnpairedLowLightDataset
from lowlight3d.data.seeding import STREAM_PICK, check_seed, eval_rng, train_rng
from lowlight3d.utils.registry import DATASET_REGISTRY, register

__all__ = ['UnpairedTwoDomainDataset', 'STREAM_REF']

#: Stream of the ``ref`` image's own draws (its flip), distinct from the streams of :mod:`seeding`.
STREAM_REF = 3

_SHARED_KEYS = ('phase', 'seed', 'gt_size', 'use_hflip', 'skip_corrupt', 'extensions', 'recursive')
_NORMAL_KEYS = ('dataroot_gt', 'meta_info_file', 'io_backend', 'name') + _SHARED_KEYS


@register(DATASET_REGISTRY)
class UnpairedTwoDomainDataset(data.Dataset):
    """Low-light image plus an unrelated normal-light image per item (EnlightenGAN's unpaired training data).

    Args:
        opt (dict): Options:

            * ``low`` (required): option block of the low-light dataset, with its ``type``
              (``UnpairedLowLightDataset`` with ``dataroot_lq``, or ``PairedLowLightFaceDataset`` with
              ``dataroot_gt`` and ``degradation``); it must yield ``lq``.
            * ``normal`` (required): ``{dataroot_gt, meta_info_file?, io_backend?}`` of normal-light images.
            * ``phase``, ``seed``, ``gt_size``, ``use_hflip``, ``skip_corrupt``, ``extensions``, ``recursive``:
              defaults for both blocks (a block may override them).
            * ``avoid_own_pair`` [True]: when a low-light item was synthesised from a normal-light file that the
              ``normal`` domain also holds, draw ``ref`` among the other files.

    Returns from ``__getitem__``:
        dict: ``lq``, ``lq_path`` (from the low-light domain; its ``gt`` is dropped), ``ref``, ``ref_path``.
        Length: that of the low-light domain.
    """

    accepts_index_beyond_len = True

    def __init__(self, opt):
        super().__init__()
        from lowlight3d.data import build_dataset
        opt = dict(opt)
        self.opt = opt
        self.name = opt.get('name') or type(self).__name__
        for key in ('low', 'normal'):
            if not isinstance(opt.get(key), dict):
                raise ValueError(f"{self.name}: the option block '{key}' is required (a mapping); see the "
                                 'UnpairedTwoDomainDataset docstring')
        shared = {k: opt[k] for k in _SHARED_KEYS if k in opt}
        low_opt = {**shared, **opt['low'], 'name': opt['low'].get('name', f'{self.name}.low')}
        if 'type' not in low_opt:
            raise ValueError(f"{self.name}: 'low.type' is missing (UnpairedLowLightDataset or "
                             'PairedLowLightFaceDataset)')
        self.low = build_dataset(low_opt, where=f'{self.name}.low')
        normal = {**shared, **opt['normal']}
        unknown = set(normal) - set(_NORMAL_KEYS)
        if unknown:
            raise ValueError(f"{self.name}: unknown keys {sorted(unknown)} in 'normal' (allowed: "
                             f'{sorted(_NORMAL_KEYS)})')
        if not normal.get('dataroot_gt'):
            raise ValueError(f"{self.name}: 'normal.dataroot_gt' is required (folder or .lmdb of normal-light "
                             'images)')
        normal_opt = {k: v for k, v in normal.items() if k != 'dataroot_gt'}
        normal_opt.update(dataroot_lq=normal['dataroot_gt'], name=normal.get('name', f'{self.name}.normal'))
        self.normal = UnpairedLowLightDataset(normal_opt)  # a plain image reader: resize and flip only
        self.phase = self.low.phase if hasattr(self.low, 'phase') else opt.get('phase', 'train')
        self.seed = check_seed(opt.get('seed', 0))
        self.avoid_own_pair = bool(opt.get('avoid_own_pair', True))
        self.epoch = 0
        self._normal_index = {osp.abspath(self.normal.source.path(j)): j for j in range(len(self.normal))}

    def set_epoch(self, epoch):
        """Set the epoch of both domains (call at every epoch start).

        Args:
            epoch (int): Non-negative epoch number.
        """
        if hasattr(self.low, 'set_epoch'):
            self.low.set_epoch(epoch)
        self.normal.set_epoch(epoch)
        self.epoch = int(epoch)

    def __len__(self):
        return len(self.low)

    def _pick_ref(self, rng, own):
        """Index of the normal-light image: uniform, excluding ``own`` (index or None) when there is a choice."""
        n = len(self.normal)
        if own is None or n < 2:
            return int(rng.integers(n))
        j = int(rng.integers(n - 1))
        return j + 1 if j >= own else j

    def __getitem__(self, index):
        sample = self.low[index]
        if 'lq' not in sample:
            raise KeyError(f"{self.name}: the low-light dataset ({type(self.low).__name__}) yields no 'lq'")
        own = None
        if self.avoid_own_pair and sample.get('gt_path'):
            own = self._normal_index.get(osp.abspath(sample['gt_path']))
        if self.phase == 'train':
            seed_index = int(index) if int(index) >= 0 else int(index) + len(self)
            pick_rng = train_rng(self.seed, self.epoch, seed_index, STREAM_PICK)
            ref_rng = train_rng(self.seed, self.epoch, seed_index, STREAM_REF)
        else:
            name = osp.splitext(osp.basename(sample['lq_path']))[0]
            pick_rng = eval_rng(self.seed, name, STREAM_PICK)
            ref_rng = eval_rng(self.seed, name, STREAM_REF)
        ref = self.normal.get_sample(self._pick_ref(pick_rng, own), rng=ref_rng)
        return {'lq': sample['lq'], 'lq_path': sample['lq_path'], 'ref': ref['lq'], 'ref_path': ref['lq_path']}
