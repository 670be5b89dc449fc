"""Measure the noise of real dark photos against our synthetic degradation (``scripts/calibrate_noise.py``).

Sets (from the shared data folder, ``$LOWLIGHT3D_TEST_DATA``):

* ``YaleB_train_dark``: the dark Yale B frames (light from far behind, ambient; the 168x192 crops) of the 10
  TRAINING subjects of the real-face benchmark (its split rule,
  :func:`~lowlight3d.data.preparation.real_face_benchmark.yaleb_subject_split`; never the test subjects);
* ``LOL_low`` and ``LIME``: real dark colour photos;
* ``synthetic:<name>``: our degradation applied to UTKFace training faces (96 px, as in training), once per
  degradation setting given.

For each set: the dynamic range of its lit images (stops between the 98th percentile and the median of the face's
linear luma, :mod:`lowlight3d.data.dynamic_range`), the pooled noise curve
(:func:`~lowlight3d.data.noise_calibration.noise_curve`), the Poisson-Gaussian
fit, the spread of per-image fits (10th / 50th / 90th percentile of ``a`` and ``read_sigma``) and the mean luma
range.  A plot of noise std against signal level, all sets on one log-log axis, is written with ``--plot``.
"""
import argparse
import glob
import json
import os
import os.path as osp

import numpy as np

from lowlight3d.data.dynamic_range import dynamic_range_stops
from lowlight3d.data.lowlight_degradation import DEGRADATION_PRESETS, LowLightDegradation
from lowlight3d.data.noise_calibration import block_noise_stats, fit_poisson_gaussian, noise_curve
from lowlight3d.data.preparation.real_face_benchmark import yaleb_sets, yaleb_subject_split
from lowlight3d.utils.img_io import read_image

__all__ = ['real_dark_sets', 'synthetic_images', 'set_report', 'main']

def real_dark_sets(root):
    """``{set name: [paths]}`` of the real dark photos used for calibration (see the module docstring)."""
    import csv
    sets = {}
    manifest = osp.join(root, 'faces_yaleb', 'manifest.csv')
    if osp.isfile(manifest):
        with open(manifest, newline='') as f:
            rows = list(csv.DictReader(f))
        _, test_subjects = yaleb_subject_split(r['subject'] for r in rows)
        train, _ = yaleb_sets(rows, test_subjects)
        sets['YaleB_train_dark'] = [osp.join(root, 'faces_yaleb', 'images', name) for name in train]
    for name, folder in (('LOL_low', 'LOL_eval15_low'), ('LIME', 'LIME')):
        files = sorted(glob.glob(osp.join(root, 'lowlight_real', folder, '*')))
        files = [p for p in files if p.lower().endswith(('.png', '.jpg', '.bmp'))]
        if files:
            sets[name] = files
    return sets


def synthetic_images(gt_paths, degradation, size=96, seed=0):
    """Our degradation of ``gt_paths`` (resized to ``size``), one seeded draw each: a list of float RGB images."""
    import cv2
    out = []
    for i, path in enumerate(gt_paths):
        gt = cv2.resize(read_image(path), (size, size), interpolation=cv2.INTER_AREA)
        out.append(degradation(gt, np.random.default_rng(seed + i))[0])
    return out


def set_report(images, block=8):
    """Noise curve, pooled fit and per-image spread of a list of images (float ``[0, 1]``).

    Returns:
        dict: ``curve`` (level, std, tiles lists), ``fit`` (pooled), ``per_image`` percentiles of ``a`` and
        ``read_sigma``, ``mean_luma`` (min, median, max), ``images``, and over the images with a mean luma of at
        least 0.02 (the lit ones: side and back light, ambient frames are darker) the median and 90th percentile
        of their dynamic range in stops and their mean share of highlights (``dynamic_range``:
        :func:`~lowlight3d.data.dynamic_range.dynamic_range_stops`).
    """
    mus, vars_, fits, lumas, ranges = [], [], [], [], []
    for img in images:
        lumas.append(float(np.mean(img)))
        if lumas[-1] >= 0.02:
            ranges.append(dynamic_range_stops(img))
        mu, var = block_noise_stats(img, block)
        mus.append(mu)
        vars_.append(var)
        level, variance, count = noise_curve(mu, var, min_tiles=8)
        if level.size >= 3:
            fits.append(fit_poisson_gaussian(level, variance, count))
    mu, var = np.concatenate(mus), np.concatenate(vars_)
    level, variance, count = noise_curve(mu, var)
    fit = fit_poisson_gaussian(level, variance, count)
    per = {}
    for key in ('a', 'read_sigma'):
        vals = np.array([f[key] for f in fits]) if fits else np.array([np.nan])
        per[key] = [float(np.percentile(vals, q)) for q in (10, 50, 90)]
    return {'images': len(images), 'curve': {'level': level.tolist(), 'std': np.sqrt(variance).tolist(),
                                             'tiles': count.tolist()},
            'fit': fit, 'per_image': per, 'mean_luma': [min(lumas), float(np.median(lumas)), max(lumas)],
            'dynamic_range': _range_summary(ranges)}


