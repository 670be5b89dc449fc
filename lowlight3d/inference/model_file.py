"""Self-contained model files: everything inference needs in one ``weights_only``-loadable ``.pth``.

``python scripts/export_model.py -opt <train or test option file> [--weights net_g_X.pth] --out model.pth`` builds
the method's training model in test mode exactly as ``test.py`` would (so the weights are those ``test.py`` infers
with: the EMA copy where the method tests with it, the student for ours) and writes the *model record*:

=====================  ==========================================================================================
key                    content
=====================  ==========================================================================================
``format``             ``'lowlight3d-model-1'``
``name``               the option file's ``name``
``model_type``         the registered training model that defines how the method infers (``test()``)
``options``            the model-relevant option blocks (``network_g``, ``train`` (test-time settings of
                       per-image optimisation such as ZERO-IG read their defaults there), ``test_opt``,
                       ``manual_seed``); no paths are needed to use them
``params``             state dict of the test network (``network``: which label it was: net_g or net_g_ema)
``prior``              for our method: the prior record of :mod:`lowlight3d.models.prior_file` (network options,
                       weights and sampling defaults of the frozen 3D prior), else None
``face_size``          side faces are aligned to (the method's test ``gt_size``, else 256; ``--face_size``)
``per_image_steps``    optimisation steps per image (ZERO-IG's zero-shot ``test_opt.steps``; 0 otherwise)
``source``             provenance (option file, weights file, time, lowlight3d version), for people only
=====================  ==========================================================================================

:func:`load_model_file` reads and checks it; :class:`~lowlight3d.inference.loaded_model.LoadedModel` runs it.
A prior-stage option file (``TriplaneDiffusionModel``) has no enhancement network: :func:`export_model` refuses
it and says to write a prior file (``scripts/export_model.py --prior``).
"""
import copy
import logging
import time

import torch

from lowlight3d.utils.checkpoint import atomic_save, load_checkpoint

__all__ = ['MODEL_FORMAT', 'ModelFileError', 'export_model', 'model_record', 'check_model_record', 'save_model_file',
           'load_model_file', 'build_training_model', 'face_size_of']

MODEL_FORMAT = 'lowlight3d-model-1'
#: Option blocks a model record keeps (what the training model reads at test time).
_OPTION_KEYS = ('network_g', 'train', 'test_opt', 'manual_seed')
#: Model types of the prior stage (no enhancement network).
_PRIOR_STAGES = ('TriplaneDiffusionModel', 'TriplaneGeneratorModel')


class ModelFileError(ValueError):
    """A model file (or record) is malformed or cannot be made; the message says what and how to fix it."""


