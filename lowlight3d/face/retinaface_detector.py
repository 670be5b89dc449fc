"""facexlib RetinaFace (boxes, scores, 5 landmarks) with weights resolved offline, never downloaded here.

Its weights (``detection_Resnet50_Final.pth`` or ``detection_mobilenet0.25_Final.pth``) are found with
:func:`lowlight3d.utils.weights.resolve_weights`; facexlib is always given the requested device (its own default is
CUDA) and ``model_rootpath`` = the folder holding the file, so it neither tries CUDA nor writes into site-packages
(``docs/environment.md`` section 3).
"""
import os.path as osp

import cv2
import numpy as np

from lowlight3d.face.detection import RETINAFACE_WEIGHTS, FaceDetection, detection_input

__all__ = ['RetinaFaceDetector']


class RetinaFaceDetector:
    """facexlib RetinaFace (5 landmarks) on CPU with weights resolved offline.

    Args:
        model_name (str): ``'retinaface_resnet50'`` or ``'retinaface_mobile0.25'``.
        weights_path (str, optional): Explicit weight file; otherwise :func:`resolve_weights` looks in
            ``$LOWLIGHT3D_WEIGHTS``, ``experiments/pretrained_models`` and the torch hub cache (no download).
        conf_threshold (float): Score threshold.
        device (str): torch device (``'cpu'`` by default; facexlib's own default is CUDA).
        brighten (bool): Detect on the brightened copy (:func:`~lowlight3d.face.detection.brighten_for_detection`).

    Raises:
        lowlight3d.utils.weights.WeightsNotFoundError: The weight file is not on disk.
    """

    name = 'retinaface'

    def __init__(self, model_name='retinaface_resnet50', weights_path=None, conf_threshold=0.8, device='cpu',
                 brighten=True):
        from lowlight3d.utils.weights import resolve_weights
        if model_name not in RETINAFACE_WEIGHTS:
            raise ValueError(f'Unknown RetinaFace model {model_name!r}; choose one of {sorted(RETINAFACE_WEIGHTS)}')
        filename, url = RETINAFACE_WEIGHTS[model_name]
        path = resolve_weights(filename, url, local_path=weights_path, download=False,
                               purpose=f'facexlib {model_name} face detector')
        if osp.basename(path) != filename:
            raise ValueError(f"facexlib loads '{filename}' from its folder; name the weight file {filename} "
                             f"(got '{path}')")
        import torch
        from facexlib.detection import init_detection_model
        self.model_name = model_name
        self.weights_path = path
        self.conf_threshold = float(conf_threshold)
        self.device = device
        self.brighten = brighten if isinstance(brighten, str) else bool(brighten)
        self.model = init_detection_model(model_name, half=False, device=device,
                                          model_rootpath=osp.dirname(osp.abspath(path)))
        self._torch = torch

    def describe(self):
        """str: One line naming the detector and its weights."""
        return f'facexlib {self.model_name} ({self.weights_path}), score >= {self.conf_threshold:g}, {self.device}'

    def detect(self, img):
        """Detect faces in an RGB frame (brightened internally when dark).

        Args:
            img (np.ndarray): ``H x W x 3`` RGB float image in ``[0, 1]``.

        Returns:
            list[FaceDetection]: Faces with 5 landmarks, largest first.
        """
        bgr = cv2.cvtColor(detection_input(img, self.brighten), cv2.COLOR_RGB2BGR)
        with self._torch.no_grad():
            rows = self.model.detect_faces(bgr, conf_threshold=self.conf_threshold)
        faces = []
        for row in np.asarray(rows).reshape(-1, 15):
            faces.append(FaceDetection(row[:4].astype(np.float32), float(row[4]), row[5:15].reshape(5, 2).astype(
                np.float32)))
        return sorted(faces, key=lambda f: -f.area)
