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

**Scaling out**: ``workers`` processes write the images in parallel; ``shard='I/N'`` writes every ``N``-th
selected image (from the ``I``-th; train list then test list) into ``<out>/shards/shard-I-of-N/`` and
``merge=True`` combines complete shards.  The files are the same as those of a one-process run
(:mod:`~lowlight3d.data.preparation.sharding`).
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
from lowlight3d.data.preparation.sharding import (
    SHARDS_DIRNAME,
    adopt_file,
    check_workers,
    collect_shards,
    items_fingerprint,
    open_shard_folder,
    ordered_map,
    parse_shard,
    remove_shards,
    select_shard,
)
from lowlight3d.data.seeding import STREAM_PAIRED, check_seed, eval_rng
from lowlight3d.utils.checkpoint import atomic_write_text
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


class _ImageWorker:
    """Writes the outputs of one selected image: the unit of work of the pool and shards.

    A test image's low-light input draws from ``eval_rng(seed, name)`` only, so its result does not depend on the
    process or the order it runs in.

    Args:
        config (dict): ``input_dir``, ``train_dir``, ``gt_dir``, ``lq_dir``, ``size``, ``degradation`` (a
            :class:`LowLightDegradation`) and ``seed``.
    """

    def __init__(self, config):
        self.config = config

    def __call__(self, item):
        """Write one image's outputs.

        Args:
            item (tuple[str, str]): ``('train' | 'test', path relative to input_dir)``.

        Returns:
            tuple[str, str, dict | None]: Split, output name and (test images) the drawn degradation parameters.
        """
        cfg = self.config
        split, rel = item
        name = osp.splitext(osp.basename(rel))[0]
        img = resize_image(read_image(osp.join(cfg['input_dir'], rel)), (cfg['size'], cfg['size']))
        if split == 'train':
            write_image_atomic(osp.join(cfg['train_dir'], name + '.png'), img)
            return split, name, None
        gt = _quantise(img)
        lq, drawn = synthesise_test_input(gt, name, cfg['degradation'], cfg['seed'])
        write_image_atomic(osp.join(cfg['gt_dir'], name + '.png'), gt)
        write_image_atomic(osp.join(cfg['lq_dir'], name + '.png'), lq)
        return split, name, drawn


def _layout(root):
    """The train, test/gt and test/lq folders and the parameter file of an output (or shard) folder."""
    return (osp.join(root, 'train'), osp.join(root, 'test', 'gt'), osp.join(root, 'test', 'lq'),
            osp.join(root, 'test', 'degradation_params.json'))


def _load_params(path):
    """The saved degradation parameters (empty when the file does not exist)."""
    if not osp.isfile(path):
        return {}
    with open(path, encoding='utf-8') as f:
        return json.load(f)


def _item_done(root, item, params):
    """Whether the outputs of ``item`` exist in ``root`` (for a test image: both images and its parameters)."""
    train_dir, gt_dir, lq_dir, _ = _layout(root)
    split, rel = item
    name = osp.splitext(osp.basename(rel))[0]
    if split == 'train':
        return osp.isfile(osp.join(train_dir, name + '.png'))
    return osp.isfile(osp.join(gt_dir, name + '.png')) and osp.isfile(osp.join(lq_dir, name + '.png')) and \
        name in params


def _ffhq_options(num_train, num_test, seed, size, deg, allow_fewer):
    """The options that change the outputs (JSON-able; shards must share them, a merge checks it)."""
    return json.loads(json.dumps({'num_train': int(num_train), 'num_test': int(num_test), 'seed': seed,
                                  'size': size, 'degradation': deg.config, 'allow_fewer': bool(allow_fewer)}))


