"""DLIENet's two training stages as toolkit models: the teacher (supervised), then the student distilled from it.

Both stages train on paired batches (``lq``, ``gt`` in ``[0, 1]`` from the shared data blocks) and compute every
loss in the networks' ``[-1, 1]`` units (``x -> 2 x - 1``), so the weights are the original's
(``docs/baselines.md`` section 4):

* **Stage 1, ``DLIENet.TeacherModel``**: ``L1(T(low), gt) + L1(T(gt), gt) + 0.1 [Perc(T(low), gt) + Perc(T(gt),
  gt)]``.  Blocks: ``train.pixel_opt`` (``L1Loss``, weight 1), ``train.perceptual_opt`` (the toolkit's
  ``FeaturePerceptualLoss``, weight ``0.1 x 0.001 = 1e-4`` with layer weights 1) on ``train.feature_extractor``
  (``FrozenVGGFeatureExtractor``, VGG19 ``conv1_2, conv2_2, conv3_4, conv4_4``, pre-ReLU, ImageNet-normalised
  ``[0, 1]`` input, i.e. the output mapped by ``(y + 1) / 2``, not clamped).  ``train.gt_reconstruction``
  [true]: also feed the ground truth and reconstruct it (the ``T(gt)`` terms, logged as ``l_pixel_gt``,
  ``l_perceptual_gt``).  Low-light and ground-truth inputs run as one batch (the teacher has no batch statistics).
* **Stage 2, ``DLIENet.StudentModel``**: ``1.0 L1(S, gt) + 0.005 L1(S, T) + 0.05 [L1(bot2) + L1(bot1)] + 0.1
  [L1(att2) + L1(att1)]`` (the effective expression of the original: its first, overwritten assignment is not
  used).  Blocks: ``pixel_opt`` (``L1Loss`` 1.0), ``soft_opt`` (``L1Loss`` 0.005, student vs teacher image),
  ``feature_opt`` (``DLIENet.FeatureMapL1Loss`` 0.05, bottlenecks), ``attention_opt`` (``DLIENet.FeatureMapL1Loss``
  0.1, student AFU2 / AFU1 vs teacher SAU / CAU).  The teacher is ``network_teacher`` with the weights of the teacher
  stage's experiment, ``path.pretrain_network_teacher`` (``path.param_key_teacher`` [params]); a missing file is a
  clear error at start-up.  It is frozen, in eval mode, runs under ``no_grad`` and is not part of the checkpoints:
  the training state records a SHA-1 of its file, and resuming with a different teacher file logs a warning.

Inference, validation and testing use ``net_g`` (the teacher in stage 1, the student in stage 2) through its
``forward``: ``[0, 1]`` in and out, padding cropped off.  Optimiser and schedule are ordinary ``train.optim_g`` /
``train.scheduler`` blocks (original: Adam-type, lr 4e-4, cosine to lr x 1e-2).

Compared with our own distillation model (``SemiSupervisedDistillationModel``): there the teacher is the *EMA of the
student* (same architecture, updated every step, ``BaseModel.add_ema``) and the distillation compares VGG features of
the two networks' *outputs* on unpaired images (intra/inter consistency); here the teacher is a *separately
pre-trained, fixed, different network* and the distillation is an L1 between the networks' own intermediate maps
and outputs on the paired inputs.  What is the same and reused: the frozen VGG feature network and the perceptual
loss (``FrozenVGGFeatureExtractor`` + ``FeaturePerceptualLoss``, the ``train.feature_extractor`` block), building
and freezing a network from an option block with its pretrained weights (``BaseModel.add_network(...,
trainable=False)``), the term bookkeeping (``LossSum``) and the paired-data model (``SupervisedEnhancementModel``).
"""
import os.path as osp

import torch

