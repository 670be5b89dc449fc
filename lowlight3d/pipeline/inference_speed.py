"""CPU milliseconds per image at inference for every method of the toolkit, measured side by side in one process.

Protocol (``scripts/inference_speed.py``):

* every option file's ``network_g`` is built with **random weights** (the time of a forward pass does not depend on
  the weights), put in ``eval()`` mode and run under ``torch.no_grad()`` on one ``1 x 3 x size x size`` input
  (paper: 256);
* an option file with a ``prior`` block (ours) gives two rows: the enhancer alone, with the prior maps given as
  inputs (:meth:`~lowlight3d.archs.prior_guided_enhancer_arch.PriorGuidedEnhancer.example_inputs`), and the
  enhancer plus the extraction of its 3D prior (:meth:`~lowlight3d.models.prior_extractor.PriorExtractor.extract`,
  no cache) with the sampling settings the model would use (the prior stage's ``prior`` block, overridden by the
  method's own); the prior networks are built with random weights from the prior stage's option file
  (:func:`prior_stage_options`: the stage whose experiment folder holds the method's prior file) by
  ``random_extractor`` of :mod:`lowlight3d.models.prior_extractor`;
* a ZERO-IG option file (``ZeroIG.ZeroIGModel``) with ``test_opt.steps > 0`` (or ``zero_shot_steps``) adds a row
  for its test-time procedure (:meth:`~baselines.zero_ig.zero_ig_model.ZeroIGModel.zero_shot`: that many
  optimisation steps on the image, then the forward pass); its plain forward row is always given;
* all rows are timed in interleaved rounds (A, B, C, ..., then A, B, C, ... again) so that changes of the
  machine's load hit every method alike: ``warmup`` untimed rounds, then ``repeat`` timed ones; each time is the
  wall time (``time.perf_counter``) of one call, and the median and minimum are reported, with the number of
  torch threads.
"""
import argparse
import contextlib
import os
import os.path as osp
import statistics
import sys
import tempfile
import time
import warnings

import torch

from lowlight3d.archs import build_network
from lowlight3d.models.prior_extractor import random_extractor
from lowlight3d.pipeline.complexity import count_parameters, example_inputs
from lowlight3d.utils.options import load_config
from lowlight3d.utils.paths import REPO_ROOT
from lowlight3d.utils.registry import import_custom_modules, load_plugins
from lowlight3d.utils.results_table import format_table

__all__ = ['DEFAULT_OPTIONS', 'TimedCall', 'prior_stage_options', 'prior_settings', 'parse_prior_variants',
           'timed_calls_from_options',
           'time_interleaved', 'inference_speed', 'main']

#: The paper-scale option files of every method: ours, then the baselines.
DEFAULT_OPTIONS = (
    'options/train/LowLight3D/train_LowLight3D_FFHQ_CelebVLow.yml',
    'options/train/Baselines/train_EnlightenGAN_FFHQ.yml',
    'options/train/Baselines/train_ZeroIG_FFHQ.yml',
    'options/train/Baselines/train_HVICIDNet_FFHQ.yml',
    'options/train/Baselines/train_UHDformer_FFHQ.yml',
    'options/train/Baselines/train_DLIENet_student_FFHQ.yml',
)


class TimedCall:
    """One row to time: a method, what is run, its parameter count and a no-argument callable.

    Args:
        method (str): Method name (the option file's ``name``).
        what (str): What one call does.
        params (int): Parameters of the networks the call runs.
        fn (callable): One inference on one image.
    """

    def __init__(self, method, what, params, fn):
        self.method, self.what, self.params, self.fn = method, what, int(params), fn


def _existing(path):
    """``path`` as given (relative to the working folder), else relative to the repository root."""
    if osp.isfile(path):
        return path
    candidate = osp.join(REPO_ROOT, path)
    if osp.isfile(candidate):
        return candidate
    raise FileNotFoundError(f'option file {path!r} not found (relative paths are taken from the working folder, then '
                            f'from the repository root {REPO_ROOT})')


def prior_stage_options(prior_opt):
    """The option file of the prior stage that a method's ``prior`` block names (for its network layout).

    Its ``file`` (the prior file that stage writes, ``experiments/<stage name>/models/prior_*.pth``) need not exist
    yet, since the timing uses random weights: the
    stage is the option file under ``options/`` whose ``name`` is ``<stage name>``.

    Raises:
        ValueError: the block names no file, or no option file (or more than one) has that name.
    """
    if not prior_opt.get('file'):
        raise ValueError('the prior block names no file (the prior file of the prior stage)')
    path = osp.normpath(prior_opt['file'])
    parts = path.split(os.sep)
    if len(parts) < 3 or parts[-2] != 'models':
        raise ValueError(f"prior.file {prior_opt['file']!r} is not experiments/<stage name>/models/<file>: the prior "
                         "stage's option file cannot be found from it")
    stage = parts[-3]
    found = []
    for folder, _, files in os.walk(osp.join(REPO_ROOT, 'options')):
        for name in sorted(files):
            if name.endswith('.yml'):
                with open(osp.join(folder, name)) as f:
                    if any(line.split('#')[0].strip() == f'name: {stage}' for line in f):
                        found.append(osp.join(folder, name))
    if len(found) != 1:
        raise ValueError(f"prior.file {prior_opt['file']!r}: expected one option file under options/ with "
                         f'name: {stage} (the prior stage that writes it), found {len(found)}: {found}')
    return found[0]


