"""Every shipped option file loads to the dictionary recorded in ``tests/data/option_snapshots.json``.

The snapshot holds :func:`~lowlight3d.utils.options.load_config` of each ``options/**/*.yml`` (the ``_base_``
fragments included): the merged dict after inheritance and ``_delete_``, before ``resolve_options`` (which adds
machine-dependent absolute paths and a random seed).  It pins the loader: a change of how option files are read or
merged must give the same dictionaries (JSON keeps ``int``/``float``/``bool``/``None`` apart, so ``1e-4`` read as
the string ``'1e-4'`` fails).

After an intended edit of an option file, rewrite the snapshot and review its diff::

    OMP_NUM_THREADS=1 python tests/test_option_snapshot.py --update
"""
import glob
import json
import os.path as osp
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
SNAPSHOT = osp.join(REPO, 'tests', 'data', 'option_snapshots.json')


def shipped_option_files():
    """``options/**/*.yml`` relative to the repository, sorted."""
    return sorted(osp.relpath(f, REPO).replace(osp.sep, '/')
                  for f in glob.glob(osp.join(REPO, 'options', '**', '*.yml'), recursive=True))


def canonical(opt):
    """The loaded options as compact JSON with sorted keys (the form stored in the snapshot)."""
    return json.dumps(opt, sort_keys=True, separators=(',', ':'), allow_nan=True)


def _load_snapshot():
    with open(SNAPSHOT, encoding='utf-8') as f:
        return json.load(f)


def _snapshot_files():
    return sorted(_load_snapshot()) if osp.isfile(SNAPSHOT) else []


def test_snapshot_covers_the_shipped_option_files():
    missing = sorted(set(shipped_option_files()) - set(_snapshot_files()))
    assert not missing, (f'option files not in {osp.relpath(SNAPSHOT, REPO)}: {missing}; run '
                         'python tests/test_option_snapshot.py --update and review the diff')


@pytest.mark.parametrize('rel', _snapshot_files())
def test_option_file_loads_to_its_snapshot(rel):
    from lowlight3d.utils.options import load_config
    expected = _load_snapshot()[rel]
    loaded = load_config(osp.join(REPO, rel))
    assert type(loaded) is dict
    assert json.loads(canonical(loaded)) == expected, rel
    assert canonical(loaded) == canonical(expected), rel  # also int vs float (1 == 1.0 in Python)


def write_snapshot():
    """Rewrite the snapshot from the current loader (one file per line, for a readable diff)."""
    sys.path.insert(0, REPO)
    from lowlight3d.utils.options import load_config
    lines = [f'{json.dumps(rel)}:{canonical(load_config(osp.join(REPO, rel)))}' for rel in shipped_option_files()]
    with open(SNAPSHOT, 'w', encoding='utf-8') as f:
        f.write('{\n' + ',\n'.join(lines) + '\n}\n')
    print(f'{len(lines)} option files -> {SNAPSHOT}')


if __name__ == '__main__':
    if sys.argv[1:] != ['--update']:
        sys.exit(__doc__)
    write_snapshot()