from baselines.dlienet.dlienet_arch import DLIENetBase
from lowlight3d.archs import build_network
from lowlight3d.models.loss_sum import LossSum
from lowlight3d.models.supervised_enhancement_model import SupervisedEnhancementModel
from lowlight3d.utils.file_hash import file_sha1
from lowlight3d.utils.paths import REPO_ROOT
from lowlight3d.utils.registry import MODEL_REGISTRY, register

__all__ = ['DLIENetTeacherModel', 'DLIENetStudentModel', 'resolve_teacher_weights', 'file_sha1']



def resolve_teacher_weights(path, root=None):
    """The teacher weight file of the student stage, or a clear error.

    Args:
        path (str | None): ``path.pretrain_network_teacher`` (relative paths: to the working folder, then to
            ``root`` (the run's ``path.root``), then to the repository root).
        root (str, optional): The folder the runs write ``experiments/`` into.

    Returns:
        str: An existing file.

    Raises:
        ValueError: When ``path`` is not set. FileNotFoundError: When no candidate exists.
    """
    if not path:
        raise ValueError('DLIENet.StudentModel: path.pretrain_network_teacher is required: the net_g_*.pth of the '
                         'trained teacher stage (e.g. experiments/DLIENet_teacher_FFHQ/models/net_g_latest.pth, from '
                         'options/train/Baselines/train_DLIENet_teacher_FFHQ.yml)')
    candidates = [path] if osp.isabs(path) else [path] + [osp.join(r, path) for r in (root, REPO_ROOT) if r]
    for candidate in candidates:
        if osp.isfile(candidate):
            return candidate
    parts = osp.normpath(path).split(osp.sep)
    stage = parts[parts.index('experiments') + 1] if 'experiments' in parts[:-1] else None
    hint = (f"train the teacher stage (experiment '{stage}') first" if stage else 'train the teacher stage first')
    raise FileNotFoundError(f'DLIENet.StudentModel: the teacher weights path.pretrain_network_teacher = {path!r} do '
                            f'not exist (looked in: {", ".join(dict.fromkeys(candidates))}); {hint}, e.g. '
                            'python lowlight3d/train.py -opt options/train/Baselines/train_DLIENet_teacher_FFHQ.yml '
                            '(demo: options/demo/train_DLIENet_teacher_demo.yml), or fix the path')


def _to_pm1(img):
    """``[0, 1]`` images -> the networks' ``[-1, 1]`` units."""
    return img * 2 - 1


class _DLIENetStageModel(SupervisedEnhancementModel):
    """Common checks of both stages: a DLIENet ``network_g`` and only the loss blocks the stage knows.

    ``known_losses`` is also published as ``LOSS_BLOCKS`` (the base model's own check of unused loss blocks, where
    it has one).
    """

    stage = ''
    known_losses = ()

    def __init__(self, opt):
        super().__init__(opt)
        net = self.bare(self.nets['net_g'])
        if not isinstance(net, DLIENetBase):
            raise TypeError(f'{type(self).__name__}: network_g must be DLIENet.Teacher or DLIENet.Student, got '
                            f'{type(net).__name__}')
        if self.is_train:
            unknown = sorted(set(self.losses) - set(self.known_losses))
            if unknown:
                raise ValueError(f'{type(self).__name__} ({self.stage}): unknown loss block(s) '
                                 f'{[f"train.{k}_opt" for k in unknown]}; this stage uses '
                                 f'{[f"train.{k}_opt" for k in self.known_losses]}')
            if 'pixel' not in self.losses:
                raise ValueError(f'{type(self).__name__} ({self.stage}): train.pixel_opt (L1Loss) is required')


