"""A model file (or an option file + weights) ready to enhance tensors: the method's own ``test()`` behind it.

:class:`LoadedModel` rebuilds the registered training model of the record in test mode (baselines are found
through the ``lowlight3d.plugins`` entry point), loads the record's test-network weights and, for our method,
the frozen 3D prior from the embedded prior record.  Two ways to call it:

* :meth:`LoadedModel.enhance`: the method's ``test()`` on a batch, exactly as ``test.py`` runs it (our method
  samples the prior on the input itself: right for aligned faces; ZERO-IG optimises on the input);
* :meth:`LoadedModel.context` + :meth:`LoadedModel.enhance_region`: for tiling a whole photo.  Whatever is global
  is computed once on the whole image (our method: the prior, sampled on the whole image and upsampled to its
  size); each tile then runs the network with the matching crop of it, so tiles agree at their seams.
  Per-image optimisation (ZERO-IG) is not tileable (:attr:`LoadedModel.tileable` is False).
"""
import torch

from lowlight3d.archs.checkpoint_upgrade import load_weights_checked
from lowlight3d.archs.prior_maps import uniform_prior
from lowlight3d.inference.model_file import ModelFileError, build_training_model, load_model_file

__all__ = ['LoadedModel', 'load_model']


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
        self.model = build_training_model(record['options'], record['model_type'], record['name'], self.device)
        self.network = self.model.test_network()
        try:
            load_weights_checked(self.network, record['params'], f"the model file of {record['name']}", 'net_g')
        except RuntimeError as err:  # options and weights of the file do not fit: one clear line, no traceback
            raise ModelFileError(f"{err} The file's options and its weights disagree: export it again with "
                                 'scripts/export_model.py from the option file of its weights.') from None
        self.network.eval()
        self.prior = None
        if record.get('prior') is not None:
            from lowlight3d.models.prior_file import extractor_from_prior
            overrides = {'steps': int(prior_steps)} if prior_steps else {}
            if prior_flip is not None:
                overrides['flip_consistent'] = bool(prior_flip)
            self.prior, seed = extractor_from_prior(record['prior'], self.device, **overrides)
            self.model.prior, self.model.prior_seed = self.prior, seed
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
        """The method's ``test()`` on a batch ``(B, 3, H, W)`` in ``[0, 1]``; returns the clamped result (float32)."""
        x = x.to(self.device, torch.float32)
        names = list(names) if names is not None else [f'image{i}' for i in range(x.shape[0])]
        self.model.feed_data({'lq': x, 'lq_path': [f'{n}.png' for n in names]})
        with self._autocast():
            self.model.test()
        return self.model.output.detach().float().clamp(0, 1)

    @torch.no_grad()
    def context(self, x):
        """Global part of a whole image ``(1, 3, H, W)``: ``None``, or our method's prior upsampled to ``H x W``."""
        if self.prior is None:
            return None
        out = self.prior.extract(x.to(self.device, torch.float32), seed=self.model.prior_seed)
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
