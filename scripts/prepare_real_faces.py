"""Prepare the data of the real-face benchmark: links to the shared photos and the fixed split lists.

Reads ``$LOWLIGHT3D_TEST_DATA`` (or ``--data``) and writes ``datasets/real_faces/`` (git-ignored; the photos are
linked, never copied).  The split rules are in :mod:`lowlight3d.data.preparation.real_face_benchmark`.

Example::

    LOWLIGHT3D_TEST_DATA=../shared/data python scripts/prepare_real_faces.py
"""
import argparse
import sys

from lowlight3d.data.preparation.real_face_benchmark import DEFAULT_OUT, prepare_real_faces


def parse_args(argv=None):
    """Parse the command line (``argv`` default: ``sys.argv[1:]``)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--data', default=None, help='shared data folder (default: $LOWLIGHT3D_TEST_DATA)')
    p.add_argument('--out', default=DEFAULT_OUT, help='output folder (default: %(default)s)')
    p.add_argument('--test-every', type=int, default=25, help='UTKFace: every k-th sorted name is a test face')
    p.add_argument('--max-train', type=int, default=1000, help='UTKFace: at most this many training faces')
    return p.parse_args(argv)


def main(argv=None):
    """Prepare the data; returns the exit status (1 with a message when the shared data is missing)."""
    a = parse_args(argv)
    try:
        prepare_real_faces(a.out, a.data, a.test_every, a.max_train)
    except (FileNotFoundError, FileExistsError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
