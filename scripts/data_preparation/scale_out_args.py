"""The command-line options of a preparation that scales out (``--workers``, ``--shard``, ``--merge``), shared by
``prepare_celebv_low.py`` and ``prepare_ffhq.py``. Standard library only at import, so ``--help`` stays quick; the
logic is :mod:`lowlight3d.data.preparation.sharding`."""


def _shard(text):
    """argparse type of --shard (imported late so that --help stays quick)."""
    from lowlight3d.data.preparation.sharding import shard_argument
    return shard_argument(text)


def _workers(text):
    """argparse type of --workers (imported late so that --help stays quick)."""
    from lowlight3d.data.preparation.sharding import workers_argument
    return workers_argument(text)


def add_scale_out_arguments(parser, work, merge_then=''):
    """Add ``--workers``, ``--shard``, ``--merge`` and ``--keep-shards`` to ``parser``.

    Args:
        parser (argparse.ArgumentParser): The script's parser.
        work (str): What the workers do, for the help (``examining clips``).
        merge_then (str): What ``--merge`` does after combining, for the help (``, then split``).
    """
    parser.add_argument('--workers', type=_workers, default=1, metavar='N',
                        help=f'processes {work} on this machine (default 1 = this process only)')
    parser.add_argument('--shard', type=_shard, default=None, metavar='I/N',
                        help='process only shard I of N (0-based) into <output>/shards/shard-I-of-N/')
    parser.add_argument('--merge', action='store_true',
                        help=f'combine the finished shards in <output>/shards/ into <output>{merge_then} (give the '
                        'same options as the --shard runs)')
    parser.add_argument('--keep-shards', action='store_true', help='with --merge: keep <output>/shards/')


def check_scale_out_arguments(parser, args, input_flag):
    """Reject what argparse cannot express (an argparse error, exit status 2): ``--shard`` with ``--merge``, no
    input without ``--merge``, ``--keep-shards`` without ``--merge``.

    Args:
        parser (argparse.ArgumentParser): The script's parser. args (argparse.Namespace): Its parsed arguments.
        input_flag (str): The input option (``--videos``); its value is ``args.<name without dashes>``.
    """
    if args.merge and args.shard is not None:
        parser.error('--shard and --merge exclude each other: run every --shard I/N first, then the same command '
                     'with --merge instead of --shard')
    if not args.merge and not getattr(args, input_flag.lstrip('-').replace('-', '_')):
        parser.error(f'the following arguments are required: {input_flag} (only --merge works without it)')
    if args.keep_shards and not args.merge:
        parser.error('--keep-shards only applies to --merge')
    return args
