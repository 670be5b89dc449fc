"""What moves the Yale B identity distance of a tested method? Post-hoc changes of its saved results, no training.

Example (after a real-face benchmark run, which saves the YaleB_dark results)::

    python scripts/identity_probe.py results/real_LowLight3D_randomVGG_seed0 --other results/real_GammaCurve_seed0

For every test pair of ``datasets/real_faces/yaleb/meta_test_pairs.txt`` it reads the method's saved result (and
the ``--other`` method's: by default the gamma curve), changes it in ways that keep or remove one property
(colour, global brightness and contrast, fine detail) or mixes it 50/50 with the other method's result, embeds each
with the identity metric (:class:`~lowlight3d.metrics.identity_metric.FaceEmbedder`, dlib) and prints the mean
distance to the subject's flash frame, over all frames and split into the darkest inputs (mean luma < 0.02) and the
lit ones.  A change that does not move the distance rules its property out as the cause of an identity gap; the
numbers are in ``docs/experiments.md`` 3.5.
"""
import argparse
import glob
import os.path as osp
import sys

import numpy as np

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import lowlight3d  # noqa: E402,F401  (compat patches + registrations)

#: Inputs darker than this mean luma count as the darkest frames.
DARK_LUMA = 0.02


def _read_bgr(path):
    """uint8 BGR, what the embedder takes (an unreadable file is an error naming it)."""
    import cv2
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise OSError(f'Cannot read the image {path}')
    return img


def _gray(img):
    from lowlight3d.utils.luma import luma_weights
    g = img.astype(np.float32) @ luma_weights('bgr')
    return np.repeat(g[..., None], 3, 2)


def _u8(img):
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _matched(img, other):
    """Gray ``img`` with the mean and standard deviation of gray ``other`` (global brightness and contrast)."""
    g, o = _gray(img), _gray(other)
    return _u8((g - g.mean()) / (g.std() + 1e-6) * o.std() + o.mean())


def _contrast(img, factor):
    g = _gray(img)
    return _u8((g - g.mean()) * factor + g.mean())


#: name -> f(result, other method's result): the probed changes (uint8 BGR in, uint8 BGR out).
TRANSFORMS = {
    'as saved': lambda out, other: out,
    'gray': lambda out, other: _u8(_gray(out)),
    "gray, the other's mean and std": lambda out, other: _matched(out, other),
    'gray, contrast x0.7': lambda out, other: _contrast(out, 0.7),
    'gray, contrast x1.3': lambda out, other: _contrast(out, 1.3),
    'gray, Gaussian blur sigma 1': lambda out, other: _u8(_blur(_gray(out))),
    '50/50 with the other (gray)': lambda out, other: _u8(0.5 * _gray(out) + 0.5 * _gray(other)),
    'the other, as saved': lambda out, other: other,
}


def shading_difference(result, lq, pool=4, eps=0.01):
    """How much a result changes the input's shading: the mean squared difference, horizontal plus vertical, of the
    log luma differences between neighbouring ``pool`` x ``pool`` regions of result and input (Zero-DCE's spatial
    consistency loss in the log domain; 0 for any global gain).  uint8 BGR images of one size."""
    def log_regions(img):
        g = _gray(img)[..., 0] / 255.0
        h, w = g.shape[0] // pool * pool, g.shape[1] // pool * pool
        return np.log(g[:h, :w].reshape(h // pool, pool, w // pool, pool).mean(axis=(1, 3)) + eps)
    a, b = log_regions(result), log_regions(lq)
    return float(((np.diff(a, axis=1) - np.diff(b, axis=1))**2).mean() + ((np.diff(a, axis=0) - np.diff(b, axis=0))**2
                                                                           ).mean())


def _blur(img):
    import cv2
    return cv2.GaussianBlur(img, (0, 0), 1)


def _saved_result(results, set_name, stem, size):
    import cv2
    found = sorted(glob.glob(osp.join(results, 'visualization', set_name, glob.escape(stem) + '*.png')))
    if not found:
        raise FileNotFoundError(f'No saved result of {stem} under {results}/visualization/{set_name}: test the method '
                                'with val.save_img: true (the real-face test sets save them)')
    img = _read_bgr(found[0])
    return img if img.shape[:2] == size else cv2.resize(img, size[::-1], interpolation=cv2.INTER_AREA)


def probe(results, other, data='datasets/real_faces/yaleb', set_name='YaleB_dark'):
    """Mean identity distance of each :data:`TRANSFORMS` change, and the mean :func:`shading_difference` of the two
    methods' results to their inputs: ``({name: (all, darkest, lit)}, {'method' | 'other': (all, darkest, lit)})``.

    Args:
        results (str): The method's results folder. other (str): The other method's (mixed in, e.g. gamma curve).
        data (str): Folder with ``images/`` and ``meta_test_pairs.txt``. set_name (str): The test set's name.
    """
    from lowlight3d.data.real_paired_dataset import read_pair_list
    from lowlight3d.metrics.identity_metric import FaceEmbedder, embedding_distance
    embedder, refs = FaceEmbedder(), {}
    dist = {name: [] for name in TRANSFORMS}
    shading = {'method': [], 'other': []}
    dark = []
    for lq_name, gt_name in read_pair_list(osp.join(data, 'meta_test_pairs.txt')):
        lq, gt = _read_bgr(osp.join(data, 'images', lq_name)), osp.join(data, 'images', gt_name)
        if gt not in refs:
            refs[gt] = embedder.embed(_read_bgr(gt), gt)
        dark.append(float(_gray(lq).mean()) / 255 < DARK_LUMA)
        stem = osp.splitext(lq_name)[0]
        out = _saved_result(results, set_name, stem, lq.shape[:2])
        mixed_in = _saved_result(other, set_name, stem, lq.shape[:2])
        shading['method'].append(shading_difference(out, lq))
        shading['other'].append(shading_difference(mixed_in, lq))
        for name, change in TRANSFORMS.items():
            dist[name].append(embedding_distance(embedder.embed(change(out, mixed_in), stem), refs[gt]))
    dark = np.array(dark)

    def split(values):
        values = np.array(values)
        return float(values.mean()), float(values[dark].mean()), float(values[~dark].mean())
    return {name: split(v) for name, v in dist.items()}, {who: split(v) for who, v in shading.items()}


def main(argv=None):
    """Print the table (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('results', help='Results folder of the tested method (results/<name>).')
    p.add_argument('--other', default='results/real_GammaCurve_seed0', help='Results folder mixed in.')
    p.add_argument('--data', default='datasets/real_faces/yaleb', help='Prepared Yale B folder.')
    args = p.parse_args(argv)
    table, shading = probe(args.results, args.other, args.data)
    print(f'identity distance of {args.results} (other: {args.other}); lower is better')
    print(f"| change | all | darkest (luma < {DARK_LUMA}) | lit |\n|---|---|---|---|")
    for name, (every, darkest, lit) in table.items():
        print(f'| {name} | {every:.3f} | {darkest:.3f} | {lit:.3f} |')
    print('\nshading difference to the input (log luma of neighbouring 4x4 regions; 0 = a global gain)')
    for who, (every, darkest, lit) in shading.items():
        print(f'| {who} | {every:.3f} | {darkest:.3f} | {lit:.3f} |')
    return table, shading


if __name__ == '__main__':
    main()
