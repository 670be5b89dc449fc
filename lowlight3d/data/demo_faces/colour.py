"""Colour helpers of the demo faces: sRGB <-> linear, black-body white balance and the display tone curve."""
import numpy as np

__all__ = []  # package-internal helpers (the ``_`` names are shared by the modules of lowlight3d.data.demo_faces)


def _srgb_to_linear(c):
    c = np.asarray(c, dtype=np.float64)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055)**2.4)


def _linear_to_srgb(c):
    c = np.clip(c, 0.0, 1.0)
    return np.where(c <= 0.0031308, c * 12.92, 1.055 * np.power(c, 1 / 2.4) - 0.055)


def _kelvin_to_rgb(kelvin):
    """Approximate white-balanced RGB (linear, max channel 1) of a black body at ``kelvin``."""
    table_k = np.array([2000, 2500, 3000, 3500, 4000, 5000, 6500, 8000, 10000], dtype=np.float64)
    table = np.array([[1.00, 0.54, 0.17], [1.00, 0.62, 0.30], [1.00, 0.71, 0.42], [1.00, 0.77, 0.54],
                      [1.00, 0.82, 0.64], [1.00, 0.89, 0.81], [1.00, 0.98, 0.98], [0.89, 0.92, 1.00],
                      [0.79, 0.85, 1.00]])
    rgb = np.array([np.interp(kelvin, table_k, table[:, c]) for c in range(3)])
    return _srgb_to_linear(rgb) / _srgb_to_linear(rgb).max()


def _tonemap(linear, exposure=1.0, white=4.0):
    """Extended Reinhard tone curve + sRGB encoding; returns float display values in [0, 1]."""
    x = np.maximum(linear * np.float32(exposure), 0)
    x = x * (1 + x / (white * white)) / (1 + x)
    return _linear_to_srgb(x).astype(np.float32)

