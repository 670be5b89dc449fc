"""The paper's semi-supervised, knowledge-distilled enhancement model (Sec. 3.2-3.3, eqs. 5 and 7-14).

Every iteration takes a paired batch (synthetic ``I_p``, ``I_p^gt``) and an unpaired batch (real ``I_u``) from
:class:`~lowlight3d.data.lowlight_face_dataset.SemiSupervisedLowLightDataset`:

* the **student** ``net_g`` (e.g. :class:`~lowlight3d.archs.prior_guided_enhancer_arch.PriorGuidedEnhancer`)
  learns by backpropagation; the **teacher** ``net_g_ema`` is its exponential moving average (eq. 5,
  ``train.ema_decay`` = eta, paper reading 0.999) and its outputs carry no gradient;
* the frozen **3D prior** (option block ``prior``, a :class:`~lowlight3d.models.prior_extractor.PriorExtractor`
  of a trained tri-plane DDPM) supplies ``T_k, D_k`` to both networks.  ``prior.refresh`` says which prior a
  synthetic pair gets while its input is re-degraded every epoch: ``once`` (default) keeps the prior of the first
  degraded input seen for that face (cache keyed by the clean face's content, so the prior is sampled once per
  face: the cost of the prior is paid in the first epoch only), ``per_sample`` samples the prior of every
  degraded input (keyed by the input's content; ``steps`` denoiser passes on 2x the batch, flip-consistent, every
  iteration instead of the first epoch only).  Unpaired images and evaluation inputs are keyed by their own
  content (cached when the cache is on).  ``prior.cache``: ``true`` (in memory, plus files when ``cache_dir`` is
  set), ``disk`` (files in ``cache_dir`` only), ``false`` (no cache at all; needs ``refresh: per_sample`` in
  training);
* losses, each ON when its ``train.<name>_opt`` block is present (weights are the products of eq. 7-9):

  ======================  =============================================  ==================================
  block                   value                                          paper weight
  ======================  =============================================  ==================================
  ``pixel_opt``           ``|I_p^s - I_p^gt|_1``                          1 (eq. 8)
  ``perceptual_opt``      ``Phi(I_p^s)`` vs ``Phi(I_p^gt)``               lambda3 = 0.1
  ``intra_opt``           intra-network consistency (eqs. 10-11)         lambda1 * lambda4 = 0.25
  ``inter_opt``           inter-network consistency (eqs. 12-13)         lambda1 * lambda5 = 0.25
  ``gan_opt``             LSGAN of the colour-edge D on ``I_u^s`` (14)    lambda2 = 0.01
  ``pseudo_label_opt``    ``loss(I_u^s, I_u^t)``: ablation V2 only       (our choice, see the V2 file)
  ======================  =============================================  ==================================

  ``Phi`` is one frozen feature network (``train.feature_extractor``, VGG19 relu1_1/2_1/3_1 by default),
  evaluated once per image and shared by the perceptual and both distillation losses.  The discriminator
  ``net_d`` (``network_d``) has its own optimiser (``train.optim_d``): real = ``I_p^gt``, fake = ``I_u^s``.

GAN schedule (each a pure function of the iteration, so resuming is exact; they act only with ``gan_opt``):
``train.gan_start_iter`` (generator warm-up: before it the adversarial term is off and ``net_d`` is not trained;
an iteration, or a fraction in (0, 1) of ``train.total_iter``; default 0, the paper: on from the first iteration),
``train.net_d_init_iters`` (discriminator-only iterations once the adversarial term is on, BasicSR's name and
meaning; default 0) and ``train.net_d_iters`` (the student is
optimised only in iterations divisible by it, so ``net_d`` takes that many steps per student step; default 1).
See :meth:`SemiSupervisedDistillationModel.gan_schedule`.

Diagnostics: every ``logger.grad_norm_freq`` iterations (default ``logger.print_freq``; 0 = off) the log and
tensorboard get ``grad_<term>`` = ``||d term / d(I_p^s, I_u^s)||_2`` for each weighted term, ``share_<term>`` (its
fraction of the summed norms) and ``grad_total`` (:mod:`lowlight3d.models.grad_norms`): the terms whose share
stays near 0 do no measurable work.

What runs follows from the blocks: the unpaired branch runs when any of ``intra/inter/gan/pseudo_label`` is on,
the teacher forward when any of ``intra/inter/pseudo_label`` is on (the EMA itself is always kept, it is the
teacher), so ablation V1 (supervised only) is the full file with those blocks set to ``~`` and V5 (no 3D prior)
is the full file with ``prior: ~``.  Inference, validation and testing use the **student** only.
"""
import contextlib

