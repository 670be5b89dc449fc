"""Noise of real dark photos against our synthetic degradation: ``python scripts/calibrate_noise.py --plot P``.

The measurement lives in :mod:`lowlight3d.pipeline.noise_calibration_report`; this script is its command line.
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from lowlight3d.pipeline.noise_calibration_report import main  # noqa: E402

if __name__ == '__main__':
    main()