@register(MODEL_REGISTRY, name='DLIENet.TeacherModel')
class DLIENetTeacherModel(_DLIENetStageModel):
    """Stage 1: the DLIENet teacher, supervised (pixel + perceptual, on the low-light input and on the GT itself).

    Option keys: ``network_g`` (``DLIENet.Teacher``), ``train.optim_g``, ``train.scheduler``, ``train.pixel_opt``,
    ``train.perceptual_opt`` + ``train.feature_extractor``, ``train.gt_reconstruction`` [true]; see the module
    docstring.
    """

    stage = 'teacher stage'
    known_losses = LOSS_BLOCKS = ('pixel', 'perceptual')

    def __init__(self, opt):
        super().__init__(opt)
        if not self.is_train:
            return
        train_opt = opt['train']
        self.gt_reconstruction = train_opt.get('gt_reconstruction', True)
        if not isinstance(self.gt_reconstruction, bool):
            raise ValueError(f'train.gt_reconstruction must be true or false, got {self.gt_reconstruction!r}')
        self.features = None
        if 'perceptual' in self.losses:
            if not train_opt.get('feature_extractor'):
                raise ValueError('train.perceptual_opt needs train.feature_extractor, e.g. {type: '
                                 'FrozenVGGFeatureExtractor, arch: vgg19, layers: [conv1_2, conv2_2, conv3_4, '
                                 'conv4_4], weights: ~}')
            self.features = build_network(train_opt['feature_extractor'], where='train.feature_extractor')
            self.features = self.prepare_frozen_network(self.features)

    @property
    def uses_random_features(self):
        """Whether the perceptual features come from a random-weight VGG stand-in (label the results)."""
        return bool(getattr(self.features, 'is_random_standin', False))

    def optimize_parameters(self, current_iter):
        """One teacher step (see the module docstring); then the EMA update when ``train.ema_decay`` is set."""
        if self.gt is None:
            raise KeyError('DLIENet.TeacherModel needs paired batches (lq and gt)')
        optimizer = self.optimizers['optim_g']
        optimizer.zero_grad(set_to_none=True)
        gt = _to_pm1(self.gt)
        inputs = torch.cat([_to_pm1(self.lq), gt]) if self.gt_reconstruction else _to_pm1(self.lq)
        images = self.nets['net_g'](inputs, distill=True).image
        parts = images.chunk(2) if self.gt_reconstruction else (images, )
        self.output = (parts[0].detach().clamp(-1, 1) + 1) / 2
        terms = LossSum()
        for suffix, image in zip(('', '_gt'), parts):
            terms.add(f'pixel{suffix}', self.losses['pixel'](image, gt))
        if 'perceptual' in self.losses:
            with torch.no_grad():
                feats_gt = self.features(self.gt)
            feats = self.features((images + 1) / 2)
            for k, suffix in enumerate(('', '_gt')[:len(parts)]):
                mine = [f.chunk(len(parts))[k] for f in feats]
                terms.add(f'perceptual{suffix}', self.losses['perceptual'](mine, feats_gt))
        grads = self.grad_norm_logs(current_iter, terms.values, [images])
        self.backward(terms.total)
        self.optimizer_step(optimizer)
        self.log_dict = self.reduce_loss_dict(terms.logs(**grads))
        if 'net_g_ema' in self.nets:
            self.update_ema('net_g_ema', self.ema_decay)


