"""Write a self-contained model file (or a prior file) from an option file and weights.

    python scripts/export_model.py -opt options/demo/test_LowLight3D_demo.yml --out model.pth [--weights X.pth]
    python scripts/export_model.py --prior -opt options/demo/train_TriplaneDDPM_demo.yml --out prior.pth
    python scripts/export_model.py ... --onnx model.onnx     # also an ONNX graph where the method allows it

See :mod:`lowlight3d.inference.model_file`, :mod:`lowlight3d.models.prior_file` and
:mod:`lowlight3d.inference.onnx_export`.
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import lowlight3d  # noqa: E402,F401  (compat patches + registrations)
from lowlight3d.inference.export_command import export_main  # noqa: E402

if __name__ == '__main__':
    export_main()
