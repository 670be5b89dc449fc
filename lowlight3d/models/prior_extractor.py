"""3D face prior for the enhancer: low-light image -> sampled tri-planes -> render -> ``T1..T3``, ``D1..D3``.

A plain inference class (like GFPGANer): :class:`PriorExtractor` wraps a trained :class:`~lowlight3d.archs.
triplane_ddpm_arch.TriplaneDDPM` (EMA weights when the checkpoint has them), the renderer of the trained
:class:`~lowlight3d.archs.triplane_encoder_arch.TriplaneGenerator` and a
:class:`~lowlight3d.archs.diffusion_schedule.DiffusionSchedule`.

* ``T1`` = render (render size, paper 128), ``T2``/``T3`` = 2x2 / 4x4 average pools; ``D1..D3`` likewise from the
  depth guidance ``(far - depth) / (far - near) * opacity`` in ``[0, 1]`` (near = bright, background 0).
* Determinism: the noise of sample ``i`` comes from its own generator seeded by ``(seed, content digest of
  identity[i])`` (:func:`content_digest`; the identity is the input itself unless the caller names another
  tensor), so a prior depends on the image's pixels and the seed only: not on the batch it is computed in, the
  file's name or the folder it lives in.  The render is the deterministic eval render.
* Objective (``diffusion.objective`` of the option file, held by the schedule): ``'noise'`` networks are sampled
  (``ddim`` / ``paper``, ``variance`` ``'beta'`` or ``'posterior'`` for the latter); ``'regression'`` networks (paper
  ablation V6) give ``x0`` in one deterministic forward pass (sampler ``'regression'``; seeds are irrelevant).
* Flip consistency (``flip_consistent=True``, default): the prior of ``I`` is the average of the prior sampled on
  ``I`` and the horizontally flipped prior sampled on ``flip(I)`` with the same noise.  Then
  ``prior(flip(I)) = flip(prior(I))`` exactly, for any network, at twice the sampling cost (one batch of 2B).
* Tri-plane source (:func:`triplane_source`): an option file either has ``network_generator`` (the toolkit's own
  generator; its renderer renders the prior) or ``network_renderer`` + ``triplane_resolution`` (external EG3D-space
  tri-planes, :mod:`lowlight3d.data.external_triplanes`; only a renderer is needed, loaded by
  :func:`load_renderer_weights` from a toolkit checkpoint or from EG3D decoder weights).
* Cache (``cache=True``: in memory; ``cache_dir``: ``.pt`` files, loaded with ``weights_only=True``): entries are
  keyed by ``sha256(fingerprint | namespace | seed | content digest of the identity)``.  :attr:`PriorExtractor.
  fingerprint` hashes the denoiser and renderer weights and every sampling setting, so a changed image, other
  weights or other settings never hit an old entry, and the same pixels under another name or folder do.  By
  default the identity is the input itself (the cache then only saves time: results are the same with and
  without it).  A caller may key by another tensor (``identity``, e.g. the clean face of a synthetic pair: then
  the first prior computed for that face is kept, whatever later degradations look like; the training option
  ``prior.refresh: once``) and separate such entries with a ``namespace``.
* Mirrors: with ``flip_consistent`` the digest is symmetric (the same for an image and its mirror) and the prior
  is computed on the canonical orientation (the one with the smaller one-sided digest) and flipped back for the
  other, so ``prior(flip(I)) = flip(prior(I))`` holds through the cache too and one entry serves both.
  Without ``flip_consistent`` each orientation is its own image.
"""
import hashlib
import os
import os.path as osp

import torch
import torch.nn.functional as F

from lowlight3d.archs import build_network
from lowlight3d.archs.diffusion_schedule import VARIANCES, DiffusionSchedule, sampler_for
from lowlight3d.archs.eg3d_conversion import convert_eg3d_decoder, find_eg3d_decoder
from lowlight3d.archs.prior_maps import prior_pyramid
from lowlight3d.archs.triplane_renderer_arch import depth_guidance
from lowlight3d.utils.camera import canonical_label
from lowlight3d.utils.checkpoint import atomic_save, load_checkpoint, strip_module_prefix
from lowlight3d.utils.options import load_config

__all__ = ['PriorExtractor', 'random_extractor', 'sample_x0', 'seeded_generators', 'triplane_source',
           'triplane_resolution', 'load_renderer_weights', 'load_network_weights', 'build_renderer', 'content_digest',
           'tensor_digest']


