"""Where dataset images come from: a folder, a folder plus a ``meta_info`` list, or a BasicSR-format LMDB.

Every image has a **name**: its path relative to the root, without extension, with ``/`` separators (the LMDB key
in an LMDB made by :mod:`lowlight3d.data.lmdb_creation` or BasicSR).  A folder and the LMDB made from it
therefore have the same names, in the same (sorted) order, and give identical pixels.

LMDB files are opened lazily, read-only and without locking, once per LMDB and process (:func:`open_lmdb_env`):
DataLoader workers never use an environment opened before the fork.
"""
import os
import os.path as osp
import warnings
from collections import Counter

from lowlight3d.utils.img_io import IMAGE_EXTENSIONS, ImageReadError, decode_image_array, read_image_bytes, to_float_rgb

__all__ = ['ImageSource', 'scan_images', 'read_meta_info', 'open_lmdb_env', 'close_lmdb_env', 'META_INFO_NAME']

#: File name of the image list inside an ``.lmdb`` folder (BasicSR convention).
META_INFO_NAME = 'meta_info.txt'


def scan_images(folder, extensions=IMAGE_EXTENSIONS, recursive=False):
    """List image files of ``folder`` as sorted relative paths (``/`` separators, hidden files skipped).

    Args:
        folder (str): Root folder.
        extensions (Sequence[str]): Accepted extensions (case-insensitive, with the dot).
        recursive (bool): Descend into sub-folders.

    Returns:
        list[str]: Relative paths with extension, sorted.

    Raises:
        FileNotFoundError: ``folder`` is not a folder.
    """
    if not osp.isdir(folder):
        raise FileNotFoundError(f"Image folder '{folder}' does not exist or is not a folder")
    exts = tuple(e.lower() for e in extensions)
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith('.'))
        rel_dir = osp.relpath(dirpath, folder)
        for fname in filenames:
            if fname.startswith('.') or osp.splitext(fname)[1].lower() not in exts:
                continue
            rel = fname if rel_dir == '.' else osp.join(rel_dir, fname)
            found.append(rel.replace(os.sep, '/'))
        if not recursive:
            break
    return sorted(found)


