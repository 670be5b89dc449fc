"""Training of the 3D feature generator (image -> tri-planes -> render): an auto-encoder through 3D.

Per batch of normal-light faces (:class:`~lowlight3d.data.face_depth_dataset.FaceDepthDataset`): tri-planes
``P = G(gt)``, render from the image's camera at the renderer's resolution, and the losses whose
``train.<name>_opt`` block is present:

* ``rgb_opt``: ``loss(render, gt resized to the render)`` (e.g. ``L1Loss``);
* ``depth_opt``: :class:`~lowlight3d.losses.triplane_losses_loss.MaskedDepthLoss` on z-depth inside the mask of
  images that have depth (``has_depth``);
* ``mirror_opt``: ``loss(render from the mirrored camera, flipped gt)`` (faces are roughly symmetric; keep it
  small), and the same for depth when ``depth_opt`` is on;
* ``density_opt``: :class:`~lowlight3d.losses.triplane_losses_loss.DensitySmoothnessLoss` (every ``every`` iters);
* ``opacity_opt``: :class:`~lowlight3d.losses.triplane_losses_loss.OpacityMaskLoss` against the mask;
* ``plane_reg_opt``: :class:`~lowlight3d.losses.triplane_losses_loss.TriplaneRegularizerLoss` on ``P``.

Validation: PSNR/SSIM (``val.metrics``) of the render against the resized ground truth, plus ``depth_mae``, the
mean absolute z-depth error (world units) inside the mask when the data have depth.
"""
from collections import OrderedDict

import torch
import torch.nn.functional as F

from lowlight3d.models.base_model import BaseModel
from lowlight3d.models.loss_sum import LossSum
from lowlight3d.models.validation import validate
from lowlight3d.utils.camera import mirror_label
from lowlight3d.utils.registry import MODEL_REGISTRY, register

__all__ = ['TriplaneGeneratorModel', 'resize_targets']

_LOSS_NAMES = ('rgb', 'depth', 'mirror', 'density', 'opacity', 'plane_reg')


def resize_targets(gt, depth, mask, size):
    """Image, z-depth and mask at the render size.

    The image is area-averaged; the depth is the mask-weighted average; the mask keeps only pixels fully inside
    the foreground (so depth is never averaged with the background).

    Args:
        gt (torch.Tensor): ``(B, 3, H, W)``.
        depth (torch.Tensor): ``(B, 1, H, W)`` z-depth (0 = background/unknown).
        mask (torch.Tensor): ``(B, 1, H, W)`` in {0, 1}.
        size (int): Render size.

    Returns:
        tuple: ``(gt, depth, mask)`` at ``size x size``.
    """
    if gt.shape[-1] == size and gt.shape[-2] == size:
        return gt, depth, mask
    gt_r = F.adaptive_avg_pool2d(gt, size)
    m = F.adaptive_avg_pool2d(mask, size)
    d = F.adaptive_avg_pool2d(depth * mask, size) / m.clamp_min(1e-6)
    m = (m > 0.999).float()
    return gt_r, d * m, m


