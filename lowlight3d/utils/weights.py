"""Finding pretrained weight files offline first: explicit path, toolkit folder, torch hub cache, download.

Every piece of the toolkit that needs third-party weights (VGG19 for the perceptual loss, AlexNet and the
LPIPS heads, facexlib detectors, ...) resolves them through :func:`resolve_weights`, so the rules are the same
everywhere and a missing file always produces the same kind of message: which file, and where to put it.
"""
import os
import os.path as osp

__all__ = ['WeightsNotFoundError', 'weights_dir', 'torch_hub_checkpoints_dir', 'resolve_weights']


class WeightsNotFoundError(FileNotFoundError):
    """Raised when a weight file is neither on disk nor downloadable; the message says where to put it."""


def weights_dir():
    """The toolkit's own weight folder: ``$LOWLIGHT3D_WEIGHTS`` or ``~/.cache/lowlight3d/weights``."""
    return os.environ.get('LOWLIGHT3D_WEIGHTS', osp.join(osp.expanduser('~'), '.cache', 'lowlight3d', 'weights'))


def torch_hub_checkpoints_dir():
    """torch hub's checkpoint cache (``$TORCH_HOME/hub/checkpoints``), evaluated at call time."""
    import torch
    return osp.join(torch.hub.get_dir(), 'checkpoints')


def resolve_weights(filename, url=None, local_path=None, download=True, purpose=''):
    """Return the path of a weight file, looking in a fixed order, and never silently continuing without it.

    Order: ``local_path`` (if given it must exist), ``weights_dir()/filename``,
    ``experiments/pretrained_models/filename`` (BasicSR's habit, relative to the working directory),
    ``torch_hub_checkpoints_dir()/filename``, then a download of ``url`` into the torch hub cache.

    Args:
        filename (str): File name, e.g. ``vgg19-dcbb9e9d.pth``.
        url (str, optional): Download address; ``None`` means the file cannot be downloaded.
        local_path (str, optional): Explicit path from an option; an error if it does not exist.
        download (bool): Whether a download may be attempted.
        purpose (str): What the weights are for, used in the error message.

    Returns:
        str: Path of an existing file.

    Raises:
        WeightsNotFoundError: With the file name and the folders it may be put in.
    """
    what = f' ({purpose})' if purpose else ''
    if local_path:
        if osp.isfile(local_path):
            return local_path
        raise WeightsNotFoundError(f'Weight file{what} not found at the configured path {local_path!r}.')
    candidates = [
        osp.join(weights_dir(), filename),
        osp.join('experiments', 'pretrained_models', filename),
        osp.join(torch_hub_checkpoints_dir(), filename),
    ]
    for path in candidates:
        if osp.isfile(path):
            return path
    reason = 'no download address is known'
    if url and download:
        target = candidates[-1]
        os.makedirs(osp.dirname(target), exist_ok=True)
        try:
            import torch

            from lowlight3d.utils.checkpoint import atomic_write
            return atomic_write(target, lambda tmp: torch.hub.download_url_to_file(url, tmp, progress=False))
        except Exception as err:  # network errors come in many types (URLError, OSError, HTTPError)
            reason = f'the download of {url} failed: {type(err).__name__}: {err}'
    elif url:
        reason = 'downloads are disabled'
    places = '\n  '.join(candidates)
    raise WeightsNotFoundError(f"Weight file '{filename}'{what} is missing and {reason}. Put the file in one of:\n  "
                               f'{places}\n(or set LOWLIGHT3D_WEIGHTS to a folder that holds it)' +
                               (f'; it can be downloaded from {url}' if url else '') + '.')
