"""NeRCo's dual-channel colour-edge discriminator (``docs/baselines.md`` section 9), the ``D`` of eq. (14).

Two independent PatchGANs (CycleGAN's "basic" 70x70 discriminator): the colour branch judges RGB images, the
edge branch judges their gradient-magnitude maps :func:`edge_map`.  Real samples are normal-light images, fake
samples the student's enhanced unpaired images; :class:`~lowlight3d.losses.lsgan_color_edge_loss.
ColorEdgeLSGANLoss` turns the two score maps into the least-squares GAN loss.

Deliberate deviations from NeRCo's code (``models/sobel.py``):

* no 1x1 convolution after the gradient magnitude: NeRCo's is randomly initialised, re-created on every call and
  never trained (noise, not a design); the luma gradient magnitude is replicated to 3 channels instead;
* the luma is full-range BT.601 (``0.299 R + 0.587 G + 0.114 B``, weights summing to 1) computed on ``[0, 1]``
  images, not NeRCo's studio-swing coefficients on ``[-1, 1]`` images, and image borders are replicate-padded
  (NeRCo zero-pads, which turns the border brightness into a fake edge).

Input scaling: both branches take images in ``[0, 1]``.  The colour branch sees ``2 x - 1`` (``[-1, 1]``, the
range CycleGAN/NeRCo discriminators are trained on); the edge branch sees ``2 E(x) - 1`` (flat regions at
``-1``, a full black/white step at ``+1``).
"""
import torch
import torch.nn.functional as F
from torch import nn

from lowlight3d.utils.luma import LUMA_WEIGHTS
from lowlight3d.utils.registry import ARCH_REGISTRY, register

__all__ = ['LUMA_WEIGHTS', 'edge_map', 'PatchGANDiscriminator', 'ColorEdgeDiscriminator']


def edge_map(img, eps=1e-6):
    """Luma gradient magnitude from central differences, replicated to 3 channels.

    ``Y = 0.299 R + 0.587 G + 0.114 B``; ``g_x(i, j) = Y(i, j+1) - Y(i, j-1)``, ``g_y(i, j) = Y(i+1, j) - Y(i-1, j)``
    (NeRCo's ``[-1, 0, 1]`` kernels, not halved), borders replicate-padded; ``E = sqrt(g_x^2 + g_y^2 + eps)`` (the
    ``eps`` keeps the gradient finite on flat regions, as in NeRCo).

    Args:
        img (Tensor): RGB images ``(B, 3, H, W)`` in ``[0, 1]``.
        eps (float): Added under the square root.

    Returns:
        Tensor: ``(B, 3, H, W)``, the same map in every channel, in ``[sqrt(eps), sqrt(2 + eps)]``.
    """
    if img.dim() != 4 or img.shape[1] != 3:
        raise ValueError(f'edge_map expects RGB images of shape (B, 3, H, W), got {tuple(img.shape)}')
    w = img.new_tensor(LUMA_WEIGHTS).view(1, 3, 1, 1)
    luma = F.pad((img * w).sum(1, keepdim=True), (1, 1, 1, 1), mode='replicate')
    gx = luma[:, :, 1:-1, 2:] - luma[:, :, 1:-1, :-2]
    gy = luma[:, :, 2:, 1:-1] - luma[:, :, :-2, 1:-1]
    return torch.sqrt(gx * gx + gy * gy + eps).expand(-1, 3, -1, -1)


class PatchGANDiscriminator(nn.Sequential):
    """CycleGAN's "basic" PatchGAN: conv4x4 stride 2 blocks, then two stride-1 convs; no sigmoid.

    ``conv(in, ndf, s2) + LReLU``, then ``n_layers - 1`` blocks ``conv(s2) + IN + LReLU`` doubling the channels
    (capped at ``8 ndf``), ``conv(s1) + IN + LReLU``, ``conv(s1) -> 1``; all kernels 4, paddings 1;
    InstanceNorm without affine parameters or running statistics; convolutions biased; weights ``N(0, 0.02)``,
    biases 0.  ``n_layers=3`` gives 30x30 scores for a 256x256 input (70x70 receptive field).

    Args:
        in_channels (int): Input channels. ndf (int): Channels of the first conv. n_layers (int): Stride-2 convs.
    """

    def __init__(self, in_channels=3, ndf=64, n_layers=3):
        if n_layers < 1:
            raise ValueError(f'PatchGAN n_layers must be >= 1, got {n_layers}')
        layers = [nn.Conv2d(in_channels, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [
                nn.Conv2d(ndf * prev, ndf * mult, 4, stride, 1),
                nn.InstanceNorm2d(ndf * mult, affine=False, track_running_stats=False),
                nn.LeakyReLU(0.2, True)
            ]
        layers.append(nn.Conv2d(ndf * mult, 1, 4, 1, 1))
        super().__init__(*layers)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.02)
                nn.init.zeros_(m.bias)


@register(ARCH_REGISTRY)
class ColorEdgeDiscriminator(nn.Module):
    """Colour PatchGAN on RGB and edge PatchGAN on :func:`edge_map`, independent weights (NeRCo's ``D_A``,
    ``D_A_edge``).

    Args:
        ndf (int): Channels of the first conv of each branch (NeRCo 64).
        n_layers (int): Stride-2 convs of each branch (NeRCo 3: 30x30 scores at 256x256,
            2,764,737 parameters per branch at ndf 64).

    Inputs are RGB in ``[0, 1]``; the scaling to ``[-1, 1]`` happens inside (see the module docstring).
    """

    def __init__(self, ndf=64, n_layers=3):
        super().__init__()
        self.color = PatchGANDiscriminator(3, ndf, n_layers)
        self.edge = PatchGANDiscriminator(3, ndf, n_layers)

    def forward(self, img):
        """Score maps of both branches.

        Args:
            img (Tensor): RGB images ``(B, 3, H, W)`` in ``[0, 1]`` (real normal-light or enhanced).

        Returns:
            tuple[Tensor, Tensor]: ``(colour_scores, edge_scores)``, each ``(B, 1, h, w)`` (raw, no sigmoid).
        """
        if img.dim() != 4 or img.shape[1] != 3:
            raise ValueError(f'ColorEdgeDiscriminator expects RGB images (B, 3, H, W), got {tuple(img.shape)}')
        return self.color(img * 2 - 1), self.edge(edge_map(img) * 2 - 1)
