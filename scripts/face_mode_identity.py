"""Face mode against its gamma background on the Yale B ambient frames: does a face recogniser still know the person?

Example::

    LOWLIGHT3D_TEST_DATA=../shared/data python scripts/face_mode_identity.py --model m.pth

For each ``P00_Ambient`` frame of ``faces_yaleb`` (research-only data, read in place) it enhances the frame in face
mode three ways: the background only (the gamma curve), face mode as the command runs it (trust check on), and
face mode with every face pasted (``--no_trust``); it then embeds each result with the identity metric
(:class:`~lowlight3d.metrics.identity_metric.FaceEmbedder`, dlib, nothing brightened) and compares it with the
subject's well-lit ``P00A+000E+00`` frame: per frame the distance, per way the rank-1 identification over the
subjects, the mean distance and how many are below dlib's same-person threshold 0.6.  The numbers are in
``docs/face_mode.md``.
"""
import argparse
import csv
import os
import os.path as osp
import sys

import numpy as np

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import lowlight3d  # noqa: E402,F401  (compat patches + registrations)


def main(argv=None):
    """Print the per-frame distances and the summary (see the module docstring); returns the summary dict."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--model', required=True, help='Model file (scripts/export_model.py).')
    p.add_argument('--data', default=os.environ.get('LOWLIGHT3D_TEST_DATA', '../shared/data'))
    args = p.parse_args(argv)
    from lowlight3d.inference.command import build_enhancers, parse_inference_args
    from lowlight3d.metrics.identity_metric import FaceEmbedder, embedding_distance, rank1_identification
    from lowlight3d.utils.img_io import read_image
    folder = osp.join(args.data, 'faces_yaleb')
    if not osp.isfile(osp.join(folder, 'manifest.csv')):
        raise FileNotFoundError(f'{folder}/manifest.csv is missing: set LOWLIGHT3D_TEST_DATA to the shared data')
    with open(osp.join(folder, 'manifest.csv'), newline='') as f:
        rows = [r for r in csv.DictReader(f) if r['condition'] == 'P00_Ambient']
    face, _, _ = build_enhancers(parse_inference_args(['-i', '.', '--model', args.model]))
    embedder = FaceEmbedder()

    def embed(rgb):
        return embedder.embed(np.round(np.clip(rgb, 0, 1) * 255).astype(np.uint8)[..., ::-1]).vector

    ways = ('background', 'face mode', 'face mode --no_trust')
    results, distances, gallery = {w: [] for w in ways}, {w: [] for w in ways}, {}
    for row in rows:
        subject = row['subject']
        gallery[subject] = embed(read_image(osp.join(folder, 'images', f'{subject}_P00A+000E+00.png')))
        img = read_image(osp.join(folder, 'images', row['file']))
        face.trust = True
        trusted = face.enhance(img, name=subject)
        face.trust = False
        untrusted = face.enhance(img, name=subject)
        face.trust = True
        line = [subject]
        for way, out in zip(ways, (trusted.background, trusted.image, untrusted.image)):
            vector = embed(out)
            results[way].append((vector, subject))
            distances[way].append(embedding_distance(vector, gallery[subject]))
            line.append(f'{way} {distances[way][-1]:.3f}')
        line.append('verdicts: ' + (', '.join(v.action for v in trusted.trust) or 'no face'))
        print('; '.join(line), flush=True)
    summary = {}
    for way in ways:
        rate, hits, n = rank1_identification(results[way], gallery)
        summary[way] = {'rank1': f'{hits}/{n}', 'mean_distance': round(float(np.mean(distances[way])), 4),
                        'same_person': int(sum(d < 0.6 for d in distances[way]))}
        print(f"{way}: rank-1 {hits}/{n}, mean distance {summary[way]['mean_distance']}, "
              f"< 0.6: {summary[way]['same_person']}/{n}")
    return summary


if __name__ == '__main__':
    main()
