"""LPIPS v0.1 with an AlexNet backbone (Zhang et al. 2018), registered as ``lpips``; our own implementation.

Computation (as in the reference ``lpips`` package, ``LPIPS(net='alex', version='0.1')``): RGB images scaled
to [-1, 1] -> fixed scaling layer (shift ``[-.030, -.088, -.188]``, scale ``[.458, .448, .450]``) -> AlexNet
features at relu1..relu5 -> unit-normalisation over channels -> squared difference -> non-negative 1x1 linear
head per layer -> spatial mean -> sum over the 5 layers.  0 for identical images; lower is better.

Weights (never bundled; resolved through :func:`lowlight3d.utils.weights.resolve_weights`):

* AlexNet backbone ``alexnet-owt-7be5be79.pth`` (torchvision's ImageNet weights): option ``alexnet_path``,
  else ``weights_dir()``, ``experiments/pretrained_models/``, the torch hub cache
  (``$TORCH_HOME/hub/checkpoints``), else a download from download.pytorch.org.
* Linear heads ``lpips_v0.1_alex.pth``: option ``lpips_path``, else the same folders, else the copy shipped
  in the ``lpips`` PyPI wheel (``lpips/weights/v0.1/alex.pth``, BSD-2-Clause), else a download from the
  reference repository.

When a file cannot be found or downloaded the metric raises
:class:`~lowlight3d.metrics.metric_util.MetricUnavailable` naming the file and where to put it.  The outcome
(model or reason) is cached per configuration, so an offline run does not retry the download for every image.
"""
import importlib.util
import os
import os.path as osp
import re

import torch
from torch import nn

from lowlight3d.metrics.metric_util import MetricUnavailable, check_image, crop_image, register_metric
from lowlight3d.utils.weights import WeightsNotFoundError, resolve_weights, torch_hub_checkpoints_dir, weights_dir

__all__ = [
    'ALEXNET_FILENAME', 'ALEXNET_URL', 'LPIPS_HEADS_FILENAME', 'LPIPS_HEADS_URL', 'LPIPSAlex', 'resolve_lpips_weights',
    'build_lpips', 'lpips', 'clear_cache'
]

ALEXNET_FILENAME = 'alexnet-owt-7be5be79.pth'
ALEXNET_URL = 'https://download.pytorch.org/models/alexnet-owt-7be5be79.pth'
LPIPS_HEADS_FILENAME = 'lpips_v0.1_alex.pth'
LPIPS_HEADS_URL = 'https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/alex.pth'

_CACHE = {}


