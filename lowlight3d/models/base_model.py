"""The base class of every lowlight3d training model: networks, EMA, optimisers, schedulers, checkpoints.

What BasicSR's ``BaseModel`` does, plus what exact resume and CPU/distributed runs need:

* networks live in ``self.nets`` under their option labels (``net_g``, ``net_d``, ``net_g_ema`` ...); EMA
  copies are declared with :meth:`add_ema` and updated with :meth:`update_ema`;
* a training state holds *everything* (all networks, EMA, optimisers, schedulers, RNG states, iteration,
  epoch, best metrics, plus whatever a subclass adds in :meth:`extra_state`), so resuming never depends on
  which ``pretrain_network_*`` paths happen to be set;
* files are written atomically, on CPU tensors, without the ``module.`` prefix of DDP;
* DDP works with gloo on CPU (no ``torch.cuda.current_device()`` anywhere);
* ``train.amp`` (off | bf16 | fp16) and ``train.channels_last`` apply to every model through :meth:`train_step`
  (autocast around :meth:`optimize_parameters`, NHWC batches and networks) and the :meth:`backward` /
  :meth:`optimizer_step` helpers (float32 loss, GradScaler for fp16): :mod:`lowlight3d.utils.precision`;
* :meth:`grad_norm_logs` measures, every ``logger.grad_norm_freq`` iterations, which loss term drives training
  (:mod:`lowlight3d.models.grad_norms`).

Subclasses implement :meth:`feed_data`, :meth:`optimize_parameters` (calling ``self.backward(loss)`` and
``self.optimizer_step(optimizer)`` instead of ``loss.backward()`` / ``optimizer.step()``), :meth:`test` and
:meth:`get_current_visuals`.
"""
import copy
import os
import os.path as osp
from collections import OrderedDict

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from lowlight3d.archs import build_network
from lowlight3d.archs.checkpoint_upgrade import load_weights_checked
from lowlight3d.losses import build_loss
from lowlight3d.models.grad_norms import loss_term_grad_norms, parse_grad_norm_freq
from lowlight3d.utils.checkpoint import atomic_save, load_checkpoint, strip_module_prefix
from lowlight3d.utils.dist import get_dist_info
from lowlight3d.utils.precision import MixedPrecision
from lowlight3d.utils.rng import get_rng_state, set_rng_state

__all__ = ['BaseModel']


_OPTIMIZERS = {
    'Adam': torch.optim.Adam,
    'AdamW': torch.optim.AdamW,
    'SGD': torch.optim.SGD,
    'RMSprop': torch.optim.RMSprop,
    'Adamax': torch.optim.Adamax,
    'RAdam': torch.optim.RAdam,
}


def _build_scheduler(optimizer, sched_opt):
    """A learning-rate scheduler from BasicSR's or torch's schedulers, by ``type``."""
    from basicsr.models import lr_scheduler as bsr_sched
    sched_opt = copy.deepcopy(sched_opt)
    name = sched_opt.pop('type')
    if hasattr(bsr_sched, name):
        return getattr(bsr_sched, name)(optimizer, **sched_opt)
    if hasattr(torch.optim.lr_scheduler, name):
        return getattr(torch.optim.lr_scheduler, name)(optimizer, **sched_opt)
    raise KeyError(f"Unknown scheduler type '{name}' (train.scheduler.type): use one of BasicSR's "
                   '(MultiStepRestartLR, CosineAnnealingRestartLR, CosineAnnealingRestartCyclicLR) or a '
                   'torch.optim.lr_scheduler class name')