def prior_settings(prior_opt):
    """The prior stage's option file and the extractor settings a method's ``prior`` block amounts to.

    The settings are the ``prior`` block of the prior stage's option file (``steps``, ``sampler``, ``eta``, ``clip``,
    ``flip_consistent`` ...; the sampling defaults its prior file records), overridden by the extractor arguments of
    the method's own block, as :func:`~lowlight3d.models.prior_loading.load_prior`
    does.

    Returns:
        tuple[str, dict]: ``(prior option file, settings)``.
    """
    from lowlight3d.models.prior_loading import PRIOR_BLOCK_KEYS
    ddpm_path = prior_stage_options(prior_opt)
    settings = dict(load_config(ddpm_path).get('prior') or {})
    settings.update({k: v for k, v in prior_opt.items() if k not in PRIOR_BLOCK_KEYS})
    for key in ('cache', 'cache_dir', 'device'):
        settings.pop(key, None)
    return ddpm_path, settings


def _describe_prior(ext):
    flip = ', flip-consistent (2 samples)' if ext.flip_consistent else ''
    if ext.sampler == 'regression':
        return f'enhancer + prior (one regression pass{flip})'
    return f'enhancer + prior ({ext.steps} {ext.sampler} steps{flip})'


def _has_zero_shot(raw):
    """Whether the option file's ``model_type`` has a per-image test-time procedure (``zero_shot``: ZERO-IG)."""
    from lowlight3d.utils.registry import MODEL_REGISTRY, get_from_registry
    model_type = raw.get('model_type')
    return bool(model_type) and hasattr(get_from_registry(MODEL_REGISTRY, model_type, where='model_type'), 'zero_shot')


def _zero_shot_model(opt_path, raw, steps, workdir):
    """A test-mode model of a zero-shot option file with random initial weights and ``test_opt.steps = steps``."""
    from lowlight3d.models import build_model
    from lowlight3d.pipeline.option_loading import load_options
    cfg = ['num_gpu=0', f'test_opt.steps={int(steps)}' if 'test_opt' in raw else f'+test_opt.steps={int(steps)}']
    if (raw.get('path') or {}).get('pretrain_network_g'):
        cfg.append('path.pretrain_network_g=~')
    opt = load_options(opt_path, is_train=False, cfg_options=cfg, root_path=workdir)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return build_model(opt)


def _precision(net, half):
    """``(autocast context factory, row suffix)`` of ``--half`` on the CPU; puts ``net`` in channels-last."""
    if not half:
        return contextlib.nullcontext, ''
    from lowlight3d.inference.devices import half_dtype
    dtype, reason = half_dtype(torch.device('cpu'), True)
    if dtype is None:
        return contextlib.nullcontext, f' [{reason}]'
    net.to(memory_format=torch.channels_last)
    return (lambda: torch.autocast('cpu', dtype=dtype)), ' [--half: bf16 autocast, channels_last]'


def _prepare(x, half):
    return x.contiguous(memory_format=torch.channels_last) if half and torch.is_tensor(x) and x.dim() == 4 else x


def _with_prior(net, ext, lq, precision):
    """One call: extract the prior of ``lq`` (no cache), then the enhancer, under ``precision``."""
    def call():
        with torch.no_grad(), precision():
            out = ext.extract(lq, seed=0, use_cache=False)
            net(lq, {'T': out['T'], 'D': out['D']})
    return call


def parse_prior_variants(steps=None, flips=None):
    """Extractor overrides from ``--prior-steps`` and ``--prior-flip`` (their product); None when neither is given."""
    if not steps and not flips:
        return None
    flip_values = [{'on': True, 'off': False}[f] for f in flips] if flips else [None]
    variants = []
    for s in steps or [None]:
        for f in flip_values:
            variant = {}
            if s is not None:
                variant['steps'] = int(s)
            if f is not None:
                variant['flip_consistent'] = f
            variants.append(variant)
    return variants