class LPIPSAlex(nn.Module):
    """LPIPS v0.1 network with an AlexNet trunk; weights are loaded explicitly (nothing is downloaded here).

    Args:
        alexnet_state (dict, optional): torchvision AlexNet state dict (``features.*`` keys are used).
        heads_state (dict, optional): LPIPS linear heads (``lin0..lin4`` keys, as in the ``lpips`` package).

    Without states the network has torchvision's random initialisation (only useful for tests).
    """

    #: Channels of AlexNet's relu1..relu5.
    CHANNELS = (64, 192, 384, 256, 256)
    #: Indices of relu1..relu5 in ``torchvision.models.alexnet().features``.
    TAP_LAYERS = (1, 4, 7, 9, 11)
    #: Smallest side (pixels) for which every AlexNet layer up to relu5 has a non-empty output.
    MIN_SIZE = 31

    def __init__(self, alexnet_state=None, heads_state=None):
        super().__init__()
        from torchvision.models import alexnet

        self.features = alexnet(weights=None).features[:self.TAP_LAYERS[-1] + 1]
        self.lins = nn.ModuleList(
            nn.Conv2d(c, 1, kernel_size=1, stride=1, padding=0, bias=False) for c in self.CHANNELS)
        self.register_buffer('shift', torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer('scale', torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))
        if alexnet_state is not None:
            self.load_backbone(alexnet_state)
        if heads_state is not None:
            self.load_heads(heads_state)
        self.requires_grad_(False)
        self.eval()

    def load_backbone(self, state_dict):
        """Load torchvision AlexNet weights (``features.N.weight``/``bias`` for the layers up to relu5).

        Args:
            state_dict (dict): A torchvision ``alexnet`` state dict.

        Raises:
            ValueError: If the convolution weights are missing or have the wrong shapes.
        """
        state_dict = state_dict.get('state_dict', state_dict)
        wanted = self.features.state_dict()
        picked = {}
        for key in wanted:
            full = f'features.{key}'
            if full not in state_dict:
                raise ValueError(f'not a torchvision AlexNet state dict: {full} missing')
            if tuple(state_dict[full].shape) != tuple(wanted[key].shape):
                raise ValueError(
                    f'{full} has shape {tuple(state_dict[full].shape)}, expected {tuple(wanted[key].shape)}')
            picked[key] = state_dict[full]
        self.features.load_state_dict(picked, strict=True)

    def load_heads(self, state_dict):
        """Load the 5 non-negative 1x1 linear heads.

        Accepts the ``lpips`` package layout (``lin{k}.model.1.weight``), ``lin{k}.model.weight`` and
        ``lins.{k}.weight``, optionally nested under ``params`` or ``state_dict``.

        Args:
            state_dict (dict): The heads' state dict.

        Raises:
            ValueError: If a head is missing, has the wrong shape or negative weights.
        """
        for nest in ('params', 'state_dict'):
            if isinstance(state_dict.get(nest), dict):
                state_dict = state_dict[nest]
        pattern = re.compile(r'(?:^|\.)lins?\.?(\d)\.(?:model\.)?(?:\d\.)?weight$')
        found = {}
        for key, value in state_dict.items():
            match = pattern.search(key)
            if match:
                found[int(match.group(1))] = value
        for k, channels in enumerate(self.CHANNELS):
            if k not in found:
                raise ValueError(f'LPIPS head lin{k} missing (keys: {sorted(state_dict)[:8]}...)')
            weight = found[k]
            if tuple(weight.shape) != (1, channels, 1, 1):
                raise ValueError(f'LPIPS head lin{k} has shape {tuple(weight.shape)}, expected (1, {channels}, 1, 1)')
            if (weight < 0).any():
                raise ValueError(f'LPIPS head lin{k} has negative weights; LPIPS heads are non-negative')
            self.lins[k].weight.data.copy_(weight)

    @staticmethod
    def _unit_normalize(feat, eps=1e-10):
        """Divide each spatial feature vector by its L2 norm over channels."""
        return feat / (torch.sqrt(torch.sum(feat**2, dim=1, keepdim=True)) + eps)

    def _taps(self, x):
        """AlexNet activations at relu1..relu5."""
        outs = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in self.TAP_LAYERS:
                outs.append(x)
        return outs

    def forward(self, x, y):
        """LPIPS distance between two batches.

        Args:
            x (torch.Tensor): ``N x 3 x H x W`` RGB in [-1, 1].
            y (torch.Tensor): Same shape.

        Returns:
            torch.Tensor: ``N`` distances (>= 0).
        """
        if x.shape != y.shape:
            raise ValueError(f'LPIPS inputs differ in shape: {tuple(x.shape)} vs {tuple(y.shape)}')
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f'LPIPS expects N x 3 x H x W RGB tensors, got {tuple(x.shape)}')
        if min(x.shape[-2:]) < self.MIN_SIZE:
            raise ValueError(f'LPIPS (AlexNet) needs images of at least {self.MIN_SIZE}x{self.MIN_SIZE} pixels, '
                             f'got {x.shape[-1]}x{x.shape[-2]}')
        feats_x = self._taps((x - self.shift) / self.scale)
        feats_y = self._taps((y - self.shift) / self.scale)
        total = 0
        for lin, fx, fy in zip(self.lins, feats_x, feats_y):
            diff = (self._unit_normalize(fx) - self._unit_normalize(fy))**2
            total = total + lin(diff).mean(dim=(2, 3))
        return total.view(-1)


def _package_heads_path():
    """``lpips/weights/v0.1/alex.pth`` of an installed ``lpips`` package (located without importing it)."""
    try:
        spec = importlib.util.find_spec('lpips')
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = osp.join(folder, 'weights', 'v0.1', 'alex.pth')
        if osp.isfile(path):
            return path
    return None


def resolve_lpips_weights(alexnet_path=None, lpips_path=None, download=True):
    """Find (or download) the AlexNet backbone and the LPIPS heads.

    Args:
        alexnet_path (str, optional): Explicit AlexNet file (must exist).
        lpips_path (str, optional): Explicit heads file (must exist).
        download (bool): Whether missing files may be downloaded.

    Returns:
        tuple[str, str]: ``(alexnet_file, heads_file)``.

    Raises:
        WeightsNotFoundError: Naming every missing file and where to put it.
    """
    errors = []
    alex = heads = None
    try:
        alex = resolve_weights(ALEXNET_FILENAME,
                               url=ALEXNET_URL,
                               local_path=alexnet_path,
                               download=download,
                               purpose='AlexNet backbone of LPIPS')
    except WeightsNotFoundError as err:
        errors.append(str(err))
    if lpips_path:
        try:
            heads = resolve_weights(LPIPS_HEADS_FILENAME, local_path=lpips_path, purpose='LPIPS v0.1 linear heads')
        except WeightsNotFoundError as err:
            errors.append(str(err))
    else:
        try:
            heads = resolve_weights(LPIPS_HEADS_FILENAME, download=False, purpose='LPIPS v0.1 linear heads')
        except WeightsNotFoundError:
            heads = _package_heads_path()
        if heads is None:
            try:
                heads = resolve_weights(LPIPS_HEADS_FILENAME,
                                        url=LPIPS_HEADS_URL,
                                        download=download,
                                        purpose='LPIPS v0.1 linear heads; `pip install lpips==0.1.4` also provides '
                                        'them as lpips/weights/v0.1/alex.pth')
            except WeightsNotFoundError as err:
                errors.append(str(err))
    if errors:
        raise WeightsNotFoundError(' '.join(' '.join(e.split()) for e in errors))
    return alex, heads


