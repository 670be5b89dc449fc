"""EnlightenGAN's losses: relativistic-average LSGAN (global D), LSGAN (local D), self-feature preserving (VGG16).

Formulas from ``docs/baselines.md`` section 1 (E = mean over the whole score map and batch):

* global, discriminator: ``1/2 [ mean((D(r) - E D(f) - 1)^2) + mean((D(f) - E D(r))^2) ]``;
  global, generator: ``1/2 [ mean((D(r) - E D(f))^2) + mean((D(f) - E D(r) - 1)^2) ]``;
* local, discriminator: ``1/2 [ mean((D(r) - 1)^2) + mean(D(f)^2) ]``; local, generator: ``mean((D(f) - 1)^2)``;
* self-feature preserving: ``mean((IN(phi(fake)) - IN(phi(input)))^2)`` with ``phi`` = VGG16 up to relu5_1
  *without* the 4th max-pool (features at 1/8 resolution) and ``IN`` an affine-free instance norm.

VGG16 weights are torchvision's ImageNet file ``vgg16-397923af.pth``, loaded by the toolkit's
:func:`lowlight3d.archs.vgg_feature_extractor_arch.load_vgg_features` (through
:func:`lowlight3d.utils.weights.resolve_weights`, like every pretrained file of the toolkit); offline and absent, the
loss fails when it is built, naming the file and the folders it may be put in.  ``vgg_weights:
random_for_tests`` builds a *random* VGG16 instead (fixed seed, a warning): for tests and labelled demo runs only,
never for results reported as EnlightenGAN.
"""
import torch
import torch.nn.functional as F
from torch import nn

from lowlight3d.archs.vgg_feature_extractor_arch import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    RANDOM_VGG,
    VGG_WEIGHT_FILES,
    RandomVGGWarning,
    load_vgg_features,
)
from lowlight3d.utils.registry import LOSS_REGISTRY, register
from lowlight3d.utils.weights import resolve_weights

__all__ = [
    'VGG16_FILENAME', 'VGG16_URL', 'RANDOM_VGG', 'RandomVGGWarning', 'build_vgg16_relu5_1',
    'EnlightenGANRelativisticLSGANLoss', 'EnlightenGANLSGANLoss', 'EnlightenGANSelfFeaturePreservingLoss'
]

VGG16_FILENAME, VGG16_URL = VGG_WEIGHT_FILES['vgg16']

#: torchvision ``vgg16().features`` indices up to relu5_1, skipping the 4th max-pool (index 23).
_RELU5_1_NO_POOL4 = list(range(23)) + [24, 25]
_IMAGENET_MEAN = IMAGENET_MEAN
_IMAGENET_STD = IMAGENET_STD


def build_vgg16_relu5_1(vgg_weights=None, download=True):
    """Frozen VGG16 ``features`` up to relu5_1 without the 4th max-pool, in eval mode.

    Args:
        vgg_weights (str | None): ``None`` = find ``vgg16-397923af.pth`` with :func:`resolve_weights`; a path =
            that file; ``'random_for_tests'`` = random weights from a fixed seed (the global RNG is untouched).
        download (bool): Whether :func:`resolve_weights` may download the file.

    Returns:
        nn.Sequential: The truncated network (parameters frozen).

    Raises:
        lowlight3d.utils.weights.WeightsNotFoundError: When the weights cannot be found or downloaded.
    """
    if vgg_weights != RANDOM_VGG:  # resolved here too: this module's resolve_weights is the tests' patch point
        vgg_weights = resolve_weights(VGG16_FILENAME, url=VGG16_URL, local_path=vgg_weights, download=download,
                                      purpose='VGG16 of the EnlightenGAN self-feature-preserving loss; set '
                                      "vgg_weights: <path> in the loss block, or vgg_weights: random_for_tests for a "
                                      'labelled random stand-in')
    features = load_vgg_features(
        'vgg16', vgg_weights, download, num_layers=_RELU5_1_NO_POOL4[-1] + 1,
        random_message=('EnlightenGAN self-feature-preserving loss uses a RANDOM VGG16 (vgg_weights: '
                        'random_for_tests); results are not those of EnlightenGAN'))
    net = nn.Sequential(*[features[i] for i in _RELU5_1_NO_POOL4]).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