def tensor_digest(tensor):
    """sha256 (hex) of a tensor's dtype, shape and exact bytes (CPU copy; any dtype)."""
    t = tensor.detach().to('cpu').contiguous()
    digest = hashlib.sha256(f'{t.dtype}|{tuple(t.shape)}|'.encode())
    digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def content_digest(img, symmetric=False):
    """Content identity of one image ``(C, H, W)``: ``(digest, mirrored)``.

    ``symmetric=False``: the digest of the float32 pixels, ``mirrored`` False.  ``symmetric=True``: one digest for
    the image and its horizontal mirror (hash of both one-sided digests, sorted); ``mirrored`` says the image is
    the non-canonical orientation (its one-sided digest is the larger one).
    """
    img = img.detach().to('cpu', torch.float32)
    own = tensor_digest(img)
    if not symmetric:
        return own, False
    mirror = tensor_digest(img.flip(-1))
    low, high = sorted((own, mirror))
    return hashlib.sha256(f'{low}|{high}'.encode()).hexdigest(), own > mirror


def triplane_source(opt, where='options'):
    """``'generator'`` (``network_generator``: own generator) or ``'renderer'`` (``network_renderer``: external
    tri-planes) for a DDPM option dict; exactly one of the two blocks must be set."""
    has_gen, has_ren = bool(opt.get('network_generator')), bool(opt.get('network_renderer'))
    if has_gen == has_ren:
        raise ValueError(f'{where}: set exactly one of network_generator (the toolkit\'s own generator encodes the '
                         'targets) and network_renderer (external tri-planes read by the dataset option '
                         f'triplane_dir; set network_generator: ~ when inheriting); got both={has_gen and has_ren}')
    return 'generator' if has_gen else 'renderer'


def triplane_resolution(opt, where='options'):
    """``triplane_resolution`` of a renderer-only option dict (the side ``R`` of the external planes)."""
    res = opt.get('triplane_resolution')
    if not isinstance(res, int) or isinstance(res, bool) or res <= 0:
        raise ValueError(f'{where}: network_renderer needs triplane_resolution, the side R of the external tri-planes '
                         f'(3, C, R, R) (EG3D encoders: 256), got {res!r}')
    return res


def load_renderer_weights(renderer, path):
    """Load renderer weights, detecting the format from the keys.

    Accepted: a toolkit checkpoint (``params``/``params_ema`` of a ``net_renderer_*.pth``, or of a
    ``net_generator_*.pth``, whose ``renderer.*`` weights are taken), a bare ``TriplaneRenderer`` state dict
    (``decoder.*``), or EG3D ``OSGDecoder`` weights (``[prefix]net.0.weight`` ...), converted by
    :func:`~lowlight3d.archs.eg3d_conversion.convert_eg3d_decoder` (equalised-LR ``1/sqrt(fan_in)`` scaling; needs
    ``plane_axes: eg3d``, ``hidden: 64``, ``plane_channels: 32``).

    Args:
        renderer (TriplaneRenderer): Network to fill.
        path (str): Weights file.

    Returns:
        str: The detected format, ``'toolkit'`` or ``'eg3d'``.
    """
    state = load_checkpoint(path, what='renderer weights')
    if not isinstance(state, dict):
        raise ValueError(f'renderer weights {path} must be a dict (state dict or checkpoint), got '
                         f'{type(state).__name__}')
    fmt = 'toolkit'
    if 'params' in state or 'params_ema' in state:
        state = strip_module_prefix(state['params_ema' if 'params_ema' in state else 'params'])
        if any(k.startswith('renderer.') for k in state):
            state = {k[len('renderer.'):]: v for k, v in state.items() if k.startswith('renderer.')}
    elif find_eg3d_decoder(state) is not None:
        if renderer.plane_axes != 'eg3d':
            raise ValueError(f'{path} holds EG3D decoder weights: set plane_axes: eg3d in network_renderer (EG3D '
                             f'projects onto (x, y), (x, z), (z, x)), not {renderer.plane_axes!r}')
        state, fmt = convert_eg3d_decoder(state), 'eg3d'
    else:
        state = strip_module_prefix(state)
    if not state or not all(k.startswith('decoder.') for k in state):
        raise KeyError(f'{path} is neither a toolkit renderer/generator checkpoint (params -> decoder.* or '
                       f'renderer.decoder.*) nor EG3D OSGDecoder weights (net.0.weight ...); keys: {list(state)[:8]}')
    try:
        renderer.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise RuntimeError(f'renderer weights {path} ({fmt} format) do not fit network_renderer (plane_channels '
                           f'{renderer.plane_channels}; EG3D: plane_channels 32, hidden 64): {err}') from err
    return fmt


