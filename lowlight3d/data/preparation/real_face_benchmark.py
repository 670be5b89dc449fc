"""Data of the real-face benchmark (``make benchmark-real``): fixed splits of the shared UTKFace and Yale B photos.

The photos stay where they are (``$LOWLIGHT3D_TEST_DATA``, research-only licences: never copied).  The preparation
writes, under ``datasets/real_faces/`` (git-ignored), two symbolic links to the shared image folders and the lists
that define the splits, so the option files of ``options/real/`` read the photos through the links:

``utk/images`` -> ``$LOWLIGHT3D_TEST_DATA/faces_utk/images`` (1500 aligned 200x200 RGB faces)
    ``utk/meta_test.txt``: every ``test_every``-th file (default 25, offset ``test_every // 2``) of the sorted names,
    i.e. 60 faces; ``utk/meta_train.txt``: at most ``max_train`` (default 1000) of the other 1440, spread evenly
    over the sorted list.  File names start with the age, so sorted order mixes the race x gender cells of the
    stratified subset; the counts per cell are recorded in ``split.json``.  Training pairs are synthesised on the fly
    by our degradation; test pairs are synthesised seeded by image name (identical for every method).
``yaleb/images`` -> ``$LOWLIGHT3D_TEST_DATA/faces_yaleb/images`` (19 subjects x 8 lightings, 168x192 gray)
    Subjects are split by position in sorted order: even positions (yaleB01, 03, 05, 07, 09, 11, 13, 16, 18, 20)
    train, odd positions (yaleB02, 04, 06, 08, 10, 12, 15, 17, 19) test, so both halves hold cropped ambient frames.
    The dark frames are the two lights from far behind (``P00A+110E+65``, ``P00A-110E+65``, mean luma ~0.06) and the
    ambient-only capture (``P00_Ambient``, ~0.005) where it is a cropped 168x192 frame (yaleB01-B10; B11-B20 ship
    uncropped 640x480 frames, which are left out).
    ``yaleb/meta_unpaired_train.txt``: the dark frames of the training subjects (25): the real, unpaired low-light
    branch of the semi-supervised method (the only real dark faces available; gray).
    ``yaleb/meta_test_pairs.txt``: ``<dark frame> <reference>`` for the dark frames of the test subjects (23), the
    reference being the subject's frontal flash frame ``P00A+000E+00``.  No test subject is seen in training.
    ``yaleb/meta_train_pairs.txt``: the same pairing for the training subjects' dark frames (25): a small set of
    REAL pairs (real darkness and noise; the frames of one pose are aligned captures), which option files may mix
    into the training pairs (``real_pairs`` of :class:`~lowlight3d.data.lowlight_face_dataset.
    PairedLowLightFaceDataset`).
``split.json``
    the rules, counts, subjects, the source folder, and ``utk_train_mean_luma``: the mean Rec. 601 luma of the UTKFace
    training faces (the brightness a learned method is taught; the target of the ``GammaCurveEnhancer`` reference).

Everything depends only on the file names (and, for ``utk_train_mean_luma``, the pixels), so a re-run anywhere gives
the same lists.  Entry point: ``scripts/prepare_real_faces.py``.
"""
import csv
import json
import os
import os.path as osp
from collections import Counter

from lowlight3d.utils.checkpoint import atomic_write_json, atomic_write_text

__all__ = ['DATA_ENV', 'DEFAULT_OUT', 'DARK_CONDITIONS', 'REFERENCE_CONDITION', 'shared_data_root', 'utk_split',
           'yaleb_subject_split', 'yaleb_sets', 'yaleb_train_pairs',
           'prepare_real_faces']

#: Environment variable naming the shared real-image folder (``make`` sets it to ``../shared/data``).
DATA_ENV = 'LOWLIGHT3D_TEST_DATA'
#: Default output folder (relative to the working directory; git-ignored).
DEFAULT_OUT = osp.join('datasets', 'real_faces')
#: Yale B lighting conditions used as real dark inputs.
DARK_CONDITIONS = ('P00A+110E+65', 'P00A-110E+65', 'P00_Ambient')
#: The well-lit reference of each Yale B subject (single flash straight on).
REFERENCE_CONDITION = 'P00A+000E+00'
#: Size of the cropped Yale B frames (the uncropped ambient frames are left out).
YALEB_CROPPED_SIZE = '168x192'
_FORMAT = 'lowlight3d-real-faces-1'


def shared_data_root(root=None):
    """The shared real-image folder: ``root``, else ``$LOWLIGHT3D_TEST_DATA``.

    Raises:
        FileNotFoundError: Neither is set, or the folder lacks ``faces_utk`` / ``faces_yaleb``.
    """
    root = root or os.environ.get(DATA_ENV)
    if not root:
        raise FileNotFoundError(f'The real-face benchmark reads the shared photos from ${DATA_ENV}, which is unset: '
                                f'set {DATA_ENV}=/path/to/shared/data (the folder holding faces_utk/ and '
                                'faces_yaleb/; `make benchmark-real` sets it to ../shared/data) or pass --data')
    for sub in ('faces_utk', 'faces_yaleb'):
        if not osp.isfile(osp.join(root, sub, 'manifest.csv')):
            raise FileNotFoundError(f"{root} has no {sub}/manifest.csv: {DATA_ENV} (or --data) must name the shared "
                                    'data folder holding faces_utk/ and faces_yaleb/ with their manifests')
    return osp.abspath(root)


