"""CPU ms per image at inference for every method, side by side: ``python scripts/inference_speed.py [X.yml ...]``."""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import lowlight3d  # noqa: E402,F401
from lowlight3d.pipeline.inference_speed import main  # noqa: E402

if __name__ == '__main__':
    main()