import torch

from lowlight3d.archs import build_network
from lowlight3d.archs.prior_maps import prior_on
from lowlight3d.models.base_model import BaseModel
from lowlight3d.models.loss_sum import LossSum
from lowlight3d.models.prior_loading import load_prior, prior_refresh
from lowlight3d.utils.registry import MODEL_REGISTRY, register

__all__ = ['SemiSupervisedDistillationModel']

_UNPAIRED_LOSSES = ('intra', 'inter', 'gan', 'pseudo_label')
_TEACHER_LOSSES = ('intra', 'inter', 'pseudo_label')
_FEATURE_LOSSES = ('perceptual', 'intra', 'inter')


def _int_option(train_opt, key, default, minimum, meaning):
    """``train.<key>`` as an int ``>= minimum`` (``default`` when absent or null); else a clear error."""
    value = train_opt.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f'train.{key} ({meaning}) must be an integer >= {minimum}, got {value!r}; '
                         f'leave it out for the default {default}')
    return value


def _start_iteration(train_opt, key, meaning):
    """``train.<key>`` as an iteration: an integer >= 0, or a fraction in (0, 1) of ``train.total_iter`` (rounded
    down), so that a schedule follows a budget that sets the iterations (``make benchmark-real``)."""
    value = train_opt.get(key)
    if isinstance(value, float) and not isinstance(value, bool) and 0 < value < 1:
        total = train_opt.get('total_iter')
        if not isinstance(total, int) or total < 1:
            raise ValueError(f'train.{key} = {value} is a fraction of train.total_iter, which is not set')
        return int(value * total)
    return _int_option(train_opt, key, 0, 0, meaning + ' (or a fraction in (0, 1) of train.total_iter)')


def _cat_batch(a, b):
    """Two inputs of a network (a tensor, a prior dict of tensor lists, or None) as one along the batch axis: the
    joined input, None when both are None, False when they cannot be joined (other shapes, one of them None)."""
    if a is None or b is None:
        return None if (a is None) == (b is None) else False
    if torch.is_tensor(a):
        return torch.cat([a, b]) if torch.is_tensor(b) and a.shape[1:] == b.shape[1:] else False
    if isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys():
        out = {}
        for key in a:
            if len(a[key]) != len(b[key]):
                return False
            out[key] = [_cat_batch(u, v) for u, v in zip(a[key], b[key])]
            if any(v is False for v in out[key]):
                return False
        return out
    return False


def _split_batch(out, n):
    """The first ``n`` samples and the rest of a network output (a tensor or a list of tensors)."""
    if torch.is_tensor(out):
        return out[:n], out[n:]
    return [o[:n] for o in out], [o[n:] for o in out]


def _paired_call(fn, args_a, args_b):
    """``fn(*args_a), fn(*args_b)`` as one call on the batch-concatenated arguments when they can be joined.

    Every network it serves treats the samples of a batch independently (no batch normalisation), so the result
    is that of the two calls up to float rounding, at the cost of one larger pass instead of two.
    """
    joined = [_cat_batch(a, b) for a, b in zip(args_a, args_b)]
    if any(j is False for j in joined):
        return fn(*args_a), fn(*args_b)
    return _split_batch(fn(*joined), args_a[0].shape[0])


