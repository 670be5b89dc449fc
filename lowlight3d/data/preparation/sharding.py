"""Scaling a data preparation out: a process pool (``--workers N``), shards (``--shard I/N``) and their merge.

Both preparations (:mod:`.ffhq_preparation`, :mod:`.celebv_low_preparation`) turn a sorted list of items (selected
FFHQ images, CelebV-HQ clips) into outputs, one item at a time and independently of the other items: whatever
randomness an item needs is seeded from the item itself (its name), never from a generator shared across items.
So the work can be spread without changing a byte of the result:

* **Workers**: :func:`ordered_map` runs the items in a pool of ``N`` processes (``N = 1``: in this process) and
  hands the results back **in input order**; the caller writes its ledger in that order, so it is the
  same as a one-process run whichever worker finishes first.
* **Shards**: ``--shard I/N`` (``0 <= I < N``) processes the items at positions ``I, I + N, I + 2N, ...`` of the
  full sorted list (round-robin rather than contiguous ranges: neighbouring CelebV-HQ clips come from the same
  YouTube video and tend to be equally dark, so round-robin spreads the slow dark clips evenly).  A shard writes
  into its own folder ``<output>/shards/shard-<I>-of-<N>/``, which holds a manifest ``shard.json`` (the options
  that change the result, the shard's items and a fingerprint of the full list) beside the usual outputs and
  ledger.  Shards never write to the same file, so they can run on any number of machines sharing ``<output>``
  (or in separate places, their folders copied into ``<output>/shards/`` afterwards).
* **Merge**: ``--merge`` checks with :func:`collect_shards` that ``<output>/shards/`` holds every shard ``0..N-1``
  exactly once, all complete, all made with the same options from the same input list, then lays out exactly what
  a one-process run writes (the rows re-ordered by :func:`interleave_shards`) and removes ``<output>/shards/``.

See ``docs/data_preparation.md`` section 5 for cluster examples (SLURM array, Kubernetes indexed job).
"""
import argparse
import hashlib
import json
import multiprocessing
import os
import os.path as osp
import re
import shutil
from collections import namedtuple
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from lowlight3d.utils.checkpoint import atomic_write_text

__all__ = [
    'SHARDS_DIRNAME', 'MANIFEST_NAME', 'Shard', 'parse_shard', 'shard_argument', 'workers_argument', 'check_workers',
    'select_shard', 'interleave_shards', 'items_fingerprint', 'shard_folder', 'open_shard_folder', 'collect_shards',
    'ordered_map', 'adopt_file', 'remove_shards'
]

#: Sub-folder of the output folder holding the shard folders.
SHARDS_DIRNAME = 'shards'
#: The manifest file of a shard folder.
MANIFEST_NAME = 'shard.json'
#: Version of the manifest layout (a merge refuses shards of another version).
MANIFEST_VERSION = 1

_SHARD_PATTERN = re.compile(r'^\s*(\d+)\s*/\s*(\d+)\s*$')


class Shard(namedtuple('Shard', ['index', 'count'])):
    """One part of a sharded run: the ``index``-th (0-based) of ``count`` parts.

    Args:
        index (int): Shard index, ``0 <= index < count``.
        count (int): Number of shards, ``>= 1``.
    """

    __slots__ = ()

    def __str__(self):
        """The ``I/N`` text the command line takes."""
        return f'{self.index}/{self.count}'

    @property
    def dirname(self):
        """str: Folder name of this shard under ``<output>/shards/``."""
        return f'shard-{self.index}-of-{self.count}'


def parse_shard(text):
    """Parse ``I/N`` (0-based shard ``I`` of ``N``).

    Args:
        text (str | Shard | tuple): ``'I/N'``, or an ``(index, count)`` pair.

    Returns:
        Shard: The shard.

    Raises:
        ValueError: Not of the form ``I/N`` with integers ``0 <= I < N``.
    """
    if isinstance(text, tuple) and len(text) == 2:
        text = f'{text[0]}/{text[1]}'
    m = _SHARD_PATTERN.match(str(text))
    if not m:
        raise ValueError(f"expected I/N with 0-based shard index I and shard count N (e.g. 0/4), got {text!r}")
    index, count = int(m.group(1)), int(m.group(2))
    if count < 1:
        raise ValueError(f'the shard count N of {text!r} must be at least 1')
    if index >= count:
        raise ValueError(f'shard index {index} is out of range for {count} shards: I is 0-based, 0 <= I < N '
                         f'(shards 0/{count} ... {count - 1}/{count}; a SLURM array: --array=0-{count - 1})')
    return Shard(index, count)