@register(MODEL_REGISTRY)
class TriplaneGeneratorModel(BaseModel):
    """Trains ``network_generator`` (:class:`~lowlight3d.archs.triplane_encoder_arch.TriplaneGenerator`).

    Option keys: ``network_generator``; ``train.optim_generator``, ``train.scheduler``, ``train.ema_decay``,
    loss blocks (module docstring); ``path.pretrain_network_generator``.  Checkpoints:
    ``models/net_generator_<iter>.pth`` (the DDPM stage reads it as ``path.pretrain_network_generator``).
    """

    NETWORK_INFERENCE = False  # test() is a procedure, not one network call

    depth_error_unit = '(z-depth inside the mask, world units)'
    LOSS_BLOCKS = _LOSS_NAMES

    def __init__(self, opt):
        super().__init__(opt)
        self.add_network('net_generator')
        train_opt = opt.get('train', {})
        self.ema_decay = float(train_opt.get('ema_decay', 0) or 0)
        if self.ema_decay > 0:
            self.add_ema('net_generator_ema', 'net_generator')
        self._depth_errors = None
        if self.is_train:
            self.nets['net_generator'].train()
            self.build_losses()  # rejects a block not in LOSS_BLOCKS before building it
            if 'rgb' not in self.losses:
                raise ValueError('TriplaneGeneratorModel needs train.rgb_opt (the reconstruction loss)')
            self.add_optimizer('optim_generator', self.nets['net_generator'].parameters(), train_opt['optim_generator'])
            self.setup_schedulers()

    def feed_data(self, data):
        """Take ``gt``, ``camera`` and, when present, ``depth``, ``mask``, ``has_depth``."""
        self.gt = data['gt'].to(self.device)
        b, _, h, w = self.gt.shape
        self.camera = data['camera'].to(self.device).float()
        self.depth = data['depth'].to(self.device) if 'depth' in data else torch.zeros(b, 1, h, w, device=self.device)
        self.mask = data['mask'].to(self.device) if 'mask' in data else torch.ones(b, 1, h, w, device=self.device)
        has = data.get('has_depth')
        self.has_depth = (has.to(self.device).float() if has is not None else torch.zeros(b, device=self.device))
        self.gt_path = data.get('gt_path')

    def _targets(self, size):
        return resize_targets(self.gt, self.depth, self.mask, size)

    def optimize_parameters(self, current_iter):
        """One step of the generator with the configured losses; then the EMA update."""
        net = self.nets['net_generator']
        gen = self.bare(net)
        optimizer = self.optimizers['optim_generator']
        optimizer.zero_grad(set_to_none=True)
        planes = net(self.gt)
        size = gen.renderer.resolution
        gt, depth, mask = self._targets(size)
        out = gen.render(planes, self.camera)
        terms = LossSum()
        add = terms.add
        add('rgb', self.losses['rgb'](out['image'], gt))
        depth_mask = mask * self.has_depth[:, None, None, None]
        if 'depth' in self.losses:
            add('depth', self.losses['depth'](out['zdepth'], depth, depth_mask))
        if 'mirror' in self.losses:
            out_m = gen.render(planes, mirror_label(self.camera))
            value = self.losses['mirror'](out_m['image'], gt.flip(-1))
            if 'depth' in self.losses:
                value = value + self.losses['depth'](out_m['zdepth'], depth.flip(-1), depth_mask.flip(-1))
            add('mirror', value)
        if 'opacity' in self.losses:
            add('opacity', self.losses['opacity'](out['opacity'], mask_full(self.mask, size)))
        if 'plane_reg' in self.losses:
            add('plane_reg', self.losses['plane_reg'](planes))
        if 'density' in self.losses and current_iter % self.losses['density'].every == 0:
            p, q = self.losses['density'].points(planes.shape[0], planes.device)
            add('density', self.losses['density'](gen.renderer.query(planes, p)[0], gen.renderer.query(planes, q)[0]))
        self.backward(terms.total)
        self.optimizer_step(optimizer)
        self.log_dict = self.reduce_loss_dict(terms.logs())
        if 'net_generator_ema' in self.nets:
            self.update_ema('net_generator_ema', self.ema_decay)

    def test_network(self):
        """The generator used for inference (EMA copy when there is one)."""
        return self.bare(self.nets.get('net_generator_ema', self.nets['net_generator']))

    @torch.no_grad()
    def test(self):
        """Render the fed faces from their cameras (deterministic eval render)."""
        gen = self.test_network()
        was_training = gen.training
        gen.eval()
        size = gen.renderer.resolution
        out = gen.render(gen(self.gt), self.camera)
        gen.train(was_training)
        self.output, self.output_zdepth = out['image'], out['zdepth']
        self.target, depth, mask = self._targets(size)
        mask = mask * self.has_depth[:, None, None, None]
        if self._depth_errors is not None and mask.sum() > 0:
            err = ((self.output_zdepth - depth).abs() * mask).sum((1, 2, 3)) / mask.sum((1, 2, 3)).clamp_min(1)
            self._depth_errors.extend(err[mask.sum((1, 2, 3)) > 0].tolist())

    def get_current_visuals(self):
        """``lq`` = input face, ``result`` = render, ``gt`` = input resized to the render."""
        return OrderedDict(lq=self.gt.detach().cpu(), result=self.output.detach().clamp(0, 1).cpu(),
                           gt=self.target.detach().cpu())

    def validation(self, dataloader, current_iter, tb_logger=None, save_img=False):
        """``val.metrics`` of the render, plus ``depth_mae`` (z-depth, world units) when the data have depth."""
        return validate_with_depth(self, dataloader, current_iter, tb_logger, save_img)


def mask_full(mask, size):
    """Soft foreground mask at the render size (area average)."""
    return F.adaptive_avg_pool2d(mask, size)


def validate_with_depth(model, dataloader, current_iter, tb_logger=None, save_img=False):
    """:func:`~lowlight3d.models.validation.validate` plus the mean of the depth errors ``model.test`` collects.

    The model's ``test`` appends per-image errors to ``model._depth_errors`` while it is a list.
    """
    from basicsr.utils import get_root_logger
    model._depth_errors = []
    try:
        means, improved = validate(model, dataloader, current_iter, tb_logger, save_img)
    finally:
        errors, model._depth_errors = model._depth_errors, None
    if errors:
        means['depth_mae'] = float(sum(errors) / len(errors))
        unit = getattr(model, 'depth_error_unit', '')
        get_root_logger().info(f"\t # depth_mae: {means['depth_mae']:.4f} {unit}")
        if tb_logger is not None:
            tb_logger.add_scalar(f"metrics/{dataloader.dataset.opt['name']}/depth_mae", means['depth_mae'],
                                 current_iter)
    return means, improved
