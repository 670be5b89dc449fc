"""EnlightenGAN training on unpaired data: one generator, a global and a local discriminator.

One iteration (the original's order, ``docs/baselines.md`` section 1):

1. random darkening of the generator input: each image, with probability ``darken.prob``, is divided by
   ``t ~ U[darken.min, darken.max]`` (``[0, 1]`` space); the attention map follows the darkened input;
2. generator step: relativistic LSGAN on the global discriminator + LSGAN on ``local.num_patches`` random
   ``local.patch_size`` crops (same positions in the fake, the real normal-light image and the input) + the
   self-feature-preserving loss on the whole image and on the patches (against the *undarkened* input); the
   patch terms are means over all patches (the patches are stacked along the batch: the same value as the
   original's average of per-patch means, since every patch has the same size);
3. discriminator step: both discriminators together (one Adam over their parameters, identical to the original's
   two Adams with the same settings).

Option keys: ``network_g``, ``network_d_global``, ``network_d_local``; ``train.optim_g``, ``train.optim_d``,
``train.scheduler`` (BasicSR/torch schedulers, or ``{type: EnlightenGAN.LinearDecay, constant_fraction: 0.5}`` (or
``constant_iter: N``): the original's constant-then-linear-to-zero schedule over ``train.total_iter``),
``train.darken``, ``train.local``; loss blocks ``train.gan_global_opt``, ``train.gan_local_opt``,
``train.sfp_opt``, ``train.sfp_local_opt`` (a term is on when its block is present).  Data: ``lq`` (low-light)
and ``ref`` (normal-light, unpaired) from
:class:`~lowlight3d.data.unpaired_two_domain_dataset.UnpairedTwoDomainDataset`;
test/val sets need ``lq`` only.
"""
from collections import OrderedDict

import torch

from lowlight3d.models.base_model import BaseModel
from lowlight3d.utils.registry import MODEL_REGISTRY, register

__all__ = ['EnlightenGANModel', 'LinearDecayAfter', 'random_darken', 'random_patch_boxes']


class LinearDecayAfter:
    """Learning-rate factor: 1 for ``constant_iter`` steps, then linear to 0 at ``total_iter`` (a picklable lambda).

    Args:
        constant_iter (int): Steps at the initial rate. total_iter (int): Step where the rate reaches 0.
    """

    def __init__(self, constant_iter, total_iter):
        self.constant_iter, self.total_iter = int(constant_iter), int(total_iter)
        if not 0 <= self.constant_iter <= self.total_iter:
            raise ValueError(f'EnlightenGAN.LinearDecay: need 0 <= constant_iter ({constant_iter}) <= total_iter '
                             f'({total_iter})')

    def __call__(self, step):
        if step < self.constant_iter:
            return 1.0
        return max(0.0, 1.0 - (step - self.constant_iter) / max(1, self.total_iter - self.constant_iter))


def random_darken(img, prob=0.5, low=2.0, high=4.0):
    """Divide each image of the batch by ``t ~ U[low, high]`` with probability ``prob`` (torch's global RNG).

    Args:
        img (Tensor): ``N x C x H x W`` in ``[0, 1]``.
        prob (float): Probability per image. low, high (float): Range of the divisor.

    Returns:
        Tensor: The darkened batch (images that are not darkened are unchanged).
    """
    n = img.shape[0]
    apply = torch.rand(n, device=img.device) < prob
    divisor = torch.empty(n, device=img.device).uniform_(low, high)
    divisor = torch.where(apply, divisor, torch.ones_like(divisor))
    return img / divisor.view(n, 1, 1, 1)


def random_patch_boxes(height, width, patch_size, num_patches):
    """``num_patches`` random ``(top, left)`` corners of ``patch_size`` crops (torch's global RNG).

    Args:
        height, width (int): Image size (each at least ``patch_size``). patch_size (int): Crop side.
        num_patches (int): Number of crops.

    Returns:
        list[tuple[int, int]]: Corners; every valid position can be drawn (the original's ``- 1`` excluded the
        last row and column).
    """
    if height < patch_size or width < patch_size:
        raise ValueError(f'EnlightenGAN local discriminator: patch_size {patch_size} is larger than the training '
                         f'images ({height}x{width}); lower train.local.patch_size or raise gt_size')
    tops = torch.randint(0, height - patch_size + 1, (num_patches, )).tolist()
    lefts = torch.randint(0, width - patch_size + 1, (num_patches, )).tolist()
    return list(zip(tops, lefts))