def _load(path):
    """``torch.load`` to CPU, tensors only (the reference heads were saved on a GPU)."""
    return torch.load(path, map_location='cpu', weights_only=True)


def build_lpips(alexnet_path=None, lpips_path=None, download=True, device=None):
    """Build the LPIPS network with real weights, or raise :class:`MetricUnavailable` with the reason.

    Args:
        alexnet_path (str, optional): Explicit AlexNet backbone file.
        lpips_path (str, optional): Explicit LPIPS heads file.
        download (bool): Whether missing files may be downloaded.
        device (str, optional): Torch device (default: cuda if available, else cpu).

    Returns:
        LPIPSAlex: The network, in eval mode, on ``device``.

    Raises:
        MetricUnavailable: Missing or unreadable weight files (the message names them).
    """
    device = device or ('cuda' if torch.cuda.is_available() else 'cpu')
    try:
        alex, heads = resolve_lpips_weights(alexnet_path, lpips_path, download)
    except WeightsNotFoundError as err:
        raise MetricUnavailable(f'lpips: {err}') from err
    try:
        net = LPIPSAlex(_load(alex), _load(heads))
    except Exception as err:  # unreadable pickle, wrong keys or shapes
        raise MetricUnavailable(f'lpips: cannot load {alex} / {heads}: {type(err).__name__}: {err}') from err
    return net.to(device)


def clear_cache():
    """Forget the cached LPIPS networks and failure reasons (e.g. after placing a weight file)."""
    _CACHE.clear()


def _cached_lpips(alexnet_path, lpips_path, download, device):
    """:func:`build_lpips` memoised per configuration, failures included."""
    key = (alexnet_path, lpips_path, bool(download), str(device), weights_dir(), torch_hub_checkpoints_dir(),
           os.getcwd())
    if key not in _CACHE:
        try:
            _CACHE[key] = build_lpips(alexnet_path, lpips_path, download, device)
        except MetricUnavailable as err:
            _CACHE[key] = err
    outcome = _CACHE[key]
    if isinstance(outcome, MetricUnavailable):
        raise MetricUnavailable(str(outcome))
    return outcome


def _to_tensor(img, device):
    """uint8 BGR ``H x W x 3`` -> ``1 x 3 x H x W`` RGB float tensor in [-1, 1]."""
    import numpy as np
    rgb = np.ascontiguousarray(img[..., ::-1], dtype=np.float32) / 255.0
    return torch.from_numpy(rgb).permute(2, 0, 1).unsqueeze(0).to(device) * 2 - 1


@register_metric('lpips', reference='full', better='lower')
def lpips(img, img2, crop_border=0, alexnet_path=None, lpips_path=None, download=True, device=None, **kwargs):
    """LPIPS v0.1 (AlexNet) distance between prediction and ground truth (full reference; lower is better).

    Args:
        img (np.ndarray): Prediction, uint8 ``H x W x 3`` BGR.
        img2 (np.ndarray): Ground truth, same size.
        crop_border (int): Pixels removed on each side before computing.
        alexnet_path (str, optional): Explicit ``alexnet-owt-7be5be79.pth``.
        lpips_path (str, optional): Explicit LPIPS v0.1 AlexNet heads file.
        download (bool): Whether missing weights may be downloaded.
        device (str, optional): Torch device (default: cuda if available, else cpu).
        **kwargs: Other option keys (ignored, e.g. ``test_y_channel``: LPIPS always uses RGB).

    Returns:
        float: The distance (0 for identical images).

    Raises:
        MetricUnavailable: Weights missing (the message names the files and folders), or image too small.
        ValueError: Images of different sizes.
    """
    if img2 is None:
        raise ValueError('lpips is a full-reference metric: img2 (the ground truth) is required')
    img = crop_image(check_image(img, 'img'), crop_border)
    img2 = crop_image(check_image(img2, 'img2'), crop_border)
    if img.shape != img2.shape:
        raise ValueError(f'lpips: prediction {img.shape[1]}x{img.shape[0]} and ground truth '
                         f'{img2.shape[1]}x{img2.shape[0]} differ in size (no resize is done)')
    if min(img.shape[:2]) < LPIPSAlex.MIN_SIZE:
        raise MetricUnavailable(f'LPIPS (AlexNet) needs at least {LPIPSAlex.MIN_SIZE}x{LPIPSAlex.MIN_SIZE} pixels, '
                                f'got {img.shape[1]}x{img.shape[0]}')
    device = device or ('cuda' if torch.cuda.is_available() else 'cpu')
    net = _cached_lpips(alexnet_path, lpips_path, download, device)
    with torch.no_grad():
        return float(net(_to_tensor(img, device), _to_tensor(img2, device)).item())
