"""The data of IC-FSRDENet's stage 2: any toolkit dataset plus, per image, the stage-1 result that ``test.py`` wrote.

DENet is conditioned on IC-FSRNet's output.  As in the original (whose DENet reads a folder "LR" of stage-1 results),
the condition is not computed on the fly: stage 1 is run once by our own ``lowlight3d/test.py`` with a *stage-1
results* option file (e.g. ``options/demo/test_ICFSRDENet_stage1_results_demo.yml``), which enhances every set
stage 2 uses (training set included) into ``results/<name>/visualization/<set>/<image>.png``.  This dataset
wraps the set's ordinary dataset (``base``: ``PairedLowLightFaceDataset``, ``UnpairedLowLightDataset``, ...;
every other option is passed to it) and adds ``cond``: the stage-1 result of the same image (by file stem),
resized to the sample's size and flipped with it.  In the training phase ``crop_size`` (optional) crops ``gt``,
``cond`` and ``lq`` at one random position (the demo trains DENet on crops; the original on whole 256 x 256 images).

Where the stage-1 results come from (one of):

* ``stage1_test_options``: the stage-1 results option file; the folder is ``results/<its name>/visualization/<set>``
  (``stage1_set``, default this block's ``name``) under the working folder.  When images are missing, or were made
  with other stage-1 weights (its ``path.pretrain_network_g``; without a stamp: newer than its ``metrics.json``),
  the dataset runs
  ``python lowlight3d/test.py -opt <file>`` once (a subprocess, logged) before reading, and stamps the results with
  the SHA-1 of the weights it used (``stage1_weights.sha1``: a rewritten but identical weight file, as resuming a
  finished training writes, does not count as newer); ``stage1_cfg_options``
  (list) are passed to it as ``--cfg-options``.  Missing weights are a clear error (train stage 1 first).
* ``stage1_results``: an existing folder (nothing is run; a missing image is an error naming it).

Note on the training set: test.py degrades each training face once (fixed per image name), so DENet sees one
stage-1 result per training face, whereas the ``lq`` of the wrapped training set is re-degraded every epoch (it is
not used by stage-2 training).
"""
import os.path as osp
import subprocess
import sys

import numpy as np
import torch
from torch.utils import data

from lowlight3d.data.lowlight_face_dataset import img_to_tensor, resize_image
from lowlight3d.data.seeding import train_rng
from lowlight3d.utils.file_hash import file_sha1
from lowlight3d.utils.img_io import ImageReadError, read_image
from lowlight3d.utils.paths import REPO_ROOT
from lowlight3d.utils.registry import DATASET_REGISTRY, register

__all__ = ['StageOneResultDataset', 'stage1_results_folder', 'ensure_stage1_results']

STREAM_CROP = 7  # RNG stream of the crop position (the base datasets use 0-2)
_OWN_KEYS = ('base', 'stage1_test_options', 'stage1_set', 'stage1_results', 'stage1_cfg_options', 'crop_size')


def _resolve(path):
    """A relative path as given when it exists from the working folder, else from the repository root."""
    if osp.isabs(path) or osp.exists(path):
        return path
    candidate = osp.join(REPO_ROOT, path)
    return candidate if osp.exists(candidate) else path


def stage1_results_folder(test_options, set_name, cfg_options=()):
    """``(folder, results_root, weights)`` of a stage-1 results option file for the set ``set_name``.

    Args:
        test_options (str): The stage-1 results option file. set_name (str): A ``datasets.*.name`` in it.
        cfg_options (Sequence[str]): ``--cfg-options`` it will be run with.
    """
    from lowlight3d.utils.options import apply_cfg_options, load_config
    opt = load_config(_resolve(test_options))
    apply_cfg_options(opt, list(cfg_options))
    names = [d.get('name') for k, d in (opt.get('datasets') or {}).items() if k.startswith('test') and
             isinstance(d, dict)]
    if set_name not in names:
        raise ValueError(f'ICFSRDENet.StageOneResultDataset: the stage-1 results file {test_options} has no test set '
                         f'named {set_name!r} (its test sets: {names}); add it there or set stage1_set')
    root = osp.join('results', opt['name'])
    return osp.join(root, 'visualization', set_name), root, (opt.get('path') or {}).get('pretrain_network_g')


