"""CPU/GPU seconds per training iteration of an option file's model, on random batches (no data needed).

Usage::

    python scripts/train_step_time.py -opt options/train/LowLight3D/train_LowLight3D_FFHQ_CelebVLow.yml \\
        --size 256 --batch 8 --iters 3

The model is built from the option file with the random-weight VGG19 stand-in (same compute as the real one) and,
for models with a ``prior`` block, ``prior: ~``: this is the cost of an iteration once the frozen 3D prior is
cached (the fusion modules then run on all-zero prior maps of the same shapes); the one-off cost of sampling the
prior is measured by ``scripts/prior_quality.py --timing-only``.  Batches hold ``lq``, ``gt`` and ``lq_unpaired``
of ``--batch`` random images at ``--size``.
"""
import argparse
import os.path as osp
import statistics
import sys
import time
import warnings

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from lowlight3d.models import build_model  # noqa: E402
from lowlight3d.pipeline.option_loading import load_options  # noqa: E402
from lowlight3d.utils.options import load_config  # noqa: E402


def random_batch(batch, size, generator):
    """A batch with paired and unpaired random images in [0, 1] and file-like names."""
    names = [f'random_{i}.png' for i in range(batch)]
    return {'lq': torch.rand(batch, 3, size, size, generator=generator) * 0.2,
            'gt': torch.rand(batch, 3, size, size, generator=generator),
            'lq_unpaired': torch.rand(batch, 3, size, size, generator=generator) * 0.2,
            'lq_path': names, 'gt_path': names, 'lq_unpaired_path': names}


def main(argv=None):
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('-opt', '--opt', required=True)
    parser.add_argument('--size', type=int, default=256)
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--iters', type=int, default=3, help='Timed iterations (after one warm-up).')
    parser.add_argument('--cfg-options', nargs='+', default=[], metavar='KEY=VALUE')
    args = parser.parse_args(argv)
    raw = load_config(args.opt)
    cfg = ['num_gpu=0' if not torch.cuda.is_available() else 'num_gpu=1']
    if raw.get('prior'):
        cfg.append('prior=~')
    if (raw.get('train') or {}).get('feature_extractor'):
        cfg.append('train.feature_extractor.weights=random_for_tests')
    opt = load_options(args.opt, is_train=True, cfg_options=cfg + list(args.cfg_options), root_path='/tmp')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        model = build_model(opt)
    batch = random_batch(args.batch, args.size, torch.Generator().manual_seed(0))
    times = []
    for it in range(args.iters + 1):
        sync = torch.cuda.synchronize if model.device.type == 'cuda' else (lambda: None)
        sync()
        t0 = time.perf_counter()
        model.feed_data(batch)
        model.optimize_parameters(it + 1)
        sync()
        if it:
            times.append(time.perf_counter() - t0)
    print(f"{opt['name']} ({opt['model_type']}): batch {args.batch} x {args.size}^2 on {model.device}, "
          f'{torch.get_num_threads()} CPU threads: {statistics.median(times):.3f} s per iteration '
          f'(median of {len(times)}; losses: {", ".join(k for k in model.get_current_log() if k.startswith("l_"))})')


if __name__ == '__main__':
    main()