def _plain(value):
    """``value`` with tuples as lists (``weights_only`` keeps plain containers; YAML gives only these)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def face_size_of(opt, default=256):
    """Side of whole aligned faces for a method: the ``gt_size`` of its first ``test*``, then ``val*`` set, else
    ``default`` (the paper's 256).  Training sets are not consulted: their ``gt_size`` is a crop, not a face."""
    datasets = opt.get('datasets') or {}
    for prefix in ('test', 'val'):
        for phase, block in datasets.items():
            if phase.startswith(prefix) and isinstance(block, dict) and isinstance(block.get('gt_size'), int):
                return int(block['gt_size'])
    return int(default)


class _quiet_basicsr:
    """Silence BasicSR's root logger while a model is built (its test-time warnings address ``test.py`` users)."""

    def __enter__(self):
        self.logger = logging.getLogger('basicsr')
        self.level = self.logger.level
        self.logger.setLevel(logging.ERROR)

    def __exit__(self, *exc):
        self.logger.setLevel(self.level)


def build_training_model(options, model_type, name='model', device='cpu'):
    """The registered training model ``model_type`` in test mode, from a record's option blocks, without weights.

    Plug-ins (baselines) are loaded through the ``lowlight3d.plugins`` entry point, never imported by name.
    """
    from lowlight3d.models import build_model
    from lowlight3d.utils.registry import load_plugins
    load_plugins()
    opt = copy.deepcopy(options)
    opt.update(name=name, model_type=model_type, is_train=False, dist=False, rank=0, world_size=1, num_gpu=0,
               device='cpu', path={}, prior=None)
    with _quiet_basicsr():
        model = build_model(opt)
    for label, net in model.nets.items():
        model.nets[label] = net.to(device)
    model.device = torch.device(device)
    return model


def _test_label(model):
    """Label of ``model.test_network()`` in ``model.nets``."""
    net = model.test_network()
    for label, candidate in model.nets.items():
        if model.bare(candidate) is net:
            return label
    raise ModelFileError(f'{type(model).__name__}.test_network() is not one of its networks {list(model.nets)}')


def _prior_of_model(model):
    """The prior record of a built model: its live extractor's weights and sampling settings, with the network
    options and schedule of the prior file it loaded (:class:`~lowlight3d.models.prior_loading.LoadedPrior`)."""
    from lowlight3d.models.prior_file import prior_record_from_extractor
    loaded = model.loaded_prior
    parts = (loaded.record['denoiser']['options'], loaded.record['renderer']['options'], loaded.record['diffusion'])
    return prior_record_from_extractor(model.prior, *parts, model.prior_seed, {'prior_file': loaded.path})


def model_record(model, opt, source=None, face_size=None):
    """The record of a built (test-mode, weights loaded) training model; see the module docstring."""
    from lowlight3d.version import __version__
    net = model.test_network()
    prior = None
    if getattr(model, 'prior', None) is not None:
        prior = _prior_of_model(model)
    record = {
        'format': MODEL_FORMAT,
        'name': str(opt['name']),
        'model_type': str(opt['model_type']),
        'options': _plain({k: opt[k] for k in _OPTION_KEYS if k in opt}),
        'network': _test_label(model),
        'params': {k: v.detach().to('cpu').clone() for k, v in net.state_dict().items()},
        'prior': prior,
        'face_size': int(face_size or face_size_of(opt)),
        'per_image_steps': int(getattr(model, 'test_steps', 0) or 0),
        'source': _plain({**(source or {}), 'time': time.strftime('%Y-%m-%d %H:%M:%S'), 'lowlight3d': __version__}),
    }
    return check_model_record(record)


def export_model(opt_path, weights=None, cfg_options=(), face_size=None, allow_untrained=False, prior_steps=None):
    """Build the method of an option file in test mode and return its model record.

    Args:
        opt_path (str): Training or test option file of an enhancement method (ours, an ablation or a baseline).
        weights (str, optional): ``net_g_*.pth`` (sets ``path.pretrain_network_g``; default: the file's own).
        cfg_options (Sequence[str]): ``key=value`` overrides, as ``--cfg-options``.
        face_size (int, optional): Alignment size (default: :func:`face_size_of`).
        allow_untrained (bool): Export networks without trained weights (tests and timing only).
        prior_steps (int, optional): Override the prior's sampling steps stored as default.

    Returns:
        dict: The model record (write it with :func:`save_model_file`).
    """
    from lowlight3d.models import build_model
    from lowlight3d.pipeline.option_loading import load_options
    overrides = list(cfg_options or [])
    if weights:
        overrides.append(f'+path.pretrain_network_g={weights}')  # + : a test file may have no path block
    if prior_steps is not None:
        overrides.append(f'+prior.steps={int(prior_steps)}')
    opt = load_options(opt_path, is_train=False, cfg_options=overrides)
    if opt['model_type'] in _PRIOR_STAGES:
        raise ModelFileError(f"{opt_path}: model_type {opt['model_type']} is a 3D prior stage, not an enhancement "
                             'method. Write its prior file instead: python scripts/export_model.py --prior -opt '
                             f'{opt_path} --out prior.pth')
    with _quiet_basicsr():
        model = build_model(opt)
    untrained = model.untrained_networks()
    if untrained and not allow_untrained:
        raise ModelFileError(f'{opt_path}: {untrained} would be exported with untrained initial weights: pass '
                             '--weights experiments/<name>/models/net_g_latest.pth (or set path.pretrain_network_g)')
    source = {'options': opt_path, 'weights': opt['path'].get('pretrain_network_g') or 'none (no trained weights)'}
    return model_record(model, opt, source, face_size)


def check_model_record(record, where='model record'):
    """Check a model record's keys and kinds; raise :class:`ModelFileError` naming what is wrong."""
    from lowlight3d.models.prior_file import PriorFileError, check_prior_record
    if not isinstance(record, dict):
        raise ModelFileError(f'{where}: expected a dict, got {type(record).__name__}')
    if record.get('format') != MODEL_FORMAT:
        raise ModelFileError(f"{where}: format is {record.get('format')!r}, expected {MODEL_FORMAT!r}; make one "
                             'with python scripts/export_model.py -opt <option file> --out model.pth')
    for key, kind in (('name', str), ('model_type', str), ('options', dict), ('network', str), ('params', dict),
                      ('face_size', int), ('per_image_steps', int)):
        if not isinstance(record.get(key), kind):
            raise ModelFileError(f"{where}: '{key}' must be a {kind.__name__}, got {type(record.get(key)).__name__}")
    if 'network_g' not in record['options']:
        raise ModelFileError(f"{where}: options.network_g is missing")
    if not all(torch.is_tensor(v) for v in record['params'].values()):
        raise ModelFileError(f"{where}: 'params' must be a state dict of tensors")
    if record.get('prior') is not None:
        try:
            check_prior_record(record['prior'], where=f'{where}: prior')
        except PriorFileError as err:
            raise ModelFileError(str(err)) from err
    return record


def save_model_file(record, path):
    """Check and write a model record atomically; returns ``path``."""
    check_model_record(record, where=f'model record for {path}')
    atomic_save(record, path)
    return path


def load_model_file(path):
    """Load and check a model file (``weights_only=True``; no option file or experiment folder needed)."""
    return check_model_record(load_checkpoint(path, what='model file'), where=f'model file {path}')
