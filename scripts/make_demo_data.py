"""Generate the built-in synthetic demo face data set (no download).

Example::

    python scripts/make_demo_data.py --root datasets/demo_faces
    python scripts/make_demo_data.py --root datasets/demo_faces --num-train 1000 --size 128 --overwrite
"""
import argparse
import os.path as osp
import sys
import time

from lowlight3d.data.demo_faces import generate_demo_dataset, is_demo_dataset_complete


def parse_args(argv=None):
    """Parse the command line.

    Args:
        argv (list, optional): Arguments (default ``sys.argv[1:]``).

    Returns:
        argparse.Namespace: Parsed options.
    """
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--root', default='datasets/demo_faces', help='output folder')
    p.add_argument('--num-train', type=int, default=240)
    p.add_argument('--num-val', type=int, default=24)
    p.add_argument('--num-test', type=int, default=24)
    p.add_argument('--num-unpaired', type=int, default=120, help='unpaired low-light faces (no ground truth)')
    p.add_argument('--size', type=int, default=256, help='image height = width')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--workers', type=int, default=2, help='worker processes (results do not depend on it)')
    p.add_argument('--no-antialias', action='store_true', help='skip edge anti-aliasing (faster)')
    p.add_argument('--overwrite', action='store_true', help='replace a data set made with other settings')
    return p.parse_args(argv)


def main(argv=None):
    """Generate the data set and print what was written.

    Args:
        argv (list, optional): Command-line arguments.

    Returns:
        int: Exit status.
    """
    a = parse_args(argv)
    kw = dict(num_train=a.num_train, num_val=a.num_val, num_test=a.num_test, num_unpaired=a.num_unpaired,
              size=a.size, seed=a.seed, antialias=not a.no_antialias)
    if is_demo_dataset_complete(a.root, **kw):
        print(f'{a.root} is already complete for these settings: nothing to do')
    t0 = time.time()
    try:
        paths = generate_demo_dataset(a.root, overwrite=a.overwrite, num_workers=a.workers, verbose=True, **kw)
    except FileExistsError as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    print(f'done in {time.time() - t0:.1f} s')
    for key, path in paths.items():
        print(f'  {key:20s} {osp.relpath(path)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
