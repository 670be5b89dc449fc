"""``make benchmark-demo`` / ``make benchmark-real``: every method of a benchmark list at one budget over seeds.

Usage: ``python scripts/benchmark_demo.py [--list options/real/benchmark_real.yml] [--total-iter N | --budget-s S]
[--seeds 0 1] [--only LABEL ...] [--smoke]``; the table goes to ``results/<list name>/benchmark.md`` and
``benchmark.csv`` (see :mod:`lowlight3d.pipeline.benchmark`).
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import lowlight3d  # noqa: E402,F401
from lowlight3d.pipeline.benchmark import main  # noqa: E402

if __name__ == '__main__':
    main()