def timed_calls_from_options(opt_path, size=256, zero_shot_steps=None, seed=0, workdir=None, half=False,
                             prior_variants=None):
    """The rows one option file contributes (random weights, eval mode, no gradient; see the module docstring).

    Args:
        opt_path (str): Option file (training or test).
        size (int): Input height and width.
        zero_shot_steps (int, optional): Test-time steps of a zero-shot model (ZERO-IG; ignored for the other
            models); default the option file's ``test_opt.steps`` (0: forward only).
        seed (int): Seed of the random weights and inputs.
        workdir (str, optional): Folder for the resolved options of a zero-shot model (nothing is written there).
        half (bool): Run every call under the ``--half`` autocast of :func:`lowlight3d.inference.devices.half_dtype`
            (bf16 on a CPU with native bf16) with channels-last networks and inputs; the rows say so.
        prior_variants (list[dict], optional): Extractor overrides (``steps``, ``flip_consistent``), one
            ``enhancer + prior`` row each, instead of the single row of the file's own settings.

    Returns:
        list[TimedCall]: The enhancer forward, plus ``enhancer + prior`` for a method with a ``prior`` block and
        the zero-shot procedure for a zero-shot model with steps > 0.
    """
    opt_path = _existing(opt_path)
    raw = load_config(opt_path)
    load_plugins()
    import_custom_modules(raw.get('custom_imports'))
    method = raw.get('name') or osp.splitext(osp.basename(opt_path))[0]
    block = raw.get('network_g')
    if not isinstance(block, dict) or 'type' not in block:
        raise ValueError(f'{opt_path} defines no network_g block')
    torch.manual_seed(seed)
    net = build_network(block, where='network_g').eval()
    inputs = example_inputs(net, size)
    enhancer_params = count_parameters(net)
    precision, suffix = _precision(net, half)
    inputs = [_prepare(x, half) for x in inputs]

    def forward():
        with torch.no_grad(), precision():
            net(*inputs)

    what = f"{block['type']} forward" + (' (prior maps given)' if len(inputs) > 1 else '') + suffix
    calls = [TimedCall(method, what, enhancer_params, forward)]
    prior_opt = raw.get('prior')
    if isinstance(prior_opt, dict) and prior_opt:
        ddpm_path, settings = prior_settings(prior_opt)
        sampler = settings.pop('sampler', 'ddim')
        lq = inputs[0]
        for variant in prior_variants or [{}]:
            ext, _ = random_extractor(ddpm_path, sampler=sampler, seed=seed, **{**settings, **variant})
            if half:
                _precision(ext.denoiser, half)
                _precision(ext.renderer, half)
            calls.append(TimedCall(method, _describe_prior(ext) + suffix,
                                   enhancer_params + count_parameters(ext.denoiser) + count_parameters(ext.renderer),
                                   _with_prior(net, ext, lq, precision)))
    steps = int((raw.get('test_opt') or {}).get('steps', 0) or 0) if zero_shot_steps is None else int(zero_shot_steps)
    if steps > 0 and _has_zero_shot(raw):
        torch.manual_seed(seed)
        model = _zero_shot_model(opt_path, raw, steps, workdir or tempfile.gettempdir())
        img = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 0.2

        def zero_shot():
            model.zero_shot(img, 'inference_speed')

        calls.append(TimedCall(method, f'zero-shot test time ({steps} optimisation steps + forward)',
                               count_parameters(model.nets['net_g']), zero_shot))
    return calls


def time_interleaved(calls, warmup=1, repeat=5, log=None):
    """Wall milliseconds of each call, in interleaved rounds (every call once per round).

    Args:
        calls (list[TimedCall]): What to time.
        warmup (int): Untimed rounds first.
        repeat (int): Timed rounds.
        log (callable, optional): Called with a progress line after each round.

    Returns:
        list[list[float]]: The ``repeat`` times of each call, in milliseconds.
    """
    if repeat < 1 or warmup < 0:
        raise ValueError(f'repeat must be >= 1 and warmup >= 0, got {repeat} and {warmup}')
    times = [[] for _ in calls]
    for r in range(warmup + repeat):
        for i, call in enumerate(calls):
            t0 = time.perf_counter()
            call.fn()
            elapsed = (time.perf_counter() - t0) * 1000
            if r >= warmup:
                times[i].append(elapsed)
        if log:
            log(f'  round {r + 1}/{warmup + repeat} ({"warm-up" if r < warmup else "timed"}) done')
    return times


