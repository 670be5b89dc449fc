r"""Score a folder of images under lowlight3d's exact metric protocol; write one CSV row per image plus a mean.

Usage::

    python scripts/evaluate.py --pred results/ours --gt datasets/test/gt \
        --metrics psnr,ssim,lpips,niqe,brisque --out scores.csv
    python scripts/evaluate.py --pred other_repo/outputs --metrics niqe,brisque --out nr.csv   # no reference
    python scripts/evaluate.py --pred results/ours --gt refs --metrics identity --out id.csv  # + identity_rank1

Predictions and ground truths are paired by file name without extension; unmatched names are an error
(``--allow-unmatched`` skips them).  A metric that cannot be computed is written ``n/a (reason)`` and left
out of the mean.  The logic lives in :mod:`lowlight3d.metrics.folder_evaluation`.
"""
import argparse
import os
import os.path as osp
import sys
import warnings

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout without install

from lowlight3d.metrics.folder_evaluation import (
    ImageSizeError,
    PairingError,
    describe_protocol,  # noqa: E402
    evaluate_folders,
    format_table,
    write_metrics_csv,
)

FULL_DEFAULT = 'psnr,ssim,lpips,niqe,brisque'
NO_REF_DEFAULT = 'niqe,brisque'


def _progress(index, total, name):
    """One-line progress on the terminal."""
    print(f'\r[{index}/{total}] {name}', end='\n' if index == total else '', file=sys.stderr, flush=True)


def main(argv=None):
    """Parse the command line, score the folder, print the table and write the CSV.

    Args:
        argv (list[str], optional): Arguments (default: ``sys.argv[1:]``).

    Returns:
        int: Exit status (0 on success, 2 on a usage or data error).
    """
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--pred', required=True, help='folder of images to score (predictions)')
    parser.add_argument('--gt', default=None, help='folder of ground truths (needed for psnr, ssim, lpips, identity)')
    parser.add_argument('--metrics',
                        default=None,
                        help=f'comma-separated metric names (default: {FULL_DEFAULT} with --gt, else {NO_REF_DEFAULT})')
    parser.add_argument('--out', required=True, help='output CSV file')
    parser.add_argument('--crop-border', type=int, default=0, help='pixels removed on each side (default 0)')
    parser.add_argument('--test-y-channel', action='store_true', help='PSNR/SSIM on the Y channel instead of RGB')
    parser.add_argument('--allow-unmatched', action='store_true', help='skip unmatched names with a warning')
    parser.add_argument('--alexnet-path', default=None, help='LPIPS: explicit alexnet-owt-7be5be79.pth')
    parser.add_argument('--lpips-path', default=None, help='LPIPS: explicit v0.1 AlexNet linear-head file')
    parser.add_argument('--no-download', action='store_true', help='LPIPS: never try to download weights')
    parser.add_argument('--quiet', action='store_true', help='do not print the per-image table')
    args = parser.parse_args(argv)
    out_real = osp.realpath(args.out)
    if not args.out.lower().endswith('.csv'):
        parser.error(f'--out {args.out}: the table is a CSV file; give a path ending in .csv')
    for flag, folder in (('--pred', args.pred), ('--gt', args.gt)):
        if folder and (out_real + os.sep).startswith(osp.realpath(folder).rstrip(os.sep) + os.sep):
            parser.error(f'--out {args.out} lies inside {flag} {folder}: the table must not be written among the '
                         'images it scores')

    metric_names = (args.metrics or (FULL_DEFAULT if args.gt else NO_REF_DEFAULT)).split(',')
    lpips_opts = {'download': not args.no_download}
    if args.alexnet_path:
        lpips_opts['alexnet_path'] = args.alexnet_path
    if args.lpips_path:
        lpips_opts['lpips_path'] = args.lpips_path
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always', UserWarning)
        try:
            rows = evaluate_folders(args.pred,
                                    args.gt,
                                    metric_names,
                                    crop_border=args.crop_border,
                                    test_y_channel=args.test_y_channel,
                                    allow_unmatched=args.allow_unmatched,
                                    metric_opts={'lpips': lpips_opts},
                                    progress=_progress if sys.stderr.isatty() else None)
        except (PairingError, ImageSizeError, FileNotFoundError, KeyError, ValueError) as err:
            message = err.args[0] if isinstance(err, KeyError) and err.args else err
            print(f'error: {message}', file=sys.stderr)
            return 2
    for warning in caught:
        if issubclass(warning.category, UserWarning):
            print(f'warning: {warning.message}', file=sys.stderr)
    write_metrics_csv(rows, args.out)
    if not args.quiet:
        print(format_table(rows if len(rows) <= 50 else rows[-1:]))
    print(describe_protocol(args.crop_border, args.test_y_channel))
    print(f'{len(rows) - 1} images scored; wrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
