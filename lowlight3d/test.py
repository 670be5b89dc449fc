"""Test / benchmark a lowlight3d model: ``python lowlight3d/test.py -opt options/test/....yml``."""
import os.path as osp
import sys

# Replace this file's folder (whose sub-packages would shadow top-level names) by the repository root.
sys.path[0] = osp.dirname(osp.dirname(osp.abspath(__file__)))

import lowlight3d  # noqa: E402,F401  (compat patches + registration)
from lowlight3d.pipeline.test_pipeline import test_pipeline  # noqa: E402

if __name__ == '__main__':
    test_pipeline()
