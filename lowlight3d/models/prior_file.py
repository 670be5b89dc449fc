"""One self-contained file for the frozen 3D prior: network options, weights and sampling defaults.

The prior stage's output (the tri-plane DDPM, or the V6 regressor, plus the renderer that turns tri-planes into
``T``/``D`` maps) is kept as one dict, the *prior record*, that loads with ``torch.load(..., weights_only=True)``:

=====================  ==========================================================================================
key                    content
=====================  ==========================================================================================
``format``             ``'lowlight3d-prior-1'``
``denoiser``           ``{'options': network_g block of the prior stage, 'params': state dict}`` (EMA weights
                       where the checkpoint has them; includes the standardisation statistics)
``renderer``           ``{'options': {type: TriplaneRenderer, ...}, 'params': state dict}`` (the generator's
                       renderer, or the stage's ``network_renderer`` for external tri-planes)
``plane_resolution``   side ``R`` of the tri-planes (the denoiser's input size is ``R * 2**image_downsample``)
``diffusion``          the schedule block (``num_steps``, ``beta_*``, ``schedule``, ``objective``)
``sampling``           defaults: ``steps``, ``sampler``, ``eta``, ``clip``, ``variance``, ``flip_consistent``,
                       ``seed``
``source``             provenance strings (option file, weight files), for people only
=====================  ==========================================================================================

:func:`save_prior_file` / :func:`load_prior_file` write and read it (atomically; contents checked on both sides),
:func:`prior_record_from_options` makes it from the prior stage's option file and checkpoints,
:func:`extractor_from_prior` builds the :class:`~lowlight3d.models.prior_extractor.PriorExtractor` it describes
and :func:`prior_record_fingerprint` names it (weights + settings; two records with the same fingerprint compute
the same prior).  The self-contained model files of :mod:`lowlight3d.inference.model_file` embed this same dict.
"""
import hashlib

import torch

from lowlight3d.utils.checkpoint import atomic_save, load_checkpoint

__all__ = ['PRIOR_FORMAT', 'SAMPLING_KEYS', 'PriorFileError', 'prior_record', 'prior_record_from_extractor',
           'prior_record_from_options', 'renderer_options', 'check_prior_record', 'save_prior_file', 'load_prior_file',
           'extractor_from_prior', 'prior_record_fingerprint']

PRIOR_FORMAT = 'lowlight3d-prior-1'
#: Sampling settings a prior record carries (the extractor's arguments) plus the seed.
SAMPLING_KEYS = ('steps', 'sampler', 'eta', 'clip', 'variance', 'flip_consistent', 'seed')


class PriorFileError(ValueError):
    """A prior record (or file) is incomplete or malformed; the message names the file and the key."""


def _cpu_state(net):
    """A detached CPU copy of a module's state dict (plain dict)."""
    return {k: v.detach().to('cpu').clone() for k, v in net.state_dict().items()}


def prior_record(denoiser_opt, denoiser_params, renderer_opt, renderer_params, plane_resolution, diffusion,
                 sampling, source=None):
    """Assemble (and check) a prior record from its parts; see the module docstring for the keys."""
    record = {
        'format': PRIOR_FORMAT,
        'denoiser': {'options': dict(denoiser_opt), 'params': dict(denoiser_params)},
        'renderer': {'options': dict(renderer_opt), 'params': dict(renderer_params)},
        'plane_resolution': int(plane_resolution),
        'diffusion': dict(diffusion or {}),
        'sampling': {k: sampling[k] for k in SAMPLING_KEYS if k in sampling},
        'source': {k: str(v) for k, v in (source or {}).items()},
    }
    check_prior_record(record)
    return record


