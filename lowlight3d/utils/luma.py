"""BT.601 luma, ``Y = 0.299 R + 0.587 G + 0.114 B``: the one brightness measure of the metrics, face mode, the gamma
curve and data preparation (NIQE alone follows MATLAB's ``rgb2gray``, ``metrics/matlab_functions.py``)."""
import numpy as np

__all__ = ['LUMA_WEIGHTS', 'luma_weights']

#: BT.601 luma weights of R, G, B.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


def luma_weights(order='rgb', dtype=np.float32):
    """The three weights as an array, for ``img @ luma_weights()`` on a channels-last image.

    Args:
        order (str): Channel order of the image, ``'rgb'`` or ``'bgr'`` (OpenCV).
        dtype: numpy dtype of the array.

    Returns:
        np.ndarray: Shape ``(3,)``.
    """
    if order not in ('rgb', 'bgr'):
        raise ValueError(f"luma_weights: order must be 'rgb' or 'bgr', got {order!r}")
    return np.asarray(LUMA_WEIGHTS if order == 'rgb' else LUMA_WEIGHTS[::-1], dtype=dtype)
