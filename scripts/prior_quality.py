"""Quality of the sampled 3D prior against the number of sampling steps, complexity, and CPU time per extraction.

Usage (after ``make demo`` trained the generator and the DDPM stages)::

    python scripts/prior_quality.py                                   # demo options and checkpoints
    python scripts/prior_quality.py --steps 5 10 20 50 --samplers ddim paper --variances beta posterior
    python scripts/prior_quality.py --opt options/demo/train_TriplaneRegressor_demo.yml \
        --weights experiments/demo_TriplaneRegressor/models/net_g_latest.pth      # ablation V6 (one pass)
    python scripts/prior_quality.py --complexity-only                 # paper-scale params / FLOPs only
    python scripts/prior_quality.py --timing-only --timing-scales paper --timing-steps 10 20 --timing-flip off on

The measurements live in :mod:`lowlight3d.pipeline.prior_quality`; this script is its command line.

Quality: PSNR/SSIM of the render from sampled tri-planes against the render of the generator's tri-planes of the
normal-light image (true camera), and the mean absolute difference of the depth guidance maps (``[0, 1]``).
Complexity (paper-scale option file, 256x256 input): parameters of the denoiser (condition extractor included),
GFLOPs/GMACs of one denoiser step, of the condition extractor (once), of one 128x128 render, and of a full sampling
with S steps = extractor + S steps + render.
Timing: CPU seconds (``time.process_time``, all threads summed) and wall seconds per image of
``PriorExtractor.extract`` (condition extractor + S denoiser steps + render, resize and pyramid included) at demo
and paper scale, batch 1 and 8, with **randomly initialised** networks (the cost does not depend on the weights).
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import lowlight3d  # noqa: E402,F401
from lowlight3d.pipeline.prior_quality import complexity_rows, main, quality_rows, timing_rows  # noqa: E402,F401

if __name__ == '__main__':
    main()
