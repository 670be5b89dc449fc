"""Writing prepared image sets: atomic image files, name lists, ``meta_info.txt`` and the optional LMDB.

Every prepared set is a folder of PNG files named ``<name>.png`` with a BasicSR ``meta_info.txt`` inside
(``<name>.png (h,w,c) 1`` per line; :class:`~lowlight3d.data.image_source.ImageSource` and BasicSR read it), and,
on request, the LMDB made from that folder by :func:`lowlight3d.data.lmdb_creation.create_lmdb` beside it
(``<folder>.lmdb``, with its own ``meta_info.txt``).  Image files are written under a temporary hidden name and
renamed, so an interrupted run never leaves a truncated PNG that a re-run would take as done.
"""
import os
import os.path as osp
import shutil

import cv2

from lowlight3d.data.image_source import META_INFO_NAME, scan_images
from lowlight3d.utils.checkpoint import atomic_write, atomic_write_text
from lowlight3d.utils.img_io import write_image

__all__ = ['write_image_atomic', 'write_name_list', 'write_meta_info', 'populate_folder', 'build_lmdb']


def write_image_atomic(path, img):
    """Write an RGB float image as 8-bit via a temporary hidden file and an atomic rename.

    Args:
        path (str): Output file (its extension selects the format).
        img (np.ndarray): ``H x W x 3`` RGB float image in ``[0, 1]``.

    Returns:
        str: ``path``.
    """
    atomic_write(path, lambda tmp: write_image(tmp, img), suffix=osp.splitext(path)[1])
    return path


def write_name_list(path, names):
    """Write one name per line (atomically).

    Args:
        path (str): Output text file.
        names (Iterable[str]): The names.
    """
    atomic_write_text(path, ''.join(f'{n}\n' for n in names))


def write_meta_info(folder):
    """Write ``folder/meta_info.txt`` (BasicSR format) listing every image of ``folder``.

    Args:
        folder (str): Image folder.

    Returns:
        int: Number of images listed.
    """
    lines = []
    for rel in scan_images(folder):
        img = cv2.imread(osp.join(folder, rel), cv2.IMREAD_UNCHANGED)
        if img is None:
            raise OSError(f"Cannot read back '{osp.join(folder, rel)}' while writing {META_INFO_NAME}")
        h, w = img.shape[:2]
        c = 1 if img.ndim == 2 else img.shape[2]
        lines.append(f'{rel} ({h},{w},{c}) 1')
    atomic_write_text(osp.join(folder, META_INFO_NAME), ''.join(line + '\n' for line in lines))
    return len(lines)


def _link_or_copy(src, dst):
    """Hard-link ``src`` to ``dst`` (copy when linking is impossible, e.g. across file systems)."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def populate_folder(folder, sources):
    """Make ``folder`` hold exactly the given files (hard links or copies), then write its ``meta_info.txt``.

    Nothing is changed when the folder already holds exactly these names; otherwise it is rebuilt in
    ``<folder>.partial`` and swapped in.

    Args:
        folder (str): The set's folder.
        sources (dict): Output file name (``<name>.png``) -> source file path.

    Returns:
        bool: True when the folder was (re)built, False when it was already up to date.
    """
    if osp.isdir(folder) and set(scan_images(folder)) == set(sources) and osp.isfile(osp.join(folder,
                                                                                              META_INFO_NAME)):
        return False
    partial = folder.rstrip('/') + '.partial'
    if osp.exists(partial):
        shutil.rmtree(partial)
    os.makedirs(partial)
    for fname, src in sorted(sources.items()):
        _link_or_copy(src, osp.join(partial, fname))
    write_meta_info(partial)
    if osp.exists(folder):
        shutil.rmtree(folder)
    os.replace(partial, folder)
    return True


def build_lmdb(folder, rebuild=False, log=None):
    """Create ``<folder>.lmdb`` from ``folder`` (a no-op when it is complete and ``rebuild`` is False).

    Args:
        folder (str): Image folder.
        rebuild (bool): Replace an existing LMDB (use when the folder's content changed).
        log (callable, optional): Message sink.

    Returns:
        str: The LMDB path.
    """
    from lowlight3d.data.lmdb_creation import create_lmdb
    out = folder.rstrip('/') + '.lmdb'
    create_lmdb(folder, out, overwrite=rebuild and osp.exists(out), log=log)
    return out
