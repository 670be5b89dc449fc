"""The paper's paired FFHQ set: 5000 train / 1000 test faces at 256 px, plus a fixed pre-synthesised test input.

:func:`prepare_ffhq` takes any folder of FFHQ images (the official ``images1024x1024/<thousands>/<id>.png`` tree,
the 256-px thumbnails, or a flat folder; scanned recursively) and writes::

    <out>/selection.json            seed, counts, source folder, size, degradation config
    <out>/train_list.txt            selected source files (relative paths), in output order
    <out>/test_list.txt
    <out>/train/<id>.png            ground truth, resized to size x size (+ meta_info.txt)
    <out>/test/gt/<id>.png          (+ meta_info.txt)
    <out>/test/lq/<id>.png          fixed low-light input (+ meta_info.txt)
    <out>/test/degradation_params.json    id -> parameters drawn for its low-light input
    <out>/train.lmdb, test/gt.lmdb, test/lq.lmdb    with --lmdb

**Selection**: the sorted image list is permuted with ``numpy.random.default_rng(seed)``; the first ``num_train``
images are the training set and the next ``num_test`` the test set (disjoint).  Output names are the file stems
(FFHQ ids), which must therefore be unique.

**Fixed test input**: ``test/lq/<id>.png`` is exactly what
:class:`~lowlight3d.data.lowlight_face_dataset.PairedLowLightFaceDataset` produces in the ``test`` phase from
``test/gt`` with the same ``seed`` and ``degradation`` options: the generator is
``eval_rng(seed, '<id>', STREAM_PAIRED)``, the (no-op) resize and the flip draw are made as the dataset makes them,
then :class:`~lowlight3d.data.lowlight_degradation.LowLightDegradation` runs on the 8-bit ground truth as written.
Every method is then tested on identical inputs, whether it reads ``test/lq`` or synthesises on the fly.

**Resumable**: images whose output exists are skipped; files are written atomically.  A re-run with other
selection or degradation settings on the same output folder stops with an error (use a new folder or
``overwrite``).
"""
import json
import os
import os.path as osp
import shutil
from collections import Counter

import numpy as np

from lowlight3d.data.image_source import scan_images
from lowlight3d.data.lowlight_degradation import LowLightDegradation
from lowlight3d.data.lowlight_face_dataset import resize_image
from lowlight3d.data.preparation.dataset_writing import build_lmdb, write_image_atomic, write_meta_info, write_name_list
from lowlight3d.data.seeding import STREAM_PAIRED, check_seed, eval_rng
from lowlight3d.utils.img_io import read_image

__all__ = ['select_ffhq_split', 'synthesise_test_input', 'prepare_ffhq']


def select_ffhq_split(rel_paths, num_train=5000, num_test=1000, seed=0, allow_fewer=False):
    """Seeded, disjoint train/test selection from a list of image paths.

    Args:
        rel_paths (Sequence[str]): Image paths (sorted internally, so the order given does not matter).
        num_train (int): Training images wanted.
        num_test (int): Test images wanted.
        seed (int): Selection seed.
        allow_fewer (bool): With fewer images than ``num_train + num_test``, keep the train:test ratio instead of
            raising.

    Returns:
        tuple[list[str], list[str]]: Train and test paths, each sorted.

    Raises:
        ValueError: Too few images (and not ``allow_fewer``), or negative counts.
    """
    if num_train < 0 or num_test < 0 or num_train + num_test == 0:
        raise ValueError(f'num_train and num_test must be >= 0 and not both 0, got {num_train} and {num_test}')
    paths = sorted(rel_paths)
    wanted = num_train + num_test
    if len(paths) < wanted:
        if not allow_fewer:
            raise ValueError(f'Only {len(paths)} images found but {num_train} train + {num_test} test were '
                             'requested: point --input at the full FFHQ folder, lower --num-train/--num-test, or '
                             'pass --allow-fewer to keep the train:test ratio')
        num_test = int(round(len(paths) * num_test / wanted))
        num_train = len(paths) - num_test
    perm = np.random.default_rng(check_seed(seed)).permutation(len(paths))
    train = sorted(paths[i] for i in perm[:num_train])
    test = sorted(paths[i] for i in perm[num_train:num_train + num_test])
    return train, test