def shard_argument(text):
    """argparse ``type`` for ``--shard``: :func:`parse_shard` with argparse's error type.

    Args:
        text (str): The argument.

    Returns:
        Shard: The shard.
    """
    try:
        return parse_shard(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def workers_argument(text):
    """argparse ``type`` for ``--workers``: an integer >= 1.

    Args:
        text (str): The argument.

    Returns:
        int: The number of worker processes.
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected a number of processes (an integer >= 1), got {text!r}') from None
    if value < 1:
        raise argparse.ArgumentTypeError(f'must be at least 1 (1 = no pool, everything in this process), got {value}')
    return value


def check_workers(workers):
    """Validate a number of worker processes (the library-level twin of :func:`workers_argument`).

    Args:
        workers (int): Number of processes.

    Returns:
        int: ``workers``.
    """
    if isinstance(workers, bool) or int(workers) != workers or int(workers) < 1:
        raise ValueError(f'workers must be an integer >= 1 (1 = everything in this process), got {workers!r}')
    return int(workers)


def select_shard(items, shard):
    """The items of one shard: positions ``index, index + count, ...`` of the full list (round-robin).

    Args:
        items (Sequence): The full, deterministically ordered list.
        shard (Shard): The shard.

    Returns:
        list: Its items, in the order of ``items``.
    """
    return list(items[shard.index::shard.count])


def interleave_shards(parts):
    """Undo :func:`select_shard`: the full list from the shards' lists (``parts[i]`` = shard ``i``'s items).

    Args:
        parts (Sequence[Sequence]): Every shard's items, by shard index.

    Returns:
        list: The full list in its original order.
    """
    count = len(parts)
    total = sum(len(p) for p in parts)
    for i, part in enumerate(parts):
        expected = len(range(i, total, count))
        if len(part) != expected:
            raise ValueError(f'shard {i}/{count} lists {len(part)} items, but a round-robin split of {total} items '
                             f'gives it {expected}: the shards were not made from the same input list')
    return [parts[k % count][k // count] for k in range(total)]


def items_fingerprint(items):
    """SHA-256 of a list of item names (a shard records it; the merge checks that all shards share it).

    Args:
        items (Iterable[str]): The full item list, in order.

    Returns:
        str: Hex digest.
    """
    h = hashlib.sha256()
    for item in items:
        h.update(str(item).encode('utf-8') + b'\n')
    return h.hexdigest()


def shard_folder(output_dir, shard):
    """The folder of one shard's outputs and ledger.

    Args:
        output_dir (str): The run's output folder.
        shard (Shard): The shard.

    Returns:
        str: ``<output_dir>/shards/shard-<I>-of-<N>``.
    """
    return osp.join(output_dir, SHARDS_DIRNAME, shard.dirname)


def _dump_json(path, obj):
    """Write JSON atomically (sorted keys, indented)."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True))


def _load_manifest(folder):
    """The manifest of a shard folder, or None when it has none."""
    path = osp.join(folder, MANIFEST_NAME)
    if not osp.isfile(path):
        return None
    try:
        with open(path, encoding='utf-8') as f:
            return json.load(f)
    except (OSError, ValueError) as err:
        raise ValueError(f"Shard manifest '{path}' is unreadable ({err}): delete that shard folder and re-run its "
                         'shard') from None


def _differing(a, b):
    """Sorted keys whose values differ between two dicts."""
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def open_shard_folder(output_dir, shard, kind, options, items, all_items_fingerprint, num_items, extra=None,
                      overwrite=False, log=None):
    """Create (or re-open, to resume) a shard folder and write its manifest.

    Args:
        output_dir (str): The run's output folder.
        shard (Shard): The shard.
        kind (str): The preparation (``'celebv_low'``, ``'ffhq'``); a merge refuses shards of another kind.
        options (dict): JSON-able options that change the result (every shard of a merge must have equal ones).
        items (list[str]): This shard's item names, in order.
        all_items_fingerprint (str): :func:`items_fingerprint` of the full item list.
        num_items (int): Length of the full item list.
        extra (dict, optional): More JSON-able data for the merge (not compared: a shard resumed on another machine
            may differ there, e.g. in the detector's report).
        overwrite (bool): Replace a shard folder made with other options instead of refusing.
        log (callable, optional): Message sink.

    Returns:
        str: The shard folder.
    """
    folder = shard_folder(output_dir, shard)
    manifest = {'version': MANIFEST_VERSION, 'kind': kind, 'shard_index': shard.index, 'shard_count': shard.count,
                'options': options, 'num_items': num_items, 'items_sha256': all_items_fingerprint, 'items': items,
                **(extra or {})}
    old = _load_manifest(folder)
    new = json.loads(json.dumps(manifest))
    core = ('version', 'kind', 'shard_index', 'shard_count', 'options', 'num_items', 'items_sha256', 'items')
    if old is not None and any(old.get(k) != new[k] for k in core):
        changed = ', '.join(_differing(old.get('options', {}), new['options']) or
                            [k for k in core if old.get(k) != new[k]])
        if not overwrite:
            raise ValueError(f"'{folder}' holds shard {shard} of a run with other options or another input list "
                             f'({changed} differ): delete that folder (or, for FFHQ, pass --overwrite) or use '
                             'another --output')
        if log:
            log(f'--overwrite: removing the previous shard in {folder}')
        shutil.rmtree(folder)
    os.makedirs(folder, exist_ok=True)
    _dump_json(osp.join(folder, MANIFEST_NAME), manifest)
    return folder


