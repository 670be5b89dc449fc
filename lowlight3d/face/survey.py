"""How many faces each detector finds on real dark photos, per brightening, with false faces and time per frame.

``python -m lowlight3d.face.survey [--data DIR] [--max_luma 0.2] [--brighten none,gamma,denoise_gamma]``
reads the real low-light photos of the shared data folder (``$LOWLIGHT3D_TEST_DATA``, default ``../shared/data``):

* ``YaleB_ambient``: the 19 ``P00_Ambient`` frames of Yale B (no flash; 10 aligned 168x192 crops, 9 uncropped
  640x480 frames; mean luma 0.002-0.17), each with one person;
* ``YaleB_dark``: the other Yale B frames whose manifest ``mean_luma`` is below ``--max_luma`` (light from behind);
* ``with_people``: the DICM scenes that show people or human figures (:data:`DICM_WITH_PEOPLE`, looked at);
* ``no_person``: every other DICM, LIME and LOL scene (dark scenes without a person): a face found there is a
  false positive.

For each detector and brightening (:data:`~lowlight3d.face.detection.BRIGHTEN_METHODS`, ``none`` = the frame as it
is; the cascade also with ``default``, its members' own settings) it prints the photos with at least one face, the
faces, and the mean milliseconds per frame on this machine.  Detectors that cannot be built (RetinaFace without its
weights) are listed with the reason.  The full table takes several minutes on one CPU thread.
"""
import argparse
import csv
import glob
import os
import os.path as osp
import time

__all__ = ['dark_photo_sets', 'detection_counts', 'main', 'DICM_WITH_PEOPLE', 'SURVEY_DETECTORS']

#: DICM scenes showing people or human figures (statues, astronaut figures), by file stem (looked at).
DICM_WITH_PEOPLE = ('02', '03', '10', '12', '13', '14', '23', '41', '42', '43', '65')
#: Detectors the survey runs, in order.
SURVEY_DETECTORS = ('dlib', 'dlib_cnn', 'mediapipe', 'haar', 'cascade', 'retinaface')


def _images(folder):
    return sorted(p for p in glob.glob(osp.join(folder, '*')) if p.lower().endswith(('.png', '.jpg', '.bmp')))


def dark_photo_sets(root, max_luma=0.2):
    """``{set name: [paths]}`` of the real dark photos under ``root`` (see the module docstring)."""
    sets = {}
    manifest = osp.join(root, 'faces_yaleb', 'manifest.csv')
    if osp.isfile(manifest):
        with open(manifest, newline='') as f:
            rows = list(csv.DictReader(f))
        images = osp.join(root, 'faces_yaleb', 'images')
        sets['YaleB_ambient'] = [osp.join(images, r['file']) for r in rows if r['condition'] == 'P00_Ambient']
        sets['YaleB_dark'] = [osp.join(images, r['file']) for r in rows
                              if r['condition'] != 'P00_Ambient' and float(r['mean_luma']) < max_luma]
    people, empty = [], []
    for name in ('DICM', 'LIME', 'LOL_eval15_low'):
        for path in _images(osp.join(root, 'lowlight_real', name)):
            stem = osp.splitext(osp.basename(path))[0]
            (people if name == 'DICM' and stem in DICM_WITH_PEOPLE else empty).append(path)
    if people:
        sets['with_people'] = people
    if empty:
        sets['no_person'] = empty
    return {k: v for k, v in sets.items() if v}


def detection_counts(sets, detector_names=SURVEY_DETECTORS, brightenings=('none', 'gamma', 'denoise_gamma')):
    """Rows ``{set, detector, brighten, photos, with_face, faces, ms_per_frame}``.

    The cascade (inference's offline default) also gets ``brighten='default'``: its members' own settings.

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
        passes = list(brightenings) + (['default'] if det_name == 'cascade' else [])
        for label in passes:
            detector.brighten = {'none': False, 'default': None}.get(label, label)
            for set_name, imgs in images.items():
                t0 = time.perf_counter()
                counts = [len(detector.detect(img)) for img in imgs]
                ms = 1000.0 * (time.perf_counter() - t0) / max(1, len(imgs))
                rows.append({'set': set_name, 'detector': det_name, 'brighten': label, 'photos': len(imgs),
                             'with_face': sum(c > 0 for c in counts), 'faces': sum(counts),
                             'ms_per_frame': round(ms, 1)})
    return rows, missing


def main(argv=None):
    """Print the detection table (see the module docstring)."""
    parser = argparse.ArgumentParser(description='Count faces found on real dark photos per detector and brightening.')
    parser.add_argument('--data', default=os.environ.get('LOWLIGHT3D_TEST_DATA', '../shared/data'))
    parser.add_argument('--max_luma', type=float, default=0.2, help='Yale B frames darker than this are used.')
    parser.add_argument('--detectors', default=','.join(SURVEY_DETECTORS), help='Comma-separated detector names.')
    parser.add_argument('--brighten', default='none,gamma,denoise_gamma',
                        help='Comma-separated brightenings: none and names of BRIGHTEN_METHODS.')
    parser.add_argument('--sets', default=None, help='Comma-separated set names (default: all).')
    args = parser.parse_args(argv)
    from lowlight3d.utils.results_table import format_table
    sets = dark_photo_sets(args.data, args.max_luma)
    if not sets:
        raise FileNotFoundError(f'no real dark photos under {args.data} (set LOWLIGHT3D_TEST_DATA)')
    if args.sets:
        sets = {k: v for k, v in sets.items() if k in args.sets.split(',')}
    rows, missing = detection_counts(sets, args.detectors.split(','), args.brighten.split(','))
    print(format_table(rows))
    for name, reason in missing.items():
        print(f'{name}: not run ({reason})')
    return rows


if __name__ == '__main__':
    main()
