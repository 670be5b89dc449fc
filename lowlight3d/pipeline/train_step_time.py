"""Seconds per training iteration of option files' models, float32 against their fast defaults, side by side.

Behind ``scripts/train_step_time.py``. Each row is one option file's model, built twice in one process: once as
the file says (``train.amp`` / ``train.channels_last``, the toolkit's fast defaults) and once in the float32
contiguous path (``train.amp=off train.channels_last=false``). Both train on the same random batches (``lq``,
``gt``, ``lq_unpaired`` of ``--batch`` images at ``--size``; no data needed) in interleaved iterations (fast,
float32, fast, float32, ...), so a change of the machine's load hits both alike; the median of ``--iters`` timed
iterations after one warm-up is reported, and the ratio.

Every timed iteration is the file's *last* iteration (``train.total_iter``), so that every term a schedule switches
on late (the demo's adversarial term) is on; gradient-norm logging is off. Models with a ``prior`` block get
``prior: ~``: this is the cost of an iteration once the frozen 3D prior is cached (the fusion modules then run on
all-zero prior maps of the same shapes); sampling the prior is timed by ``scripts/inference_speed.py``. Feature
extractors are random-weight stand-ins (the same compute as the real ones), and so are the weights of other stages
(``path.pretrain_network_*``) that have not been trained yet.

``--profile`` adds, per row, where the fast iteration's time goes: the forward pass of every network of the model
(its labels in ``model.nets``, the frozen feature extractor, modules whose class name ends in ``Fusion`` /
``FusionModule`` nested in them), the backward passes and the optimiser steps, the EMA update, and the rest.
"""
import argparse
import contextlib
import os.path as osp
import statistics
import tempfile
import time
import warnings
from collections import OrderedDict

import torch

from lowlight3d.models import build_model
from lowlight3d.pipeline.option_loading import load_options
from lowlight3d.utils.options import load_config
from lowlight3d.utils.results_table import format_table

__all__ = ['random_batch', 'build_timing_model', 'StepProfiler', 'time_rows', 'list_train_files', 'main']

FLOAT32 = ['train.amp=off', 'train.channels_last=false']


def random_batch(batch, size, generator):
    """A random batch with every key a model of the toolkit reads: paired and unpaired images in [0, 1]
    (``lq``, ``gt``, ``lq_unpaired``; ``ref`` for EnlightenGAN, ``cond`` for IC-FSRDENet's stage 2, ``pos`` /
    ``neg`` for Low-FaceNet's contrast), the canonical
    camera, a depth map and a full mask (the prior stages), and file-like names."""
    from lowlight3d.utils.camera import canonical_label
    names = [f'random_{i}.png' for i in range(batch)]

    def image(scale=1.0):
        return torch.rand(batch, 3, size, size, generator=generator) * scale
    return {'lq': image(0.2), 'gt': image(), 'lq_unpaired': image(0.2), 'ref': image(), 'cond': image(),
            'pos': image(), 'neg': image(0.2),
            'camera': canonical_label(batch).float(), 'depth': torch.rand(batch, 1, size, size, generator=generator),
            'mask': torch.ones(batch, 1, size, size), 'has_depth': torch.ones(batch, dtype=torch.bool),
            'lq_path': names, 'gt_path': names, 'lq_unpaired_path': names, 'ref_path': names}


def _random_weights_file(raw, block, folder):
    """A file in ``folder`` of random weights (``params``) for option block ``block`` (``network_generator``),
    standing in for the output of a stage that has not been trained; ``~`` when the file names no such block."""
    from lowlight3d.archs import build_network
    from lowlight3d.utils.checkpoint import atomic_save
    if not isinstance(raw.get(block), dict):
        return '~'
    path = osp.join(folder, f'{block}_random.pth')
    atomic_save({'params': build_network(raw[block], where=block).state_dict()}, path)
    return path