def inference_speed(opt_paths=DEFAULT_OPTIONS, size=256, threads=2, warmup=1, repeat=5, zero_shot_steps=None,
                    seed=0, log=None, half_modes=(False, ), prior_variants=None):
    """Median and minimum milliseconds per image of every method's inference, side by side (one process).

    Args:
        opt_paths (list[str]): Option files (default :data:`DEFAULT_OPTIONS`).
        size (int): Input height and width (paper: 256).
        threads (int): ``torch.set_num_threads`` for the whole measurement.
        warmup (int): Untimed interleaved rounds.
        repeat (int): Timed interleaved rounds.
        zero_shot_steps (int, optional): Test-time steps of zero-shot models (default: each file's ``test_opt``).
        seed (int): Seed of the random weights and inputs.
        log (callable, optional): Progress lines.
        half_modes (Sequence[bool]): Build every row in float32 (False) and/or under ``--half`` (True).
        prior_variants (list[dict], optional): See :func:`timed_calls_from_options`.

    Returns:
        list[dict]: One row per timed call: ``method``, ``what``, ``params_M``, ``ms_median``, ``ms_min``,
        ``threads``.  The previous number of torch threads is restored afterwards.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    try:
        calls = []
        with tempfile.TemporaryDirectory() as workdir:
            for path in opt_paths:
                for half in half_modes:
                    calls += timed_calls_from_options(path, size, zero_shot_steps, seed, workdir, half,
                                                      prior_variants)
            if log:
                log(f'{len(calls)} rows built; timing {warmup} warm-up + {repeat} timed interleaved rounds')
            times = time_interleaved(calls, warmup, repeat, log)
            used = torch.get_num_threads()
    finally:
        torch.set_num_threads(previous)
    return [{'method': c.method, 'what': c.what, 'params_M': c.params / 1e6, 'ms_median': statistics.median(t),
             'ms_min': min(t), 'threads': used} for c, t in zip(calls, times)]


def main(argv=None):
    """Command-line entry point of ``scripts/inference_speed.py``; returns the rows."""
    parser = argparse.ArgumentParser(description='CPU milliseconds per image at inference for every method, side by '
                                     'side in one process (random weights, interleaved rounds).')
    parser.add_argument('opts', nargs='*', default=list(DEFAULT_OPTIONS),
                        help='Option files (default: the paper-scale files of ours and every baseline).')
    parser.add_argument('--size', type=int, default=256, help='Input height and width (paper: 256).')
    parser.add_argument('--threads', type=int, default=2, help='torch.set_num_threads for the whole run.')
    parser.add_argument('--warmup', type=int, default=1, help='Untimed interleaved rounds first.')
    parser.add_argument('--repeat', type=int, default=5, help='Timed interleaved rounds (median and min reported).')
    parser.add_argument('--zero-shot-steps', type=int, default=None,
                        help='Test-time steps of zero-shot models (ZERO-IG); default each file\'s test_opt.steps '
                        '(0 in the training files: forward only). Adds a row; the forward row stays.')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', help='Also write the Markdown table (with its header lines) to this file.')
    parser.add_argument('--half', choices=['off', 'on', 'both'], default='off',
                        help='Rows under --half (bf16 autocast + channels_last on a CPU with native bf16): on, or both '
                             'float32 and half rows side by side.')
    parser.add_argument('--prior-steps', type=int, nargs='+', help='One prior row per number of sampling steps.')
    parser.add_argument('--prior-flip', nargs='+', choices=['on', 'off'],
                        help='Prior rows with / without flip-consistent averaging (2 samples).')
    args = parser.parse_args(argv)
    half_modes = {'off': (False, ), 'on': (True, ), 'both': (False, True)}[args.half]
    load = os.getloadavg()[0] if hasattr(os, 'getloadavg') else float('nan')
    with contextlib.redirect_stdout(sys.stderr):  # progress and build messages on stderr, the table on stdout
        rows = inference_speed(args.opts, args.size, args.threads, args.warmup, args.repeat, args.zero_shot_steps,
                               args.seed, log=lambda line: print(line, flush=True), half_modes=half_modes,
                               prior_variants=parse_prior_variants(args.prior_steps, args.prior_flip))
    load_end = os.getloadavg()[0] if hasattr(os, 'getloadavg') else float('nan')
    header = (f'Inference time per 1x3x{args.size}x{args.size} image on CPU, {args.threads} torch threads, one '
              f'process, {args.warmup} warm-up + {args.repeat} timed interleaved rounds (wall time, '
              f'time.perf_counter); load average {load:.2f} at start, {load_end:.2f} at end.\n'
              'RANDOM WEIGHTS: the networks are built from the option files with random weights (the timing does not '
              'depend on the weights; the outputs are meaningless). eval() mode, torch.no_grad(), batch 1.\n'
              'ZERO-IG: "forward" is plain inference; its zero-shot test-time procedure (optimisation on each image) '
              'is a separate row only when test_opt.steps or --zero-shot-steps is > 0.\n')
    table = format_table(rows, digits=3)
    print(header)
    print(table)
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w', encoding='utf-8') as f:
            f.write(header + '\n' + table + '\n')
    return rows