def _write_selection(output_dir, settings, train, test, overwrite, log):
    """Check and write ``selection.json`` and the two lists."""
    os.makedirs(output_dir, exist_ok=True)
    _check_selection(output_dir, settings, overwrite, log)
    with open(osp.join(output_dir, 'selection.json'), 'w', encoding='utf-8') as f:
        json.dump(settings, f, indent=2, sort_keys=True)
    write_name_list(osp.join(output_dir, 'train_list.txt'), train)
    write_name_list(osp.join(output_dir, 'test_list.txt'), test)


def _finish_folders(output_dir, lmdb, log):
    """Write ``meta_info.txt`` in the three image folders and, with ``lmdb``, their LMDBs."""
    dirs = _layout(output_dir)[:3]
    for d in dirs:
        write_meta_info(d)
    if lmdb:
        for d in dirs:
            build_lmdb(d, log=log)


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
                 workers=1,
                 shard=None,
                 merge=False,
                 keep_shards=False,
                 progress=True,
                 log=print):
    """Build the paired FFHQ set (see the module docstring for the layout), or one shard of it, or merge shards.

    The files are the same whether the images are written in one process, in a pool of ``workers`` processes, or
    in shards merged afterwards (:mod:`~lowlight3d.data.preparation.sharding`; ``docs/data_preparation.md``
    section 5).

    Args:
        input_dir (str): Folder of FFHQ images (scanned recursively; not read with ``merge``, may be None then).
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
        overwrite (bool): Replace a preparation (or shard) made with other settings.
        workers (int): Processes writing images (1 = this process only).
        shard (str | Shard, optional): ``'I/N'``: write only shard ``I`` of ``N`` of the selected images (every
            ``N``-th of the train list followed by the test list, from the ``I``-th) into
            ``<output_dir>/shards/shard-I-of-N/``.
        merge (bool): Merge the complete shards in ``<output_dir>/shards/`` into ``output_dir``; the options must
            be those of the shards.
        keep_shards (bool): With ``merge``: keep ``<output_dir>/shards/`` (default: removed once merged).
        progress (bool): Show tqdm progress bars.
        log (callable): Message sink.

    Returns:
        dict: ``num_train``, ``num_test``, ``written`` (images written this run), ``skipped`` (already present),
        ``output_dir`` (for a shard also ``shard``; for a merge ``merged_shards``).
    """
    from tqdm import tqdm
    log = log or (lambda *a, **k: None)
    seed = check_seed(seed)
    size = int(size)
    if size < 8:
        raise ValueError(f'size must be >= 8, got {size}')
    workers = check_workers(workers)
    deg = LowLightDegradation.from_opt(degradation)
    options = _ffhq_options(num_train, num_test, seed, size, deg, allow_fewer)
    if merge:
        if shard is not None:
            raise ValueError('shard and merge exclude each other: run every --shard I/N first, then --merge alone')
        return _merge_shards(output_dir, options, lmdb, overwrite, keep_shards, log)
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
    items = [('train', r) for r in train] + [('test', r) for r in test]
    log(f'FFHQ: {len(rel_paths)} images in {input_dir}; selected {len(train)} train / {len(test)} test (seed {seed})')
    work_dir = output_dir
    if shard is not None:
        shard = parse_shard(shard)
        names = [f'{split}:{rel}' for split, rel in items]
        mine = select_shard(names, shard)
        work_dir = open_shard_folder(output_dir, shard, 'ffhq', {**options, 'num_source_images': len(rel_paths)},
                                     mine, items_fingerprint(names), len(names),
                                     extra={'settings': settings, 'train': train, 'test': test},
                                     overwrite=overwrite, log=log)
        items = select_shard(items, shard)
        log(f'shard {shard}: {len(items)} of the {len(names)} selected images (positions {shard.index}, '
            f'{shard.index + shard.count}, ... of the train list followed by the test list) into {work_dir}')
    else:
        if osp.isdir(osp.join(output_dir, SHARDS_DIRNAME)):
            log(f"note: '{osp.join(output_dir, SHARDS_DIRNAME)}' holds shards of a sharded run; this run does not "
                'use them (add --merge to combine them)')
        _write_selection(output_dir, settings, train, test, overwrite, log)

    train_dir, gt_dir, lq_dir, params_path = _layout(work_dir)
    for d in (train_dir, gt_dir, lq_dir):
        os.makedirs(d, exist_ok=True)
    params = _load_params(params_path)
    todo = [it for it in items if not _item_done(work_dir, it, params)]
    skipped = len(items) - len(todo)
    config = {'input_dir': input_dir, 'train_dir': train_dir, 'gt_dir': gt_dir, 'lq_dir': lq_dir, 'size': size,
              'degradation': deg, 'seed': seed}
    written = tests_written = 0
    results = ordered_map(_ImageWorker, config, todo, workers=workers)
    desc = f'FFHQ train + test (gt + fixed low-light input){f", {workers} processes" if workers > 1 else ""}'
    for split, name, drawn in tqdm(results, total=len(todo), desc=desc, disable=not progress):
        written += 1
        if split == 'test':
            params[name] = drawn
            tests_written += 1
            if tests_written % 100 == 0:  # checkpoint the parameters now and then (they are cheap to redo)
                _dump_json(params_path, params)
    _dump_json(params_path, params)
    if shard is not None:
        log(f'FFHQ shard {shard}: {written} images written, {skipped} already present, in {work_dir}; run --merge '
            f'once all {shard.count} shards are done')
        return {'num_train': len(train), 'num_test': len(test), 'written': written, 'skipped': skipped,
                'output_dir': work_dir, 'shard': str(shard)}
    _finish_folders(output_dir, lmdb, log)
    log(f'FFHQ: {written} images written, {skipped} already present, in {output_dir}')
    return {'num_train': len(train), 'num_test': len(test), 'written': written, 'skipped': skipped,
            'output_dir': output_dir}


