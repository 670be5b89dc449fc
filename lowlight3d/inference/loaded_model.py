"""A model file (or an option file + weights) ready to enhance tensors.

How a method infers is declared by its registered training model (``NETWORK_INFERENCE``,
:class:`~lowlight3d.models.base_model.BaseModel`):

* **a network call** (``True``: ours, the U-Net, EnlightenGAN, UHDformer, DLIENet, Low-FaceNet, HVI-CIDNet): the
  test network is built from the record's ``network_g`` and run alone, ``net(x)``, or ``net(x, prior)`` with the 3D
  prior of the record's prior file (our method samples it on the input itself: right for aligned faces); no training
  model is built;
* **a procedure** (``False``: ZERO-IG's per-image optimisation, RDDM's and IC-FSRDENet's sampling): the training
  model is built in test mode and its ``test()`` runs, exactly as ``test.py`` runs it.

Two ways to call it:

* :meth:`LoadedModel.enhance`: the method on a batch;
* :meth:`LoadedModel.context` + :meth:`LoadedModel.enhance_region`: for tiling a whole photo.  Whatever is global
  is computed once on the whole image (our method: the prior, sampled on the whole image and upsampled to its
  size); each tile then runs the network with the matching crop of it, so tiles agree at their seams.
  Per-image optimisation (ZERO-IG) is not tileable (:attr:`LoadedModel.tileable` is False).
"""
import torch

from lowlight3d.archs.checkpoint_upgrade import load_weights_checked
from lowlight3d.archs.prior_maps import prior_on, uniform_prior
from lowlight3d.inference.model_file import ModelFileError, build_training_model, load_model_file

__all__ = ['LoadedModel', 'load_model', 'inference_is_a_network_call']


def inference_is_a_network_call(model_type):
    """Whether the registered model ``model_type`` infers by one call of its test network (``NETWORK_INFERENCE``);
    plug-ins (baselines) are found through the ``lowlight3d.plugins`` entry point."""
    from lowlight3d.utils.registry import MODEL_REGISTRY, get_from_registry
    return bool(get_from_registry(MODEL_REGISTRY, model_type, where='model_type of the model file').NETWORK_INFERENCE)


