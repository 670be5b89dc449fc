"""Data loaders for training and evaluation, with a sampler that can resume in the middle of an epoch.

Exact resume needs the same batches after a restart: the sampler's order depends only on ``(seed, epoch)``
(its own generator, never the global one), it can skip the batches an interrupted epoch already consumed, and
the data loader gets its own generator so that starting an epoch does not draw from torch's global RNG.
Datasets draw per-sample randomness from ``(seed, epoch, index)`` (``dataset.set_epoch``).
"""
import math

import torch
from torch.utils.data import DataLoader, Sampler

from lowlight3d.data import build_dataset

__all__ = ['ResumableSampler', 'build_train_loader', 'build_eval_loader']


class ResumableSampler(Sampler):
    """Shuffled (or ordered), optionally enlarged, rank-sharded index sampler that can start mid-epoch.

    Args:
        dataset_size (int): Number of items.
        num_replicas (int): World size. rank (int): This process's rank.
        shuffle (bool): Shuffle each epoch with a generator seeded by ``seed + epoch``.
        seed (int): Base seed.
        ratio (int): Repeat the dataset ``ratio`` times per epoch (BasicSR's ``dataset_enlarge_ratio``).
        batch_size (int): Per-process batch size, used to translate skipped batches into indices.
        wrap (bool): Yield ``index % dataset_size`` (BasicSR's behaviour).  Datasets that declare
            ``accepts_index_beyond_len`` get the un-wrapped index, so that the repeats of one image within an
            enlarged epoch are augmented differently.
    """

    def __init__(self, dataset_size, num_replicas=1, rank=0, shuffle=True, seed=0, ratio=1, batch_size=1, wrap=True):
        self.dataset_size, self.num_replicas, self.rank, self.wrap = dataset_size, num_replicas, rank, wrap
        self.shuffle, self.seed, self.ratio, self.batch_size = shuffle, seed, max(1, int(ratio)), batch_size
        self.num_samples = math.ceil(dataset_size * self.ratio / num_replicas)
        self.epoch, self.skip_batches = 0, 0

    def set_epoch(self, epoch, skip_batches=0):
        """Select the epoch's order and how many of its batches were already consumed."""
        self.epoch, self.skip_batches = epoch, skip_batches

    def epoch_indices(self):
        """This rank's indices of the whole current epoch (before skipping)."""
        total = self.num_samples * self.num_replicas
        if self.shuffle:
            gen = torch.Generator()
            gen.manual_seed(self.seed + self.epoch)
            order = torch.randperm(total, generator=gen)
        else:
            order = torch.arange(total)
        indices = (order % self.dataset_size if self.wrap else order).tolist()
        return indices[self.rank:total:self.num_replicas]

    def __iter__(self):
        return iter(self.epoch_indices()[self.skip_batches * self.batch_size:])

    def __len__(self):
        return max(0, self.num_samples - self.skip_batches * self.batch_size)

    def batches_per_epoch(self):
        """Full batches in an epoch (the loader drops the last incomplete one)."""
        return self.num_samples // self.batch_size


def build_train_loader(dataset_opt, opt):
    """Dataset, resumable sampler and loader for a training set.

    Args:
        dataset_opt (dict): ``datasets.train`` block (``batch_size_per_gpu``, ``num_worker_per_gpu``,
            ``dataset_enlarge_ratio``, ``use_shuffle``, ``pin_memory`` and the dataset's own keys).
        opt (dict): Resolved options (``manual_seed``, ``rank``, ``world_size``).

    Returns:
        tuple: ``(dataset, sampler, loader)``.
    """
    dataset_opt = dict(dataset_opt)
    dataset_opt.setdefault('seed', opt['manual_seed'])
    dataset = build_dataset(dataset_opt, where='datasets.train')
    batch_size = int(dataset_opt.get('batch_size_per_gpu', 1))
    if len(dataset) == 0:
        raise ValueError(f"Training set '{dataset_opt.get('name')}' is empty; check datasets.train paths")
    sampler = ResumableSampler(
        len(dataset), opt['world_size'], opt['rank'], shuffle=dataset_opt.get('use_shuffle', True),
        seed=opt['manual_seed'], ratio=dataset_opt.get('dataset_enlarge_ratio', 1), batch_size=batch_size,
        wrap=not getattr(dataset, 'accepts_index_beyond_len', False))
    if sampler.batches_per_epoch() == 0:
        raise ValueError(f'batch_size_per_gpu={batch_size} is larger than the {sampler.num_samples} samples per '
                         'process of the training set; lower it or raise dataset_enlarge_ratio')
    workers = int(dataset_opt.get('num_worker_per_gpu', 0))
    loader = DataLoader(
        dataset, batch_size=batch_size, sampler=sampler, num_workers=workers, drop_last=True,
        pin_memory=bool(dataset_opt.get('pin_memory', False)), generator=torch.Generator(),
        persistent_workers=False)
    return dataset, sampler, loader


def build_eval_loader(dataset_opt, opt, where='datasets.val'):
    """Dataset and ordered loader for validation or testing (batch size 1 unless set)."""
    dataset_opt = dict(dataset_opt)
    dataset_opt.setdefault('seed', 0)
    dataset = build_dataset(dataset_opt, where=where)
    loader = DataLoader(
        dataset, batch_size=int(dataset_opt.get('batch_size_per_gpu', 1)), shuffle=False,
        num_workers=int(dataset_opt.get('num_worker_per_gpu', 0)), drop_last=False, generator=torch.Generator())
    return dataset, loader
