"""Build the paper's paired FFHQ set: 5000 train / 1000 test faces at 256 px and a fixed low-light test input.

Usage::

    python scripts/data_preparation/prepare_ffhq.py --input datasets/ffhq_raw/images1024x1024 \\
        --output datasets/ffhq_lowlight [--num-train 5000 --num-test 1000 --seed 0 --size 256 --lmdb]

``--workers N`` writes images in N processes.  On a cluster, run the same command with ``--shard I/N`` for
I = 0 .. N-1, then once with ``--merge`` (byte for byte the files of one process).  The logic lives in
:mod:`lowlight3d.data.preparation.ffhq_preparation`; see ``docs/data_preparation.md`` section 5.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))  # scale_out_args beside this script
from scale_out_args import add_scale_out_arguments, check_scale_out_arguments  # noqa: E402

SCALING_EPILOG = """scaling out (docs/data_preparation.md section 5):
  --workers N      write images in N processes on this machine (same files as one process)
  --shard I/N      write only shard I of N (0-based; every N-th selected image from the I-th) into
                   <output>/shards/shard-I-of-N/, e.g. --shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT
  --merge          once every shard is done: the same command with --merge instead of --shard combines them into
                   <output> (byte-identical to a one-process run) and removes <output>/shards"""


def main(argv=None):
    """Parse the command line and prepare the set.

    Args:
        argv (list[str], optional): Arguments (default: ``sys.argv[1:]``).

    Returns:
        int: Exit status (0 on success, 1 on a reported error).
    """
    parser = argparse.ArgumentParser(description='Select, resize and write the paired FFHQ set (train + test with a '
                                     'fixed pre-synthesised low-light test input).', epilog=SCALING_EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--input', default=None, help='folder of FFHQ images (searched recursively); required '
                        'except with --merge')
    parser.add_argument('--output', required=True, help='output folder')
    parser.add_argument('--num-train', type=int, default=5000, help='training images (default 5000)')
    parser.add_argument('--num-test', type=int, default=1000, help='test images (default 1000)')
    parser.add_argument('--seed', type=int, default=0,
                        help="selection seed and seed of the fixed test input; use the test dataset's seed (default 0)")
    parser.add_argument('--size', type=int, default=256, help='output side in pixels (default 256)')
    parser.add_argument('--degradation', default=None,
                        help='YAML file with a degradation block (LowLightDegradation steps); default: the toolkit '
                        'defaults. A file with a top-level "degradation" key is accepted too.')
    parser.add_argument('--allow-fewer', action='store_true', help='accept a folder with fewer images than requested')
    parser.add_argument('--lmdb', action='store_true', help='also write train.lmdb, test/gt.lmdb, test/lq.lmdb')
    parser.add_argument('--overwrite', action='store_true', help='replace a preparation made with other settings')
    add_scale_out_arguments(parser, 'writing images', '')
    parser.add_argument('--no-progress', action='store_true', help='no progress bars')
    args = parser.parse_args(argv)
    check_scale_out_arguments(parser, args, '--input')

    import lowlight3d  # noqa: F401  (compatibility patches first; imported late so --help is quick)
    from lowlight3d.data.preparation.ffhq_preparation import prepare_ffhq
    from lowlight3d.utils.img_io import ImageReadError
    try:
        degradation = _load_degradation(args.degradation)
        prepare_ffhq(args.input, args.output, num_train=args.num_train, num_test=args.num_test, seed=args.seed,
                     size=args.size, degradation=degradation, allow_fewer=args.allow_fewer, lmdb=args.lmdb,
                     overwrite=args.overwrite, workers=args.workers, shard=args.shard, merge=args.merge,
                     keep_shards=args.keep_shards, progress=not args.no_progress)
    except (ImageReadError, ValueError, FileNotFoundError, FileExistsError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    return 0


def _load_degradation(path):
    """The degradation block of a YAML file (None when no file is given)."""
    if not path:
        return None
    import yaml
    with open(path, encoding='utf-8') as f:
        data = yaml.safe_load(f) or {}
    if isinstance(data, dict) and 'degradation' in data:
        data = data['degradation']
    if data is not None and not isinstance(data, dict):
        raise ValueError(f"'{path}' must hold a mapping of degradation steps, got {type(data).__name__}")
    return data


if __name__ == '__main__':
    sys.exit(main())
