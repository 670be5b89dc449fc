"""Frozen ImageNet VGG16/VGG19 feature extractor: the ``Phi`` of the perceptual and distillation losses.

The training model computes the features of an image once with :class:`VGGFeatureExtractor` and passes the
lists to the losses (``lowlight3d/losses/feature_perceptual_loss.py``, ``intra_consistency_loss.py``,
``inter_consistency_loss.py``), so no loss owns a VGG (``docs/method.md`` sections 3.2 and 3.3).

Weights are torchvision's ImageNet files (``vgg19-dcbb9e9d.pth``, ``vgg16-397923af.pth``), found through
:func:`lowlight3d.utils.weights.resolve_weights` like every pretrained file of the toolkit.  The layers are built
here in torchvision's ``features`` layout (same indices, same state-dict keys), only up to the last layer needed,
so building the network does not pay for the 120M-parameter classifier.  ``weights='random_for_tests'`` builds a
*random* network instead (fixed seed, global RNG untouched, a :class:`RandomVGGWarning`): for tests and labelled
demo runs only, never for reported results; :attr:`VGGFeatureExtractor.is_random_standin` says which one it is.
"""
import warnings

import torch
from torch import nn

from lowlight3d.utils.registry import ARCH_REGISTRY, register
from lowlight3d.utils.weights import resolve_weights

__all__ = [
    'RANDOM_VGG', 'RandomVGGWarning', 'VGG_WEIGHT_FILES', 'IMAGENET_MEAN', 'IMAGENET_STD', 'vgg_layer_names',
    'load_vgg_features', 'VGGFeatureExtractor'
]

#: The explicit option value that builds a random-weight VGG stand-in (tests, labelled demo runs).
RANDOM_VGG = 'random_for_tests'

#: torchvision's ImageNet weight files: arch -> (file name, download address).
VGG_WEIGHT_FILES = {
    'vgg16': ('vgg16-397923af.pth', 'https://download.pytorch.org/models/vgg16-397923af.pth'),
    'vgg19': ('vgg19-dcbb9e9d.pth', 'https://download.pytorch.org/models/vgg19-dcbb9e9d.pth'),
}

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: Output channels of each 3x3 convolution, block by block (a max-pool closes every block).
_BLOCKS = {
    'vgg16': ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512)),
    'vgg19': ((64, 64), (128, 128), (256, 256, 256, 256), (512, 512, 512, 512), (512, 512, 512, 512)),
}


class RandomVGGWarning(UserWarning):
    """A random-weight VGG stand-in was built (``weights: random_for_tests``); its features mean nothing."""


def _check_arch(arch):
    if arch not in _BLOCKS:
        raise ValueError(f"Unknown VGG arch {arch!r}; valid: {', '.join(sorted(_BLOCKS))}.")


def vgg_layer_names(arch='vgg19'):
    """Names of torchvision's ``vgg*.features`` modules in index order (``conv1_1, relu1_1, ..., pool5``).

    Args:
        arch (str): ``'vgg16'`` or ``'vgg19'``.

    Returns:
        list[str]: ``names[i]`` is the name of ``features[i]``.
    """
    _check_arch(arch)
    names = []
    for b, block in enumerate(_BLOCKS[arch], start=1):
        for k in range(1, len(block) + 1):
            names += [f'conv{b}_{k}', f'relu{b}_{k}']
        names.append(f'pool{b}')
    return names


def _build_layers(arch, num_layers):
    """The first ``num_layers`` modules of torchvision's ``features`` layout (ReLUs not in-place)."""
    layers, in_ch = [], 3
    for block in _BLOCKS[arch]:
        for out_ch in block:
            layers += [nn.Conv2d(in_ch, out_ch, 3, 1, 1), nn.ReLU(inplace=False)]
            in_ch = out_ch
        layers.append(nn.MaxPool2d(2, 2))
    return nn.Sequential(*layers[:num_layers])