class BaseModel:
    """Orchestrates networks, optimisers, losses and checkpoints for one training method.

    Args:
        opt (dict): Resolved options (see :func:`lowlight3d.utils.options.resolve_options`).
    """

    #: Names (``train.<name>_opt`` without ``_opt``) of the loss blocks this model uses; any other block is an
    #: error listing these.  ``None``: every block is used (a model that sums all of them).
    LOSS_BLOCKS = None

    def __init__(self, opt):
        self.opt = opt
        if opt.get('device', 'cpu') == 'cuda':
            self.device = torch.device('cuda', torch.cuda.current_device())
        else:
            self.device = torch.device('cpu')
        self.is_train = opt['is_train']
        self.nets = OrderedDict()
        self.ema_sources = OrderedDict()
        self.optimizers = OrderedDict()
        self.schedulers = []
        self.losses = OrderedDict()
        self.log_dict = OrderedDict()
        self.best_metric_results = {}
        #: Where each network's weights came from (``label -> text``; missing = initial weights), see
        #: :meth:`weights_report`.  Models add entries for networks loaded by other means (a frozen prior).
        self.weight_sources = OrderedDict()
        #: ``label -> reason`` for networks with parameters that legitimately run without trained weights.
        self.weights_not_required = {}
        self.grad_norm_freq = parse_grad_norm_freq(opt) if self.is_train else 0
        #: Autocast, loss scaling and memory format of training (``train.amp``, ``train.channels_last``).
        self.precision = MixedPrecision.from_options(opt, self.device)

    # ------------------------------------------------------------------ networks
    def add_network(self, label, net_opt=None, trainable=True):
        """Build ``opt[label]`` (or ``net_opt``), load its pretrained weights, wrap it for DDP, register it.

        Args:
            label (str): Option key and checkpoint name, e.g. ``net_g`` (option block ``network_g``).
            net_opt (dict, optional): Option block; default ``opt['network_' + label[4:]]``.
            trainable (bool): Wrap in DDP when distributed (frozen networks are not wrapped).

        Returns:
            nn.Module: The (possibly wrapped) network.
        """
        block = 'network_' + label[4:] if label.startswith('net_') else label
        if net_opt is None:
            if block not in self.opt:
                raise KeyError(f"Option block '{block}' is required by {type(self).__name__}")
            net_opt = self.opt[block]
        net = build_network(net_opt, where=block).to(self.device)
        self._load_pretrained(net, label)
        self.precision.prepare_network(net)
        if not trainable:
            for p in net.parameters():
                p.requires_grad_(False)
        if self.opt.get('dist') and trainable and any(p.requires_grad for p in net.parameters()):
            kwargs = {'device_ids': [self.device.index]} if self.device.type == 'cuda' else {}
            net = DistributedDataParallel(
                net, find_unused_parameters=self.opt.get('find_unused_parameters', False), **kwargs)
        self.nets[label] = net
        return net

    def add_ema(self, ema_label, source_label):
        """Create an exponential-moving-average copy of ``nets[source_label]`` (used for testing).

        Its pretrained weights are read with ``param_key: params_ema`` from ``path.pretrain_<source>`` when
        given, else it starts as a copy of the source.
        """
        ema = copy.deepcopy(self.bare(self.nets[source_label])).to(self.device)
        for p in ema.parameters():
            p.requires_grad_(False)
        ema.eval()
        path = self.opt['path'].get(f'pretrain_network_{source_label[4:]}')
        if path:
            state = load_checkpoint(path, what=f'pretrained {source_label}')
            key = 'params_ema' if 'params_ema' in state else 'params'
            load_weights_checked(ema, strip_module_prefix(state[key]), path, ema_label)
            self.weight_sources[ema_label] = f'{path} ({key})'
        else:
            self.weight_sources[ema_label] = f'copy of {source_label}'
        self.nets[ema_label] = ema
        self.ema_sources[ema_label] = source_label
        return ema

    @torch.no_grad()
    def update_ema(self, ema_label, decay):
        """``ema = decay * ema + (1 - decay) * source`` for parameters; buffers are copied."""
        ema, src = self.nets[ema_label], self.bare(self.nets[self.ema_sources[ema_label]])
        src_params = dict(src.named_parameters())
        for name, p_ema in ema.named_parameters():
            p_ema.mul_(decay).add_(src_params[name].detach(), alpha=1 - decay)
        src_buffers = dict(src.named_buffers())
        for name, b_ema in ema.named_buffers():
            b_ema.copy_(src_buffers[name])

    @staticmethod
    def bare(net):
        """The module inside a (Distributed)DataParallel wrapper."""
        return net.module if isinstance(net, (DistributedDataParallel, nn.DataParallel)) else net

    def _load_pretrained(self, net, label):
        path = self.opt['path'].get(f'pretrain_network_{label[4:]}') if label.startswith('net_') else None
        if not path:
            return
        param_key = self.opt['path'].get(f'param_key_{label[4:]}', 'params')
        strict = self.opt['path'].get(f'strict_load_{label[4:]}', True)
        state = load_checkpoint(path, what=f'pretrained {label}')
        if param_key is not None:
            if param_key not in state:
                raise KeyError(f"{path} has no '{param_key}' entry (keys: {list(state)}); set "
                               f'path.param_key_{label[4:]}')
            state = state[param_key]
        missing, unexpected = load_weights_checked(net, strip_module_prefix(state), path, label, strict=strict)
        if missing or unexpected:
            from basicsr.utils import get_root_logger
            get_root_logger().warning(f'{label} from {path} (strict_load off): {len(missing)} missing keys '
                                      f'{missing[:5]}, {len(unexpected)} unexpected keys {unexpected[:5]}')
        self.weight_sources[label] = f'{path} ({param_key})' if param_key else path

    def weights_report(self):
        """Where the weights of every network come from: ``{label: text}``.

        A network with parameters that was neither loaded nor declared in :attr:`weights_not_required` reads
        ``INITIAL (untrained) weights``; see :meth:`untrained_networks`.
        """
        report = OrderedDict()
        for label, net in self.nets.items():
            count = sum(p.numel() for p in self.bare(net).parameters())
            if label in self.weight_sources:
                report[label] = self.weight_sources[label]
            elif count == 0:
                report[label] = 'no parameters (needs no weights)'
            elif label in self.weights_not_required:
                report[label] = f'initial weights ({self.weights_not_required[label]})'
            elif self.is_train:
                report[label] = 'initial weights (trained by this run)'
            else:
                report[label] = 'INITIAL (untrained) weights'
        for label, source in self.weight_sources.items():
            report.setdefault(label, source)
        return report

    def untrained_networks(self):
        """Labels of the networks that would run with untrained initial weights at test time (should be none)."""
        if self.is_train:
            return []
        return [label for label, text in self.weights_report().items() if text == 'INITIAL (untrained) weights']

    def print_networks(self, logger):
        """Log each network's class, parameter count and where its weights come from (:meth:`weights_report`)."""
        report = self.weights_report()
        for label, net in self.nets.items():
            bare = self.bare(net)
            count = sum(p.numel() for p in bare.parameters())
            logger.info(f'Network {label}: {type(bare).__name__}, {count:,} parameters ({count / 1e6:.3f} M); '
                        f'weights: {report[label]}')
        for label, text in report.items():
            if label not in self.nets:
                logger.info(f'Weights of {label}: {text}')

    # ------------------------------------------------------------------ optimisation
    def add_optimizer(self, label, params, optim_opt):
        """Build an optimiser from an option block (``type`` + torch arguments) and register it."""
        optim_opt = copy.deepcopy(optim_opt)
        name = optim_opt.pop('type')
        if name not in _OPTIMIZERS:
            raise KeyError(f"Unknown optimizer type '{name}' (train.{label}.type): use one of {sorted(_OPTIMIZERS)}")
        params = [p for p in params if p.requires_grad]
        optimizer = _OPTIMIZERS[name](params, **optim_opt)
        self.optimizers[label] = optimizer
        return optimizer

    def setup_schedulers(self):
        """One scheduler per optimiser from ``train.scheduler`` (if present)."""
        sched_opt = self.opt['train'].get('scheduler')
        if sched_opt:
            self.schedulers = [_build_scheduler(o, sched_opt) for o in self.optimizers.values()]

    def build_losses(self, exclude=()):
        """Build every ``train.<name>_opt`` block as a loss (a loss is ON when its block is present).

        Optimiser blocks (``optim_*``) and the scheduler are not losses.  Returns ``{name: loss_module}`` with
        ``name`` the block key without ``_opt`` (``pixel_opt`` -> ``pixel``).  A block whose name is not in
        :attr:`LOSS_BLOCKS` (when the model declares them) is an error: a misspelt ``pixl_opt`` would otherwise be
        built and never used.
        """
        for key, block in self.opt['train'].items():
            if not key.endswith('_opt') or key.startswith('optim') or key in exclude or block is None:
                continue
            if self.LOSS_BLOCKS is not None and key[:-4] not in self.LOSS_BLOCKS:
                import difflib
                close = difflib.get_close_matches(key, [n + '_opt' for n in self.LOSS_BLOCKS], n=2)
                hint = f" Did you mean {' or '.join(close)}?" if close else ''
                raise ValueError(f'train.{key}: {type(self).__name__} does not use this loss block.{hint} The loss '
                               f"blocks it uses: {', '.join(n + '_opt' for n in self.LOSS_BLOCKS)} "
                               '(set a block to ~ to switch it off).')
            self.losses[key[:-4]] = build_loss(block, where=f'train.{key}').to(self.device)
        return self.losses

    def _set_lr(self, lr_groups_l):
        for optimizer, lr_groups in zip(self.optimizers.values(), lr_groups_l):
            for param_group, lr in zip(optimizer.param_groups, lr_groups):
                param_group['lr'] = lr

    def update_learning_rate(self, current_iter, warmup_iter=-1):
        """Step the schedulers (from the 2nd iteration on) and apply a linear warm-up, as BasicSR does."""
        if current_iter > 1:
            for scheduler in self.schedulers:
                scheduler.step()
        if current_iter < warmup_iter:
            init_lr = [[g['initial_lr'] for g in o.param_groups] for o in self.optimizers.values()]
            self._set_lr([[lr / warmup_iter * current_iter for lr in group] for group in init_lr])

    def get_current_learning_rate(self):
        """Learning rate of the first parameter group of each optimiser."""
        return [o.param_groups[0]['lr'] for o in self.optimizers.values()]

    def get_current_log(self):
        """Scalars of the last iteration (``l_*`` losses and others)."""
        return self.log_dict

    # ------------------------------------------------------------------ one training iteration, any precision
    def train_step(self, data, current_iter):
        """One training iteration in the run's precision: :meth:`feed_data` (batch in the run's memory format),
        :meth:`optimize_parameters` under autocast, then the GradScaler's update (fp16).

        The training loop and the timing scripts call this; calling ``feed_data`` and ``optimize_parameters``
        directly gives the float32 path whatever ``train.amp`` says.
        """
        self.feed_data(self.precision.prepare_batch(data))
        with self.precision.autocast():
            self.optimize_parameters(current_iter)
        self.precision.update()

    def backward(self, loss):
        """Back-propagate a loss in float32, outside autocast, scaled by the GradScaler under fp16."""
        self.precision.backward(loss)

    def optimizer_step(self, optimizer):
        """Step ``optimizer`` (through the GradScaler under fp16: skipped when the gradients overflowed)."""
        self.precision.step(optimizer)

    def unscale_gradients(self, optimizer):
        """Bring the gradients of ``optimizer`` to their true scale before clipping them (fp16; else a no-op)."""
        self.precision.unscale(optimizer)

    @staticmethod
    def grad_clip_option(train_opt, default=None):
        """``train.grad_clip``: the largest global gradient norm of a step (``null`` or 0: no clipping).

        Returns:
            float | None: The norm, or None when off.

        Raises:
            ValueError: Not a positive number (or null / 0).
        """
        value = train_opt.get('grad_clip', default)
        if value is None or (not isinstance(value, bool) and value == 0):
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ValueError(f'train.grad_clip must be a positive number (the largest gradient norm) or null, got '
                             f'{value!r}')
        return float(value)

    def clip_gradients(self, optimizer, params, max_norm):
        """Clip the global norm of the gradients of ``params`` (stepped by ``optimizer``) at ``max_norm``, after
        unscaling them (fp16); call between :meth:`backward` and :meth:`optimizer_step`, once per step.

        Returns:
            Tensor: The global gradient norm before clipping (what a log wants to see).
        """
        self.unscale_gradients(optimizer)
        return torch.nn.utils.clip_grad_norm_(params, max_norm)

    def prepare_frozen_network(self, net):
        """A network a model builds itself (a frozen feature extractor): on the device, in the run's memory
        format, in eval mode, without gradients."""
        net = self.precision.prepare_network(net.to(self.device)).eval()
        for p in net.parameters():
            p.requires_grad_(False)
        return net

    def grad_norm_logs(self, current_iter, terms, outputs):
        """Per-term gradient norms and shares w.r.t. ``outputs`` every ``logger.grad_norm_freq`` iterations.

        See :mod:`lowlight3d.models.grad_norms`.  Call before the total's ``backward()``; returns ``{}`` on the
        other iterations (and when ``logger.grad_norm_freq`` is 0), so the keys appear in the log only when
        measured.

        Args:
            current_iter (int): The iteration (1-based).
            terms (Mapping[str, Tensor]): ``{name: weighted loss term}`` (e.g. :attr:`LossSum.values`).
            outputs (Sequence[Tensor]): The outputs of the trained network that the terms depend on.

        Returns:
            dict: ``grad_<name>``, ``share_<name>``, ``grad_total`` or nothing.
        """
        if not self.grad_norm_freq or current_iter % self.grad_norm_freq != 0:
            return {}
        return loss_term_grad_norms(terms, outputs)

    def reduce_loss_dict(self, loss_dict):
        """Average logged scalars over processes (identity when not distributed)."""
        rank, world_size = get_dist_info()
        out = OrderedDict()
        with torch.no_grad():
            if world_size > 1:
                keys = list(loss_dict)
                values = torch.stack([torch.as_tensor(loss_dict[k], dtype=torch.float32, device=self.device)
                                      for k in keys])
                torch.distributed.all_reduce(values)
                values = values / world_size
                for k, v in zip(keys, values):
                    out[k] = v.item()
            else:
                for k, v in loss_dict.items():
                    out[k] = v.item() if torch.is_tensor(v) else float(v)
        return out

    # ------------------------------------------------------------------ interface for subclasses
    def feed_data(self, data):
        """Move a batch from the data loader onto the device."""
        raise NotImplementedError

    def optimize_parameters(self, current_iter):
        """One training iteration."""
        raise NotImplementedError

    #: How the method infers: ``True`` when :meth:`test` is one call of :meth:`test_network` on ``lq`` (and, with a
    #: 3D prior, its prior maps), so inference (:class:`~lowlight3d.inference.loaded_model.LoadedModel`) runs the
    #: network alone; a model whose :meth:`test` is a procedure (sampling, per-image optimisation) sets ``False`` and
    #: is built in test mode for inference.
    NETWORK_INFERENCE = True

    # The defaults below are those of an image-to-image enhancement model (``self.lq`` -> ``self.output``, with
    # ``self.gt`` or None); models of another shape override them.
    def test_network(self):
        """The network used for inference: ``net_g_ema`` when there is one, else ``net_g``."""
        return self.bare(self.nets.get('net_g_ema', self.nets['net_g']))

    @torch.no_grad()
    def test(self):
        """Enhance the fed ``lq`` with :meth:`test_network` in eval mode (its train mode is restored)."""
        net = self.test_network()
        was_training = net.training
        net.eval()
        self.output = net(self.lq)
        net.train(was_training)

    def get_current_visuals(self):
        """CPU tensors ``lq``, ``result`` (clamped to [0, 1]) and ``gt`` when known, of the last :meth:`test`."""
        visuals = OrderedDict(lq=self.lq.detach().cpu(), result=self.output.detach().clamp(0, 1).cpu())
        if getattr(self, 'gt', None) is not None:
            visuals['gt'] = self.gt.detach().cpu()
        return visuals

    def validation(self, dataloader, current_iter, tb_logger=None, save_img=False):
        """Score the validation set with ``val.metrics``; see :func:`lowlight3d.models.validation.validate`."""
        from lowlight3d.models.validation import validate
        return validate(self, dataloader, current_iter, tb_logger, save_img)

    def extra_state(self):
        """Additional picklable state a subclass needs to resume exactly (default: none)."""
        return {}

    def load_extra_state(self, state):
        """Restore what :meth:`extra_state` returned."""

    # ------------------------------------------------------------------ checkpoints
    def network_state_dict(self, label):
        """CPU state dict of ``nets[label]`` without DDP prefixes, contiguous (whatever the training's memory
        format), so a file never depends on ``train.channels_last``."""
        state = strip_module_prefix(self.bare(self.nets[label]).state_dict())
        return {k: v.detach().cpu().contiguous() for k, v in state.items()}

    def save_networks(self, current_iter):
        """Write ``models/<net>_<iter>.pth`` per trained network (``params`` and, with EMA, ``params_ema``).

        ``current_iter`` may be a string such as ``best`` or ``latest``.
        """
        if get_dist_info()[0] != 0:
            return
        folder = self.opt['path']['models']
        for label in self.nets:
            if label in self.ema_sources:
                continue
            payload = {'params': self.network_state_dict(label)}
            for ema_label, source in self.ema_sources.items():
                if source == label:
                    payload['params_ema'] = self.network_state_dict(ema_label)
            atomic_save(payload, osp.join(folder, f'{label}_{current_iter}.pth'))

    def training_state(self, epoch, current_iter, extra=None):
        """Everything needed to continue training exactly (see module docstring)."""
        return {
            'format': 'lowlight3d-training-state-1',
            'epoch': epoch,
            'iter': current_iter,
            'networks': {label: self.network_state_dict(label) for label in self.nets},
            'optimizers': {label: o.state_dict() for label, o in self.optimizers.items()},
            'schedulers': [s.state_dict() for s in self.schedulers],
            'rng': get_rng_state(),
            'best_metric_results': copy.deepcopy(self.best_metric_results),
            'model_extra': self.extra_state(),
            'precision': self.precision.state_dict(),
            'pipeline': extra or {},
        }

    def save_training_state(self, epoch, current_iter, extra=None):
        """Atomically write ``training_states/<iter>.state``; keeps the newest ``logger.max_keep_ckpts``."""
        if get_dist_info()[0] != 0:
            return
        folder = self.opt['path']['training_states']
        atomic_save(self.training_state(epoch, current_iter, extra), osp.join(folder, f'{current_iter}.state'))
        keep = self.opt.get('logger', {}).get('max_keep_ckpts')
        if keep:
            self._prune(folder, '.state', keep)
            self._prune(self.opt['path']['models'], '.pth', keep)

    @staticmethod
    def _prune(folder, suffix, keep):
        """Delete all but the ``keep`` newest numbered checkpoints (``*_<iter><suffix>`` or ``<iter><suffix>``)."""
        numbered = {}
        for name in os.listdir(folder):
            stem = name[:-len(suffix)] if name.endswith(suffix) else None
            tail = stem.rsplit('_', 1)[-1] if stem else ''
            if tail.isdigit():
                numbered.setdefault(int(tail), []).append(name)
        for it in sorted(numbered)[:-keep]:
            for name in numbered[it]:
                os.remove(osp.join(folder, name))

    def resume_training(self, state):
        """Restore networks, EMA, optimisers, schedulers, RNG states and best metrics from a training state."""
        if state.get('format') != 'lowlight3d-training-state-1':
            raise ValueError('This training state was not written by lowlight3d (missing format tag); '
                             'start from its network weights with path.pretrain_network_g instead')
        missing = set(self.nets) - set(state['networks'])
        if missing:
            raise KeyError(f'The training state has no weights for {sorted(missing)}; was it written by another '
                           'model_type?')
        for label, net in self.nets.items():
            self.bare(net).load_state_dict(state['networks'][label])
        if len(state['optimizers']) != len(self.optimizers) or len(state['schedulers']) != len(self.schedulers):
            raise ValueError('Wrong number of optimizers/schedulers in the training state for this option file')
        for label, optimizer in self.optimizers.items():
            optimizer.load_state_dict(state['optimizers'][label])
        for scheduler, sched_state in zip(self.schedulers, state['schedulers']):
            scheduler.load_state_dict(sched_state)
        self.best_metric_results = copy.deepcopy(state.get('best_metric_results', {}))
        self.load_extra_state(state.get('model_extra', {}))
        self.precision.load_state_dict(state.get('precision'))
        set_rng_state(state['rng'])
