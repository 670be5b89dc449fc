"""ZERO-IG as a toolkit model: trained once on a folder (train.py) and/or optimised on each test image (test.py).

* **Folder mode** (``train.py``): ordinary iterations of the zero-shot loss on batches of low-light images (any
  dataset yielding ``lq``; a ``gt`` is ignored).  The original trains 2001 epochs with Adam(3e-4, weight decay
  3e-4), gradient-norm clip 5, batch 1, full resolution.
* **Zero-shot mode** (``test.py``, and validation): with ``test_opt.steps > 0``, every test image is enhanced by
  ``steps`` iterations of the loss on that image alone, starting from the model's initial weights (pretrained
  ``path.pretrain_network_g`` or, without one, a random initialisation drawn from ``manual_seed``); the initial
  weights are restored before the next image and no checkpoint is written.  The result is the network's ``H3``
  after the last step, with BatchNorm using the image's own statistics (the statistics it was optimised with).
  Each image's optimisation runs under a torch seed derived from ``(manual_seed, image name)``, so results do not
  depend on the order of the test set.  ``steps = 0`` is plain inference (BatchNorm running statistics).

Option keys: ``network_g`` (``ZeroIG.Network``); ``train.optim_g``, ``train.scheduler``, ``train.grad_clip``
[5], ``train.zero_ig_opt`` (``ZeroIG.ZeroIGLoss``); ``test_opt: {steps [0], lr, betas, weight_decay, grad_clip}``
(defaults: ``train.optim_g`` / ``train.grad_clip``, else the original's values).
"""
import copy
import hashlib
import os.path as osp
from collections import OrderedDict

import torch

from lowlight3d.losses import build_loss
from lowlight3d.models.base_model import BaseModel
from lowlight3d.utils.registry import MODEL_REGISTRY, register

__all__ = ['ZeroIGModel', 'image_seed']

_ORIGINAL_OPTIM = {'lr': 3e-4, 'betas': (0.9, 0.999), 'weight_decay': 3e-4}
_ORIGINAL_CLIP = 5.0


def image_seed(seed, name):
    """A 63-bit torch seed from a base seed and an image name (SHA-256; stable across runs and processes)."""
    digest = hashlib.sha256(f'{int(seed)}:{name}'.encode('utf-8')).digest()
    return int.from_bytes(digest[:8], 'little') & (2**63 - 1)


