"""Low-FaceNet training: EnhanceNet with contrastive, perceptual, colour, smoothness, semantic and face losses.

One iteration (``docs/baselines.md`` section 5): ``r, i = net_g(lq, return_illumination=True)``, then the
weighted sum of every configured term (a term is on when its block is present; defaults are the original's weights):

* ``feature_contrast_opt`` (0.62), ``perceptual_opt`` (1): on the features of one frozen VGG16
  (``train.feature_extractor``, :class:`~lowlight3d.archs.vgg_feature_extractor_arch.VGGFeatureExtractor`, built with
  the union of the layers these losses name; not ImageNet-normalised, as the original);
* ``brightness_contrast_opt`` (0.22), ``color_opt`` (0.05): against the batch's ``pos`` / ``neg`` images;
* ``smooth_opt`` (0.65): on the illumination ``i`` guided by ``lq``;
* ``semantic_opt`` (1): on the parsing ``mask``;
* ``face_opt`` (1): :class:`~baselines.lowfacenet.lowfacenet_face_loss.FaceRecognitionLoss` on the ``identity``
  names; its gallery is built when the model is built (so a missing weight file or gallery fails at start-up).

Then ``backward``, gradient-norm clipping at ``train.grad_clip`` (0.1 in the original) and the optimiser step.
Logged besides the ``l_*`` terms: ``face_found`` (share of the batch with a detected face) and ``face_acc``
(rank-1 identification accuracy of the batch).  Data: :class:`~lowlight3d.data.face_parsing_dataset.
FaceParsingLowLightDataset` (``lq``, ``mask``, ``identity``, ``pos``, ``neg``); test/val sets need ``lq`` only.
"""
from collections import OrderedDict

import torch

from lowlight3d.archs import build_network
from lowlight3d.models.base_model import BaseModel
from lowlight3d.models.loss_sum import LossSum
from lowlight3d.utils.registry import MODEL_REGISTRY, register

__all__ = ['LowFaceNetModel']

_NEEDS = {'feature_contrast': ('pos', 'neg'), 'brightness_contrast': ('pos', 'neg'), 'color': ('pos', ),
          'semantic': ('mask', ), 'face': ('identity', )}
_DATA_HINT = 'use FaceParsingLowLightDataset (with its contrast / parsing / identity blocks) for datasets.train'


@register(MODEL_REGISTRY, name='LowFaceNet.LowFaceNetModel')
class LowFaceNetModel(BaseModel):
    """Low-FaceNet (module docstring).

    Args:
        opt (dict): Resolved options.
    """

    LOSS_BLOCKS = ('feature_contrast', 'brightness_contrast', 'perceptual', 'color', 'smooth', 'semantic', 'face')

    def __init__(self, opt):
        super().__init__(opt)
        net = self.add_network('net_g')
        if not self.is_train:
            return
        net.train()
        train_opt = opt['train']
        self.build_losses()
        if not self.losses:
            raise ValueError('Low-FaceNet: no loss is configured (train.' + '_opt, train.'.join(self.LOSS_BLOCKS) +
                             '_opt)')
        self.vgg_layers = []
        for name in ('feature_contrast', 'perceptual'):
            if name in self.losses:
                self.vgg_layers += [n for n in self.losses[name].layers if n not in self.vgg_layers]
        self.features = None
        if self.vgg_layers:
            fe_opt = train_opt.get('feature_extractor')
            if not fe_opt:
                raise ValueError('train.feature_contrast_opt / perceptual_opt need train.feature_extractor, e.g. '
                                 '{type: FrozenVGGFeatureExtractor, arch: vgg16, imagenet_norm: false, weights: ~}')
            fe_opt = {**fe_opt, 'layers': list(self.vgg_layers)}
            self.features = self.prepare_frozen_network(build_network(fe_opt, where='train.feature_extractor'))
            if getattr(self.features, 'is_random_standin', False):
                self.weight_sources['vgg16'] = 'RANDOM stand-in (weights: random_for_tests)'
        if 'face' in self.losses:
            face = self.losses['face']
            face.build_gallery()
            self.weight_sources['face_loss'] = (f'{face.describe()}; gallery of {len(face.names)} identities '
                                                f"({face.stats['gallery_without_face']} images without a detected "
                                                'face, embedded whole)')
        self.grad_clip = float(train_opt.get('grad_clip', 0.1) or 0)
        self.add_optimizer('optim_g', net.parameters(), train_opt['optim_g'])
        self.setup_schedulers()

    def feed_data(self, data):
        """``lq``; in training also ``pos``, ``neg``, ``mask``, ``identity`` when present; ``gt`` when known."""
        self.lq = data['lq'].to(self.device)
        self.gt = data['gt'].to(self.device) if 'gt' in data else None
        self.pos = data['pos'].to(self.device) if 'pos' in data else None
        self.neg = data['neg'].to(self.device) if 'neg' in data else None
        self.mask = data['mask'].to(self.device) if 'mask' in data else None
        self.identity = data.get('identity')

    def _check_batch(self):
        for loss, keys in _NEEDS.items():
            if loss in self.losses:
                for key in keys:
                    if getattr(self, 'identity' if key == 'identity' else key) is None:
                        raise KeyError(f"Low-FaceNet: train.{loss}_opt needs '{key}' in the training batches; "
                                       f'{_DATA_HINT}')

    def _feats(self, img):
        return dict(zip(self.vgg_layers, self.features(img)))

    def optimize_parameters(self, current_iter):
        """One step on the fed batch (module docstring)."""
        self._check_batch()
        net, losses = self.nets['net_g'], self.losses
        self.optimizers['optim_g'].zero_grad(set_to_none=True)
        out, illum = net(self.lq, return_illumination=True)  # through forward(): DDP-safe
        self.output = out
        terms = LossSum()
        if self.features is not None:
            fa = self._feats(out)
            with torch.no_grad():
                fp = self._feats(self.pos) if 'feature_contrast' in losses else None
                fn = self._feats(self.neg) if 'feature_contrast' in losses else None
                fx = self._feats(self.lq) if 'perceptual' in losses else None
        if 'feature_contrast' in losses:
            terms.add('feature_contrast', losses['feature_contrast'](fa, fp, fn))
        if 'brightness_contrast' in losses:
            terms.add('brightness_contrast', losses['brightness_contrast'](out, self.pos, self.neg))
        if 'perceptual' in losses:
            terms.add('perceptual', losses['perceptual'](fx, fa))
        if 'color' in losses:
            terms.add('color', losses['color'](out, self.pos))
        if 'smooth' in losses:
            terms.add('smooth', losses['smooth'](self.lq, illum))
        if 'semantic' in losses:
            terms.add('semantic', losses['semantic'](out, self.mask))
        extra = OrderedDict()
        if 'face' in losses:
            terms.add('face', losses['face'](out, self.identity))
            stats = losses['face'].stats
            extra['face_found'] = stats['found'] / max(1, stats['images'])
            extra['face_acc'] = losses['face'].last_accuracy
        grads = self.grad_norm_logs(current_iter, terms.values, [out])
        self.backward(terms.total)
        if self.grad_clip > 0:
            self.clip_gradients(self.optimizers['optim_g'], net.parameters(), self.grad_clip)
        self.optimizer_step(self.optimizers['optim_g'])
        self.log_dict = self.reduce_loss_dict(terms.logs(**extra, **grads))