def build_timing_model(opt_path, cfg_options=()):
    """The training model of ``opt_path`` with random stand-ins (no prior, random feature weights), on the GPU
    when there is one. Returns ``(model, opt)``; the model does not log gradient norms."""
    raw = load_config(opt_path)
    cfg = ['num_gpu=0' if not torch.cuda.is_available() else 'num_gpu=1']
    if raw.get('prior'):
        cfg.append('prior=~')
    if (raw.get('train') or {}).get('feature_extractor'):
        cfg.append('train.feature_extractor.weights=random_for_tests')
    with tempfile.TemporaryDirectory(prefix='lowlight3d_timing_') as folder:  # read while the model is built only
        for key, value in (raw.get('path') or {}).items():  # another stage's weights that are not there: random ones
            if key.startswith('pretrain_network_') and isinstance(value, str) and not osp.isfile(value):
                cfg.append(f'path.{key}={_random_weights_file(raw, key[len("pretrain_"):], folder)}')
        opt = load_options(opt_path, is_train=True, cfg_options=cfg + list(cfg_options), root_path='/tmp')
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            model = build_model(opt)
    model.grad_norm_freq = 0
    return model, opt


def _sync(model):
    if model.device.type == 'cuda':
        torch.cuda.synchronize()


class StepProfiler:
    """Wall time of the parts of a model's training iteration, by forward hooks and wrapped methods.

    Parts: ``forward <label>`` for every network of ``model.nets`` and a frozen ``model.features``; nested
    ``forward <label>: fusion`` for fusion modules inside them; ``backward`` (:meth:`BaseModel.backward`),
    ``optimizer step``, ``EMA update``. :meth:`table` adds the rest of the iteration (losses, data, glue).

    Args:
        model (BaseModel): The model to observe (hooks stay until :meth:`close`).
    """

    def __init__(self, model):
        self.model, self.times, self.handles, self.saved = model, OrderedDict(), [], {}
        self.total = 0.0
        nets = OrderedDict((label, model.bare(net)) for label, net in model.nets.items())
        if isinstance(getattr(model, 'features', None), torch.nn.Module):
            nets['features'] = model.features
        for label, net in nets.items():
            self._hook(net, f'forward {label}')
            for name, sub in net.named_modules():
                if name and type(sub).__name__.endswith(('Fusion', 'FusionModule')):
                    self._hook(sub, f'forward {label}: fusion (included above)')
        for method, part in (('backward', 'backward'), ('optimizer_step', 'optimizer step'),
                             ('update_ema', 'EMA update')):
            self._wrap(method, part)

    def _add(self, part, seconds):
        self.times[part] = self.times.get(part, 0.0) + seconds

    def _hook(self, module, part):
        starts = []

        def pre(_module, _inputs):
            _sync(self.model)
            starts.append(time.perf_counter())

        def post(_module, _inputs, _output):
            _sync(self.model)
            self._add(part, time.perf_counter() - starts.pop())
        self.handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]

    def _wrap(self, method, part):
        original = getattr(self.model, method)
        self.saved[method] = original

        def timed(*args, **kwargs):
            _sync(self.model)
            t0 = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                _sync(self.model)
                self._add(part, time.perf_counter() - t0)
        setattr(self.model, method, timed)

    @contextlib.contextmanager
    def iteration(self):
        """Time one whole iteration (the denominator of the shares)."""
        _sync(self.model)
        t0 = time.perf_counter()
        yield
        _sync(self.model)
        self.total += time.perf_counter() - t0

    def close(self):
        """Remove the hooks and restore the wrapped methods."""
        for handle in self.handles:
            handle.remove()
        for method in self.saved:
            delattr(self.model, method)

    def table(self, iterations):
        """Rows ``(part, ms per iteration, share %)``, the un-nested parts summing to the whole with 'other'."""
        rows, counted = [], 0.0
        for part, seconds in self.times.items():
            rows.append((part, 1000 * seconds / iterations, 100 * seconds / self.total))
            if 'included above' not in part:
                counted += seconds
        rest = self.total - counted
        rows.append(('other (losses, batch, glue)', 1000 * rest / iterations, 100 * rest / self.total))
        rows.append(('whole iteration', 1000 * self.total / iterations, 100.0))
        return rows


