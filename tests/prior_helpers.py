"""A tiny random 3D prior stage for tests: option file + random generator/denoiser checkpoints (no trained weights).

The option file inherits a demo prior stage (DDPM or regressor) and shrinks it to 4 plane channels, 32-px inputs
and 100 diffusion steps; the denoiser's last layer gets small random weights and standardisation statistics so that
its samples are finite and input-dependent.
"""
import os.path as osp

import torch

from lowlight3d.archs import build_network
from lowlight3d.utils.camera import look_at_label
from lowlight3d.utils.options import load_config

TINY_PRIOR = """_base_: {base}
network_g: {{plane_channels: 4, base_channels: 8, image_downsample: 1}}
network_generator:
  input_size: 32
  encoder: {{plane_channels: 4, base_channels: 8, channel_mults: [1, 2], num_up: 1, num_bottleneck_blocks: 1}}
  renderer: {{hidden: 8, resolution: 16, num_coarse: 6, num_fine: 6}}
diffusion: {{num_steps: 100}}
path: {{pretrain_network_generator: {gen}}}
"""


def tiny_prior(folder, base, tag=None, steps=None):
    """Write a tiny prior stage inheriting ``base``; returns ``(option file, denoiser .pth, generator .pth)``.

    Args:
        folder (str): Where the three files go.
        base (str): The demo prior stage option file to inherit (DDPM or regressor).
        tag (str, optional): File-name prefix (default: ``base``'s name).
        steps (int, optional): Default sampling steps written into the file's ``prior`` block.
    """
    tag = tag or osp.splitext(osp.basename(base))[0]
    gen_path, den_path, opt_path = (osp.join(folder, f'{tag}_{k}') for k in ('gen.pth', 'den.pth', 'opt.yml'))
    text = TINY_PRIOR.format(base=base, gen=gen_path)
    if steps is not None:
        text += f'prior: {{steps: {int(steps)}}}\n'
    with open(opt_path, 'w') as f:
        f.write(text)
    opt = load_config(opt_path)
    torch.manual_seed(0)
    gen, den = build_network(opt['network_generator']), build_network(opt['network_g'])
    with torch.no_grad():
        den.out[-1].weight.normal_(0, 0.02)
        planes = torch.randn(4, 3, 4, 16, 16) * 0.5
        cams = torch.stack([look_at_label(y, 0) for y in (-10, 0, 5, 10)])
        den.set_statistics(den.make_x0(planes, cams))
    torch.save({'params': gen.state_dict()}, gen_path)
    torch.save({'params': den.state_dict()}, den_path)
    return opt_path, den_path, gen_path
