"""Inference speed of exported models side by side: ms per 256 face, per 1920x1080 photo with / without a face,
peak memory, and the 3D prior's share per number of sampling steps.

    python scripts/photo_speed.py --models ours.pth unet.pth ... [--whole] [--repeat 3]

The logic lives in :mod:`lowlight3d.inference.photo_speed`.
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import lowlight3d  # noqa: E402,F401  (compat patches + registrations)
from lowlight3d.inference.photo_speed import main  # noqa: E402

if __name__ == '__main__':
    main()
