"""How many faces each detector finds on real dark photos, on the frame as it is and on the brightened copy.

``python -m lowlight3d.face.survey [--data DIR] [--max_luma 0.2]`` reads the real low-light sets of the shared
data folder (``$LOWLIGHT3D_TEST_DATA``, default ``../shared/data``): the dark Yale B frames (``faces_yaleb``,
``mean_luma`` of its manifest below ``--max_luma``) and the DICM / LIME / LOL scenes (``lowlight_real``), and
prints, per set and detector, the number of photos with at least one face and the number of faces, without and
with :func:`~lowlight3d.face.detection.brighten_for_detection`.  Detectors that cannot be built (RetinaFace without
its weights) are listed with the reason.
"""
import argparse
import csv
import glob
import os
import os.path as osp

__all__ = ['dark_photo_sets', 'detection_counts', 'main']


def dark_photo_sets(root, max_luma=0.2):
    """``{set name: [paths]}`` of the real dark photos under ``root`` (see the module docstring)."""
    sets = {}
    manifest = osp.join(root, 'faces_yaleb', 'manifest.csv')
    if osp.isfile(manifest):
        with open(manifest, newline='') as f:
            rows = [r for r in csv.DictReader(f) if float(r['mean_luma']) < max_luma]
        sets['YaleB_dark'] = [osp.join(root, 'faces_yaleb', 'images', r['file']) for r in rows]
    for name in ('DICM', 'LIME', 'LOL_eval15_low'):
        folder = osp.join(root, 'lowlight_real', name)
        files = sorted(p for p in glob.glob(osp.join(folder, '*')) if p.lower().endswith(('.png', '.jpg', '.bmp')))
        if files:
            sets[name] = files
    return sets


def detection_counts(sets, detector_names=('dlib', 'mediapipe', 'haar', 'cascade', 'retinaface')):
    """Rows ``{set, detector, photos, photos_with_face_raw, faces_raw, photos_with_face_bright, faces_bright}``.

    The cascade (inference's offline default) gets a third pair, ``*_default``: its own mix (dlib brightened,
    then mediapipe raw, then mediapipe brightened).

    Returns:
        tuple[list[dict], dict]: The rows and ``{detector: reason}`` for detectors that could not be built.
    """
    from lowlight3d.face.detection import build_face_detector
    from lowlight3d.utils.img_io import read_image
    images = {name: [read_image(p) for p in paths] for name, paths in sets.items()}
    rows, missing = [], {}
    for det_name in detector_names:
        try:
            detector, _ = build_face_detector(det_name)
        except Exception as err:  # a detector that cannot be built is reported, not fatal
            missing[det_name] = f'{type(err).__name__}: {str(err).splitlines()[0]}'
            continue
        for set_name, imgs in images.items():
            row = {'set': set_name, 'detector': det_name, 'photos': len(imgs)}
            passes = [('raw', False), ('bright', True)] + ([('default', None)] if det_name == 'cascade' else [])
            for label, flag in passes:
                detector.brighten = flag
                counts = [len(detector.detect(img)) for img in imgs]
                row[f'photos_with_face_{label}'] = sum(c > 0 for c in counts)
                row[f'faces_{label}'] = sum(counts)
            rows.append(row)
    return rows, missing


def main(argv=None):
    """Print the detection table (see the module docstring)."""
    parser = argparse.ArgumentParser(description='Count faces found on real dark photos before/after brightening.')
    parser.add_argument('--data', default=os.environ.get('LOWLIGHT3D_TEST_DATA', '../shared/data'))
    parser.add_argument('--max_luma', type=float, default=0.2, help='Yale B frames darker than this are used.')
    args = parser.parse_args(argv)
    from lowlight3d.utils.results_table import format_table
    sets = dark_photo_sets(args.data, args.max_luma)
    if not sets:
        raise FileNotFoundError(f'no real dark photos under {args.data} (set LOWLIGHT3D_TEST_DATA)')
    rows, missing = detection_counts(sets)
    print(format_table(rows))
    for name, reason in missing.items():
        print(f'{name}: not run ({reason})')
    return rows


if __name__ == '__main__':
    main()
