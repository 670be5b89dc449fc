"""Inference speed of exported models, measured side by side in one process (``scripts/photo_speed.py``).

For every model file, in interleaved rounds (A, B, C, then A, B, C again, so changes of the machine's load hit
every model alike; ``warmup`` untimed rounds first), the median wall time of:

* ``face 256``: the method on one aligned ``256 x 256`` face (``LoadedModel.enhance``: our method samples its prior);
* ``photo 1080p, 1 face``: face mode on a 1920x1080 dark photo holding one face (detection on the brightened
  copy, alignment, the face, the background, paste-back), with the command's defaults;
* ``photo 1080p, no face``: the same on a photo without a face (detection + background only);
* ``whole 1080p`` (``whole=True``): ``--no_face``, the method itself on the whole photo, tiled.

Peak memory is the largest resident-set growth during a call (a 5 ms sampler thread; freed heap memory is handed
back to the system with glibc's ``malloc_trim`` before each call, so the growth is the call's own working memory,
models excluded; CUDA: the allocator's peak).
For a method with a 3D prior, the share of the prior in the face time is measured at each number of sampling
steps.  The test photos are made from scikit-image's bundled astronaut photo (darkened, pasted into a dark,
noisy 1920x1080 scene), so the timing needs no data set.
"""
import statistics
import threading
import time

import numpy as np
import torch

from lowlight3d.archs.prior_maps import prior_on

__all__ = ['dark_test_photos', 'PeakMemory', 'time_model_files', 'prior_share', 'main']


def dark_test_photos(height=1080, width=1920, seed=0):
    """``(photo with one face, photo without a face)``: dark ``H x W x 3`` float32 scenes."""
    import cv2
    from skimage import data
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    scene = np.stack([0.5 + 0.4 * np.sin(xx / (97 + 13 * c) + yy / (151 - 11 * c)) for c in range(3)], -1)
    scene = (scene * 0.08 + rng.normal(0, 0.01, scene.shape)).clip(0, 1).astype(np.float32)
    face = cv2.resize(data.astronaut()[:300, 100:400].astype(np.float32) / 255.0, (360, 360)) * 0.08
    with_face = scene.copy()
    y0, x0 = height // 2 - 180, width // 3
    with_face[y0:y0 + 360, x0:x0 + 360] = face
    return with_face, scene


class PeakMemory:
    """Context manager measuring the peak memory growth (MB) of the block: resident set on CPU, allocator on CUDA."""

    def __init__(self, device):
        self.device = torch.device(device)
        self.peak_mb = 0.0

    @staticmethod
    def _release_freed_memory():
        """Hand freed heap memory back to the system (glibc ``malloc_trim``), so the next call's growth shows."""
        import ctypes
        import gc
        gc.collect()
        try:
            ctypes.CDLL('libc.so.6').malloc_trim(0)
        except (OSError, AttributeError):  # not glibc: the measure then misses memory reused from earlier calls
            pass

    def __enter__(self):
        if self.device.type == 'cuda':
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device)
            return self
        import psutil
        self._release_freed_memory()
        self.process = psutil.Process()
        self.base = self.process.memory_info().rss
        self.peak = self.base
        self.running = True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self):
        while self.running:
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.005)

    def __exit__(self, *exc):
        if self.device.type == 'cuda':
            self.peak_mb = (torch.cuda.max_memory_allocated(self.device) - self.base) / 2**20
            return
        self.running = False
        self.thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)
        self.peak_mb = (self.peak - self.base) / 2**20


def _timed(fn, device):
    """``(seconds, peak MB)`` of one call."""
    with PeakMemory(device) as mem:
        if torch.device(device).type == 'cuda':
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if torch.device(device).type == 'cuda':
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
    return seconds, mem.peak_mb


