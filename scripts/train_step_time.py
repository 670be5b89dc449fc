"""Seconds per training iteration, float32 against the fast defaults (bf16 autocast, channels_last), side by side.

Usage::

    python scripts/train_step_time.py --list options/demo/benchmark_demo.yml --size 128 --batch 4
    python scripts/train_step_time.py -opt options/demo/train_LowLight3D_demo.yml --profile

See :mod:`lowlight3d.pipeline.train_step_time` for the protocol.
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from lowlight3d.pipeline.train_step_time import main  # noqa: E402

if __name__ == '__main__':
    main()