def collect_shards(output_dir, kind, options=None):
    """Find and check the shard folders under ``<output_dir>/shards/`` before a merge.

    Every sub-folder holding a ``shard.json`` counts (the folder names do not matter, so folders copied in from
    other machines may be renamed).  Refuses, saying what is wrong and how to fix it, when there is no shard, when
    shards of different counts, kinds or options are mixed, when a shard is missing or present twice, or when the
    shards were made from different input lists.

    Args:
        output_dir (str): The run's output folder.
        kind (str): The expected preparation kind.
        options (dict, optional): The merge command's options; each one given must equal the shards' value (the
            shards may record more, e.g. the detector actually used).

    Returns:
        list[tuple[str, dict]]: ``(folder, manifest)`` of shards ``0 .. N-1``, in index order.
    """
    root = osp.join(output_dir, SHARDS_DIRNAME)
    if not osp.isdir(root):
        raise ValueError(f"No shards to merge: '{root}' does not exist. Run the same command with --shard I/N for "
                         'every I first (their folders go there), then --merge')
    found = []
    for name in sorted(os.listdir(root)):
        folder = osp.join(root, name)
        manifest = _load_manifest(folder) if osp.isdir(folder) else None
        if manifest is not None:
            found.append((folder, manifest))
    if not found:
        raise ValueError(f"No shard folder (with a {MANIFEST_NAME}) in '{root}': run the command with --shard I/N "
                         'first')
    for folder, m in found:
        if m.get('version') != MANIFEST_VERSION or m.get('kind') != kind:
            raise ValueError(f"'{folder}' is not a {kind} shard of this version (kind {m.get('kind')!r}, version "
                             f"{m.get('version')!r}): remove it from '{root}' or re-run that shard")
    counts = sorted({m['shard_count'] for _, m in found})
    if len(counts) > 1:
        listing = ', '.join(f"{osp.basename(f)} ({m['shard_index']}/{m['shard_count']})" for f, m in found)
        raise ValueError(f"'{root}' mixes shards of different counts N ({counts}): {listing}. Keep the shards of one "
                         'split only (delete the others) and run the missing ones')
    count = counts[0]
    by_index = {}
    for folder, m in found:
        by_index.setdefault(m['shard_index'], []).append((folder, m))
    duplicated = {i: pairs for i, pairs in by_index.items() if len(pairs) > 1}
    if duplicated:
        i, pairs = sorted(duplicated.items())[0]
        raise ValueError(f'Shard {i}/{count} is present {len(pairs)} times ({", ".join(f for f, _ in pairs)}): keep '
                         'one of these folders and delete the others')
    missing = [i for i in range(count) if i not in by_index]
    if missing:
        shown = ', '.join(f'{i}/{count}' for i in missing[:10]) + (' ...' if len(missing) > 10 else '')
        raise ValueError(f'{len(missing)} of {count} shards are missing in {root}: {shown}. Run the command with '
                         f'--shard {missing[0]}/{count} (and the other missing ones), or copy their folders into '
                         f'{root}, then --merge again')
    shards = [by_index[i][0] for i in range(count)]
    first = shards[0][1]
    for folder, m in shards[1:]:
        changed = _differing(first['options'], m['options'])
        if changed:
            detail = '; '.join(f'{k}: {first["options"].get(k)!r} vs {m["options"].get(k)!r}' for k in changed)
            raise ValueError(f"Shards {first['shard_index']}/{count} and {m['shard_index']}/{count} were made with "
                             f'different options ({detail}): re-run the odd shard(s) with the options of the others '
                             '(delete their folders first)')
        if (m['items_sha256'], m['num_items']) != (first['items_sha256'], first['num_items']):
            raise ValueError(f"Shards {first['shard_index']}/{count} and {m['shard_index']}/{count} were made from "
                             f"different input lists ({first['num_items']} vs {m['num_items']} items): the input "
                             'folder changed between them; re-run every shard on the same input')
    if options is not None:
        expected = json.loads(json.dumps(options))
        changed = sorted(k for k in expected if first['options'].get(k) != expected[k])
        if changed:
            detail = '; '.join(f'{k}: shards {first["options"].get(k)!r}, this command {expected.get(k)!r}'
                               for k in changed)
            raise ValueError(f'The shards were made with other options than this merge command ({detail}): run '
                             '--merge with the same options as the --shard runs')
    full = interleave_shards([m['items'] for _, m in shards])
    if items_fingerprint(full) != first['items_sha256']:
        raise ValueError(f"The shards' item lists do not add up to the list they were split from (in {root}): a "
                         'shard folder was edited or comes from another run; re-run the odd shards')
    return shards