@register(MODEL_REGISTRY, name='ZeroIG.ZeroIGModel')
class ZeroIGModel(BaseModel):
    """ZERO-IG: folder training through train.py, bounded per-image zero-shot optimisation in test().

    Args:
        opt (dict): Resolved options (see the module docstring).
    """

    NETWORK_INFERENCE = False  # test() is a procedure, not one network call

    LOSS_BLOCKS = ('zero_ig',)

    def __init__(self, opt):
        super().__init__(opt)
        net = self.add_network('net_g')
        self.seed = int(opt.get('manual_seed') or 0)
        if not opt['path'].get('pretrain_network_g'):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed)
                self.bare(net).init_weights()
        train_opt = opt.get('train') or {}
        self.grad_clip = float(train_opt.get('grad_clip', _ORIGINAL_CLIP) or 0)
        test_opt = dict(opt.get('test_opt') or {})
        self.test_steps = int(test_opt.pop('steps', 0))
        if self.test_steps < 0:
            raise ValueError(f'test_opt.steps must be >= 0, got {self.test_steps}')
        if self.test_steps > 0:  # zero-shot: every test image is optimised from the (seeded) initial weights
            self.weights_not_required['net_g'] = f'zero-shot, {self.test_steps} steps on every test image'
        base_optim = {k: v for k, v in (train_opt.get('optim_g') or _ORIGINAL_OPTIM).items() if k != 'type'}
        self.test_clip = float(test_opt.pop('grad_clip', self.grad_clip) or 0)
        self.test_optim = {**_ORIGINAL_OPTIM, **base_optim, **test_opt}
        loss_block = train_opt.get('zero_ig_opt') or {'type': 'ZeroIG.ZeroIGLoss'}
        if self.is_train:
            net.train()
            self.build_losses()
            if 'zero_ig' not in self.losses:
                raise ValueError('ZERO-IG needs its loss block train.zero_ig_opt (type: ZeroIG.ZeroIGLoss)')
            self.add_optimizer('optim_g', net.parameters(), train_opt['optim_g'])
            self.setup_schedulers()
        else:
            self.losses['zero_ig'] = build_loss(loss_block, where='train.zero_ig_opt').to(self.device)
        self.zero_shot_log = []

    def feed_data(self, data):
        """``lq`` (low-light), ``gt`` when present (only for metrics) and ``lq_path`` (seeds the zero-shot steps)."""
        self.lq = data['lq'].to(self.device)
        self.gt = data['gt'].to(self.device) if 'gt' in data else None
        paths = data.get('lq_path')
        if isinstance(paths, (list, tuple)):
            self.names = [osp.splitext(osp.basename(p))[0] for p in paths]
        else:
            self.names = [str(i) for i in range(len(self.lq))]

    def _step(self, net, optimizer, img, clip):
        """One zero-shot step on ``img``; returns the weighted terms (detached) before the update."""
        optimizer.zero_grad(set_to_none=True)
        terms = self.losses['zero_ig'].terms(net.decompose(img), img)
        total = sum(terms.values())
        self.backward(total)
        if clip > 0:
            self.clip_gradients(optimizer, net.parameters(), clip)
        self.optimizer_step(optimizer)
        return OrderedDict((k, v.detach()) for k, v in terms.items()), total.detach()

    def optimize_parameters(self, current_iter):
        """One folder-mode iteration on the fed batch."""
        terms, total = self._step(self.nets['net_g'], self.optimizers['optim_g'], self.lq, self.grad_clip)
        logs = OrderedDict((f'l_{k}', v) for k, v in terms.items())
        logs['l_total'] = total
        self.log_dict = self.reduce_loss_dict(logs)

    def zero_shot(self, img, name):
        """Optimise a copy of the current weights on one image for ``test_opt.steps`` steps and enhance it.

        Args:
            img (Tensor): ``1 x 3 x H x W`` low-light image in ``[0, 1]``. name (str): Its name (seeds the run).

        Returns:
            tuple[Tensor, dict]: The result ``H3`` and ``{'name', 'losses'}`` with the total loss before each step
            and after the last one (``steps + 1`` values).
        """
        net = self.bare(self.nets['net_g'])
        initial = copy.deepcopy(net.state_dict())
        was_training = net.training
        losses = []
        try:
            with torch.random.fork_rng(devices=[]), torch.enable_grad():
                torch.manual_seed(image_seed(self.seed, name))
                net.train()
                optimizer = torch.optim.Adam(net.parameters(), **self.test_optim)
                for _ in range(self.test_steps):
                    losses.append(float(self._step(net, optimizer, img, self.test_clip)[1]))
                with torch.no_grad():
                    losses.append(float(sum(self.losses['zero_ig'].terms(net.decompose(img), img).values())))
                    result = net(img)
        finally:
            net.load_state_dict(initial)
            net.train(was_training)
        return result, {'name': name, 'losses': losses}

    def test(self):
        """Enhance the fed batch: per-image zero-shot optimisation when ``test_opt.steps > 0``, else inference."""
        net = self.bare(self.nets['net_g'])
        if self.test_steps == 0:
            was_training = net.training
            net.eval()
            with torch.no_grad():
                self.output = net(self.lq)
            net.train(was_training)
            return
        results = []
        for b, name in enumerate(self.names):
            result, log = self.zero_shot(self.lq[b:b + 1], name)
            results.append(result)
            self.zero_shot_log.append(log)
        self.output = torch.cat(results, 0)