@register(MODEL_REGISTRY, name='EnlightenGAN.EnlightenGANModel')
class EnlightenGANModel(BaseModel):
    """EnlightenGAN (unpaired GAN with global + local discriminators and a self-feature-preserving loss).

    Args:
        opt (dict): Resolved options (see the module docstring).
    """

    LOSS_BLOCKS = ('gan_global', 'gan_local', 'sfp', 'sfp_local')

    def __init__(self, opt):
        super().__init__(opt)
        self.add_network('net_g')
        if not self.is_train:
            return
        train_opt = opt['train']
        self.add_network('net_d_global')
        self.add_network('net_d_local')
        for label in self.nets:
            self.nets[label].train()
        self.build_losses()
        if not self.losses:
            raise ValueError('EnlightenGAN: no loss is configured (train.gan_global_opt, gan_local_opt, sfp_opt, '
                             'sfp_local_opt)')
        darken = dict(train_opt.get('darken') or {})
        self.darken = (float(darken.get('prob', 0.5)), float(darken.get('min', 2.0)), float(darken.get('max', 4.0)))
        local = dict(train_opt.get('local') or {})
        self.patch_size = int(local.get('patch_size', 32))
        self.num_patches = int(local.get('num_patches', 6))
        self.add_optimizer('optim_g', self.nets['net_g'].parameters(), train_opt['optim_g'])
        d_params = list(self.nets['net_d_global'].parameters()) + list(self.nets['net_d_local'].parameters())
        self.add_optimizer('optim_d', d_params, train_opt['optim_d'])
        self.setup_schedulers()

    def setup_schedulers(self):
        """BasicSR/torch schedulers, or ``EnlightenGAN.LinearDecay`` (constant, then linear to 0)."""
        sched_opt = self.opt['train'].get('scheduler')
        if sched_opt and sched_opt.get('type') == 'EnlightenGAN.LinearDecay':
            total = int(self.opt['train']['total_iter'])
            constant = sched_opt.get('constant_iter')
            if constant is None:
                constant = round(float(sched_opt.get('constant_fraction', 0.5)) * total)
            rule = LinearDecayAfter(constant, total)
            self.schedulers = [torch.optim.lr_scheduler.LambdaLR(o, rule) for o in self.optimizers.values()]
        else:
            super().setup_schedulers()

    def feed_data(self, data):
        """``lq`` (low-light), ``ref`` (normal-light, training only) and ``gt`` when present."""
        self.lq = data['lq'].to(self.device)
        self.ref = data['ref'].to(self.device) if 'ref' in data else None
        self.gt = data['gt'].to(self.device) if 'gt' in data else None

    @staticmethod
    def _set_requires_grad(nets, flag):
        for net in nets:
            for p in net.parameters():
                p.requires_grad_(flag)

    def optimize_parameters(self, current_iter):
        """One generator step, then one step of both discriminators (see the module docstring).

        Every ``logger.grad_norm_freq`` iterations the generator terms' gradient norms w.r.t. the enhanced image
        are logged (``grad_g_global``, ``share_sfp`` ...; :mod:`lowlight3d.models.grad_norms`).
        """
        if self.ref is None:
            raise KeyError("EnlightenGAN needs normal-light 'ref' images in the training batches: use "
                           'UnpairedTwoDomainDataset for datasets.train')
        net_g, d_global, d_local = self.nets['net_g'], self.nets['net_d_global'], self.nets['net_d_local']
        losses, logs = self.losses, OrderedDict()
        real_a, real_b = self.lq, self.ref
        fake_b = net_g(random_darken(real_a, *self.darken))
        self.output = fake_b
        h, w = fake_b.shape[-2:]
        use_local = 'gan_local' in losses or 'sfp_local' in losses
        boxes = random_patch_boxes(h, w, self.patch_size, self.num_patches) if use_local else []
        ps = self.patch_size

        def crops(img):
            """The patches of every box, stacked along the batch (one discriminator / VGG call for all)."""
            return torch.cat([img[..., t:t + ps, left:left + ps] for t, left in boxes], 0)

        # generator
        self._set_requires_grad([d_global, d_local], False)
        self.optimizers['optim_g'].zero_grad(set_to_none=True)
        total = 0
        if 'gan_global' in losses:
            logs['l_g_global'] = losses['gan_global'](d_global(real_b), d_global(fake_b), for_discriminator=False)
        if 'gan_local' in losses:
            logs['l_g_local'] = losses['gan_local'](d_local(crops(fake_b)))
        if 'sfp' in losses:
            logs['l_sfp'] = losses['sfp'](fake_b, real_a)
        if 'sfp_local' in losses:
            logs['l_sfp_local'] = losses['sfp_local'](crops(fake_b), crops(real_a))
        total = sum(logs.values())
        grads = self.grad_norm_logs(current_iter, {k[2:]: v for k, v in logs.items()}, [fake_b])
        self.backward(total)
        self.optimizer_step(self.optimizers['optim_g'])
        logs['l_g_total'] = total.detach()

        # discriminators
        self._set_requires_grad([d_global, d_local], True)
        self.optimizers['optim_d'].zero_grad(set_to_none=True)
        fake_d = fake_b.detach()
        d_total = 0
        if 'gan_global' in losses:
            logs['l_d_global'] = losses['gan_global'](d_global(real_b), d_global(fake_d), for_discriminator=True)
            d_total = d_total + logs['l_d_global']
        if 'gan_local' in losses:
            logs['l_d_local'] = losses['gan_local'](d_local(crops(fake_d)), d_local(crops(real_b)))
            d_total = d_total + logs['l_d_local']
        if torch.is_tensor(d_total):
            self.backward(d_total)
            self.optimizer_step(self.optimizers['optim_d'])
        self.log_dict = self.reduce_loss_dict({**{k: v.detach() for k, v in logs.items()}, **grads})
