"""The ``prior`` option block of a method -> one :class:`LoadedPrior` handle (the frozen 3D prior it names).

A method guided by the 3D prior names it by one self-contained prior file (``prior.file``: the
``models/prior_<iter>.pth`` that the prior stage writes, :mod:`lowlight3d.models.prior_file`: network options,
weights, diffusion schedule and sampling defaults).  The block's other keys:

==================  ===================================================================================
key                 meaning
==================  ===================================================================================
``file``            the prior file (relative paths: the working folder, then the repository root)
``fingerprint``     sha256 of the prior (:func:`~lowlight3d.models.prior_file.prior_record_fingerprint`);
                    when set, a different prior is refused.  Training records it in the saved options.
``seed``            sampling seed (default: the file's)
``cache``           ``true``: in memory, plus files when ``cache_dir`` is set (default); ``disk``: files in
                    ``cache_dir`` only; ``false``: no cache (``cache_dir`` must then be unset)
``cache_dir``       folder of the cached priors (a sub-folder per prior file and fingerprint)
``refresh``         which prior a re-degraded training pair gets (:func:`prior_refresh`)
anything else       a sampling setting of the extractor overriding the file's (``steps``, ``sampler``,
                    ``eta``, ``clip``, ``flip_consistent`` ...)
==================  ===================================================================================

A prior stage that has checkpoints but no prior file gets one with ``python scripts/export_model.py --prior -opt
<stage option file> --weights <its net_g_*.pth> --out <file>``.
"""
import hashlib
import json
import os
import os.path as osp
from dataclasses import dataclass

from lowlight3d.utils.paths import REPO_ROOT

__all__ = ['LoadedPrior', 'load_prior', 'resolve_prior_file', 'prior_refresh', 'PRIOR_BLOCK_KEYS', 'PRIOR_REFRESH',
           'PRIOR_CACHE']

#: Keys of a ``prior`` block that are not sampling settings of the extractor.
PRIOR_BLOCK_KEYS = ('file', 'fingerprint', 'seed', 'refresh', 'cache', 'cache_dir')
#: Values of ``prior.refresh``.
PRIOR_REFRESH = ('once', 'per_sample')
#: Values of ``prior.cache``.
PRIOR_CACHE = (True, False, 'disk')
# The form before prior files: refused with the command that converts it.
_RETIRED_KEYS = ('ddpm_options', 'denoiser_weights', 'generator_weights')


@dataclass
class LoadedPrior:
    """A frozen 3D prior ready to sample, and where it came from.

    Attributes:
        extractor (PriorExtractor): ``extract(lq, seed) -> {'T': [...], 'D': [...], ...}``.
        seed (int): Sampling seed.
        fingerprint (str): sha256 of the prior (weights, options, schedule, sampling settings).
        path (str): The prior file it was loaded from.
        record (dict): The checked prior record of that file (network options, schedule, provenance).
    """

    extractor: object
    seed: int
    fingerprint: str
    path: str
    record: dict

    def describe(self):
        """str: One line for the log: the file and the fingerprint."""
        return f'3D prior file {self.path} (fingerprint {self.fingerprint})'


def resolve_prior_file(path, where='prior.file'):
    """The prior file ``path`` as given (relative to the working folder) or relative to the repository root.

    Raises:
        FileNotFoundError: Neither exists; the message says which stage writes it.
    """
    for candidate in (path, osp.join(REPO_ROOT, path)):
        if osp.isfile(candidate):
            return candidate
    raise FileNotFoundError(f'{where}: the prior file {path!r} does not exist (relative paths are taken from the '
                            f'working folder, then from the repository root {REPO_ROOT}). Train the prior stage '
                            'first (it writes experiments/<stage>/models/prior_latest.pth) or fix the path.')


def _check_block(prior_opt, where):
    """Clear errors for a block without ``file``, in the retired form, or with a wrong ``cache``."""
    retired = [k for k in _RETIRED_KEYS if prior_opt.get(k)]
    if retired:
        raise ValueError(f'{where}.{retired[0]}: a prior is named by {where}.file only (one file holding the '
                         'networks, their options and sampling defaults). Convert the prior stage with python '
                         'scripts/export_model.py --prior -opt <stage option file> --weights <its net_g_*.pth> '
                         f'--out <file>, then set {where}.file: <file> and remove {sorted(retired)}.')
    if not prior_opt.get('file'):
        raise ValueError(f'{where}.file is required (the prior file of the prior stage, e.g. experiments/'
                         f'<stage>/models/prior_latest.pth); set {where}: ~ to train without a 3D prior (ablation V5)')
    cache, cache_dir = prior_opt.get('cache', True), prior_opt.get('cache_dir')
    if cache is None:
        cache = False
    if cache not in PRIOR_CACHE or isinstance(cache, (int, float)) and not isinstance(cache, bool):
        raise ValueError(f'{where}.cache must be true (in memory, plus files when cache_dir is set), disk (files in '
                         f'cache_dir only) or false (no cache), got {cache!r}')
    if cache is False and cache_dir:
        raise ValueError(f'{where}.cache is false (no cache) but {where}.cache_dir is set: set cache: disk to keep '
                         'priors in files only, cache: true for memory and files, or cache_dir: ~')
    if cache == 'disk' and not cache_dir:
        raise ValueError(f'{where}.cache: disk needs {where}.cache_dir')
    return cache, cache_dir


