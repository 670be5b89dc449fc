"""FaceNet with a MobileNetV1 backbone (128-d, L2-normalised embeddings): the recogniser of Low-FaceNet's face loss.

Layout (``docs/baselines.md`` section 5; the widely used ``facenet_mobilenet.pth`` layout that Low-FaceNet
loads, so that file's state dict fits key for key):

* ``backbone.model.stage1``: conv_bn(3, 32, /2), dw(32, 64), dw(64, 128, /2), dw(128, 128), dw(128, 256, /2),
  dw(256, 256); ``stage2``: dw(256, 512, /2) + 5 x dw(512, 512); ``stage3``: dw(512, 1024, /2), dw(1024, 1024).
  ``conv_bn`` = conv3x3 (no bias) + BN + ReLU6; ``dw`` = depthwise conv3x3 + BN + ReLU6 + conv1x1 + BN + ReLU6;
* global average pool, dropout (inactive: the network is frozen in eval mode), ``Bottleneck`` Linear 1024 -> 128
  without bias, ``last_bn`` BatchNorm1d(128, eps 1e-3), L2 normalisation.

Input: RGB in ``[0, 1]`` (160 x 160 letterboxed face crops in Low-FaceNet).  The trained file may also hold the
identity ``classifier`` of its own training; it is ignored.

Weights: ``facenet_mobilenet.pth`` through :func:`lowlight3d.utils.weights.resolve_weights` (no public download
address is known: Low-FaceNet distributes it on Google Drive / Baidu).  ``weights='random_for_tests'`` builds a
seeded random network with a :class:`RandomFaceNetWarning`: tests and labelled runs only.
"""
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from lowlight3d.utils.registry import ARCH_REGISTRY, register
from lowlight3d.utils.weights import resolve_weights

__all__ = ['FACENET_FILENAME', 'RANDOM_STANDIN', 'RandomFaceNetWarning', 'LowFaceNetFaceNet', 'load_facenet']

FACENET_FILENAME = 'facenet_mobilenet.pth'
#: The explicit option value that builds a random-weight stand-in (tests, labelled runs).
RANDOM_STANDIN = 'random_for_tests'


class RandomFaceNetWarning(UserWarning):
    """A random-weight FaceNet stand-in was built; its embeddings identify nobody."""


def _conv_bn(cin, cout, stride):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU6())


def _conv_dw(cin, cout, stride=1):
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False), nn.BatchNorm2d(cin), nn.ReLU6(),
        nn.Conv2d(cin, cout, 1, 1, 0, bias=False), nn.BatchNorm2d(cout), nn.ReLU6())


class _MobileNetV1(nn.Module):
    """The three MobileNetV1 stages (the classifier head of MobileNetV1 is not built)."""

    def __init__(self):
        super().__init__()
        self.stage1 = nn.Sequential(_conv_bn(3, 32, 2), _conv_dw(32, 64), _conv_dw(64, 128, 2), _conv_dw(128, 128),
                                    _conv_dw(128, 256, 2), _conv_dw(256, 256))
        self.stage2 = nn.Sequential(_conv_dw(256, 512, 2), *[_conv_dw(512, 512) for _ in range(5)])
        self.stage3 = nn.Sequential(_conv_dw(512, 1024, 2), _conv_dw(1024, 1024))


class _Backbone(nn.Module):
    """Holds the MobileNet as ``model`` (the key prefix ``backbone.model.`` of the weight file)."""

    def __init__(self):
        super().__init__()
        self.model = _MobileNetV1()

    def forward(self, x):
        """``N x 1024 x H/32 x W/32`` features of ``N x 3 x H x W`` images."""
        return self.model.stage3(self.model.stage2(self.model.stage1(x)))


@register(ARCH_REGISTRY, name='LowFaceNet.FaceNet')
class LowFaceNetFaceNet(nn.Module):
    """FaceNet (MobileNetV1 backbone) returning L2-normalised 128-d embeddings of RGB faces in ``[0, 1]``.

    Args:
        embedding_size (int): Embedding width (128).
        dropout (float): Dropout before the bottleneck (0.5 in training of the original; inactive in eval mode).
    """

    def __init__(self, embedding_size=128, dropout=0.5):
        super().__init__()
        self.backbone = _Backbone()
        self.avg = nn.AdaptiveAvgPool2d((1, 1))
        self.Dropout = nn.Dropout(dropout)
        self.Bottleneck = nn.Linear(1024, embedding_size, bias=False)
        self.last_bn = nn.BatchNorm1d(embedding_size, eps=0.001, momentum=0.1, affine=True)

    def forward(self, x):
        """``N x embedding_size`` unit-norm embeddings of ``N x 3 x H x W`` faces (``H, W >= 32``)."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f'LowFaceNet.FaceNet expects N x 3 x H x W RGB faces, got {tuple(x.shape)}')
        x = self.avg(self.backbone(x)).flatten(1)
        x = self.last_bn(self.Bottleneck(self.Dropout(x)))
        return F.normalize(x, p=2, dim=1)


def load_facenet(weights=None, download=False, seed=0):
    """A frozen FaceNet in eval mode, with weights.

    Args:
        weights (str | None): ``None`` = find ``facenet_mobilenet.pth`` with :func:`resolve_weights`; a path = that
            file; ``'random_for_tests'`` = a random network from ``seed`` (global RNG untouched, a warning).
        download (bool): Unused unless a download address becomes known (kept for the resolver's interface).
        seed (int): Seed of the random stand-in.

    Returns:
        LowFaceNetFaceNet: Parameters frozen; ``is_random_standin`` tells which kind it is, ``source_path`` the file
        (None for the stand-in).

    Raises:
        lowlight3d.utils.weights.WeightsNotFoundError: The file is not found (the message names it and the folders).
        RuntimeError: The file does not fit the network.
    """
    if weights == RANDOM_STANDIN:
        warnings.warn('Low-FaceNet face loss uses a RANDOM-weight FaceNet (facenet_weights: random_for_tests): its '
                      'embeddings identify nobody; tests and labelled runs only.', RandomFaceNetWarning, stacklevel=2)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = LowFaceNetFaceNet()
        net.is_random_standin = True
        net.source_path = None
    else:
        path = resolve_weights(FACENET_FILENAME, url=None, local_path=weights, download=download,
                               purpose="FaceNet (MobileNetV1) of the Low-FaceNet face-recognition loss, from the "
                               "Low-FaceNet release (Google Drive / Baidu links in its README); set "
                               "face_opt.facenet_weights: <path>, or 'random_for_tests' for a labelled random stand-in")
        state = torch.load(path, map_location='cpu', weights_only=True)
        if isinstance(state, dict) and 'state_dict' in state:
            state = state['state_dict']
        state = {k[len('module.'):] if k.startswith('module.') else k: v for k, v in state.items()}
        state = {k: v for k, v in state.items() if not k.startswith('classifier.')}
        net = LowFaceNetFaceNet()
        own = net.state_dict()
        missing = [k for k in own if k not in state]
        shapes = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
        if missing or shapes:
            raise RuntimeError(f'{path} is not a FaceNet-MobileNetV1 state dict: {len(missing)} missing keys '
                               f'{missing[:4]}, {len(shapes)} of another shape {shapes[:4]}')
        net.load_state_dict({k: state[k] for k in own})
        net.is_random_standin = False
        net.source_path = path
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net