def load_vgg_features(arch='vgg19', weights=None, download=True, num_layers=None, purpose='', random_message=None,
                      seed=0):
    """The first ``num_layers`` modules of torchvision's ``vgg16/vgg19().features``, with weights.

    Args:
        arch (str): ``'vgg16'`` or ``'vgg19'``.
        weights (str | None): ``None`` = find torchvision's ImageNet file with :func:`resolve_weights`; a path = that
            file (a torchvision state dict, keys ``features.<i>.*``, or a ``features`` state dict, keys ``<i>.*``);
            :data:`RANDOM_VGG` = random weights (He-normal convolutions, zero biases, torchvision's scheme) drawn
            from ``seed`` without touching the global RNG, with a :class:`RandomVGGWarning`.
        download (bool): Whether :func:`resolve_weights` may download the file.
        num_layers (int, optional): Modules kept (``features[:num_layers]``); ``None`` = all.
        purpose (str): What the network is for, put in the missing-weights error.
        random_message (str, optional): Text of the warning for a random stand-in.
        seed (int): Seed of the random stand-in.

    Returns:
        nn.Sequential: The layers (trainable flags untouched; the caller freezes them).

    Raises:
        lowlight3d.utils.weights.WeightsNotFoundError: When the file is neither found nor downloadable.
        KeyError: When the file lacks tensors of the kept layers.
    """
    _check_arch(arch)
    total = len(vgg_layer_names(arch))
    num_layers = total if num_layers is None else int(num_layers)
    if not 1 <= num_layers <= total:
        raise ValueError(f'num_layers must be in [1, {total}] for {arch}, got {num_layers}')
    if weights == RANDOM_VGG:
        warnings.warn(random_message or f'A RANDOM-weight {arch.upper()} is used (weights: {RANDOM_VGG}); its '
                      'features are meaningless: tests and labelled demo runs only.', RandomVGGWarning, stacklevel=3)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            features = _build_layers(arch, num_layers)
            for m in features:
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
                    nn.init.zeros_(m.bias)
        return features
    filename, url = VGG_WEIGHT_FILES[arch]
    path = resolve_weights(filename, url=url, local_path=weights, download=download,
                           purpose=purpose or f'ImageNet {arch.upper()} features; pass weights=<path>, or '
                           f"weights='{RANDOM_VGG}' for a labelled random stand-in")
    state = torch.load(path, map_location='cpu', weights_only=True)
    if any(k.startswith('features.') for k in state):
        state = {k[len('features.'):]: v for k, v in state.items() if k.startswith('features.')}
    features = _build_layers(arch, num_layers)
    wanted = features.state_dict().keys()
    missing = [k for k in wanted if k not in state]
    if missing:
        raise KeyError(f'{path} is not a torchvision {arch} state dict: it lacks {missing[:4]} '
                       f'(keys expected as features.<index>.weight/bias).')
    features.load_state_dict({k: state[k] for k in wanted}, strict=True)
    return features


@register(ARCH_REGISTRY, name='FrozenVGGFeatureExtractor')
class VGGFeatureExtractor(nn.Module):
    """Frozen VGG16/VGG19 returning the features of named layers, for images in ``[0, 1]``.

    Registered as ``FrozenVGGFeatureExtractor``: BasicSR's own ``VGGFeatureExtractor`` holds the plain name in the
    shared arch registry.

    Args:
        arch (str): ``'vgg19'`` (the paper's, default) or ``'vgg16'``.
        layers (Sequence[str]): Layer names (see :func:`vgg_layer_names`: ``conv<b>_<k>``, ``relu<b>_<k>``,
            ``pool<b>``); the network is truncated after the deepest one.  The paper's OPEN choice:
            ``relu1_1, relu2_1, relu3_1``.
        weights (str | None): See :func:`load_vgg_features` (``None``: torchvision's ImageNet file; a path;
            ``'random_for_tests'``: a labelled random stand-in).
        download (bool): Whether the weight file may be downloaded when missing.
        imagenet_norm (bool): Normalise the input with ImageNet mean/std inside ``forward`` (what the
            torchvision weights expect); ``False`` feeds the input as given.

    Attributes:
        is_random_standin (bool): ``True`` when built with random weights (label any result made with it).
        layers (tuple[str]): The requested layers, in output order.

    The parameters never require gradients and the network stays in eval mode whatever ``train()`` is asked;
    gradients still flow to the input.
    """

    def __init__(self, arch='vgg19', layers=('relu1_1', 'relu2_1', 'relu3_1'), weights=None, download=True,
                 imagenet_norm=True):
        super().__init__()
        _check_arch(arch)
        if isinstance(layers, str):
            layers = (layers, )
        layers = tuple(layers)
        if not layers:
            raise ValueError('VGGFeatureExtractor needs at least one layer name in `layers`.')
        names = vgg_layer_names(arch)
        unknown = [name for name in layers if name not in names]
        if unknown:
            raise ValueError(f'Unknown {arch} layer name(s) {unknown}; valid names: {", ".join(names)}.')
        self.arch, self.layers, self.imagenet_norm = arch, layers, bool(imagenet_norm)
        self._indices = [names.index(name) for name in layers]
        self.is_random_standin = weights == RANDOM_VGG
        self.features = load_vgg_features(
            arch, weights, download, num_layers=max(self._indices) + 1,
            random_message=(f'VGGFeatureExtractor uses a RANDOM-weight {arch.upper()} (weights: {RANDOM_VGG}); '
                            'perceptual/distillation losses computed with it are not the paper\'s: tests and '
                            'labelled demo runs only.'))
        for p in self.features.parameters():
            p.requires_grad_(False)
        self.features.eval()
        self.register_buffer('mean', torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer('std', torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode=True):
        """The VGG stays in eval mode whatever the caller asks."""
        super().train(mode)
        self.features.eval()
        return self

    def forward(self, x):
        """Features of ``x``.

        Args:
            x (Tensor): RGB images ``(B, 3, H, W)`` in ``[0, 1]``.

        Returns:
            list[Tensor]: One tensor per name of ``layers``, in that order (``relu1_1``: 64 channels at ``H``,
            ``relu2_1``: 128 at ``H/2``, ``relu3_1``: 256 at ``H/4``, ...).
        """
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f'VGGFeatureExtractor expects RGB images of shape (B, 3, H, W), got {tuple(x.shape)}')
        if self.imagenet_norm:
            x = (x - self.mean) / self.std
        wanted = set(self._indices)
        found = {}
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in wanted:
                found[i] = x
        return [found[i] for i in self._indices]