def prior_record_from_extractor(extractor, denoiser_opt, renderer_opt, diffusion=None, seed=0, source=None):
    """The record of a live :class:`~lowlight3d.models.prior_extractor.PriorExtractor`.

    Args:
        extractor (PriorExtractor): Built extractor (its networks, schedule and sampling settings are read).
        denoiser_opt (dict): Option block the denoiser was built from (``type`` included).
        renderer_opt (dict): Option block of the renderer (``type: TriplaneRenderer`` + its arguments).
        diffusion (dict, optional): Schedule block; the extractor's schedule objective is added.
        seed (int): Sampling seed the method uses.
        source (dict, optional): Provenance strings.
    """
    diffusion = dict(diffusion or {})
    diffusion['objective'] = extractor.schedule.objective
    sampling = {'steps': extractor.steps, 'sampler': extractor.sampler, 'eta': extractor.eta, 'clip': extractor.clip,
                'variance': extractor.variance, 'flip_consistent': extractor.flip_consistent, 'seed': int(seed)}
    plane_res = extractor.image_size // 2**int(extractor.denoiser.image_downsample)
    return prior_record(denoiser_opt, _cpu_state(extractor.denoiser), renderer_opt, _cpu_state(extractor.renderer),
                        plane_res, diffusion, sampling, source)


def renderer_options(stage_opt):
    """The renderer's option block from a prior-stage option dict (generator's ``renderer`` or ``network_renderer``)."""
    from lowlight3d.models.prior_extractor import triplane_source
    if triplane_source(stage_opt) == 'renderer':
        return dict(stage_opt['network_renderer'])
    gen = stage_opt['network_generator']
    renderer = dict(gen.get('renderer') or {})
    renderer.setdefault('plane_channels', (gen.get('encoder') or {}).get('plane_channels', 32))
    return {'type': 'TriplaneRenderer', **renderer}


def prior_record_from_options(ddpm_options, denoiser_weights, generator_weights=None, renderer_weights=None, seed=0,
                              **overrides):
    """The record of the prior stage given by its option file and checkpoints.

    Args:
        ddpm_options (str | dict): The prior stage's option file (DDPM or regressor) or its loaded dict.
        denoiser_weights (str): Its ``net_g_*.pth``.
        generator_weights (str, optional): ``net_generator_*.pth`` (default: the file's ``path`` entry).
        renderer_weights (str, optional): For renderer-only stages (external tri-planes).
        seed (int): Sampling seed.
        **overrides: Sampling settings replacing the file's ``prior`` block (``steps``, ``sampler`` ...).
    """
    from lowlight3d.models.prior_extractor import PriorExtractor
    from lowlight3d.utils.options import load_config
    where = ddpm_options if isinstance(ddpm_options, str) else 'prior options'
    opt = load_config(ddpm_options) if isinstance(ddpm_options, str) else ddpm_options
    extractor = PriorExtractor.from_options(opt, denoiser_weights, generator_weights, renderer_weights, **overrides)
    source = {'options': where, 'denoiser_weights': denoiser_weights,
              'generator_weights': generator_weights or renderer_weights or
              (opt.get('path') or {}).get('pretrain_network_generator') or
              (opt.get('path') or {}).get('pretrain_network_renderer')}
    return prior_record_from_extractor(extractor, opt['network_g'], renderer_options(opt), opt.get('diffusion'),
                                       seed, source)


