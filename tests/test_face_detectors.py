"""The offline face detectors (dlib HOG + 5 points, dlib CNN, mediapipe, Haar) on a darkened real face and on the
real dark photos of the shared data: brightening first (denoised, gamma, CLAHE) is what makes the dark faces
detectable, and the inference cascade finds the Yale B ambient faces without false faces in scenes without people."""
import os.path as osp

import numpy as np
import pytest
from skimage import data

from lowlight3d.face.alignment import five_landmarks
from lowlight3d.face.detection import (
    BRIGHTEN_METHODS,
    DARK_BRIGHTEN,
    OFFLINE_DETECTORS,
    brighten_for_detection,
    build_face_detector,
)
from lowlight3d.face.survey import dark_photo_sets
from lowlight3d.utils.img_io import read_image


@pytest.fixture(scope='module')
def dark_astronaut():
    """skimage's bundled astronaut photo at 6 % of its brightness."""
    return data.astronaut().astype(np.float32) / 255.0 * 0.06


@pytest.mark.parametrize('name', OFFLINE_DETECTORS)
def test_offline_detector_finds_the_dark_face_with_five_landmarks(name, dark_astronaut):
    detector, report = build_face_detector(name)
    assert name in report.lower() and detector.name == name
    faces = detector.detect(dark_astronaut)
    assert faces, f'{name} found no face in the brightened copy'
    lm, _ = five_landmarks(faces[0])
    x0, y0, x1, y1 = faces[0].box
    assert lm.shape == (5, 2) and x0 - 10 <= lm[:, 0].mean() <= x1 + 10 and y0 - 10 <= lm[:, 1].mean() <= y1 + 10
    assert 150 < lm[:, 0].mean() < 290 and 60 < lm[:, 1].mean() < 200  # the astronaut's face, not elsewhere


def test_auto_falls_back_to_the_offline_cascade_for_inference(tmp_path, monkeypatch):
    monkeypatch.setenv('LOWLIGHT3D_WEIGHTS', str(tmp_path))
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))
    detector, report = build_face_detector('auto', fallbacks=OFFLINE_DETECTORS)
    assert detector.name == 'cascade' and 'fallback' in report and 'detection_Resnet50_Final.pth' in report
    assert [d.name for d in detector.detectors] == ['dlib', 'mediapipe', 'dlib_cnn']
    assert [d.brighten for d in detector.detectors] == [DARK_BRIGHTEN] * 3
    assert [v and v.name for v in detector.verifiers] == ['dlib_cnn', None, None]  # HOG boxes checked by the CNN
    detector.brighten = False  # a survey forces a setting on every member, None gives each its own back
    assert {d.brighten for d in detector.detectors} == {False}
    detector.brighten = None
    assert [d.brighten for d in detector.detectors] == [DARK_BRIGHTEN] * 3


def test_brightening_methods_and_a_missing_cnn_model_file(dark_astronaut, tmp_path):
    for method in BRIGHTEN_METHODS:
        out = brighten_for_detection(dark_astronaut, method=method)
        assert out.dtype == np.uint8 and out.shape == dark_astronaut.shape and 60 < out.mean() < 160, method
    with pytest.raises(ValueError, match='brightening method'):
        brighten_for_detection(dark_astronaut, method='sharpen')
    from lowlight3d.face.dlib_cnn_detector import DlibCnnFaceDetector
    with pytest.raises(FileNotFoundError, match='missing'):
        DlibCnnFaceDetector(model_path=str(tmp_path / 'mmod_human_face_detector.dat'))


def test_a_face_is_found_in_a_real_dark_photo_after_brightening(shared_data):
    sets = dark_photo_sets(shared_data)
    if 'YaleB_ambient' not in sets:
        pytest.skip(f'{shared_data} has no faces_yaleb/manifest.csv')
    chosen = ('yaleB03_P00_Ambient', 'yaleB11_P00_Ambient')
    photos = [p for p in sets['YaleB_ambient'] if osp.basename(p).startswith(chosen)]
    detector, _ = build_face_detector('dlib')
    found_raw, found_bright = 0, 0
    for path in photos:
        img = read_image(path)
        assert img.mean() < 0.15  # really dark
        detector.brighten = False
        found_raw += bool(detector.detect(img))
        detector.brighten = True
        found_bright += bool(detector.detect(img))
    assert found_bright >= 1 and found_bright > found_raw


def test_the_cascade_finds_ambient_faces_and_no_face_in_scenes_without_people(shared_data):
    sets = dark_photo_sets(shared_data)
    if 'YaleB_ambient' not in sets or 'no_person' not in sets:
        pytest.skip(f'{shared_data} lacks faces_yaleb or lowlight_real')
    detector, _ = build_face_detector('cascade')
    ambient = [p for p in sets['YaleB_ambient'] if osp.basename(p)[5:7] in ('01', '12', '17')]  # crop + 2 frames
    assert all(detector.detect(read_image(p)) for p in ambient)
    empty = [p for p in sets['no_person'] if osp.basename(p) in ('37.jpg', '62.jpg', '493.png')]  # HOG's false faces
    assert len(empty) == 3 and not any(detector.detect(read_image(p)) for p in empty)