def build_renderer(renderer_opt, weights, where='network_renderer'):
    """A frozen eval-mode renderer from its option block and weights file (:func:`load_renderer_weights`)."""
    renderer = build_network(renderer_opt, where=where)
    load_renderer_weights(renderer, weights)
    for p in renderer.parameters():
        p.requires_grad_(False)
    return renderer.eval()


def seeded_generators(seed, count, keys=None):
    """One ``torch.Generator`` per sample, seeded from ``(seed, keys[i])`` (content digests) or ``(seed, i)``."""
    gens = []
    for i in range(count):
        tag = f'{int(seed)}|{keys[i] if keys is not None else i}'
        gens.append(torch.Generator().manual_seed(int.from_bytes(hashlib.sha256(tag.encode()).digest()[:8], 'little')))
    return gens


@torch.no_grad()
def sample_x0(denoiser, schedule, cond_img, steps=20, sampler='ddim', eta=0.0, generators=None, clip=None,
              variance='beta'):
    """Sample standardised ``x0`` for low-light images (condition features are computed once).

    Args:
        denoiser (TriplaneDDPM): The noise predictor (eval mode).
        schedule (DiffusionSchedule): Its schedule.
        cond_img (torch.Tensor): ``(B, 3, S, S)`` low-light images in ``[0, 1]`` at the denoiser's image size.
        steps (int): Sampling steps.
        sampler (str): ``'ddim'``, ``'paper'`` or ``'regression'`` (one pass; needs ``schedule.objective`` regression).
        eta (float): DDIM stochasticity.
        generators (list, optional): Per-sample generators.
        clip (float, optional): Clamp of the predicted (standardised) ``x0`` (DDIM and paper samplers).
        variance (str): Paper sampler: ``'beta'`` (eq. 4) or ``'posterior'``.

    Returns:
        torch.Tensor: ``(B, in_channels, R, R)`` standardised ``x0``.
    """
    feats = denoiser.condition(cond_img)
    r = feats[0].shape[-1]
    shape = (cond_img.shape[0], denoiser.in_channels, feats[0].shape[-2], r)
    return schedule.sample(lambda x, t: denoiser.denoise(x, t, feats), shape, steps, sampler, eta, generators,
                           device=cond_img.device, clip=clip, variance=variance)


