"""What each component brings, from benchmark tables: ``python scripts/ablation_table.py --list L --csv A [B]``.

The list's ``ablation`` block names the reference row, the ablation rows and the metrics
(:mod:`lowlight3d.pipeline.benchmark.ablation`).
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import lowlight3d  # noqa: E402,F401
from lowlight3d.pipeline.benchmark.ablation import main  # noqa: E402

if __name__ == '__main__':
    main()
