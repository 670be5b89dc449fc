"""Per-channel histogram equalisation of image batches, identical to OpenCV's ``cv2.equalizeHist`` on uint8.

RDDM's low-light recipe equalises the condition image channel by channel (``equalizeHist = True`` in its
dataset) before it is used.  For a channel with uint8 histogram ``h`` and first non-empty bin ``i0``, OpenCV maps
``v -> round((cdf(v) - h[i0]) * 255 / (N - h[i0]))`` (``lut[i0] = 0``); a constant channel stays as it is.  Done here on
torch tensors so that it runs inside the network on any batch (tested equal to ``cv2.equalizeHist``).
"""
import torch

__all__ = ['equalize_hist_uint8', 'equalize_hist']


def equalize_hist_uint8(channel):
    """Equalise one ``uint8``-valued channel.

    Args:
        channel (Tensor): Integer tensor (any shape) with values in ``[0, 255]``.

    Returns:
        Tensor: The equalised values (``int64``, same shape).
    """
    flat = channel.reshape(-1).long()
    hist = torch.bincount(flat, minlength=256)
    total = flat.numel()
    first = int(torch.nonzero(hist, as_tuple=False)[0])
    if int(hist[first]) == total:  # constant channel: OpenCV leaves it unchanged
        return channel.long().clone()
    # single precision as OpenCV: scale = 255.f / (N - h[i0]), lut = cvRound(float(sum) * scale)
    scale = torch.tensor(255.0, dtype=torch.float32) / float(total - int(hist[first]))
    cdf = torch.cumsum(hist, 0)
    lut = (cdf - hist[first]).float() * scale
    lut = torch.round(lut).clamp(0, 255).long()  # cvRound: nearest, ties to even (as torch.round)
    lut[:first + 1] = 0
    return lut[flat].reshape(channel.shape)


def equalize_hist(img):
    """Equalise every channel of every image of a batch in ``[0, 1]``.

    The image is quantised to uint8 first (``round(255 x)``, as the original reads 8-bit files); the result is in
    ``[0, 1]`` on the 8-bit grid.  Not differentiable (a condition, not a trained quantity).

    Args:
        img (Tensor): ``(B, C, H, W)`` in ``[0, 1]``.

    Returns:
        Tensor: ``(B, C, H, W)`` equalised, same dtype and device.
    """
    if img.dim() != 4:
        raise ValueError(f'equalize_hist expects a (B, C, H, W) batch, got shape {tuple(img.shape)}')
    q = torch.round(img.detach().clamp(0, 1) * 255).long()
    out = torch.empty_like(q)
    for b in range(q.shape[0]):
        for c in range(q.shape[1]):
            out[b, c] = equalize_hist_uint8(q[b, c])
    return out.to(img.dtype) / 255.0