@register(MODEL_REGISTRY, name='DLIENet.StudentModel')
class DLIENetStudentModel(_DLIENetStageModel):
    """Stage 2: the DLIENet student, distilled from the frozen teacher of stage 1.

    Option keys: ``network_g`` (``DLIENet.Student``), ``network_teacher`` (``DLIENet.Teacher``, same ``num_feat``),
    ``path.pretrain_network_teacher`` (required for training; not used for testing), ``path.param_key_teacher``,
    ``train.optim_g``, ``train.scheduler``, ``train.pixel_opt``, ``train.soft_opt``, ``train.feature_opt``,
    ``train.attention_opt``; see the module docstring.
    """

    stage = 'student stage'
    known_losses = LOSS_BLOCKS = ('pixel', 'soft', 'feature', 'attention')

    def __init__(self, opt):
        super().__init__(opt)
        self.teacher, self.teacher_sha1 = None, None
        if not self.is_train:
            return
        if 'network_teacher' not in opt:
            raise KeyError('DLIENet.StudentModel needs the option block network_teacher (e.g. {type: DLIENet.Teacher, '
                           'num_feat: 96}, as in the teacher stage)')
        weights = resolve_teacher_weights(opt['path'].get('pretrain_network_teacher'), opt['path'].get('root'))
        opt['path']['pretrain_network_teacher'] = weights
        self.teacher_sha1 = file_sha1(weights)
        self.add_network('net_teacher', trainable=False)  # built, loaded (strict) and frozen as every network
        self.teacher = self.nets.pop('net_teacher').eval()  # ... but kept out of the checkpoints
        student = self.bare(self.nets['net_g'])
        if not isinstance(self.teacher, DLIENetBase):
            raise TypeError(f'network_teacher must be DLIENet.Teacher, got {type(self.teacher).__name__}')
        if self.teacher.num_feat != student.num_feat:
            raise ValueError(f'DLIENet: the student (network_g.num_feat = {student.num_feat}) must have the teacher\'s '
                             f'width (network_teacher.num_feat = {self.teacher.num_feat}): the feature and attention '
                             'maps are compared element by element')
        self.use_teacher = any(k in self.losses for k in ('soft', 'feature', 'attention'))

    def print_networks(self, logger):
        """Log the trained networks and the frozen teacher."""
        super().print_networks(logger)
        if self.teacher is not None:
            count = sum(p.numel() for p in self.teacher.parameters())
            logger.info(f'Frozen teacher: {type(self.teacher).__name__}, {count:,} parameters, from '
                        f"{self.opt['path']['pretrain_network_teacher']} (sha1 {self.teacher_sha1[:12]})")

    def optimize_parameters(self, current_iter):
        """One student step against the ground truth and the frozen teacher (see the module docstring)."""
        if self.gt is None:
            raise KeyError('DLIENet.StudentModel needs paired batches (lq and gt)')
        optimizer = self.optimizers['optim_g']
        optimizer.zero_grad(set_to_none=True)
        lq = _to_pm1(self.lq)
        out = self.nets['net_g'](lq, distill=True)
        self.output = (out.image.detach().clamp(-1, 1) + 1) / 2
        terms = LossSum()
        terms.add('pixel', self.losses['pixel'](out.image, _to_pm1(self.gt)))
        if self.use_teacher:
            self.teacher.eval()
            with torch.no_grad():
                ref = self.teacher(lq, distill=True)
            if 'soft' in self.losses:
                terms.add('soft', self.losses['soft'](out.image, ref.image))
            if 'feature' in self.losses:
                terms.add('feature', self.losses['feature']([out.bot2, out.bot1], [ref.bot2, ref.bot1]))
            if 'attention' in self.losses:
                terms.add('attention', self.losses['attention']([out.att2, out.att1], [ref.att2, ref.att1]))
        grads = self.grad_norm_logs(current_iter, terms.values, [out.image])
        self.backward(terms.total)
        self.optimizer_step(optimizer)
        self.log_dict = self.reduce_loss_dict(terms.logs(**grads))
        if 'net_g_ema' in self.nets:
            self.update_ema('net_g_ema', self.ema_decay)

    def extra_state(self):
        """The SHA-1 of the teacher file, so that a resumed run can tell whether its teacher changed."""
        return {'teacher_sha1': self.teacher_sha1}

    def load_extra_state(self, state):
        """Warn when the run is resumed with a teacher file other than the one it started with."""
        before = (state or {}).get('teacher_sha1')
        if before and self.teacher_sha1 and before != self.teacher_sha1:
            from basicsr.utils import get_root_logger
            get_root_logger().warning(
                f"DLIENet: resuming with a different teacher file ({self.opt['path']['pretrain_network_teacher']}, "
                f'sha1 {self.teacher_sha1[:12]}) than the run started with (sha1 {before[:12]}); the distillation '
                'target has changed')