class LoadedModel:
    """An enhancement method loaded for inference.

    Args:
        record (dict): A model record (:func:`~lowlight3d.inference.model_file.load_model_file`).
        device (str | torch.device): Device.
        prior_steps (int, optional): Sampling steps of the 3D prior (default: the record's).
        prior_flip (bool, optional): Flip-consistent prior averaging (2 samples) on or off (default: the record's).
    """

    def __init__(self, record, device='cpu', prior_steps=None, prior_flip=None):
        self.record = record
        self.device = torch.device(device)
        self.name = record['name']
        self.face_size = int(record['face_size'])
        self.per_image_steps = int(record['per_image_steps'])
        self.prior, self.prior_seed = None, 0
        if record.get('prior') is not None:
            from lowlight3d.models.prior_file import extractor_from_prior
            overrides = {'steps': int(prior_steps)} if prior_steps else {}
            if prior_flip is not None:
                overrides['flip_consistent'] = bool(prior_flip)
            self.prior, self.prior_seed = extractor_from_prior(record['prior'], self.device, **overrides)
        self.procedure = None  # the training model in test mode, for a method whose inference is a procedure
        if inference_is_a_network_call(record['model_type']):
            from lowlight3d.archs import build_network
            self.network = build_network(record['options']['network_g'], where='network_g of the model file')
            self.network.to(self.device)
        elif self.prior is not None:
            raise ModelFileError(f"{record['model_type']} infers by a procedure of its own and takes no 3D prior, but "
                                 f"the model file of {record['name']} holds one: export it again.")
        else:
            self.procedure = build_training_model(record['options'], record['model_type'], record['name'],
                                                  self.device)
            self.network = self.procedure.test_network()
        try:
            load_weights_checked(self.network, record['params'], f"the model file of {record['name']}", 'net_g')
        except RuntimeError as err:  # options and weights of the file do not fit: one clear line, no traceback
            raise ModelFileError(f"{err} The file's options and its weights disagree: export it again with "
                                 'scripts/export_model.py from the option file of its weights.') from None
        self.network.eval()
        self.autocast_dtype = None

    @property
    def uses_prior(self):
        """bool: The method is guided by a 3D prior (ours)."""
        return self.prior is not None

    @property
    def tileable(self):
        """bool: Tiles of one image may be enhanced separately (False for per-image optimisation)."""
        return self.per_image_steps == 0

    def describe(self):
        """str: One line naming the method and its network."""
        count = sum(p.numel() for p in self.network.parameters())
        extra = ''
        if self.prior is not None:
            extra = f', 3D prior ({self.prior.sampler}, {self.prior.steps} steps)'
        if self.per_image_steps:
            extra += f', {self.per_image_steps} optimisation steps per image'
        return f'{self.name} ({self.record["model_type"]}, {type(self.network).__name__}, {count:,} parameters{extra})'

    @property
    def autocast_dtype(self):
        """torch.dtype | None: The ``--half`` autocast type (None: float32). Setting a half type also puts the
        networks (the prior's too) in channels-last memory, which oneDNN/cuDNN run fastest in half precision."""
        return self._autocast_dtype

    @autocast_dtype.setter
    def autocast_dtype(self, dtype):
        self._autocast_dtype = dtype
        if dtype is not None:
            for net in (self.network, getattr(self.prior, 'denoiser', None), getattr(self.prior, 'renderer', None)):
                if isinstance(net, torch.nn.Module):
                    net.to(memory_format=torch.channels_last)

    def _autocast(self):
        if self.autocast_dtype is None:
            return torch.autocast(self.device.type, enabled=False)
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    @torch.no_grad()
    def enhance(self, x, names=None):
        """The method on a batch ``(B, 3, H, W)`` in ``[0, 1]``; returns the clamped result (float32).

        ``names`` (one per image) seed what a procedure draws per image (sampling noise, optimisation).
        """
        x = x.to(self.device, torch.float32)
        with self._autocast():
            if self.procedure is None:
                if self.prior is None:
                    out = self.network(x)
                else:
                    out = self.network(x, prior_on(self.prior.extract(x, seed=self.prior_seed), self.device))
            else:
                names = list(names) if names is not None else [f'image{i}' for i in range(x.shape[0])]
                self.procedure.feed_data({'lq': x, 'lq_path': [f'{n}.png' for n in names]})
                self.procedure.test()
                out = self.procedure.output
        return out.detach().float().clamp(0, 1)

    @torch.no_grad()
    def context(self, x):
        """Global part of a whole image ``(1, 3, H, W)``: ``None``, or our method's prior upsampled to ``H x W``."""
        if self.prior is None:
            return None
        out = self.prior.extract(x.to(self.device, torch.float32), seed=self.prior_seed)
        size = tuple(x.shape[-2:])
        full = {}
        for key, value in (('T', out['render']), ('D', out['depth'])):
            full[key] = torch.nn.functional.interpolate(value.float(), size=size, mode='bilinear',
                                                        align_corners=False)
        return full

    @torch.no_grad()
    def enhance_region(self, x, context, box):
        """Enhance a region ``x`` (a tile with its padding) of a whole image whose :meth:`context` is given.

        Args:
            x (torch.Tensor): ``(1, 3, h, w)`` tile. context: :meth:`context` of the whole image.
            box (tuple): ``(y0, y1, x0, x1)`` of the tile in the whole image.
        """
        if self.prior is None:
            return self.enhance(x)
        y0, y1, x0, x1 = box
        t = context['T'][..., y0:y1, x0:x1].to(self.device)
        d = context['D'][..., y0:y1, x0:x1].to(self.device)
        with self._autocast():
            out = self.network(x.to(self.device, torch.float32), uniform_prior(t, d))
        return out.detach().float().clamp(0, 1)


def load_model(model_path=None, opt=None, weights=None, device='cpu', prior_steps=None, allow_untrained=False,
               prior_flip=None):
    """A :class:`LoadedModel` from a model file, or from an option file (+ weights) through an in-memory export.

    Args:
        model_path (str, optional): Model file written by ``scripts/export_model.py``.
        opt (str, optional): Option file (instead of ``model_path``). weights (str, optional): Its ``net_g_*.pth``.
        device (str): Device. prior_steps (int, optional): Prior sampling steps. prior_flip (bool, optional):
            Flip-consistent prior on/off (default: the model file's).
        allow_untrained (bool): Accept networks without trained weights (option-file route; tests only).
    """
    if bool(model_path) == bool(opt):
        raise ValueError('Give exactly one of a model file (--model model.pth) and an option file (-opt X.yml '
                         '[--weights net_g.pth])')
    if model_path:
        record = load_model_file(model_path)
    else:
        from lowlight3d.inference.model_file import export_model
        record = export_model(opt, weights=weights, allow_untrained=allow_untrained)
    return LoadedModel(record, device=device, prior_steps=prior_steps, prior_flip=prior_flip)
