"""Build CelebV-Low: real low-light, aligned face frames from CelebV-HQ clips, split 5000 / 892.

Usage::

    python scripts/data_preparation/prepare_celebv_low.py --videos datasets/celebvhq/35666 \\
        --info datasets/celebvhq/celebvhq_info.json --output datasets/celebv_low [--criterion scene] [--lmdb]

Re-running continues where an interrupted run stopped.  ``--workers N`` examines clips in N processes.  On a
cluster, run the same command with ``--shard I/N`` for I = 0 .. N-1 (each writes ``<output>/shards/shard-I-of-N/``),
then once with ``--merge``: the result is byte for byte that of one process.  The logic lives in
:mod:`lowlight3d.data.preparation.celebv_low_preparation`; see ``docs/data_preparation.md`` section 5.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))  # scale_out_args beside this script
from scale_out_args import add_scale_out_arguments, check_scale_out_arguments  # noqa: E402

SCALING_EPILOG = """scaling out (docs/data_preparation.md section 5):
  --workers N      examine clips in N processes on this machine (same result as one process)
  --shard I/N      process only shard I of N (0-based; every N-th clip from the I-th) into
                   <output>/shards/shard-I-of-N/, e.g. --shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT
                   or --shard $JOB_COMPLETION_INDEX/N; shards may run anywhere, at any time, and resume
  --merge          once every shard is done: the same command with --merge instead of --shard combines them into
                   <output> (byte-identical to a one-process run), makes the split and removes <output>/shards"""


def build_parser():
    """The argument parser (shared with the benchmark script).

    Returns:
        argparse.ArgumentParser: The parser.
    """
    parser = argparse.ArgumentParser(description='Extract real low-light face frames from CelebV-HQ clips: '
                                     'brightness test, face detection + FFHQ-style alignment, quality filters, '
                                     'near-duplicate removal, seeded split; every decision goes to decisions.csv.',
                                     epilog=SCALING_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--videos', default=None, help='folder of CelebV-HQ clips (<clip_id>.mp4, searched '
                        'recursively); required except with --merge')
    parser.add_argument('--output', required=True, help='output folder')
    parser.add_argument('--info', default=None, help='celebvhq_info.json (optional: restricts to annotated clips and '
                        'groups clips of one YouTube video for the split)')
    parser.add_argument('--criterion', choices=('brightness', 'scene'), default='brightness',
                        help="low-light rule: 'brightness' = the paper's mean < threshold; 'scene' = also needs a "
                        'dark scene (fewer well-lit dark-skinned faces picked); default brightness')
    parser.add_argument('--threshold', type=float, default=0.2, help='mean-brightness threshold (default 0.2)')
    parser.add_argument('--min-scene-dark-fraction', type=float, default=0.5,
                        help="'scene' rule: share of scene pixels with luma < 0.1 required (default 0.5)")
    parser.add_argument('--min-relative-noise', type=float, default=0.0,
                        help="'scene' rule: required noise/brightness ratio (default 0 = off)")
    parser.add_argument('--detector', choices=('auto', 'retinaface', 'haar'), default='auto',
                        help='face detector: auto = facexlib RetinaFace when its weights are on disk, else Haar')
    parser.add_argument('--detector-weights', default=None, help='explicit RetinaFace weight file')
    parser.add_argument('--frame-step', type=int, default=15, help='examine one frame in N (default 15)')
    parser.add_argument('--max-frames-per-video', type=int, default=16, help='examined frames per video (default 16)')
    parser.add_argument('--face-size', type=int, default=256, help='side of the aligned faces (default 256)')
    parser.add_argument('--min-blur', type=float, default=120.0, help='smallest blur score (default 120)')
    parser.add_argument('--max-blown', type=float, default=0.05, help='largest blown-out share of the face')
    parser.add_argument('--max-crushed', type=float, default=0.5, help='largest crushed-black share of the face')
    parser.add_argument('--min-face-brightness', type=float, default=0.01, help='smallest face mean brightness')
    parser.add_argument('--max-outside', type=float, default=0.6, help='largest share of the crop outside the frame')
    parser.add_argument('--duplicate-distance', type=float, default=0.6,
                        help='thumbnail RMS distance within which two faces of a video are near duplicates '
                        '(default 0.6; -1 = off)')
    parser.add_argument('--num-train', type=int, default=5000, help='training frames (default 5000)')
    parser.add_argument('--num-test', type=int, default=892, help='test frames (default 892)')
    parser.add_argument('--seed', type=int, default=0, help='split seed (default 0)')
    parser.add_argument('--split-by', choices=('video', 'frame'), default='video',
                        help='video: no clip in both sets (default); frame: the paper\'s plain random split')
    parser.add_argument('--allow-fewer', action='store_true', help='accept fewer accepted frames than requested')
    parser.add_argument('--lmdb', action='store_true', help='also write train.lmdb and test.lmdb')
    parser.add_argument('--max-videos', type=int, default=None, help='process only the first N videos (a trial)')
    add_scale_out_arguments(parser, 'examining clips', ', then split')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    return parser


def check_args(parser, args):
    """Reject argument combinations argparse cannot express (argparse-style error, exit status 2).

    Args:
        parser (argparse.ArgumentParser): From :func:`build_parser`.
        args (argparse.Namespace): Its parsed arguments.

    Returns:
        argparse.Namespace: ``args``.
    """
    check_scale_out_arguments(parser, args, '--videos')
    return args


def run(args):
    """Run the preparation for parsed arguments.

    Args:
        args (argparse.Namespace): From :func:`build_parser`.

    Returns:
        dict: The summary (also in ``<output>/summary.json``).
    """
    import lowlight3d  # noqa: F401  (compatibility patches first; imported late so --help is quick)
    from lowlight3d.data.preparation.celebv_low_preparation import prepare_celebv_low
    criterion_options = {}
    if args.criterion == 'scene':
        criterion_options = {'min_scene_dark_fraction': args.min_scene_dark_fraction,
                             'min_relative_noise': args.min_relative_noise}
    filter_options = {'min_blur': args.min_blur, 'max_blown': args.max_blown, 'max_crushed': args.max_crushed,
                      'min_face_brightness': args.min_face_brightness, 'max_outside': args.max_outside}
    return prepare_celebv_low(args.videos, args.output, info_json=args.info, criterion=args.criterion,
                              threshold=args.threshold, criterion_options=criterion_options, detector=args.detector,
                              weights_path=args.detector_weights, frame_step=args.frame_step,
                              max_frames_per_video=args.max_frames_per_video, face_size=args.face_size,
                              filter_options=filter_options, duplicate_distance=args.duplicate_distance,
                              num_train=args.num_train, num_test=args.num_test, seed=args.seed,
                              split_by=args.split_by, allow_fewer=args.allow_fewer, lmdb=args.lmdb,
                              max_videos=args.max_videos, workers=args.workers, shard=args.shard, merge=args.merge,
                              keep_shards=args.keep_shards, progress=not args.no_progress)


def main(argv=None):
    """Parse the command line and prepare CelebV-Low.

    Args:
        argv (list[str], optional): Arguments (default: ``sys.argv[1:]``).

    Returns:
        int: Exit status (0 on success, 1 on a reported error).
    """
    parser = build_parser()
    args = check_args(parser, parser.parse_args(argv))
    try:
        run(args)
    except (ValueError, FileNotFoundError, FileExistsError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