def time_model_files(model_paths, device='cpu', repeat=3, warmup=1, whole=False, tile=512, face_size=256,
                     detector='auto', log=print):
    """Rows ``{model, what, ms_median, ms_min, peak_mb}`` for every model file (see the module docstring)."""
    from lowlight3d.face.detection import OFFLINE_DETECTORS, build_face_detector
    from lowlight3d.inference.background import GammaBackground
    from lowlight3d.inference.face_enhancer import FaceEnhancer
    from lowlight3d.inference.image_enhancer import ImageEnhancer
    from lowlight3d.inference.loaded_model import load_model
    det, report = build_face_detector(detector, fallbacks=OFFLINE_DETECTORS)
    log(report)
    with_face, without = dark_test_photos()
    face = torch.rand(1, 3, face_size, face_size, generator=torch.Generator().manual_seed(0)) * 0.2
    calls = []
    for path in model_paths:
        model = load_model(path, device=device)
        image = ImageEnhancer(model, tile=tile, tile_pad=32)
        enhancer = FaceEnhancer(image, GammaBackground(), det)
        name = model.name
        calls.append((name, 'face 256', lambda m=model: m.enhance(face, ['face'])))
        calls.append((name, 'photo 1080p, 1 face', lambda e=enhancer: e.enhance(with_face, name='photo')))
        calls.append((name, 'photo 1080p, no face', lambda e=enhancer: e.enhance(without, name='photo')))
        if whole:
            calls.append((name, f'whole 1080p (tile {tile})', lambda i=image: i.enhance(with_face, 'photo')))
        log(f'{name}: {model.describe()}')
    found = len(FaceEnhancer(image, GammaBackground(), det).detect(with_face)) if calls else 0
    log(f'faces found in the test photo: {found}')
    times = {i: [] for i in range(len(calls))}
    peaks = {i: 0.0 for i in range(len(calls))}
    for round_index in range(warmup + repeat):
        for i, (_, _, fn) in enumerate(calls):
            seconds, peak = _timed(fn, device)
            if round_index >= warmup:
                times[i].append(seconds)
                peaks[i] = max(peaks[i], peak)
    rows = []
    for i, (name, what, _) in enumerate(calls):
        rows.append({'model': name, 'what': what, 'ms_median': f'{1000 * statistics.median(times[i]):.0f}',
                     'ms_min': f'{1000 * min(times[i]):.0f}', 'peak_MB': f'{peaks[i]:.0f}'})
    return rows


def prior_share(model_path, steps_list=(1, 2, 5, 10, 20), device='cpu', repeat=3, face_size=256):
    """Rows ``{steps, prior_ms, network_ms, prior_share}`` of a method with a 3D prior, on one 256 face."""
    from lowlight3d.inference.loaded_model import load_model
    model = load_model(model_path, device=device)
    if not model.uses_prior:
        return []
    face = torch.rand(1, 3, face_size, face_size, generator=torch.Generator().manual_seed(0)) * 0.2
    rows = []
    for steps in steps_list:
        model.prior.steps = int(steps)
        model.prior._fingerprint = None
        prior_t, net_t = [], []
        for r in range(repeat + 1):
            t0 = time.perf_counter()
            out = model.prior.extract(face, seed=0, use_cache=False)
            t1 = time.perf_counter()
            prior = prior_on(out, model.device)
            with torch.no_grad():
                model.network(face.to(model.device), prior)
            t2 = time.perf_counter()
            if r:
                prior_t.append(t1 - t0)
                net_t.append(t2 - t1)
        p, n = statistics.median(prior_t), statistics.median(net_t)
        rows.append({'model': model.name, 'steps': steps, 'sampler': model.prior.sampler,
                     'prior_ms': f'{1000 * p:.0f}', 'network_ms': f'{1000 * n:.0f}',
                     'prior_share': f'{100 * p / (p + n):.0f} %'})
    return rows


def main(argv=None):
    """``scripts/photo_speed.py --models a.pth b.pth ...``: print the speed and prior tables."""
    import argparse

    from lowlight3d.inference.devices import resolve_device
    from lowlight3d.utils.results_table import format_table
    parser = argparse.ArgumentParser(description='Inference speed of exported lowlight3d models, side by side.')
    parser.add_argument('--models', nargs='+', required=True, help='Model files (scripts/export_model.py).')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--whole', action='store_true', help='Also time --no_face on the whole 1080p photo.')
    parser.add_argument('--tile', type=int, default=512)
    parser.add_argument('--prior_steps', type=int, nargs='+', default=[1, 2, 5, 10, 20])
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    print(f'torch {torch.__version__}, {torch.get_num_threads()} thread(s), device {device}')
    rows = time_model_files(args.models, device, args.repeat, args.warmup, args.whole, args.tile)
    print(format_table(rows))
    for path in args.models:
        share = prior_share(path, args.prior_steps, device, args.repeat)
        if share:
            print(format_table(share))
    return rows