def load_prior(prior_opt, device='cpu', where='prior'):
    """Load the frozen 3D prior a ``prior`` option block names (see the module docstring for its keys).

    Args:
        prior_opt (dict): The block.
        device (str | torch.device): Device of the prior networks.
        where (str): Option path for error messages.

    Returns:
        LoadedPrior: The extractor (with its cache set up as the block says), seed, fingerprint, file and record.

    Raises:
        ValueError: A malformed block, or a ``fingerprint`` that the file does not have.
        FileNotFoundError: The file does not exist.
    """
    from lowlight3d.models.prior_file import extractor_from_prior, load_prior_file, prior_record_fingerprint
    cache, cache_dir = _check_block(prior_opt, where)
    path = resolve_prior_file(prior_opt['file'], f'{where}.file')
    record = load_prior_file(path)
    fingerprint = prior_record_fingerprint(record)
    expected = prior_opt.get('fingerprint')
    if expected and expected != fingerprint:
        raise ValueError(f'{where}.fingerprint is {expected} but the prior it names has fingerprint {fingerprint}: '
                         'the prior file changed since this experiment was set up. Point the block at the original '
                         'prior, or remove the fingerprint to accept the new one.')
    overrides = {k: v for k, v in prior_opt.items() if k not in PRIOR_BLOCK_KEYS}
    extractor, seed = extractor_from_prior(record, device, **overrides)
    if prior_opt.get('seed') is not None:
        seed = int(prior_opt['seed'])
    if cache is True:
        extractor.cache = {}
    if cache_dir:
        extractor.cache_dir = osp.join(cache_dir, f'{osp.splitext(osp.basename(path))[0]}_{fingerprint[:12]}')
        os.makedirs(extractor.cache_dir, exist_ok=True)
    return LoadedPrior(extractor=extractor, seed=seed, fingerprint=fingerprint, path=path, record=record)


#: Keys of a training dataset block (and of its ``paired``/``unpaired`` blocks) that decide the degradation of a
#: training sample: the degradation itself, the crop and flip, and the per-sample seeding, which draws from
#: ``(seed, epoch, index)`` (:mod:`lowlight3d.data.seeding`) with indices up to ``len * dataset_enlarge_ratio``.
#: Paths, batch size, workers and the I/O backend do not change a sample and are left out of the namespace.
_DEGRADATION_KEYS = ('type', 'degradation', 'gt_size', 'use_hflip', 'seed', 'dataset_enlarge_ratio')


def _degradation_options(block):
    """The part of a dataset option block that decides what a training sample looks like."""
    block = block or {}
    picked = {k: block[k] for k in _DEGRADATION_KEYS if k in block}
    for sub in ('paired', 'unpaired'):
        if isinstance(block.get(sub), dict):
            picked[sub] = _degradation_options(block[sub])
    return picked


def prior_refresh(opt):
    """``(refresh, namespace)`` of a model's options: ``prior.refresh`` (``once`` by default, or ``per_sample``)
    and, for ``once``, a digest of what decides the degradation of a training sample (``datasets.train*``'s
    :data:`_DEGRADATION_KEYS`) and ``manual_seed`` that separates its cache entries (the kept prior is that of the
    first degradation of *this* training set; moving the data or changing the batch size keeps it)."""
    prior_opt = opt.get('prior') or {}
    refresh = prior_opt.get('refresh', 'once')
    if refresh not in PRIOR_REFRESH:
        raise ValueError(f'prior.refresh must be one of {PRIOR_REFRESH} (once: the first prior of each training face '
                         f'is kept; per_sample: every degraded input gets its own prior), got {refresh!r}')
    train_data = {k: _degradation_options(v) for k, v in (opt.get('datasets') or {}).items() if k.startswith('train')}
    tag = json.dumps({'data': train_data, 'seed': opt.get('manual_seed')}, sort_keys=True, default=str)
    return refresh, ('once:' + hashlib.sha256(tag.encode()).hexdigest()[:16]) if refresh == 'once' else ''
