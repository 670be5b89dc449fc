"""Folder of images -> BasicSR-format LMDB with ``meta_info.txt`` (the logic of ``create_lmdb.py``).

Format (readable by BasicSR's ``FileClient('lmdb')`` and by :class:`~lowlight3d.data.image_source.ImageSource`):

* key: the image path relative to the input folder, without extension (``/`` separators), UTF-8;
* value: the image re-encoded as PNG at ``compress_level`` (0-9), keeping its bit depth and channels (gray,
  RGB, RGBA; 8 or 16 bit), after the JPEG EXIF orientation is applied, exactly as
  :func:`lowlight3d.utils.img_io.decode_image_array` decodes it: the folder and the LMDB give identical pixels;
* ``meta_info.txt`` in the ``.lmdb`` folder: one line per image, ``<key>.png (h,w,c) <compress_level>``.

Safety: the LMDB is built in ``<output>.partial`` and renamed when complete, so an ``.lmdb`` folder that exists is
complete (with ``overwrite`` the old one is only replaced once the new one is complete).  Re-running on it is a
no-op when its ``meta_info.txt`` lists exactly the input images; otherwise it stops and asks for
``overwrite=True``.  Every input image is decoded; a corrupt one stops the run with an error naming it (only the
``.partial`` folder is left behind, removed by the next run).
"""
import os
import os.path as osp
import shutil

import cv2
import numpy as np

from lowlight3d.data.image_source import META_INFO_NAME, close_lmdb_env, open_lmdb_env, read_meta_info, scan_images
from lowlight3d.utils.img_io import IMAGE_EXTENSIONS, ImageReadError, decode_image_array, read_image_bytes

__all__ = ['create_lmdb', 'LmdbExistsError']

_BATCH = 256


class LmdbExistsError(FileExistsError):
    """The output LMDB exists and does not match the input folder (use ``overwrite``)."""


def _encode_png(img, compress_level, name):
    """Native decoded array -> PNG bytes and its ``(h, w, c)``."""
    if img.dtype not in (np.uint8, np.uint16):
        raise ImageReadError(name, f'pixel type {img.dtype} cannot be stored as PNG (8 or 16 bit only)')
    ok, buf = cv2.imencode('.png', img, [int(cv2.IMWRITE_PNG_COMPRESSION), int(compress_level)])
    if not ok:
        raise ImageReadError(name, 'PNG re-encoding failed')
    h, w = img.shape[:2]
    c = 1 if img.ndim == 2 else img.shape[2]
    return buf.tobytes(), (h, w, c)


def _existing_is_complete(lmdb_path, keys):
    """Whether an existing LMDB folder's meta_info lists exactly ``keys`` (and its data.mdb has them all)."""
    meta = osp.join(lmdb_path, META_INFO_NAME)
    if not (osp.isfile(meta) and osp.isfile(osp.join(lmdb_path, 'data.mdb'))):
        return False, 'no meta_info.txt or data.mdb'
    try:
        listed = [osp.splitext(e)[0] for e in read_meta_info(meta)]
    except ValueError:
        return False, 'empty meta_info.txt'
    if listed != keys:
        added, gone = len(set(keys) - set(listed)), len(set(listed) - set(keys))
        return False, f'its meta_info.txt differs from the input ({added} new, {gone} no longer in the input)'
    entries = open_lmdb_env(lmdb_path).stat()['entries']
    if entries != len(keys):
        return False, f'it holds {entries} entries for {len(keys)} images'
    return True, ''


