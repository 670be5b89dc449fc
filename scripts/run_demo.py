"""The demo behind ``make demo``: ``python scripts/run_demo.py [--faces DIR]``."""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import lowlight3d  # noqa: E402,F401
from lowlight3d.pipeline.demo import main  # noqa: E402

if __name__ == '__main__':
    main()