class PriorExtractor:
    """Frozen 3D prior: ``extract(lq, seed) -> {'T': [...], 'D': [...], 'render', 'depth', 'opacity', ...}``.

    Args:
        denoiser (TriplaneDDPM): Trained denoiser (with its standardisation statistics).
        renderer (TriplaneRenderer): Renderer of the generator that made the training targets.
        schedule (DiffusionSchedule): Diffusion schedule of the denoiser; its ``objective`` says what the denoiser
            outputs (``'noise'``: eps, sampled; ``'regression'``: ``x0`` in one pass, paper ablation V6).
        image_size (int): Size the low-light image is resized to for the denoiser.
        steps (int): Sampling steps (default 20; unused by ``'regression'``).
        sampler (str, optional): ``'ddim'`` (eta 0: deterministic given the start noise), ``'paper'`` (eq. 4) or
            ``'regression'`` (one deterministic forward pass); must fit the objective.  Default: ``'ddim'`` for
            objective ``'noise'``, ``'regression'`` for objective ``'regression'``.
        eta (float): DDIM eta.
        variance (str): Paper sampler: ``'beta'`` (eq. 4, default) or ``'posterior'`` (the smaller ``beta~``).
        clip (float, optional): Clamp of the standardised predicted ``x0`` in both samplers (default 5 standard
            deviations; None: off, i.e. the paper sampler is eq. 4 exactly).
        flip_consistent (bool): Average with the flipped prior of the flipped image (see module docstring).
        cache (bool): Keep results in memory (keyed by content, see the module docstring).
        cache_dir (str, optional): Keep them as ``.pt`` files there (with or without ``cache``).
        device (str | torch.device): Device.
    """

    def __init__(self, denoiser, renderer, schedule, image_size, steps=20, sampler=None, eta=0.0, clip=5.0,
                 flip_consistent=True, cache=False, cache_dir=None, device='cpu', variance='beta'):
        if not bool(denoiser.stats_ready):
            raise ValueError('The denoiser has no standardisation statistics (stats_ready is false): load weights '
                             'written by TriplaneDiffusionModel')
        self.device = torch.device(device)
        self.denoiser = denoiser.to(self.device).eval()
        self.renderer = renderer.to(self.device).eval()
        self.schedule, self.image_size = schedule, int(image_size)
        self.sampler = sampler_for(schedule.objective, sampler)
        if variance not in VARIANCES:
            raise ValueError(f'prior variance must be one of {VARIANCES}, got {variance!r}')
        self.steps, self.eta, self.clip, self.variance = int(steps), float(eta), clip, variance
        self.flip_consistent = bool(flip_consistent)
        self.cache = {} if cache else None
        self.cache_dir = cache_dir
        self._fingerprint = None
        if cache_dir:
            os.makedirs(cache_dir, exist_ok=True)

    @property
    def has_cache(self):
        """Whether results are cached (in memory or in ``cache_dir``)."""
        return self.cache is not None or bool(self.cache_dir)

    @property
    def fingerprint(self):
        """sha256 (hex) of the denoiser and renderer weights (every tensor of their state dicts), the schedule
        and the sampling settings: two extractors share cache entries only when they compute the same prior."""
        if self._fingerprint is None:
            digest = hashlib.sha256()
            for name, net in (('denoiser', self.denoiser), ('renderer', self.renderer)):
                for key, value in sorted(net.state_dict().items()):
                    digest.update(f'{name}.{key}:{tensor_digest(value)}'.encode())
            schedule = {k: (tensor_digest(v) if torch.is_tensor(v) else repr(v))
                        for k, v in sorted(vars(self.schedule).items())}
            settings = {'steps': self.steps, 'sampler': self.sampler, 'eta': self.eta, 'clip': self.clip,
                        'variance': self.variance, 'flip_consistent': self.flip_consistent,
                        'image_size': self.image_size, 'schedule': schedule}
            digest.update(repr(sorted(settings.items())).encode())
            self._fingerprint = digest.hexdigest()
        return self._fingerprint

    @classmethod
    def from_options(cls, opt, denoiser_weights, generator_weights=None, renderer_weights=None, **kwargs):
        """Build from a (resolved) DDPM option dict and checkpoints.

        Args:
            opt (dict | str): Options of :class:`~lowlight3d.models.triplane_diffusion_model.TriplaneDiffusionModel`
                (``network_g``, ``network_generator`` or ``network_renderer`` + ``triplane_resolution``,
                ``diffusion`` (with ``objective``), ``prior``) or the path of such a file.
            denoiser_weights (str): ``net_g_*.pth`` of the DDPM stage (``params_ema`` used when present).
            generator_weights (str, optional): ``net_generator_*.pth``; default ``path.pretrain_network_generator``.
                With a renderer-only file it is taken as the renderer weights when ``renderer_weights`` is not given
                (so callers that pass one "second file" work for both kinds).
            renderer_weights (str, optional): Renderer-only files: a ``net_renderer_*.pth`` written by the DDPM
                stage, a generator checkpoint or EG3D decoder weights (:func:`load_renderer_weights`); default
                ``generator_weights``, then ``path.pretrain_network_renderer``.
            **kwargs: Override the ``prior`` block (``steps``, ``sampler``, ``eta``, ``variance``, ``cache``,
                ``device`` ...).
        """
        if isinstance(opt, str):
            from lowlight3d.utils.options import load_config
            opt = load_config(opt)
        source = triplane_source(opt)
        prior_kwargs = {**(opt.get('prior') or {}), **kwargs}
        denoiser = build_network(opt['network_g'], where='network_g')
        load_network_weights(denoiser, denoiser_weights, 'denoiser')
        if source == 'renderer':
            weights = renderer_weights or generator_weights or opt.get('path', {}).get('pretrain_network_renderer')
            if not weights:
                raise ValueError('PriorExtractor needs the renderer weights of this renderer-only option file: pass '
                                 'renderer_weights (or generator_weights) or set path.pretrain_network_renderer')
            renderer = build_renderer(opt['network_renderer'], weights)
            return cls.from_renderer(denoiser, renderer, triplane_resolution(opt), opt.get('diffusion') or {},
                                     **prior_kwargs)
        if renderer_weights:
            raise ValueError('renderer_weights applies to renderer-only option files (network_renderer); this file '
                             'has network_generator: pass generator_weights')
        generator_weights = generator_weights or opt.get('path', {}).get('pretrain_network_generator')
        if not generator_weights:
            raise ValueError('PriorExtractor needs the generator checkpoint (net_generator_*.pth): pass '
                             'generator_weights or set path.pretrain_network_generator')
        generator = build_network(opt['network_generator'], where='network_generator')
        load_network_weights(generator, generator_weights, 'generator')
        return cls.from_networks(denoiser, generator, opt.get('diffusion') or {}, **prior_kwargs)

    @classmethod
    def from_networks(cls, denoiser, generator, diffusion_opt=None, **kwargs):
        """Build from networks: the generator gives the renderer and the image size; ``diffusion_opt`` the schedule
        and the objective."""
        plane_res = generator.encoder.plane_resolution(generator.input_size)
        return cls.from_renderer(denoiser, generator.renderer, plane_res, diffusion_opt, **kwargs)

    @classmethod
    def from_renderer(cls, denoiser, renderer, plane_resolution, diffusion_opt=None, **kwargs):
        """Build from a denoiser, a renderer and the tri-plane side ``R`` (image size ``R * 2**image_downsample``)."""
        schedule = DiffusionSchedule(**(diffusion_opt or {}))
        return cls(denoiser, renderer, schedule, int(plane_resolution) * 2**denoiser.image_downsample, **kwargs)

    def _cache_file(self, key):
        return osp.join(self.cache_dir, key + '.pt') if self.cache_dir else None

    def cache_key(self, digest, seed, namespace=''):
        """Cache key of an image's content digest: ``sha256(fingerprint | namespace | seed | digest)``."""
        return hashlib.sha256(f'{self.fingerprint}|{namespace}|{int(seed)}|{digest}'.encode()).hexdigest()

    @torch.no_grad()
    def _compute(self, lq, seed, keys):
        b = lq.shape[0]
        img = lq.to(self.device)
        if img.shape[-1] != self.image_size or img.shape[-2] != self.image_size:
            img = F.interpolate(img, size=(self.image_size, self.image_size), mode='bilinear', align_corners=False,
                                antialias=True)
        gens = seeded_generators(seed, b, keys)
        if self.flip_consistent:
            img, gens = torch.cat([img, img.flip(-1)]), gens + seeded_generators(seed, b, keys)
        x0 = sample_x0(self.denoiser, self.schedule, img, self.steps, self.sampler, self.eta, gens, self.clip,
                       self.variance)
        planes, cams = self.denoiser.split_x0(x0)
        out = self.renderer(planes, cams, deterministic=True)
        render, depth, opacity = out['image'], out['depth'], out['opacity']
        guidance = depth_guidance(depth, opacity, self.renderer.ray_start, self.renderer.ray_end)
        result = {'render': render, 'depth': guidance, 'ray_depth': depth, 'opacity': opacity, 'camera': cams}
        if self.flip_consistent:
            result = {k: (v[:b] + v[b:].flip(-1)) / 2 if v.ndim == 4 else v[:b] for k, v in result.items()}
        return {k: v.cpu() for k, v in result.items()}

    @torch.no_grad()
    def extract(self, lq, seed=0, identity=None, namespace='', use_cache=True):
        """The prior of a batch of low-light images.

        Args:
            lq (torch.Tensor): ``(B, 3, H, W)`` in ``[0, 1]``.
            seed (int): Sampling seed.
            identity (torch.Tensor, optional): ``(B, ...)`` tensors whose content names each sample for the
                per-image seed and the cache (default: ``lq`` itself).  Horizontally flipped together with
                ``lq`` (e.g. the ground truth of a synthetic pair).
            namespace (str): Separates cache entries of different meanings (e.g. one training set's
                ``refresh: once`` entries).
            use_cache (bool): Consult and fill the cache (when the extractor has one).

        Returns:
            dict: ``T`` and ``D`` (lists of 3 tensors, full, 1/2, 1/4 of the render size), ``render``
            ``(B, 3, R, R)``, ``depth`` (= ``D1``), ``ray_depth``, ``opacity``, ``camera`` ``(B, 25)`` (CPU tensors;
            the camera of the canonical orientation's sample).
        """
        b = lq.shape[0]
        identity = lq if identity is None else identity
        if identity.shape[0] != b:
            raise ValueError(f'{identity.shape[0]} identities for a batch of {b}')
        ids = [content_digest(identity[i], symmetric=self.flip_consistent) for i in range(b)]
        mirrored = [m for _, m in ids]
        use_cache = use_cache and self.has_cache
        keys = [self.cache_key(d, seed, namespace) for d, _ in ids] if use_cache else None
        results = [None] * b
        if use_cache:
            for i, key in enumerate(keys):
                entry = self._lookup(key)
                if entry is not None:
                    results[i] = _flip_entry(entry) if mirrored[i] else entry
        todo = [i for i in range(b) if results[i] is None]
        if todo:
            canonical = torch.stack([lq[i].flip(-1) if mirrored[i] else lq[i] for i in todo])
            fresh = self._compute(canonical, seed, [ids[i][0] for i in todo])
            for j, i in enumerate(todo):
                entry = {k: v[j:j + 1] for k, v in fresh.items()}
                if use_cache:
                    self._store(keys[i], entry)
                results[i] = _flip_entry(entry) if mirrored[i] else entry
        merged = {k: torch.cat([r[k] for r in results]) for k in results[0]}
        merged.update(prior_pyramid(merged['render'], merged['depth']))
        return merged

    def _lookup(self, key):
        if self.cache is not None and key in self.cache:
            return self.cache[key]
        path = self._cache_file(key)
        if path and osp.isfile(path):
            entry = load_checkpoint(path, what='prior cache entry')
            if self.cache is not None:
                self.cache[key] = entry
            return entry
        return None

    def _store(self, key, entry):
        if self.cache is not None:
            self.cache[key] = entry
        path = self._cache_file(key)
        if path:
            atomic_save(entry, path)