def adopt_file(src, dst):
    """Make ``dst`` a hard link to ``src`` (a copy across file systems), replacing any older ``dst`` atomically.

    Args:
        src (str): Existing file.
        dst (str): Destination path (its folder must exist).
    """
    if osp.exists(dst) and osp.samefile(src, dst):
        return
    folder, name = osp.split(dst)
    tmp = osp.join(folder, f'.{name}.{os.getpid()}.merge')
    if osp.lexists(tmp):
        os.remove(tmp)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copy2(src, tmp)
    os.replace(tmp, dst)


def remove_shards(output_dir, log=None):
    """Delete ``<output_dir>/shards/`` after a successful merge.

    Args:
        output_dir (str): The run's output folder.
        log (callable, optional): Message sink.
    """
    root = osp.join(output_dir, SHARDS_DIRNAME)
    if osp.isdir(root):
        shutil.rmtree(root)
        if log:
            log(f'merged; removed {root}')


_WORKER_FN = None


def _init_worker(make_worker, config):
    """Pool initializer: build this process's worker callable once."""
    global _WORKER_FN
    import cv2
    cv2.setNumThreads(1)  # one process per core: no OpenCV thread pool inside a worker
    _WORKER_FN = make_worker(config)


def _call_worker(item):
    """Run this process's worker callable on one item."""
    return _WORKER_FN(item)


def _pool_context(preload=()):
    """The start method of the pool: ``forkserver`` where the platform has it, else ``spawn``.

    Plain ``fork`` is not used: a child forked from a parent whose OpenCV (or torch) thread pool is running can
    deadlock in its first OpenCV call.  The fork server is a fresh single-threaded interpreter that imports the
    ``preload`` modules (the toolkit: torch, basicsr, about 5 s on the project's CPU machine) once per parent
    process; workers are then forked from it in milliseconds.  ``spawn`` re-imports the toolkit in every worker.

    Args:
        preload (Sequence[str]): Modules the fork server imports before it forks any worker.  Only those of the
            first pool of a process count, and Python 3.11's fork server silently skips modules that are not
            importable from the installed packages (it ignores the parent's ``sys.path``), so the caller lists this
            module (hence the whole toolkit) first.
    """
    if 'forkserver' not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context('spawn')
    ctx = multiprocessing.get_context('forkserver')
    ctx.set_forkserver_preload(list(preload))  # effective when the server starts (the first pool of the process)
    return ctx


def ordered_map(make_worker, config, items, workers=1, local=None):
    """Apply a per-item worker to ``items``, yielding the results in input order.

    Args:
        make_worker (callable): Module-level function ``make_worker(config) -> callable(item)``; each pool process
            calls it once (so detectors and the like are built once per process).
        config: Picklable argument of ``make_worker``.
        items (Iterable): The items (each picklable).
        workers (int): ``1``: everything in this process; ``N > 1``: a pool of ``N`` processes (started as
            :func:`_pool_context` says).
        local (callable, optional): The worker callable to use when ``workers == 1`` (default
            ``make_worker(config)``), e.g. one already built by the caller.

    Yields:
        The worker's results, in the order of ``items`` whatever the order in which they finish.
    """
    workers = check_workers(workers)
    if workers == 1:
        fn = local if local is not None else make_worker(config)
        for item in items:
            yield fn(item)
        return
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=_pool_context([__name__, make_worker.__module__]),
                               initializer=_init_worker, initargs=(make_worker, config))
    try:
        yield from pool.map(_call_worker, items)
    except BrokenProcessPool as err:
        raise RuntimeError(f'A worker process died ({err}): killed by the system (out of memory?) or crashed in a '
                           'native library. The items finished before are kept; re-run to resume, with fewer '
                           '--workers, or --workers 1 to see which item fails') from err
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