STAMP = 'stage1_weights.sha1'  # written next to the results after a run: the SHA-1 of the weights it used


def _is_stale(root, weights):
    """Whether the results in ``root`` were made with other stage-1 weights (or were never finished).

    Compared by content (the SHA-1 stamp this module writes after a run; resuming a finished training rewrites
    ``net_g_latest.pth`` unchanged), else, for results of a manual ``test.py`` run, by modification time.
    """
    done = osp.join(root, 'metrics.json')
    if not osp.isfile(done):
        return True
    if not weights:
        return False
    stamp = osp.join(root, STAMP)
    if osp.isfile(stamp):
        with open(stamp) as f:
            return f.read().strip() != file_sha1(_resolve(weights))
    return osp.getmtime(_resolve(weights)) > osp.getmtime(done)


def ensure_stage1_results(test_options, set_name, stems, cfg_options=(), log=print):
    """Run the stage-1 results file through ``test.py`` unless its results for ``stems`` exist and are current.

    Returns:
        str: The folder of the set's stage-1 results.
    """
    folder, root, weights = stage1_results_folder(test_options, set_name, cfg_options)
    missing = [s for s in stems if not osp.isfile(osp.join(folder, f'{s}.png'))]
    if weights and not osp.isfile(_resolve(weights)):
        if not missing and osp.isfile(osp.join(root, 'metrics.json')):
            log(f'ICFSRDENet: using the stage-1 results in {folder}; their weights {weights} are gone, so they '
                'cannot be checked for staleness')
            return folder
        raise FileNotFoundError(f'ICFSRDENet stage 2 needs the stage-1 results of {set_name}, made by test.py with '
                                f'{test_options}, whose weights path.pretrain_network_g = {weights} do not exist: '
                                'train stage 1 first (e.g. python lowlight3d/train.py -opt '
                                'options/train/Baselines/train_ICFSRDENet_stage1_FFHQ.yml; demo: '
                                'options/demo/train_ICFSRDENet_stage1_demo.yml)')
    if missing or _is_stale(root, weights):
        why = f'{len(missing)} of {len(stems)} images missing' if missing else 'made with other stage-1 weights'
        cmd = [sys.executable, osp.join(REPO_ROOT, 'lowlight3d', 'test.py'), '-opt', _resolve(test_options)]
        if cfg_options:
            cmd += ['--cfg-options', *cfg_options]
        log(f'ICFSRDENet: stage-1 results {folder}: {why}; running {" ".join(cmd)}')
        subprocess.run(cmd, check=True)
        if weights:
            with open(osp.join(root, STAMP), 'w') as f:
                f.write(file_sha1(_resolve(weights)) + '\n')
        missing = [s for s in stems if not osp.isfile(osp.join(folder, f'{s}.png'))]
        if missing:
            raise FileNotFoundError(f'ICFSRDENet: test.py with {test_options} did not write {len(missing)} stage-1 '
                                    f'results of {set_name} into {folder} (e.g. {missing[0]}.png)')
    return folder