def _read_manifest(path):
    with open(path, newline='', encoding='utf-8') as f:
        return list(csv.DictReader(f))


def utk_split(names, test_every=25, max_train=1000):
    """Deterministic UTKFace split by sorted file name.

    Args:
        names (Iterable[str]): File names.
        test_every (int): Every ``test_every``-th name (from position ``test_every // 2``) goes to test.
        max_train (int | None): At most this many training names, chosen evenly over the sorted rest (None: all).

    Returns:
        tuple[list[str], list[str]]: ``(train, test)``, each sorted, disjoint.
    """
    if test_every < 2:
        raise ValueError(f'test_every must be >= 2, got {test_every}')
    names = sorted(set(names))
    offset = test_every // 2
    test = [n for i, n in enumerate(names) if i % test_every == offset]
    rest = [n for i, n in enumerate(names) if i % test_every != offset]
    if max_train is not None and 0 < max_train < len(rest):
        step = len(rest) / max_train
        rest = [rest[int(k * step)] for k in range(max_train)]
    return rest, test


def yaleb_subject_split(subjects):
    """Split Yale B subjects by position in sorted order: even positions train, odd positions test.

    Returns:
        tuple[list[str], list[str]]: ``(train_subjects, test_subjects)``.
    """
    subjects = sorted(set(subjects))
    return subjects[0::2], subjects[1::2]


def yaleb_sets(rows, test_subjects):
    """The unpaired training frames and the test pairs of Yale B.

    Args:
        rows (list[dict]): ``faces_yaleb/manifest.csv`` rows (``file``, ``subject``, ``condition``, ``size``).
        test_subjects (Iterable[str]): Subjects held out for testing.

    Returns:
        tuple[list[str], list[tuple[str, str]]]: ``(unpaired_train_files, [(dark_file, reference_file)])``.

    Raises:
        ValueError: A test subject has no reference frame.
    """
    test_subjects = set(test_subjects)
    train = [lq for lq, _ in _yaleb_dark_pairs(rows, lambda s: s not in test_subjects, require_reference=False)]
    return train, _yaleb_dark_pairs(rows, lambda s: s in test_subjects)


def yaleb_train_pairs(rows, test_subjects):
    """The dark frames of the training subjects paired with their reference: ``[(dark_file, reference_file)]``.

    Subjects without a reference frame are left out (their dark frames stay unpaired training data).
    """
    test_subjects = set(test_subjects)
    return [p for p in _yaleb_dark_pairs(rows, lambda s: s not in test_subjects, require_reference=False)
            if p[1] is not None]


def _yaleb_dark_pairs(rows, keep_subject, require_reference=True):
    """``[(dark_file, reference_file or None)]`` of the cropped dark frames of the subjects ``keep_subject`` keeps,
    in file order; a missing reference raises ValueError when ``require_reference``."""
    references = {r['subject']: r['file'] for r in rows if r['condition'] == REFERENCE_CONDITION}
    dark = sorted((r for r in rows if r['condition'] in DARK_CONDITIONS and r['size'] == YALEB_CROPPED_SIZE),
                  key=lambda r: r['file'])
    pairs = []
    for r in dark:
        if not keep_subject(r['subject']):
            continue
        if require_reference and r['subject'] not in references:
            raise ValueError(f"Yale B subject {r['subject']} has no {REFERENCE_CONDITION} frame in the manifest")
        pairs.append((r['file'], references.get(r['subject'])))
    return pairs


def _write_lines(path, lines):
    atomic_write_text(path, ''.join(f'{line}\n' for line in lines))


def _link(target, link):
    """Make ``link`` a symbolic link to ``target`` (replacing a link to elsewhere; never a real folder)."""
    if osp.islink(link):
        if os.readlink(link) == target:
            return
        os.remove(link)
    elif osp.exists(link):
        raise FileExistsError(f'{link} exists and is not a symbolic link; remove it (the benchmark links the shared '
                              'photos there instead of copying them)')
    try:
        os.symlink(target, link, target_is_directory=True)
    except OSError as err:
        raise OSError(f'Cannot create the symbolic link {link} -> {target} ({err}); the real-face benchmark reads the '
                      'shared photos through links and never copies them') from err


def _mean_luma(paths):
    """Mean Rec. 601 luma in [0, 1] over images (each image's mean, averaged)."""
    import cv2
    import numpy as np

    from lowlight3d.utils.luma import luma_weights
    means = []
    for path in paths:
        img = cv2.imread(path, cv2.IMREAD_COLOR)
        if img is None:
            raise OSError(f'Cannot read {path}')
        img = img.astype(np.float64) / 255.0
        means.append(float((img @ luma_weights('bgr', np.float64)).mean()))
    return float(np.mean(means))