def _flip_entry(entry):
    """Horizontal flip of the image-like tensors of a cache entry (the camera is left as sampled)."""
    return {k: v.flip(-1) if v.ndim == 4 else v for k, v in entry.items()}


def load_network_weights(net, path, what='network'):
    """Load a toolkit checkpoint into ``net`` (strict): its ``params_ema`` when present, else ``params``.

    Args:
        net (torch.nn.Module): Network to fill (e.g. a ``TriplaneGenerator`` or a ``TriplaneDDPM``).
        path (str): ``net_*.pth`` file written by the toolkit (``module.`` prefixes are stripped).
        what (str): What the file is, for error messages (e.g. ``'generator'``).

    Raises:
        KeyError: The file has neither ``params`` nor ``params_ema``.
    """
    state = load_checkpoint(path, what=what)
    key = 'params_ema' if 'params_ema' in state else 'params'
    if key not in state:
        raise KeyError(f'{path} has no params/params_ema entry (keys: {list(state)})')
    net.load_state_dict(strip_module_prefix(state[key]), strict=True)


def random_extractor(opt_path, sampler='ddim', seed=0, **kwargs):
    """A :class:`PriorExtractor` with randomly initialised networks built from an option file (timing only).

    The denoiser's standardisation statistics are set from random tri-planes and canonical cameras, and its output
    layer gets small random weights (the zero-initialised one would make every sample the start noise).

    Returns:
        tuple: ``(extractor, input image size)``.
    """
    opt = load_config(opt_path)
    torch.manual_seed(seed)
    diffusion = dict(opt.get('diffusion') or {})
    diffusion['objective'] = 'regression' if sampler == 'regression' else 'noise'
    den = build_network(opt['network_g']).eval()
    gen = build_network(opt['network_generator']).eval()
    r = gen.encoder.plane_resolution(gen.input_size)
    with torch.no_grad():
        den.out[-1].weight.normal_(0, 0.02)
        planes = torch.randn(2, 3, den.plane_channels, r, r) * 0.1
        den.set_statistics(den.make_x0(planes, canonical_label(2)))
    return PriorExtractor.from_networks(den, gen, diffusion, sampler=sampler, **kwargs), gen.input_size
