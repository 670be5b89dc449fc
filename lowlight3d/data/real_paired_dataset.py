"""Real low-light photos paired with a real well-lit reference of the same face (nothing is synthesised).

The other paired set of the toolkit, :class:`~lowlight3d.data.lowlight_face_dataset.PairedLowLightFaceDataset`,
darkens a normal-light image on the fly.  This one reads **both** images from disk: e.g. the dark Extended Yale B
frames (light from far behind, or ambient only) and the same subject's frontal flash frame, which the real-face
benchmark uses as the reference of full-reference identity metrics.

Options (defaults in brackets), besides the common ones of :mod:`lowlight3d.data.lowlight_face_dataset` (``name``,
``phase``, ``seed``, ``gt_size`` [256], ``use_hflip`` [True, train only], ``io_backend`` (both roots),
``extensions``, ``recursive``, ``skip_corrupt``):

* ``dataroot_lq`` (required): folder or ``.lmdb`` of the low-light images.
* ``dataroot_gt`` (required): folder or ``.lmdb`` of the references.
* ``meta_info_file`` [null]: one pair per line, ``<lq path> <gt path>`` (relative to the two roots, whitespace
  separated; ``#`` comments and empty lines ignored).  Several low-light images may share one reference.  A line
  with one path pairs the files of that path in both roots.  Without a meta file every image of ``dataroot_lq``
  is paired with the file of the same name in ``dataroot_gt`` (BasicSR's paired-folder convention).

Both images are resized to ``gt_size`` (``null`` keeps the size; then the two must have the same size) and, in
the train phase, flipped together.  Grayscale files are read as 3 identical channels.

Returns from ``__getitem__``:
    dict: ``lq``, ``gt`` (float32 3 x H x W RGB in [0, 1]), ``lq_path``, ``gt_path``, ``hflip``.
"""
import os.path as osp

import numpy as np

from lowlight3d.data.image_source import ImageSource
from lowlight3d.data.lowlight_face_dataset import _LowLightBase, img_to_tensor, resize_image
from lowlight3d.data.seeding import STREAM_PAIRED
from lowlight3d.utils.img_io import IMAGE_EXTENSIONS
from lowlight3d.utils.registry import DATASET_REGISTRY, register

__all__ = ['RealPairedLowLightDataset', 'read_pair_list']


def read_pair_list(path):
    """Read a pair list: ``[(lq_path, gt_path)]`` from lines ``<lq> <gt>`` (or ``<path>``: the same in both roots).

    Args:
        path (str): The meta file.

    Returns:
        list[tuple[str, str]]: The pairs, in file order.

    Raises:
        FileNotFoundError: The file is missing. ValueError: A line has more than two fields, or no pair is listed.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f"Pair list (meta_info_file) '{path}' does not exist")
    pairs = []
    with open(path, encoding='utf-8') as f:
        for number, line in enumerate(f, 1):
            fields = line.split()
            if not fields or fields[0].startswith('#'):
                continue
            if len(fields) > 2:
                raise ValueError(f'{path}:{number}: expected "<lq path> <gt path>", got {line.strip()!r}')
            pairs.append((fields[0], fields[-1]))
    if not pairs:
        raise ValueError(f"Pair list '{path}' lists no pair")
    return pairs


@register(DATASET_REGISTRY)
class RealPairedLowLightDataset(_LowLightBase):
    """Real low-light images with real references, paired by a meta file or by name (see the module docstring).

    Args:
        opt (dict): Options (module docstring).
    """

    def __init__(self, opt):
        super().__init__(opt, 'dataroot_lq', STREAM_PAIRED)  # meta_info_file: the first column lists the lq images
        if not self.opt.get('dataroot_gt'):
            raise ValueError(f"{self.name}: 'dataroot_gt' is required (the folder of the well-lit references)")
        self.gt_source = ImageSource(self.opt['dataroot_gt'], io_backend=self.opt.get('io_backend'),
                                     extensions=self.opt.get('extensions') or IMAGE_EXTENSIONS,
                                     recursive=bool(self.opt.get('recursive', False)),
                                     option_name=f'{self.name}: dataroot_gt')
        meta = self.opt.get('meta_info_file')
        if meta:
            gt_of = dict(read_pair_list(meta))
            where = f"in {meta}"
        else:
            gt_of = {entry: entry for entry in self.source.entries}
            where = f"(same name as in {self.opt['dataroot_lq']}; give a meta_info_file to pair other names)"
        gt_index = {entry: i for i, entry in enumerate(self.gt_source.entries)}
        missing = [gt_of[e] for e in self.source.entries if gt_of[e] not in gt_index]
        if missing:
            raise FileNotFoundError(f"{self.name}: {len(missing)} reference(s) listed {where} are not in dataroot_gt "
                                    f"'{self.opt['dataroot_gt']}', e.g. {missing[:3]}")
        self.gt_indices = [gt_index[gt_of[e]] for e in self.source.entries]

    def get_sample(self, index):
        """Build one sample: ``lq``, ``gt``, ``lq_path``, ``gt_path``, ``hflip``.

        Args:
            index (int): Dataset index (may exceed ``len``; see :mod:`lowlight3d.data.lowlight_face_dataset`).

        Returns:
            dict: See the module docstring.
        """
        seed_index, i = self._check_index(index)
        j, lq = self._load(i)
        rng = self._sample_rng(seed_index if self.is_train else None, self.source.names[j])
        k = self.gt_indices[j]
        gt = self.gt_source.read(k)
        lq_path, gt_path = self.source.path(j), self.gt_source.path(k)
        if self.size is None and lq.shape[:2] != gt.shape[:2]:
            raise ValueError(f'{self.name}: {lq_path} is {lq.shape[1]}x{lq.shape[0]} but its reference {gt_path} is '
                             f'{gt.shape[1]}x{gt.shape[0]}; set gt_size to resize both, or pair same-size images')
        lq, flipped = self._prepare(lq, rng)
        gt = resize_image(gt, self.size)
        if flipped:
            gt = np.ascontiguousarray(gt[:, ::-1])
        return {'lq': img_to_tensor(lq), 'gt': img_to_tensor(gt), 'lq_path': lq_path, 'gt_path': gt_path,
                'hflip': flipped}

    def __getitem__(self, index):
        return self.get_sample(index)