def prepare_real_faces(out=DEFAULT_OUT, data_root=None, test_every=25, max_train=1000, verbose=True):
    """Write the links and lists of the real-face benchmark (see the module docstring); safe to re-run.

    Args:
        out (str): Output folder (default ``datasets/real_faces``).
        data_root (str, optional): Shared data folder (default ``$LOWLIGHT3D_TEST_DATA``).
        test_every (int): UTKFace test stride. max_train (int | None): UTKFace training cap.
        verbose (bool): Print what was written.

    Returns:
        dict: The content of ``split.json``.
    """
    root = shared_data_root(data_root)
    settings = {'format': _FORMAT, 'source': root, 'test_every': int(test_every),
                'max_train': None if max_train is None else int(max_train)}
    summary_path = osp.join(out, 'split.json')
    utk_rows = _read_manifest(osp.join(root, 'faces_utk', 'manifest.csv'))
    yale_rows = _read_manifest(osp.join(root, 'faces_yaleb', 'manifest.csv'))
    utk_dir, yale_dir = osp.join(root, 'faces_utk', 'images'), osp.join(root, 'faces_yaleb', 'images')
    missing = [osp.join(utk_dir, r['file']) for r in utk_rows if not osp.isfile(osp.join(utk_dir, r['file']))]
    missing += [osp.join(yale_dir, r['file']) for r in yale_rows if not osp.isfile(osp.join(yale_dir, r['file']))]
    if missing:
        raise FileNotFoundError(f'{len(missing)} image(s) listed in the manifests of {root} are missing, e.g. '
                                f'{missing[:3]}; the shared data folder is incomplete')

    train, test = utk_split([r['file'] for r in utk_rows], test_every, max_train)
    train_subjects, test_subjects = yaleb_subject_split(r['subject'] for r in yale_rows)
    unpaired, pairs = yaleb_sets(yale_rows, test_subjects)
    train_pairs = yaleb_train_pairs(yale_rows, test_subjects)

    for sub in ('utk', 'yaleb'):
        os.makedirs(osp.join(out, sub), exist_ok=True)
    _link(utk_dir, osp.join(out, 'utk', 'images'))
    _link(yale_dir, osp.join(out, 'yaleb', 'images'))
    _write_lines(osp.join(out, 'utk', 'meta_train.txt'), train)
    _write_lines(osp.join(out, 'utk', 'meta_test.txt'), test)
    _write_lines(osp.join(out, 'yaleb', 'meta_unpaired_train.txt'), unpaired)
    _write_lines(osp.join(out, 'yaleb', 'meta_test_pairs.txt'), [f'{lq} {gt}' for lq, gt in pairs])
    _write_lines(osp.join(out, 'yaleb', 'meta_train_pairs.txt'), [f'{lq} {gt}' for lq, gt in train_pairs])

    previous = None
    if osp.isfile(summary_path):
        with open(summary_path, encoding='utf-8') as f:
            previous = json.load(f)
    if previous and all(previous.get(k) == v for k, v in settings.items()) and previous.get('utk_train') == len(train):
        mean_luma = previous['utk_train_mean_luma']  # same lists: the pixels have not changed
    else:
        mean_luma = _mean_luma([osp.join(utk_dir, n) for n in train])
    cell = {r['file']: f"race{r['race(0=White,1=Black,2=Asian,3=Indian,4=Others)']}_"
                       f"gender{r['gender(0=male,1=female)']}" for r in utk_rows}
    summary = {
        **settings,
        'utk_rule': f'sorted file names; position i % {test_every} == {test_every // 2} -> test; the rest, '
                    f'at most {max_train} spread evenly, -> train',
        'utk_train': len(train), 'utk_test': len(test),
        'utk_test_cells': dict(sorted(Counter(cell[n] for n in test).items())),
        'utk_train_mean_luma': round(mean_luma, 4),
        'yaleb_rule': 'sorted subjects; even positions train (unpaired dark frames), odd positions test (dark frame '
                      f'-> {REFERENCE_CONDITION} reference); dark = {list(DARK_CONDITIONS)}, cropped '
                      f'{YALEB_CROPPED_SIZE} frames only',
        'yaleb_train_subjects': train_subjects, 'yaleb_test_subjects': test_subjects,
        'yaleb_unpaired_train': len(unpaired), 'yaleb_test_pairs': len(pairs), 'yaleb_train_pairs': len(train_pairs),
    }
    atomic_write_json(summary_path, summary)
    if verbose:
        print(f"[real faces] {out}: UTKFace {len(train)} train / {len(test)} test (mean luma of the training faces "
              f"{summary['utk_train_mean_luma']}); Yale B {len(unpaired)} unpaired dark training frames "
              f'({len(train_subjects)} subjects), {len(pairs)} dark test frames ({len(test_subjects)} subjects) '
              f'with references; photos linked from {root}', flush=True)
    return summary