def synthesise_test_input(gt, name, degradation, seed):
    """The low-light input the paired dataset gives image ``name`` in the test phase.

    Mirrors ``PairedLowLightFaceDataset.get_sample`` for ``phase: test`` with ``gt_size`` equal to the image size:
    generator ``eval_rng(seed, name, STREAM_PAIRED)``, one uniform draw for the (unused) flip, then the degradation.

    Args:
        gt (np.ndarray): Ground truth as the dataset reads it (float32 RGB in ``[0, 1]``, already 8-bit levels).
        name (str): Image name (file stem).
        degradation (LowLightDegradation): The degradation.
        seed (int): The dataset's ``seed``.

    Returns:
        tuple[np.ndarray, dict]: Low-light image and the drawn parameters.
    """
    rng = eval_rng(seed, name, STREAM_PAIRED)
    rng.random()  # the dataset's horizontal-flip draw (always made, not applied outside training)
    return degradation(gt, rng)


def _quantise(img):
    """The float image a written-and-read-back 8-bit PNG gives (as ``write_image`` + ``read_image``)."""
    return (np.round(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8).astype(np.float32) / 255.0)


def _check_selection(out_dir, settings, overwrite, log):
    """Refuse to mix outputs of different settings in one folder (unless ``overwrite``)."""
    path = osp.join(out_dir, 'selection.json')
    if not osp.isfile(path):
        return
    with open(path, encoding='utf-8') as f:
        old = json.load(f)
    if old == settings:
        return
    if not overwrite:
        changed = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
        raise ValueError(f"'{out_dir}' holds an FFHQ preparation made with other settings ({', '.join(changed)} "
                         'differ): use another --output folder or --overwrite')
    log(f'--overwrite: removing the previous preparation in {out_dir}')
    for sub in ('train', 'test', 'train.lmdb'):
        if osp.exists(osp.join(out_dir, sub)):
            shutil.rmtree(osp.join(out_dir, sub))


