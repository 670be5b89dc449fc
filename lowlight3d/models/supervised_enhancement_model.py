"""Supervised low-light enhancement on paired data: ``lq -> net_g -> result`` against ``gt``.

The simplest training model of the toolkit (LowLightUNet and the paired baselines train with it; the paper's
ablation V1 is the semi-supervised model with its unpaired losses switched off).  Losses are the ``train.*_opt``
blocks that are present (``pixel_opt``, ``perceptual_opt`` ...), each called as ``loss(result, gt)``.
"""
from lowlight3d.models.base_model import BaseModel
from lowlight3d.models.loss_sum import LossSum
from lowlight3d.utils.registry import MODEL_REGISTRY, register

__all__ = ['SupervisedEnhancementModel']


@register(MODEL_REGISTRY)
class SupervisedEnhancementModel(BaseModel):
    """Paired supervised training of ``network_g`` with an optional EMA copy used for testing.

    Option keys: ``network_g``; ``train.optim_g``, ``train.scheduler``, ``train.ema_decay`` (0 disables the
    EMA), any ``train.<name>_opt`` loss blocks; ``path.pretrain_network_g``; ``logger.grad_norm_freq`` (per-term
    gradient norms w.r.t. the output, :mod:`lowlight3d.models.grad_norms`).

    Testing without ``path.pretrain_network_g``: a network with no parameters (a fixed curve such as
    ``IdentityEnhancer`` or ``GammaCurveEnhancer``) needs no checkpoint, and the log says so; a network with
    parameters is untrained: the log warns, and ``test.py`` refuses to test it unless ``--allow-untrained`` (then
    its results go to ``results/<name>_UNTRAINED/``).
    """

    def __init__(self, opt):
        super().__init__(opt)
        self.add_network('net_g')
        if not self.is_train and not opt['path'].get('pretrain_network_g'):
            self._log_missing_weights()
        train_opt = opt.get('train', {})
        self.ema_decay = float(train_opt.get('ema_decay', 0) or 0)
        if self.ema_decay > 0 or (not self.is_train and opt['path'].get('use_ema', True) and self._has_ema()):
            self.add_ema('net_g_ema', 'net_g')
        if self.is_train:
            self.nets['net_g'].train()
            self.build_losses()
            if not self.losses:
                raise ValueError('No loss is configured: add at least one train.<name>_opt block (e.g. pixel_opt)')
            self.add_optimizer('optim_g', self.nets['net_g'].parameters(), train_opt['optim_g'])
            self.setup_schedulers()

    def _log_missing_weights(self):
        """Test time without ``path.pretrain_network_g``: say whether the network needs weights at all (refusing an
        untrained one is ``test.py``'s job, see :meth:`BaseModel.untrained_networks`)."""
        from basicsr.utils import get_root_logger
        net = self.bare(self.nets['net_g'])
        count = sum(p.numel() for p in net.parameters())
        kind = type(net).__name__
        if count == 0:
            get_root_logger().info(f'net_g ({kind}) has no parameters: it needs no checkpoint, so '
                                   'path.pretrain_network_g is not required')
        else:
            get_root_logger().warning(f'net_g ({kind}) has {count:,} parameters but path.pretrain_network_g is not '
                                      'set: its weights are UNTRAINED (test.py refuses them unless '
                                      '--allow-untrained). Set path.pretrain_network_g '
                                      '(e.g. experiments/<name>/models/net_g_latest.pth) to test a trained model.')

    def _has_ema(self):
        """Whether the pretrained file (test time) carries EMA weights."""
        from lowlight3d.utils.checkpoint import load_checkpoint
        path = self.opt['path'].get('pretrain_network_g')
        return bool(path) and 'params_ema' in load_checkpoint(path, what='pretrained net_g')

    def feed_data(self, data):
        """Take ``lq`` (and ``gt`` when present) from a batch."""
        self.lq = data['lq'].to(self.device)
        self.gt = data['gt'].to(self.device) if 'gt' in data else None

    def loss_terms(self, output, target):
        """The configured losses as ``LossSum`` (BasicSR's ``(perceptual, style)`` tuples become two terms)."""
        terms = LossSum()
        for name, loss_fn in self.losses.items():
            self.add_loss_terms(terms, name, loss_fn, output, target)
        return terms

    def add_loss_terms(self, terms, name, loss_fn, output, target):
        """Add the term(s) of one configured loss to ``terms`` (a subclass may give a loss more inputs here)."""
        value = loss_fn(output, target)
        if isinstance(value, tuple):  # BasicSR's PerceptualLoss returns (perceptual, style)
            for suffix, v in zip(('', '_style'), value):
                if v is not None:
                    terms.add(f'{name}{suffix}', v)
        else:
            terms.add(name, value)

    def optimize_parameters(self, current_iter):
        """One step on ``net_g`` (per-term gradient norms every ``logger.grad_norm_freq``); then the EMA update."""
        optimizer = self.optimizers['optim_g']
        optimizer.zero_grad(set_to_none=True)
        self.output = self.nets['net_g'](self.lq)
        terms = self.loss_terms(self.output, self.gt)
        grads = self.grad_norm_logs(current_iter, terms.values, [self.output])
        self.backward(terms.total)
        self.optimizer_step(optimizer)
        self.log_dict = self.reduce_loss_dict(terms.logs(**grads))
        if 'net_g_ema' in self.nets:
            self.update_ema('net_g_ema', self.ema_decay)