@register(MODEL_REGISTRY)
class SemiSupervisedDistillationModel(BaseModel):
    """Teacher-student training of a prior-guided enhancer on paired + unpaired low-light faces.

    Option keys: ``network_g`` (student = teacher architecture), ``network_d`` (when ``train.gan_opt`` is on),
    ``prior`` (:mod:`lowlight3d.models.prior_loading`; ``~`` = no 3D prior),
    ``train.ema_decay`` (teacher momentum),
    ``train.feature_extractor`` (e.g. ``{type: FrozenVGGFeatureExtractor, arch: vgg19, layers: [...], weights: ~}``),
    ``train.optim_g``, ``train.optim_d``, ``train.scheduler``, the loss blocks and the GAN schedule
    (``train.gan_start_iter``, ``train.net_d_init_iters``, ``train.net_d_iters``) of the module docstring,
    ``logger.grad_norm_freq``, ``train.grad_clip`` [ours; off by default, the paper has none]: the largest global
    gradient norm of a student step (its norm before clipping is logged as ``grad_norm_g``).
    """

    LOSS_BLOCKS = ('pixel', 'perceptual') + _UNPAIRED_LOSSES

    def __init__(self, opt):
        super().__init__(opt)
        self.add_network('net_g')
        self.prior, self.prior_seed, self.loaded_prior = None, 0, None
        if opt.get('prior'):
            self.loaded_prior = load_prior(opt['prior'], self.device)
            self.prior, self.prior_seed = self.loaded_prior.extractor, self.loaded_prior.seed
            self.weight_sources['prior'] = self.loaded_prior.describe()
            opt['prior']['fingerprint'] = self.loaded_prior.fingerprint  # recorded in the saved options
        self.prior_p = self.prior_u = None
        self.prior_refresh, self.prior_namespace = prior_refresh(opt)
        if not self.is_train:
            return
        if self.prior is not None and self.prior_refresh == 'once' and not self.prior.has_cache:
            raise ValueError("prior.refresh: once keeps the first prior of each training face in the cache, but "
                             "prior.cache is false: set prior.cache: true (memory) or disk (with prior.cache_dir), "
                             "or prior.refresh: per_sample (a new prior for every degraded input)")
        train_opt = opt['train']
        self.ema_decay = float(train_opt.get('ema_decay', 0.999))
        if not 0 < self.ema_decay < 1:
            raise ValueError(f'train.ema_decay (the teacher momentum eta of eq. 5) must be in (0, 1), got '
                             f'{self.ema_decay}')
        self.add_ema('net_g_ema', 'net_g')
        self.nets['net_g'].train()
        self.build_losses()
        if not self.losses:
            raise ValueError('No loss is configured: add at least train.pixel_opt')
        self.use_unpaired = any(k in self.losses for k in _UNPAIRED_LOSSES)
        self.use_teacher = any(k in self.losses for k in _TEACHER_LOSSES)
        self.features = None
        if any(k in self.losses for k in _FEATURE_LOSSES):
            if not train_opt.get('feature_extractor'):
                raise ValueError('train.feature_extractor is required by the perceptual / intra / inter losses '
                                 '(e.g. {type: FrozenVGGFeatureExtractor, arch: vgg19, layers: [relu1_1, relu2_1, '
                                 'relu3_1]})')
            self.features = build_network(train_opt['feature_extractor'], where='train.feature_extractor')
            fe_weights = train_opt['feature_extractor'].get('weights')
            self.weight_sources['feature_extractor'] = (f'frozen {type(self.features).__name__}, weights: '
                                                        f"{fe_weights or 'the default pretrained file'}")
            self.features = self.prepare_frozen_network(self.features)
        self.add_optimizer('optim_g', self.nets['net_g'].parameters(), train_opt['optim_g'])
        self.grad_clip = self.grad_clip_option(train_opt)
        if 'gan' in self.losses:
            if 'network_d' not in opt or 'optim_d' not in train_opt:
                raise ValueError('train.gan_opt needs network_d (e.g. ColorEdgeDiscriminator) and train.optim_d')
            self.add_network('net_d').train()
            self.add_optimizer('optim_d', self.nets['net_d'].parameters(), train_opt['optim_d'])
        self.net_d_iters = _int_option(train_opt, 'net_d_iters', 1, 1, 'discriminator steps per student step')
        self.net_d_init_iters = _int_option(train_opt, 'net_d_init_iters', 0, 0,
                                            'discriminator-only iterations when the adversarial term switches on')
        self.gan_start_iter = _start_iteration(train_opt, 'gan_start_iter',
                                               'iteration at which the adversarial term and the discriminator start')
        self.setup_schedulers()

    # ------------------------------------------------------------------ data and prior
    def _prior_of(self, img, identity=None, namespace='', use_cache=True):
        if self.prior is None:
            return None
        # in training a float32 prior whatever train.amp (it is cached and shared by runs of any precision); at
        # inference the caller's autocast (--half) applies
        with torch.autocast(self.device.type, enabled=False) if self.is_train else contextlib.nullcontext():
            out = self.prior.extract(img.float() if self.is_train else img, seed=self.prior_seed, identity=identity,
                                     namespace=namespace, use_cache=use_cache)
        return prior_on(out, self.device)

    def feed_data(self, data):
        """Take ``lq`` (+ ``gt``; + ``lq_unpaired`` when the unpaired branch is on).

        The 3D priors are computed when they are used: by :meth:`optimize_parameters` with the ``prior.refresh``
        rule for synthetic pairs, by :meth:`test` from the input's content.
        """
        self.lq = data['lq'].to(self.device)
        self.gt = data['gt'].to(self.device) if 'gt' in data else None
        self.prior_p = self.prior_u = self.lq_u = None
        if self.is_train and getattr(self, 'use_unpaired', False) and 'lq_unpaired' in data:
            self.lq_u = data['lq_unpaired'].to(self.device)

    def training_priors(self):
        """The priors of the fed training batch (``prior_p``, ``prior_u``) by the ``prior.refresh`` rule.

        ``once``: a pair's prior is cached under its clean face's content (``gt``, flip-aware) in the namespace of
        the training data options, so the first degraded input seen decides it.  ``per_sample``: the prior of
        this very input, not cached (a re-degraded input never repeats).  Unpaired inputs: their own content.
        """
        if self.prior is None:
            return
        if self.prior_refresh == 'once' and self.gt is not None:
            self.prior_p = self._prior_of(self.lq, identity=self.gt, namespace=self.prior_namespace)
        else:
            self.prior_p = self._prior_of(self.lq, use_cache=False)
        if self.lq_u is not None:
            self.prior_u = self._prior_of(self.lq_u)

    # ------------------------------------------------------------------ training
    def _phi(self, img):
        return self.features(img)

    def gan_schedule(self, current_iter):
        """``(adversarial, student_step)`` of an iteration: is the GAN on, is the student optimised?

        A pure function of ``current_iter`` (1-based), so a resumed run follows the same schedule.  Without
        ``train.gan_opt``: ``(False, True)``.  With it, the adversarial phase starts at ``s = max(1,
        train.gan_start_iter)``; before ``s`` the student trains on the other terms alone and the discriminator
        rests (generator warm-up).  From ``s`` on the discriminator trains every iteration and, as in BasicSR's
        GAN models, the student is optimised only after ``train.net_d_init_iters`` discriminator-only iterations
        (counted from ``s``; with ``gan_start_iter: 0`` these are BasicSR's first iterations) and only in
        iterations divisible by ``train.net_d_iters``.
        """
        if 'gan' not in self.losses:
            return False, True
        start = max(1, self.gan_start_iter)
        if current_iter < start:
            return False, True
        student_step = current_iter - start >= self.net_d_init_iters and current_iter % self.net_d_iters == 0
        return True, student_step

    def optimize_parameters(self, current_iter):
        """One student step (eq. 7), one discriminator step, then the teacher's EMA update (eq. 5).

        :meth:`gan_schedule` decides whether the adversarial term, the discriminator step and the student step
        (with its EMA update: the teacher averages the student's updates) happen in this iteration.  Every
        ``logger.grad_norm_freq`` iterations, the norm of each weighted term's gradient w.r.t. the student's
        outputs ``I_p^s`` and ``I_u^s`` (one concatenated vector) and its share are logged
        (:mod:`lowlight3d.models.grad_norms`).
        """
        student, losses = self.nets['net_g'], self.losses
        self.training_priors()
        if self.use_unpaired and self.lq_u is None:
            raise KeyError('The unpaired losses (intra/inter/gan/pseudo_label) need lq_unpaired in every training '
                           'batch: use SemiSupervisedLowLightDataset for datasets.train')
        adversarial, student_step = self.gan_schedule(current_iter)
        net_d = self.nets.get('net_d')
        terms, extra = LossSum(), {}
        if student_step:
            extra = self._student_step(current_iter, terms, adversarial)
        else:  # discriminator-only iteration: the student's unpaired output is only the fake sample
            with torch.no_grad():
                self.output_u = student(self.lq_u, self.prior_u)
        if adversarial:
            for p in net_d.parameters():
                p.requires_grad_(True)
            optim_d = self.optimizers['optim_d']
            optim_d.zero_grad(set_to_none=True)
            l_real = losses['gan'](net_d(self.gt), True, is_disc=True)
            l_fake = losses['gan'](net_d(self.output_u.detach()), False, is_disc=True)
            l_d = 0.5 * (l_real + l_fake)
            self.backward(l_d)
            self.optimizer_step(optim_d)
            extra.update(l_d_real=l_real.detach(), l_d_fake=l_fake.detach())
        self.log_dict = self.reduce_loss_dict(terms.logs(**extra))
        if student_step:
            self.update_ema('net_g_ema', self.ema_decay)

    def _student_step(self, current_iter, terms, adversarial):
        """Forward the student (and teacher), add every loss term to ``terms``, step ``optim_g``.

        Returns the gradient-norm log values of this iteration (empty when not measured).
        """
        student, losses = self.nets['net_g'], self.losses
        net_d = self.nets.get('net_d')
        if net_d is not None:
            for p in net_d.parameters():
                p.requires_grad_(False)
        optimizer = self.optimizers['optim_g']
        optimizer.zero_grad(set_to_none=True)
        add = terms.add
        out_u_s = None
        if self.use_unpaired:  # paired and unpaired inputs in one batched forward (same result, one pass)
            out_p_s, out_u_s = _paired_call(student, (self.lq, self.prior_p), (self.lq_u, self.prior_u))
            self.output_u = out_u_s
        else:
            out_p_s = student(self.lq, self.prior_p)
        self.output = out_p_s
        if 'pixel' in losses:
            add('pixel', losses['pixel'](out_p_s, self.gt))
        feats = {}
        distill = self.use_unpaired and ('intra' in losses or 'inter' in losses)
        if distill:
            feats['p_s'], feats['u_s'] = _paired_call(self._phi, (out_p_s,), (out_u_s,))
        elif self.features is not None:
            feats['p_s'] = self._phi(out_p_s)
        if 'perceptual' in losses:
            with torch.no_grad():
                feats_gt = self._phi(self.gt)
            add('perceptual', losses['perceptual'](feats['p_s'], feats_gt))
        if self.use_unpaired:
            if self.use_teacher:
                with torch.no_grad():
                    out_p_t, out_u_t = _paired_call(self.nets['net_g_ema'], (self.lq, self.prior_p),
                                                    (self.lq_u, self.prior_u))
            if distill:
                with torch.no_grad():
                    feats['p_t'], feats['u_t'] = _paired_call(self._phi, (out_p_t,), (out_u_t,))
            if 'intra' in losses:
                add('intra', losses['intra'](feats['p_t'], feats['u_t'], feats['p_s'], feats['u_s']))
            if 'inter' in losses:
                add('inter', losses['inter'](feats['p_t'], feats['p_s'], feats['u_t'], feats['u_s']))
            if 'pseudo_label' in losses:
                add('pseudo_label', losses['pseudo_label'](out_u_s, out_u_t))
            if adversarial:
                add('gan', losses['gan'](net_d(out_u_s), True, is_disc=False))
        grads = self.grad_norm_logs(current_iter, terms.values, [out_p_s, out_u_s])
        if torch.is_tensor(terms.total):
            self.backward(terms.total)
            if self.grad_clip is not None:
                grads['grad_norm_g'] = self.clip_gradients(optimizer, self.nets['net_g'].parameters(),
                                                           self.grad_clip).detach()
            self.optimizer_step(optimizer)
        return dict(grads)

    # ------------------------------------------------------------------ exact resume
    def extra_state(self):
        """The in-memory prior cache (without ``prior.cache_dir``): the cached prior of an image is the one of the
        first degraded input seen, so a resumed run must keep it to continue exactly (a disk cache persists by
        itself).  Small at demo scale; at paper scale use ``prior.cache_dir``."""
        if self.prior is not None and self.prior.cache is not None and not self.prior.cache_dir:
            return {'prior_cache': self.prior.cache}
        return {}

    def load_extra_state(self, state):
        """Restore the in-memory prior cache saved by :meth:`extra_state`."""
        if self.prior is not None and self.prior.cache is not None and 'prior_cache' in state:
            self.prior.cache.clear()
            self.prior.cache.update(state['prior_cache'])

    # ------------------------------------------------------------------ inference: the student only
    def test_network(self):
        """The student ``net_g`` (the paper infers with the student; the teacher is a training device)."""
        return self.bare(self.nets['net_g'])

    NETWORK_INFERENCE = True  # test() is net(lq, prior of lq)

    @torch.no_grad()
    def test(self):
        """Enhance the fed ``lq`` with the student and its 3D prior, in eval mode (train mode restored)."""
        net = self.test_network()
        was_training = net.training
        net.eval()
        self.prior_p = self._prior_of(self.lq)
        self.output = net(self.lq, self.prior_p)
        net.train(was_training)
