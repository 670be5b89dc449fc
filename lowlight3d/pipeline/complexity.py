"""Parameters, FLOPs, peak memory and latency of the networks an option file builds (paper Table 3 protocol).

Protocol: one input of ``1 x 3 x size x size`` (paper: 256), inference (``eval()``, no gradient), batch 1.

* Parameters: all parameters of the network, in millions.
* FLOPs: counted by ``torch.utils.flop_counter.FlopCounterMode`` (torch's own counter: convolutions, matrix
  products, attention; element-wise ops are not counted).  One multiply-add = 2 FLOPs; we print both GFLOPs
  and GMACs = GFLOPs / 2.  The paper's "GFLOPs" column appears to be MACs (thop-style; see
  ``docs/baselines.md`` section 0), so compare the paper with our GMACs.
* Peak memory: the largest total size of live tensors during the forward pass (parameters included), tracked
  with a dispatch hook on CPU; on CUDA ``torch.cuda.max_memory_allocated``.  The paper's MB are from an RTX 3090
  (allocator overhead included), so expect differences of that order.
* Latency: median wall time of ``repeat`` forward passes after ``warmup`` passes, on the device used, with the
  number of CPU threads reported.
"""
import argparse
import statistics
import time
import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from lowlight3d.archs import build_network
from lowlight3d.utils.options import apply_cfg_options, load_config
from lowlight3d.utils.registry import import_custom_modules, load_plugins
from lowlight3d.utils.results_table import format_table

__all__ = ['example_inputs', 'count_parameters', 'count_flops', 'peak_memory_bytes', 'latency_ms', 'measure_network',
           'complexity_from_options', 'main']


def example_inputs(net, size, device='cpu'):
    """Inputs for one forward pass: ``net.example_inputs(size)`` when the arch defines it, else one image."""
    if hasattr(net, 'example_inputs'):
        inputs = net.example_inputs(size)
        return tuple(t.to(device) for t in inputs)
    return (torch.rand(1, 3, size, size, device=device), )


def count_parameters(net):
    """Number of parameters of ``net``."""
    return sum(p.numel() for p in net.parameters())


@torch.no_grad()
def count_flops(net, inputs):
    """FLOPs of one forward pass (torch's counter; a multiply-add counts 2)."""
    counter = FlopCounterMode(display=False)
    with counter:
        net(*inputs)
    return counter.get_total_flops()


class _LiveTensorBytes(TorchDispatchMode):
    """Dispatch mode that tracks the bytes of live tensor storages created during the pass and their peak."""

    def __init__(self, base_bytes):
        super().__init__()
        self.live, self.peak, self.seen = base_bytes, base_bytes, set()

    def _release(self, key, nbytes):
        self.seen.discard(key)
        self.live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in (out if isinstance(out, (tuple, list)) else [out]):
            if isinstance(t, torch.Tensor):
                storage = t.untyped_storage()
                key = storage.data_ptr()
                if key and key not in self.seen:
                    self.seen.add(key)
                    self.live += storage.nbytes()
                    weakref.finalize(storage, self._release, key, storage.nbytes())
        self.peak = max(self.peak, self.live)
        return out


@torch.no_grad()
def peak_memory_bytes(net, inputs):
    """Peak bytes of parameters, buffers, inputs and live intermediate tensors during one forward pass."""
    static = sum(p.numel() * p.element_size() for p in net.parameters())
    static += sum(b.numel() * b.element_size() for b in net.buffers())
    static += sum(t.numel() * t.element_size() for t in inputs)
    device = inputs[0].device
    if device.type == 'cuda':
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(device)
        start = torch.cuda.memory_allocated(device)
        net(*inputs)
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated(device) - start + static
    mode = _LiveTensorBytes(static)
    with mode:
        out = net(*inputs)
    del out
    return mode.peak


@torch.no_grad()
def latency_ms(net, inputs, warmup=2, repeat=5):
    """Median forward time in milliseconds."""
    sync = torch.cuda.synchronize if inputs[0].device.type == 'cuda' else (lambda: None)
    for _ in range(warmup):
        net(*inputs)
    times = []
    for _ in range(repeat):
        sync()
        t0 = time.perf_counter()
        net(*inputs)
        sync()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def measure_network(net, size=256, device='cpu', warmup=2, repeat=5):
    """All four numbers for one network, as a dict (M params, GFLOPs, GMACs, MB, ms)."""
    net = net.to(device).eval()
    inputs = example_inputs(net, size, device)
    flops = count_flops(net, inputs)
    return {
        'params_M': count_parameters(net) / 1e6,
        'GFLOPs': flops / 1e9,
        'GMACs': flops / 2e9,
        'peak_mem_MB': peak_memory_bytes(net, inputs) / 2**20,
        'latency_ms': latency_ms(net, inputs, warmup, repeat),
    }


def complexity_from_options(opt_path, size=256, device='cpu', cfg_options=(), warmup=2, repeat=5):
    """Measure every ``network_*`` block of an option file; returns a list of row dicts.

    An option file may carry ``paper_table3: {params_M, GFLOPs, memory_MB}``; those numbers are added to the
    first row as ``paper_*`` columns so that ours and the paper's stand side by side.
    """
    opt = load_config(opt_path)
    apply_cfg_options(opt, list(cfg_options))
    load_plugins()
    import_custom_modules(opt.get('custom_imports'))
    rows = []
    for key, block in opt.items():
        if key.startswith('network_') and isinstance(block, dict) and 'type' in block:
            net = build_network(block, where=key)
            rows.append({'network': key, 'type': block['type'], **measure_network(net, size, device, warmup, repeat)})
    if not rows:
        raise ValueError(f'{opt_path} defines no network_* block')
    paper = opt.get('paper_table3')
    if paper:  # the paper's Table 3 entry of the method (whole method, RTX 3090), printed beside our first row
        rows[0].update({f'paper_{k}': float(v) for k, v in paper.items()})
    return rows


def main(argv=None):
    """Command-line entry point of ``scripts/complexity.py``."""
    parser = argparse.ArgumentParser(description='Params, FLOPs, peak memory and latency of an option file\'s '
                                     'networks (paper Table 3 protocol: 1x3xSxS input, inference).')
    parser.add_argument('-opt', '--opt', required=True, help='Option file (training or test).')
    parser.add_argument('--size', type=int, default=256, help='Input height and width (paper: 256).')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--repeat', type=int, default=5, help='Timed forward passes (median reported).')
    parser.add_argument('--cfg-options', nargs='+', default=[], metavar='KEY=VALUE')
    args = parser.parse_args(argv)
    rows = complexity_from_options(args.opt, args.size, args.device, args.cfg_options, repeat=args.repeat)
    print(f'Input 1x3x{args.size}x{args.size}, device {args.device}, {torch.get_num_threads()} CPU threads. '
          'FLOPs by torch.utils.flop_counter (1 MAC = 2 FLOPs); the paper\'s "GFLOPs" compare with GMACs.')
    print(format_table(rows, digits=3))
    if any('paper_params_M' in r for r in rows):
        print('paper_* columns: the paper\'s Table 3 for the whole method (RTX 3090); see baselines/README.md for why '
              'they differ from the official code.')
    return rows