def time_rows(opt_paths, size=128, batch=4, iters=3, cfg_options=(), profile=False, log=print):
    """Time every option file in float32 and with its fast defaults; returns a list of result dicts.

    Each dict: ``file``, ``name``, ``precision`` (the fast model's :meth:`MixedPrecision.describe`), ``fp32_s``,
    ``fast_s`` (median seconds per iteration), ``ratio``, and ``profile`` rows when asked; or ``error``.
    """
    results = []
    for path in opt_paths:
        try:
            fast, opt = build_timing_model(path, cfg_options)
            slow, _ = build_timing_model(path, list(cfg_options) + FLOAT32)
        except Exception as exc:  # a stage that needs another stage's files (a teacher) is reported, not fatal
            results.append({'file': path, 'name': path, 'error': f'{type(exc).__name__}: {str(exc)[:160]}'})
            log(f'{path}: not timed ({results[-1]["error"]})')
            continue
        data = random_batch(batch, size, torch.Generator().manual_seed(0))
        it = int(opt['train']['total_iter'])
        profiler = StepProfiler(fast) if profile else None
        times, failed = {'fast': [], 'fp32': []}, None
        for rnd in range(iters + 1):
            if failed:
                break
            for key, model in (('fast', fast), ('fp32', slow)):
                _sync(model)
                t0 = time.perf_counter()
                try:
                    with (profiler.iteration() if profiler and key == 'fast' and rnd else contextlib.nullcontext()):
                        model.train_step(data, it)
                except Exception as exc:  # a model whose batches hold keys the random batch lacks
                    failed = f'{type(exc).__name__}: {str(exc)[:160]}'
                    break
                _sync(model)
                if rnd:
                    times[key].append(time.perf_counter() - t0)
            if profiler and not rnd:
                profiler.times.clear()
        if failed:
            results.append({'file': path, 'name': opt['name'], 'error': failed})
            log(f'{path}: not timed ({failed})')
            continue
        row = {'file': path, 'name': opt['name'], 'model_type': opt['model_type'],
               'precision': fast.precision.describe(), 'fast_s': statistics.median(times['fast']),
               'fp32_s': statistics.median(times['fp32'])}
        row['ratio'] = row['fp32_s'] / row['fast_s']
        if profiler:
            row['profile'] = profiler.table(iters)
            profiler.close()
        log(f"{row['name']} ({row['model_type']}): float32 {row['fp32_s']:.3f} s, fast {row['fast_s']:.3f} s per "
            f"iteration ({row['ratio']:.2f}x; {row['precision']})")
        results.append(row)
        del fast, slow
    return results


def list_train_files(list_path):
    """The training option files of a benchmark list (its prerequisites, then every stage's ``train``)."""
    spec = load_config(list_path)
    files = list(spec.get('prerequisites') or [])
    files += [stage['train'] for stage in spec.get('stages') or [] if stage.get('train')]
    return list(OrderedDict.fromkeys(files))


def main(argv=None):
    """Command-line entry point of ``scripts/train_step_time.py``."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument('-opt', '--opt', nargs='+', help='Training option file(s).')
    which.add_argument('--list', help='A benchmark list (options/demo/benchmark_demo.yml): every training file.')
    parser.add_argument('--size', type=int, default=128)
    parser.add_argument('--batch', type=int, default=4)
    parser.add_argument('--iters', type=int, default=3, help='Timed iterations per mode (after one warm-up).')
    parser.add_argument('--profile', action='store_true', help='Where the fast iteration spends its time.')
    parser.add_argument('--cfg-options', nargs='+', default=[], metavar='KEY=VALUE',
                        help='Applied to both modes (the float32 mode adds train.amp=off train.channels_last=false).')
    args = parser.parse_args(argv)
    files = args.opt or list_train_files(args.list)
    device = 'cuda' if torch.cuda.is_available() else f'cpu, {torch.get_num_threads()} threads'
    print(f'Training iteration, batch {args.batch} x {args.size}^2 on {device}; median of {args.iters} '
          'interleaved iterations per mode; prior: ~ (cached-prior cost), random-weight feature stand-ins')
    rows = time_rows(files, args.size, args.batch, args.iters, args.cfg_options, args.profile)
    table = [{'option file (name)': r['name'], 'float32 s/it': f"{r['fp32_s']:.3f}",
              'fast s/it': f"{r['fast_s']:.3f}", 'speed-up': f"{r['ratio']:.2f}x"} for r in rows if 'error' not in r]
    print()
    print(format_table(table))
    for r in rows:
        if 'error' in r:
            print(f"not timed: {r['file']}: {r['error']}")
    for r in rows:
        if r.get('profile'):
            print(f"\n{r['name']}: where the fast iteration goes ({r['precision']})")
            print(format_table([{'part': p, 'ms / it': f'{ms:.1f}', 'share %': f'{share:.1f}'}
                                for p, ms, share in r['profile']]))
    return rows