@register(DATASET_REGISTRY, name='ICFSRDENet.StageOneResultDataset')
class StageOneResultDataset(data.Dataset):
    """A toolkit dataset plus ``cond``, the stage-1 result of each image (see the module docstring).

    Args:
        opt (dict): ``base`` (dataset type, required), ``stage1_test_options`` + ``stage1_set`` +
            ``stage1_cfg_options``, or ``stage1_results``; ``crop_size`` (training phase only, optional); every
            other key is the base dataset's.

    Returns from ``__getitem__``:
        dict: The base sample (``lq``, ``gt`` when paired, ``lq_path``, ...) plus ``cond`` (float32 3 x H x W RGB
        in ``[0, 1]``, the size of ``gt`` / ``lq``) and ``cond_path``.
    """

    def __init__(self, opt):
        from lowlight3d.data import build_dataset
        super().__init__()
        self.opt = dict(opt)
        self.name = self.opt.get('name') or type(self).__name__
        if not self.opt.get('base'):
            raise ValueError(f"{self.name}: ICFSRDENet.StageOneResultDataset needs 'base', the type of the dataset it "
                             'wraps (e.g. PairedLowLightFaceDataset or UnpairedLowLightDataset)')
        base_opt = {k: v for k, v in self.opt.items() if k not in _OWN_KEYS}
        base_opt['type'] = self.opt['base']
        self.base = build_dataset(base_opt, where=f'{self.name} (base)')
        self.phase = self.opt.get('phase', 'train')
        self.seed = int(self.opt.get('seed', 0))
        self.epoch = 0
        crop = self.opt.get('crop_size')
        if crop is not None and (not isinstance(crop, int) or isinstance(crop, bool) or crop < 1):
            raise ValueError(f'{self.name}: crop_size must be a positive integer or null, got {crop!r}')
        self.crop_size = crop if self.phase == 'train' else None
        self.accepts_index_beyond_len = getattr(self.base, 'accepts_index_beyond_len', False)
        self.skipped = getattr(self.base, 'skipped', [])
        source = getattr(self.base, 'source', None)  # the toolkit's face datasets: check every image up front
        stems = [osp.splitext(osp.basename(source.path(j)))[0] for j in range(len(source))] if source else []
        if self.opt.get('stage1_results'):
            self.folder = _resolve(self.opt['stage1_results'])
        elif self.opt.get('stage1_test_options'):
            from basicsr.utils import get_root_logger
            self.folder = ensure_stage1_results(self.opt['stage1_test_options'], self.opt.get('stage1_set', self.name),
                                                stems, self.opt.get('stage1_cfg_options') or (),
                                                log=get_root_logger().info)
        else:
            raise ValueError(f'{self.name}: ICFSRDENet.StageOneResultDataset needs stage1_test_options (the stage-1 '
                             'results option file run through test.py, e.g. '
                             'options/demo/test_ICFSRDENet_stage1_results_demo.yml) '
                             'or stage1_results (a folder of stage-1 results)')
        if not osp.isdir(self.folder):
            raise FileNotFoundError(f'{self.name}: the stage-1 results folder {self.folder} does not exist')

    def set_epoch(self, epoch):
        """Forward the epoch to the base dataset (and seed the crops)."""
        self.epoch = int(epoch)
        if hasattr(self.base, 'set_epoch'):
            self.base.set_epoch(epoch)

    def __len__(self):
        return len(self.base)

    def __getitem__(self, index):
        sample = dict(self.base[index])
        ref = sample['gt'] if 'gt' in sample else sample['lq']
        stem = osp.splitext(osp.basename(sample['lq_path']))[0]
        path = osp.join(self.folder, f'{stem}.png')
        if not osp.isfile(path):
            raise ImageReadError(path, f'{self.name}: no stage-1 result for {stem} (expected {path})')
        cond = resize_image(read_image(path), tuple(ref.shape[-2:]))
        if sample.get('hflip'):
            cond = np.ascontiguousarray(cond[:, ::-1])
        sample['cond'], sample['cond_path'] = img_to_tensor(cond), path
        if self.crop_size:
            sample = self._crop(sample, int(index))
        return sample

    def _crop(self, sample, index):
        """One random ``crop_size`` window of ``cond``, ``gt`` and ``lq`` (seeded by seed, epoch and index)."""
        h, w = sample['cond'].shape[-2:]
        size = self.crop_size
        if size > min(h, w):
            raise ValueError(f'{self.name}: crop_size {size} exceeds the image size {h}x{w}')
        rng = train_rng(self.seed, self.epoch, index, STREAM_CROP)
        top, left = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
        for key in ('cond', 'gt', 'lq'):
            if key in sample and isinstance(sample[key], torch.Tensor):
                sample[key] = sample[key][..., top:top + size, left:left + size].contiguous()
        return sample
