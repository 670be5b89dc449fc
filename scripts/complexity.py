"""Params / FLOPs / peak memory / latency of an option file's networks: ``python scripts/complexity.py -opt X.yml``."""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import lowlight3d  # noqa: E402,F401
from lowlight3d.pipeline.complexity import main  # noqa: E402

if __name__ == '__main__':
    main()
