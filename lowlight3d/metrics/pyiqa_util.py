"""Helpers shared by the metrics computed with pyiqa (NIQE, BRISQUE): cached metric objects, input tensors.

pyiqa downloads model files on first use; we never let it: every metric is created with an explicit
``pretrained_model_path`` (files built by ``python scripts/build_iqa_models.py``, see
:mod:`lowlight3d.metrics.iqa_model_files`).  pyiqa computes its own cache folder when it is imported, which does
not matter here because that folder is never used.
"""
import os
import os.path as osp

from lowlight3d.metrics.iqa_model_files import BUILD_COMMAND
from lowlight3d.metrics.metric_util import MetricUnavailable

__all__ = ['default_device', 'require_model_file', 'get_pyiqa_metric', 'bgr_to_rgb_tensor', 'clear_cache']

_CACHE = {}


def default_device():
    """``'cuda'`` when available, else ``'cpu'``.

    Returns:
        str: Device name.
    """
    import torch
    return 'cuda' if torch.cuda.is_available() else 'cpu'


def require_model_file(path, metric, what):
    """Return ``path`` if it is a file, else raise :class:`MetricUnavailable` naming the build command.

    Args:
        path (str): Expected model file.
        metric (str): Metric name, for the message.
        what (str): What the file holds, for the message.

    Returns:
        str: ``path``.

    Raises:
        MetricUnavailable: If the file is missing.
    """
    if not osp.isfile(path):
        raise MetricUnavailable(f'{metric}: {what} file {path} is missing; build it with `{BUILD_COMMAND}` '
                                '(offline-capable, run by make venv)')
    return path


def get_pyiqa_metric(name, model_path, device=None):
    """A pyiqa metric created once per (name, model file, device) and reused.

    Args:
        name (str): pyiqa metric name (``'niqe'`` or ``'brisque'``).
        model_path (str): File passed as ``pretrained_model_path`` (so pyiqa never downloads).
        device (str, optional): Torch device; defaults to :func:`default_device`.

    Returns:
        torch.nn.Module: pyiqa's ``InferenceModel``.

    Raises:
        MetricUnavailable: If pyiqa cannot load the file (the message names it).
    """
    device = device or default_device()
    stat = os.stat(model_path)
    key = (name, osp.realpath(model_path), stat.st_mtime_ns, stat.st_size, str(device))
    if key not in _CACHE:
        import pyiqa
        try:
            _CACHE[key] = pyiqa.create_metric(name, device=device, pretrained_model_path=model_path)
        except Exception as err:  # a corrupt or foreign file fails in scipy/torch with many error types
            raise MetricUnavailable(f'{name}: cannot load {model_path} ({type(err).__name__}: {err}); rebuild it '
                                    f'with `{BUILD_COMMAND} --force`') from err
    return _CACHE[key]


def clear_cache():
    """Forget the cached pyiqa metric objects."""
    _CACHE.clear()


def bgr_to_rgb_tensor(img, device='cpu'):
    """uint8 ``H x W x 3`` BGR array -> float32 ``1 x 3 x H x W`` RGB tensor in [0, 1] (pyiqa's input).

    This is exactly what pyiqa's own image reader (PIL ``RGB`` + ``ToTensor``) gives for an 8-bit file.

    Args:
        img (np.ndarray): BGR image in [0, 255].
        device (str): Target device.

    Returns:
        torch.Tensor: The RGB tensor.
    """
    import numpy as np
    import torch

    rgb = np.ascontiguousarray(img[..., ::-1], dtype=np.float32) / 255.0
    return torch.from_numpy(rgb).permute(2, 0, 1).unsqueeze(0).to(device)
