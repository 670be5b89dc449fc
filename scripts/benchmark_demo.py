"""``make benchmark-demo``: every method of options/demo/benchmark_demo.yml at one small budget over seeds.

Usage: ``python scripts/benchmark_demo.py [--total-iter N] [--seeds 0 1] [--only LABEL ...]``; the table goes to
``results/benchmark_demo/benchmark.md`` and ``benchmark.csv``.
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import lowlight3d  # noqa: E402,F401
from lowlight3d.pipeline.benchmark import main  # noqa: E402

if __name__ == '__main__':
    main()