def prepare_ffhq(input_dir,
                 output_dir,
                 num_train=5000,
                 num_test=1000,
                 seed=0,
                 size=256,
                 degradation=None,
                 allow_fewer=False,
                 lmdb=False,
                 overwrite=False,
                 progress=True,
                 log=print):
    """Build the paired FFHQ set (see the module docstring for the layout).

    Args:
        input_dir (str): Folder of FFHQ images (scanned recursively).
        output_dir (str): Output folder.
        num_train (int): Training images (5000 in the paper).
        num_test (int): Test images (1000 in the paper).
        seed (int): Selection seed, also the ``seed`` of the pre-synthesised test input (use the same value as the
            test dataset's ``seed`` option).
        size (int): Output side (256 in the paper).
        degradation (dict, optional): ``degradation`` option block (see ``LowLightDegradation.from_opt``);
            None = the toolkit's defaults.
        allow_fewer (bool): Accept fewer images than requested.
        lmdb (bool): Also write ``train.lmdb``, ``test/gt.lmdb`` and ``test/lq.lmdb``.
        overwrite (bool): Replace a preparation made with other settings.
        progress (bool): Show tqdm progress bars.
        log (callable): Message sink.

    Returns:
        dict: ``num_train``, ``num_test``, ``written`` (images written this run), ``skipped`` (already present),
        ``output_dir``.
    """
    from tqdm import tqdm
    log = log or (lambda *a, **k: None)
    seed = check_seed(seed)
    size = int(size)
    if size < 8:
        raise ValueError(f'size must be >= 8, got {size}')
    deg = LowLightDegradation.from_opt(degradation)
    rel_paths = scan_images(input_dir, recursive=True)
    if not rel_paths:
        raise ValueError(f"No image found in '{input_dir}' (searched recursively)")
    stems = [osp.splitext(osp.basename(p))[0] for p in rel_paths]
    if len(set(stems)) != len(stems):
        dupes = sorted(s for s, c in Counter(stems).items() if c > 1)[:5]
        raise ValueError(f"Several images in '{input_dir}' share a file name {dupes}: output names are the stems")
    train, test = select_ffhq_split(rel_paths, num_train, num_test, seed, allow_fewer)
    settings = {
        'source': osp.abspath(input_dir),
        'num_source_images': len(rel_paths),
        'num_train': len(train),
        'num_test': len(test),
        'seed': seed,
        'size': size,
        'degradation': deg.config,
    }
    os.makedirs(output_dir, exist_ok=True)
    _check_selection(output_dir, settings, overwrite, log)
    with open(osp.join(output_dir, 'selection.json'), 'w', encoding='utf-8') as f:
        json.dump(settings, f, indent=2, sort_keys=True)
    write_name_list(osp.join(output_dir, 'train_list.txt'), train)
    write_name_list(osp.join(output_dir, 'test_list.txt'), test)
    log(f'FFHQ: {len(rel_paths)} images in {input_dir}; selected {len(train)} train / {len(test)} test (seed {seed})')

    train_dir = osp.join(output_dir, 'train')
    gt_dir, lq_dir = osp.join(output_dir, 'test', 'gt'), osp.join(output_dir, 'test', 'lq')
    for d in (train_dir, gt_dir, lq_dir):
        os.makedirs(d, exist_ok=True)
    params_path = osp.join(output_dir, 'test', 'degradation_params.json')
    params = {}
    if osp.isfile(params_path):
        with open(params_path, encoding='utf-8') as f:
            params = json.load(f)
    written = skipped = 0
    for rel in tqdm(train, desc='FFHQ train', disable=not progress):
        out = osp.join(train_dir, osp.splitext(osp.basename(rel))[0] + '.png')
        if osp.isfile(out):
            skipped += 1
            continue
        write_image_atomic(out, resize_image(read_image(osp.join(input_dir, rel)), (size, size)))
        written += 1
    for n, rel in enumerate(tqdm(test, desc='FFHQ test (gt + fixed low-light input)', disable=not progress), 1):
        name = osp.splitext(osp.basename(rel))[0]
        gt_out, lq_out = osp.join(gt_dir, name + '.png'), osp.join(lq_dir, name + '.png')
        if osp.isfile(gt_out) and osp.isfile(lq_out) and name in params:
            skipped += 1
            continue
        gt = _quantise(resize_image(read_image(osp.join(input_dir, rel)), (size, size)))
        lq, drawn = synthesise_test_input(gt, name, deg, seed)
        write_image_atomic(gt_out, gt)
        write_image_atomic(lq_out, lq)
        params[name] = drawn
        written += 1
        if n % 100 == 0 or n == len(test):  # checkpoint the parameters now and then (they are cheap to redo)
            _dump_json(params_path, params)
    _dump_json(params_path, params)
    for d in (train_dir, gt_dir, lq_dir):
        write_meta_info(d)
    if lmdb:
        for d in (train_dir, gt_dir, lq_dir):
            build_lmdb(d, log=log)
    log(f'FFHQ: {written} images written, {skipped} already present, in {output_dir}')
    return {'num_train': len(train), 'num_test': len(test), 'written': written, 'skipped': skipped,
            'output_dir': output_dir}


def _dump_json(path, obj):
    """Write JSON atomically."""
    tmp = path + '.tmp'
    with open(tmp, 'w', encoding='utf-8') as f:
        json.dump(obj, f, sort_keys=True)
    os.replace(tmp, path)