def create_lmdb(input_dir,
                output_lmdb,
                compress_level=1,
                overwrite=False,
                recursive=False,
                extensions=IMAGE_EXTENSIONS,
                map_size=None,
                log=print):
    """Create (or verify) an LMDB of all images in ``input_dir``.

    Args:
        input_dir (str): Folder of images.
        output_lmdb (str): Output folder, must end with ``.lmdb``; its parent folder is created.
        compress_level (int): PNG compression level 0-9 stored in meta_info. Default 1.
        overwrite (bool): Rebuild even if a complete LMDB exists.
        recursive (bool): Include images in sub-folders (keys then contain ``/``).
        extensions (Sequence[str]): Image extensions to include.
        map_size (int, optional): Initial LMDB map size in bytes; grown automatically when full.
        log (callable): Progress/message sink (``print`` by default; ``None`` silences).

    Returns:
        dict: ``{'lmdb': path, 'num_images': n, 'created': bool}`` (``created`` is False for a no-op).

    Raises:
        ImageReadError: An input image is corrupt (the message names it).
        LmdbExistsError: The output exists, does not match the input, and ``overwrite`` is False.
        ValueError: Bad arguments (output name, compression level, duplicate names, no images).
    """
    import lmdb
    log = log or (lambda *a, **k: None)
    output_lmdb = osp.abspath(os.fspath(output_lmdb)).rstrip('/')
    if not output_lmdb.endswith('.lmdb'):
        raise ValueError(f"LMDB output must end with '.lmdb', got '{output_lmdb}'")
    if not 0 <= int(compress_level) <= 9:
        raise ValueError(f'compress_level must be in 0..9, got {compress_level}')
    rel_paths = scan_images(input_dir, extensions, recursive)
    if not rel_paths:
        raise ValueError(f"No image in '{input_dir}' (extensions {list(extensions)})")
    keys = [osp.splitext(p)[0] for p in rel_paths]
    if len(set(keys)) != len(keys):
        seen, dupes = set(), []
        for k in keys:
            if k in seen:
                dupes.append(k)
            seen.add(k)
        raise ValueError(f'Images with the same name but different extensions in {input_dir}: {dupes[:5]}')

    if osp.exists(output_lmdb):
        if overwrite:
            log(f'Rebuilding {output_lmdb} (--overwrite); the old one is replaced once the new one is complete')
        else:
            complete, why = _existing_is_complete(output_lmdb, keys)
            if complete:
                log(f'{output_lmdb} is complete ({len(keys)} images); nothing to do')
                return {'lmdb': output_lmdb, 'num_images': len(keys), 'created': False}
            raise LmdbExistsError(f'{output_lmdb} exists but does not match {input_dir}: {why}. '
                                  'Use --overwrite (overwrite=True) to rebuild it.')

    partial = output_lmdb + '.partial'
    if osp.exists(partial):
        log(f'Removing unfinished {partial} from an interrupted run')
        shutil.rmtree(partial)
    os.makedirs(osp.dirname(output_lmdb), exist_ok=True)

    if map_size is None:
        total = sum(osp.getsize(osp.join(input_dir, p)) for p in rel_paths)
        map_size = max(64 << 20, total * 4)
    env = lmdb.open(partial, map_size=int(map_size), subdir=True)
    meta_lines = []
    try:
        batch = []
        for n, (rel, key) in enumerate(zip(rel_paths, keys), 1):
            path = osp.join(input_dir, rel)
            img = decode_image_array(read_image_bytes(path), path)
            value, (h, w, c) = _encode_png(img, compress_level, path)
            batch.append((key.encode('utf-8'), value))
            meta_lines.append(f'{key}.png ({h},{w},{c}) {int(compress_level)}')
            if len(batch) >= _BATCH or n == len(keys):
                _write_batch(env, batch)
                batch = []
                log(f'  {n}/{len(keys)} images written')
    finally:
        env.close()
    with open(osp.join(partial, META_INFO_NAME), 'w', encoding='utf-8') as f:
        f.write('\n'.join(meta_lines) + '\n')
    close_lmdb_env(output_lmdb)
    if osp.exists(output_lmdb):
        shutil.rmtree(output_lmdb)
    os.replace(partial, output_lmdb)
    log(f'Created {output_lmdb} with {len(keys)} images and {META_INFO_NAME}')
    return {'lmdb': output_lmdb, 'num_images': len(keys), 'created': True}


def _write_batch(env, batch):
    """Write ``(key, value)`` pairs in one transaction, doubling the map size while it is full."""
    import lmdb
    while True:
        try:
            with env.begin(write=True) as txn:
                for key, value in batch:
                    txn.put(key, value)
            return
        except lmdb.MapFullError:
            env.set_mapsize(env.info()['map_size'] * 2)