def read_meta_info(path):
    """Read a BasicSR ``meta_info`` file: the first whitespace-separated token of each line is an image path.

    Empty lines and lines starting with ``#`` are ignored; ``name.png (h,w,c) 1`` and plain ``name.png`` lines are
    both accepted.

    Args:
        path (str): The meta_info file.

    Returns:
        list[str]: The image paths (relative, with extension), in file order.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f"meta_info file '{path}' does not exist")
    entries = []
    with open(path, encoding='utf-8') as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith('#'):
                entries.append(line.split()[0])
    if not entries:
        raise ValueError(f"meta_info file '{path}' lists no image")
    return entries


#: realpath -> (pid, (st_dev, st_ino) of data.mdb, lmdb.Environment): one read-only environment per LMDB and process.
_LMDB_ENVS = {}


def open_lmdb_env(root):
    """The read-only environment of the LMDB folder ``root`` for this process, opened on first use.

    py-lmdb (>= 3.0) refuses to open the same environment twice in one process, and an environment inherited
    through ``fork`` (DataLoader workers) must not be used; so every reader of this package shares one environment
    per LMDB and process, a forked child closes its inherited copy and opens its own, and an LMDB re-created at the
    same path (new ``data.mdb``) is reopened.  Other code opening the same LMDB in the same process should use this
    function too.

    Args:
        root (str): The ``.lmdb`` folder.

    Returns:
        lmdb.Environment: Opened with ``readonly=True, lock=False, readahead=False``.

    Raises:
        FileNotFoundError: ``root`` has no ``data.mdb``.
    """
    import lmdb
    real = osp.realpath(root)
    data_file = osp.join(real, 'data.mdb')
    try:
        st = os.stat(data_file)
    except OSError:
        raise FileNotFoundError(f"'{root}' is not an LMDB (no data.mdb)") from None
    file_id = (st.st_dev, st.st_ino)
    entry = _LMDB_ENVS.get(real)
    if entry is not None:
        pid, old_id, env = entry
        if pid == os.getpid() and old_id == file_id:
            return env
        close_lmdb_env(root)
    env = lmdb.open(real, readonly=True, lock=False, readahead=False, meminit=False)
    _LMDB_ENVS[real] = (os.getpid(), file_id, env)
    return env


def close_lmdb_env(root):
    """Close this process's shared environment of ``root`` (no-op if none); call before deleting the LMDB.

    Args:
        root (str): The ``.lmdb`` folder.
    """
    entry = _LMDB_ENVS.pop(osp.realpath(root), None)
    if entry is not None:
        try:
            entry[2].close()
        except Exception:  # noqa: BLE001  (closing an inherited or already closed environment)
            pass


def _strip_ext(rel):
    """Name of a relative image path: without its extension."""
    return osp.splitext(rel)[0]


class ImageSource:
    """A list of named images in a folder or an LMDB, read as float32 RGB arrays.

    Args:
        root (str): Image folder, or an ``.lmdb`` folder.
        io_backend (dict, optional): ``{'type': 'disk' | 'lmdb', ...}``.  BasicSR's ``db_paths`` is used only when
            ``root`` is empty (its first entry); ``client_keys`` is ignored.  When ``type`` is omitted, ``root``
            ending in ``.lmdb`` selects the LMDB backend.
        meta_info_file (str, optional): Image list (BasicSR format).  Folder: restricts and orders the images.
            LMDB: defaults to ``root/meta_info.txt``; without it the LMDB keys are listed.
        extensions (Sequence[str]): Extensions scanned in a folder without meta_info.
        recursive (bool): Scan sub-folders of a folder.
        skip_missing (bool): Drop (with a warning) meta_info entries whose file does not exist instead of raising.
        option_name (str): Name of the option holding ``root``, for error messages.
    """

    def __init__(self,
                 root,
                 io_backend=None,
                 meta_info_file=None,
                 extensions=IMAGE_EXTENSIONS,
                 recursive=False,
                 skip_missing=False,
                 option_name='dataroot'):
        backend = dict(io_backend or {})
        if not root and backend.get('db_paths'):
            db_paths = backend['db_paths']
            root = db_paths[0] if isinstance(db_paths, (list, tuple)) else db_paths
        if not root:
            raise ValueError(f"Option '{option_name}' is required (an image folder or an .lmdb folder)")
        self.root = os.fspath(root)
        self.backend = backend.get('type') or ('lmdb' if self.root.rstrip('/').endswith('.lmdb') else 'disk')
        if self.backend not in ('disk', 'lmdb'):
            raise ValueError(f"io_backend.type must be 'disk' or 'lmdb', got {self.backend!r}")
        if not osp.isdir(self.root):
            raise FileNotFoundError(f"{option_name} '{self.root}' does not exist or is not a folder")
        if self.backend == 'lmdb':
            if not self.root.rstrip('/').endswith('.lmdb'):
                raise ValueError(f"{option_name} '{self.root}' must end with '.lmdb' for io_backend type 'lmdb'")
            self.entries = self._lmdb_entries(meta_info_file)
        else:
            if osp.isfile(osp.join(self.root, 'data.mdb')):
                raise ValueError(f"{option_name} '{self.root}' is an LMDB; use io_backend type 'lmdb' "
                                 '(or omit io_backend and name the folder *.lmdb)')
            if meta_info_file:
                entries = read_meta_info(meta_info_file)
                missing = [e for e in entries if not osp.isfile(osp.join(self.root, e))]
                if missing:
                    msg = (f'{len(missing)} of {len(entries)} images listed in {meta_info_file} are missing from '
                           f"'{self.root}', e.g. {missing[:3]}")
                    if not skip_missing:
                        raise FileNotFoundError(msg)
                    warnings.warn(msg + ' (skipped)', RuntimeWarning, stacklevel=2)
                    missing = set(missing)
                    entries = [e for e in entries if e not in missing]
            else:
                entries = scan_images(self.root, extensions, recursive)
            self.entries = entries
        if not self.entries:
            raise ValueError(f"{option_name} '{self.root}' contains no image (extensions {list(extensions)})")
        self.names = [_strip_ext(e) for e in self.entries]
        dupes = sorted(n for n, c in Counter(self.names).items() if c > 1)
        if dupes:
            raise ValueError(f"{option_name} '{self.root}': several files share the name(s) {dupes[:5]} "
                             '(same stem, different extensions); names must be unique')

    def _lmdb_entries(self, meta_info_file):
        """Entries of an LMDB: from meta_info (given or inside the LMDB), else its sorted keys."""
        meta = meta_info_file or osp.join(self.root, META_INFO_NAME)
        if osp.isfile(meta):
            return read_meta_info(meta)
        if meta_info_file:
            raise FileNotFoundError(f"meta_info file '{meta_info_file}' does not exist")
        with self._open_env().begin(write=False) as txn:  # entries carry an extension, as in meta_info
            return [k.decode('utf-8') + '.png' for k, _ in txn.cursor()]

    def drop(self, indices):
        """Remove images ``indices`` from the list (e.g. unreadable ones); the others keep their order.

        Args:
            indices (Iterable[int]): Indices in ``[0, len)``.
        """
        gone = set(indices)
        self.entries = [e for i, e in enumerate(self.entries) if i not in gone]
        self.names = [n for i, n in enumerate(self.names) if i not in gone]

    def _open_env(self):
        """The LMDB environment of this process (see :func:`open_lmdb_env`)."""
        return open_lmdb_env(self.root)

    def __len__(self):
        return len(self.entries)

    def path(self, i):
        """Display path of image ``i``: the file path, or ``<root>/<meta entry>`` for an LMDB.

        Args:
            i (int): Index in ``[0, len)``.

        Returns:
            str: The path.
        """
        return osp.join(self.root, self.entries[i])

    def read_bytes(self, i):
        """The encoded bytes of image ``i``.

        Args:
            i (int): Index in ``[0, len)``.

        Returns:
            bytes: File content (folder) or stored value (LMDB).

        Raises:
            ImageReadError: Missing file or LMDB key.
        """
        if self.backend == 'disk':
            return read_image_bytes(self.path(i))
        key = self.names[i]
        with self._open_env().begin(write=False) as txn:
            value = txn.get(key.encode('utf-8'))
        if value is None:
            raise ImageReadError(self.path(i), f"key '{key}' is not in the LMDB '{self.root}'")
        return value

    def read(self, i):
        """Image ``i`` as float32 ``H x W x 3`` RGB in ``[0, 1]``.

        Args:
            i (int): Index in ``[0, len)``.

        Returns:
            np.ndarray: The image.

        Raises:
            ImageReadError: Naming the file (or LMDB entry) and what is wrong with it.
        """
        name = self.path(i)
        return to_float_rgb(decode_image_array(self.read_bytes(i), name), name)
