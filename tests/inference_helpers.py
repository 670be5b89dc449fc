"""Tiny stand-in methods for the inference tests: option files + random checkpoints, exported to model files.

Nothing here depends on trained weights or on experiments/: a 2-level LowLightUNet (supervised model, with an
EMA copy in its checkpoint), our PriorGuidedEnhancer with a tiny random 3D prior (DDPM stage of the demo shrunk,
as tests/test_semi_supervised_model.py does), and ZERO-IG with 2 zero-shot steps.
"""
import os.path as osp

import torch

from lowlight3d.archs import build_network

from prior_helpers import tiny_prior

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO = osp.join(REPO, 'options', 'demo')

UNET_OPT = """name: tiny_unet
model_type: SupervisedEnhancementModel
num_gpu: 0
manual_seed: 0
network_g: {{type: LowLightUNet, num_feat: 8, num_levels: 3, num_blocks: 1}}
path: {{pretrain_network_g: {ckpt}}}
"""

def tiny_unet_options(folder, seed=0):
    """Option file + random checkpoint (``params`` and a different ``params_ema``) of a tiny U-Net."""
    opt_path, ckpt = osp.join(folder, 'unet.yml'), osp.join(folder, 'unet_net_g.pth')
    torch.manual_seed(seed)
    net = build_network({'type': 'LowLightUNet', 'num_feat': 8, 'num_levels': 3, 'num_blocks': 1})
    ema = {k: v + 0.01 * torch.randn_like(v) if v.is_floating_point() else v for k, v in net.state_dict().items()}
    torch.save({'params': net.state_dict(), 'params_ema': ema}, ckpt)
    with open(opt_path, 'w') as f:
        f.write(UNET_OPT.format(ckpt=ckpt))
    return opt_path, ckpt


def tiny_prior_stage(folder):
    """Option file + random checkpoints of a tiny DDPM prior stage (2 sampling steps): ``(opt, den, gen)``."""
    return tiny_prior(folder, osp.join(DEMO, 'train_TriplaneDDPM_demo.yml'), tag='prior', steps=2)


def tiny_ours_overrides(folder):
    """``--cfg-options`` turning the demo method into a tiny one with the tiny random prior and random weights."""
    from lowlight3d.models.prior_file import save_prior_file
    opt_path, den, gen = tiny_prior_stage(folder)
    prior_file = osp.join(folder, 'prior.pth')
    save_prior_file(prior_file, ddpm_options=opt_path, denoiser_weights=den, generator_weights=gen)
    cfg = ['network_g.base_channels=4', f'prior.file={prior_file}']
    from lowlight3d.pipeline.option_loading import load_options
    opt = load_options(osp.join(DEMO, 'test_LowLight3D_demo.yml'), is_train=False, cfg_options=cfg)
    torch.manual_seed(1)
    net = build_network(opt['network_g'])
    ckpt = osp.join(folder, 'ours_net_g.pth')
    torch.save({'params': net.state_dict()}, ckpt)
    return cfg + [f'path.pretrain_network_g={ckpt}']