def check_prior_record(record, where='prior record'):
    """Check that ``record`` has every key with the right kind of value; raise :class:`PriorFileError` if not."""
    if not isinstance(record, dict):
        raise PriorFileError(f'{where}: expected a dict, got {type(record).__name__}')
    if record.get('format') != PRIOR_FORMAT:
        raise PriorFileError(f"{where}: format is {record.get('format')!r}, expected {PRIOR_FORMAT!r} (write it with "
                             'lowlight3d.models.prior_file.save_prior_file)')
    for part in ('denoiser', 'renderer'):
        block = record.get(part)
        if not isinstance(block, dict) or not isinstance(block.get('options'), dict) or 'type' not in block['options']:
            raise PriorFileError(f"{where}: '{part}.options' must be an option block with a 'type' key")
        params = block.get('params')
        if not isinstance(params, dict) or not params or not all(torch.is_tensor(v) for v in params.values()):
            raise PriorFileError(f"{where}: '{part}.params' must be a non-empty state dict of tensors")
    if not isinstance(record.get('plane_resolution'), int) or record['plane_resolution'] <= 0:
        raise PriorFileError(f"{where}: 'plane_resolution' must be a positive int, got "
                             f"{record.get('plane_resolution')!r}")
    if not isinstance(record.get('diffusion'), dict):
        raise PriorFileError(f"{where}: 'diffusion' must be the schedule block (a dict)")
    sampling = record.get('sampling')
    if not isinstance(sampling, dict) or 'steps' not in sampling or 'sampler' not in sampling:
        raise PriorFileError(f"{where}: 'sampling' must hold at least steps and sampler, got {sampling!r}")
    stats = record['denoiser']['params'].get('stats_ready')
    if stats is not None and not bool(stats):
        raise PriorFileError(f'{where}: the denoiser has no standardisation statistics (stats_ready is false): it '
                             'was not trained by TriplaneDiffusionModel')
    return record


def save_prior_file(path, record=None, **kwargs):
    """Write a prior file atomically.

    Args:
        path (str): Target ``.pth`` file.
        record (dict, optional): A prior record; otherwise ``kwargs`` go to :func:`prior_record_from_options`
            (``ddpm_options``, ``denoiser_weights``, ``generator_weights``, ``seed``, sampling overrides).

    Returns:
        dict: The record written.
    """
    if record is None:
        record = prior_record_from_options(**kwargs)
    check_prior_record(record, where=f'prior record for {path}')
    atomic_save(record, path)
    return record


def load_prior_file(path):
    """Load and check a prior file (``weights_only=True``: loading never runs code from the file)."""
    return check_prior_record(load_checkpoint(path, what='prior file'), where=f'prior file {path}')


def extractor_from_prior(record, device='cpu', **overrides):
    """Build the :class:`~lowlight3d.models.prior_extractor.PriorExtractor` a prior record describes.

    Args:
        record (dict): A prior record (checked).
        device (str | torch.device): Device of the prior networks.
        **overrides: Sampling settings replacing the record's (``steps``, ``sampler``, ``cache`` ...); ``seed``
            replaces the returned seed.

    Returns:
        tuple[PriorExtractor, int]: The extractor and the sampling seed.
    """
    from lowlight3d.archs import build_network
    from lowlight3d.models.prior_extractor import PriorExtractor
    check_prior_record(record)
    nets = {}
    for part in ('denoiser', 'renderer'):
        net = build_network(record[part]['options'], where=f'prior record {part}.options')
        net.load_state_dict(record[part]['params'], strict=True)
        for p in net.parameters():
            p.requires_grad_(False)
        nets[part] = net.eval()
    sampling = {**record['sampling'], **overrides}
    seed = int(sampling.pop('seed', 0))
    extractor = PriorExtractor.from_renderer(nets['denoiser'], nets['renderer'], record['plane_resolution'],
                                             record['diffusion'], device=device, **sampling)
    return extractor, seed


def prior_record_fingerprint(record):
    """sha256 (hex) of a record's weights, network options, schedule and sampling settings (not its provenance)."""
    from lowlight3d.models.prior_extractor import tensor_digest
    digest = hashlib.sha256(PRIOR_FORMAT.encode())
    for part in ('denoiser', 'renderer'):
        digest.update(f"{part}:{sorted(record[part]['options'].items())!r}".encode())
        for key, value in sorted(record[part]['params'].items()):
            digest.update(f'{part}.{key}:{tensor_digest(value)}'.encode())
    digest.update(repr((record['plane_resolution'], sorted(record['diffusion'].items()),
                        sorted(record['sampling'].items()))).encode())
    return digest.hexdigest()
