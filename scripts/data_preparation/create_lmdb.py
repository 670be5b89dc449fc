"""Create a BasicSR-format LMDB (with ``meta_info.txt``) from a folder of images.

Usage::

    python scripts/data_preparation/create_lmdb.py --input datasets/ffhq/train --output datasets/ffhq/train.lmdb

Keys are the image paths relative to ``--input`` without extension; values are PNG re-encodings (bit depth and
channels kept).  Re-running on a complete LMDB does nothing; ``--overwrite`` rebuilds it (the old one is replaced
only once the new one is complete).  The logic lives in :mod:`lowlight3d.data.lmdb_creation`.
"""
import argparse
import sys


def main(argv=None):
    """Parse the command line and create the LMDB.

    Args:
        argv (list[str], optional): Arguments (default: ``sys.argv[1:]``).

    Returns:
        int: Exit status (0 on success, 1 on a reported error).
    """
    parser = argparse.ArgumentParser(description='Create a BasicSR-format LMDB (+ meta_info.txt) from an image folder.')
    parser.add_argument('--input', required=True, help='folder of images')
    parser.add_argument('--output', required=True, help='output folder, ending in .lmdb')
    parser.add_argument('--compress-level', type=int, default=1, help='PNG compression level 0-9 (default 1)')
    parser.add_argument('--overwrite', action='store_true', help='rebuild even if a complete LMDB exists')
    parser.add_argument('--recursive', action='store_true', help='include images in sub-folders')
    args = parser.parse_args(argv)

    import lowlight3d  # noqa: F401  (basicsr compatibility patches first; imported late so --help is quick)
    from lowlight3d.data.lmdb_creation import LmdbExistsError, create_lmdb
    from lowlight3d.utils.img_io import ImageReadError
    try:
        create_lmdb(args.input,
                    args.output,
                    compress_level=args.compress_level,
                    overwrite=args.overwrite,
                    recursive=args.recursive)
    except (ImageReadError, LmdbExistsError, ValueError, FileNotFoundError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