def _merge_shards(output_dir, options, lmdb, overwrite, keep_shards, log):
    """Merge complete shards into ``output_dir`` (files linked, parameters combined), then write the folders."""
    shards = collect_shards(output_dir, 'ffhq', options)
    count = len(shards)
    first = shards[0][1]
    settings, train, test = first['settings'], first['train'], first['test']
    params, files = {}, []
    for folder, manifest in shards:
        shard_params = _load_params(_layout(folder)[3])
        for entry in manifest['items']:
            item = tuple(entry.split(':', 1))
            if not _item_done(folder, item, shard_params):
                raise ValueError(f"Shard {manifest['shard_index']}/{count} in '{folder}' is incomplete ({item[1]} "
                                 f"has no output): re-run it with --shard {manifest['shard_index']}/{count} (it "
                                 'resumes where it stopped), then --merge again')
            name = osp.splitext(osp.basename(item[1]))[0]
            subs = [osp.join('train', name + '.png')] if item[0] == 'train' else [
                osp.join('test', 'gt', name + '.png'), osp.join('test', 'lq', name + '.png')]
            files += [(osp.join(folder, sub), osp.join(output_dir, sub)) for sub in subs]
            if item[0] == 'test':
                params[name] = shard_params[name]
    _write_selection(output_dir, settings, train, test, overwrite, log)
    train_dir, gt_dir, lq_dir, params_path = _layout(output_dir)
    for d in (train_dir, gt_dir, lq_dir):
        os.makedirs(d, exist_ok=True)
    for src, dst in files:
        adopt_file(src, dst)
    _dump_json(params_path, params)
    _finish_folders(output_dir, lmdb, log)
    log(f'FFHQ: merged {count} shards ({len(files)} image files) into {output_dir}')
    if not keep_shards:
        remove_shards(output_dir, log)
    return {'num_train': len(train), 'num_test': len(test), 'written': len(files), 'skipped': 0,
            'output_dir': output_dir, 'merged_shards': count}


def _dump_json(path, obj):
    """Write JSON atomically."""
    atomic_write_text(path, json.dumps(obj, sort_keys=True))