def _range_summary(ranges):
    """Median / 90th percentile of the stops and mean highlight share of ``(stops, highlights)`` pairs."""
    if not ranges:
        return {'images': 0, 'stops_median': float('nan'), 'stops_p90': float('nan'), 'highlights': float('nan')}
    stops = np.array([r[0] for r in ranges])
    return {'images': len(ranges), 'stops_median': float(np.median(stops)),
            'stops_p90': float(np.percentile(stops, 90)), 'highlights': float(np.mean([r[1] for r in ranges]))}


def plot_reports(reports, path):
    """Noise std against signal level, every set, log-log, with the pooled fits dashed."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5))
    xs = np.geomspace(1.0 / 255, 1.0, 100)
    for i, (name, rep) in enumerate(reports.items()):
        color = f'C{i}'
        ax.plot(np.asarray(rep['curve']['level']) * 255, np.asarray(rep['curve']['std']) * 255, 'o-', color=color,
                ms=3, label=f"{name} ({rep['images']} img)")
        fit = rep['fit']
        ax.plot(xs * 255, np.sqrt(fit['a'] * xs + fit['b']) * 255, '--', color=color, lw=0.8)
    ax.set_xscale('log')
    ax.set_yscale('log')
    ax.set_xlabel('signal level (8-bit levels)')
    ax.set_ylabel('noise std (8-bit levels)')
    ax.set_title('Noise of real dark photos vs our synthetic degradation\n(dots: lower envelope of tiles; '
                 'dashed: var = a*mu + b)')
    ax.grid(True, which='both', alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    os.makedirs(osp.dirname(path) or '.', exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    """Command line: print the table (and write the json and plot when asked)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--data', default=os.environ.get('LOWLIGHT3D_TEST_DATA', '../shared/data'))
    p.add_argument('--synthetic', nargs='*', default=['default', 'real_dark', 'real_dark_hard_light'],
                   help="degradation settings to measure: 'default', a preset name (real_dark) or a json file of a "
                        "degradation block (label=path to label it)")
    p.add_argument('--num-synthetic', type=int, default=120)
    p.add_argument('--plot', default=None, help='write the plot here (PNG)')
    p.add_argument('--json', default=None, help='write the numbers here')
    a = p.parse_args(argv)
    sets = real_dark_sets(a.data)
    if not sets:
        raise FileNotFoundError(f'no real dark photos under {a.data!r}: set LOWLIGHT3D_TEST_DATA or --data')
    reports = {name: set_report([read_image(q) for q in paths]) for name, paths in sets.items()}
    utk = sorted(glob.glob(osp.join(a.data, 'faces_utk', 'images', '*')))[:a.num_synthetic]
    for spec in a.synthetic:
        label, _, path = spec.rpartition('=') if '=' in spec else (spec, '', spec)
        if path == 'default':
            block = {}
        elif path in DEGRADATION_PRESETS:
            block = path
        else:
            with open(path) as fh:
                block = json.load(fh)
        reports[f'synthetic:{label}'] = set_report(synthetic_images(utk, LowLightDegradation.from_opt(block)))
    print(f"{'set':28s} {'img':>4s} {'luma min/med/max':>20s} {'pooled a':>9s} {'read_sigma*255':>14s} "
          f"{'a p10/p50/p90':>26s} {'read*255 p10/p50/p90':>22s} {'lit':>4s} {'stops med/p90':>14s} {'hilite %':>8s}")
    for name, rep in reports.items():
        f, per, lu, dr = rep['fit'], rep['per_image'], rep['mean_luma'], rep['dynamic_range']
        print(f"{name:28s} {rep['images']:4d} {lu[0]:6.3f}/{lu[1]:6.3f}/{lu[2]:6.3f} {f['a']:9.5f} "
              f"{f['read_sigma'] * 255:14.2f} {'/'.join(f'{v:.5f}' for v in per['a']):>26s} "
              f"{'/'.join(f'{v * 255:.2f}' for v in per['read_sigma']):>22s} {dr['images']:4d} "
              f"{dr['stops_median']:6.2f}/{dr['stops_p90']:<7.2f} {dr['highlights'] * 100:8.2f}")
    if a.json:
        with open(a.json, 'w') as fh:
            json.dump(reports, fh, indent=1)
    if a.plot:
        plot_reports(reports, a.plot)
        print(f'plot: {a.plot}')
    return reports