@register(LOSS_REGISTRY, name='EnlightenGAN.RelativisticLSGANLoss')
class EnlightenGANRelativisticLSGANLoss(nn.Module):
    """Relativistic-average least-squares GAN loss of EnlightenGAN's global discriminator.

    Args:
        loss_weight (float): Multiplier of the returned value.
    """

    def __init__(self, loss_weight=1.0):
        super().__init__()
        self.loss_weight = float(loss_weight)

    def forward(self, pred_real, pred_fake, for_discriminator):
        """Loss from the discriminator's scores of real (normal-light) and fake (enhanced) images.

        Args:
            pred_real (Tensor): ``D(real)``. pred_fake (Tensor): ``D(fake)``.
            for_discriminator (bool): The discriminator's loss (real -> 1, fake -> 0, relative to the other
                side's mean) or the generator's (targets swapped).
        """
        real_rel = pred_real - pred_fake.mean()
        fake_rel = pred_fake - pred_real.mean()
        if for_discriminator:
            value = ((real_rel - 1)**2).mean() + (fake_rel**2).mean()
        else:
            value = (real_rel**2).mean() + ((fake_rel - 1)**2).mean()
        return self.loss_weight * 0.5 * value


@register(LOSS_REGISTRY, name='EnlightenGAN.LSGANLoss')
class EnlightenGANLSGANLoss(nn.Module):
    """Plain least-squares GAN loss of EnlightenGAN's local (patch) discriminator.

    Args:
        loss_weight (float): Multiplier of the returned value.
    """

    def __init__(self, loss_weight=1.0):
        super().__init__()
        self.loss_weight = float(loss_weight)

    def forward(self, pred_fake, pred_real=None):
        """Generator loss ``mean((D(f) - 1)^2)`` when ``pred_real`` is None, else the discriminator loss.

        Args:
            pred_fake (Tensor): ``D(fake)`` (detached from the generator for the discriminator's loss).
            pred_real (Tensor, optional): ``D(real)``; given for the discriminator's loss
                ``1/2 [mean((D(r) - 1)^2) + mean(D(f)^2)]``.
        """
        if pred_real is None:
            return self.loss_weight * ((pred_fake - 1)**2).mean()
        return self.loss_weight * 0.5 * (((pred_real - 1)**2).mean() + (pred_fake**2).mean())


@register(LOSS_REGISTRY, name='EnlightenGAN.SelfFeaturePreservingLoss')
class EnlightenGANSelfFeaturePreservingLoss(nn.Module):
    """Self-feature-preserving loss: instance-normalised VGG16 relu5_1 features of the output vs. the input.

    Args:
        loss_weight (float): Multiplier of the returned value.
        vgg_weights (str | None): See :func:`build_vgg16_relu5_1` (``random_for_tests`` for tests only).
        download (bool): Whether the VGG16 file may be downloaded when missing.
        preprocess (str): ``'imagenet'`` (default): RGB ``[0, 1]`` normalised with ImageNet mean/std, the input
            torchvision's weights were trained for.  ``'upstream'``: the original code's BGR ``[0, 255]``
            without mean subtraction (made for its Caffe weights; kept to reproduce it exactly).
    """

    def __init__(self, loss_weight=1.0, vgg_weights=None, download=True, preprocess='imagenet'):
        super().__init__()
        if preprocess not in ('imagenet', 'upstream'):
            raise ValueError(f"preprocess must be 'imagenet' or 'upstream', got {preprocess!r}")
        self.loss_weight = float(loss_weight)
        self.preprocess = preprocess
        self.uses_random_vgg = vgg_weights == RANDOM_VGG
        self.vgg = build_vgg16_relu5_1(vgg_weights, download)
        self.register_buffer('mean', torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer('std', torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode=True):
        """The VGG stays in eval mode whatever the caller asks."""
        super().train(mode)
        self.vgg.eval()
        return self

    def features(self, img):
        """Instance-normalised relu5_1 features of RGB images in ``[0, 1]``."""
        if self.preprocess == 'imagenet':
            x = (img - self.mean) / self.std
        else:
            x = img.flip(1) * 255.0
        return F.instance_norm(self.vgg(x), eps=1e-5)

    def forward(self, output, inp):
        """``loss_weight * mean((IN(phi(output)) - IN(phi(inp)))^2)``; ``inp`` is the undarkened input."""
        with torch.no_grad():
            target = self.features(inp)
        return self.loss_weight * F.mse_loss(self.features(output), target)
