"""Face detection (Haar fallback, RetinaFace with random stand-in weights), FFHQ-style alignment and the frame
quality measures."""
import os.path as osp

import cv2
import numpy as np
import pytest

from lowlight3d.data.preparation.face_alignment import FFHQ_TEMPLATE_512, align_face, ffhq_quad, five_landmarks
from lowlight3d.data.preparation.face_detection import (
    FaceDetection,
    HaarFaceDetector,
    brighten_for_detection,
    build_face_detector,
)
from lowlight3d.data.preparation.frame_quality import (
    NearDuplicateFilter,
    blur_score,
    exposure_clipping,
    face_thumbnail,
    noise_sigma,
    relative_noise,
)
from lowlight3d.utils.img_io import read_image


@pytest.fixture(scope='module')
def ffhq_face(shared_data):
    return read_image(osp.join(shared_data, 'faces_hq', 'ffhq', '00001.png'))  # 512 x 512, FFHQ-aligned


def test_ffhq_quad_of_template_is_the_whole_image(ffhq_face):
    quad = ffhq_quad(FFHQ_TEMPLATE_512)
    np.testing.assert_allclose(quad, [[0, 0], [0, 512], [512, 512], [512, 0]], atol=8)
    aligned = align_face(ffhq_face, FFHQ_TEMPLATE_512, size=256)
    assert aligned.image.shape == (256, 256, 3) and aligned.outside_fraction < 0.02
    reference = cv2.resize(ffhq_face, (256, 256), interpolation=cv2.INTER_AREA)
    assert np.abs(aligned.image - reference).mean() < 0.05
    # a rotated, shifted copy of the face is brought back upright by its (rotated) landmarks
    m = cv2.getRotationMatrix2D((256, 256), 20, 0.8)
    m[:, 2] += (30, -20)
    moved = cv2.warpAffine(ffhq_face, m, (512, 512), borderMode=cv2.BORDER_REFLECT_101)
    lm = np.hstack([FFHQ_TEMPLATE_512, np.ones((5, 1), np.float32)]) @ m.T
    back = align_face(moved, lm, size=256)
    assert np.abs(back.image - reference).mean() < 0.06
    with pytest.raises(ValueError, match='Degenerate'):
        ffhq_quad(np.zeros((5, 2)))


def test_haar_detects_a_dark_face_and_landmarks_fall_near_the_template(ffhq_face):
    det = HaarFaceDetector()
    dark = ffhq_face * 0.06  # mean brightness about 0.03
    assert brighten_for_detection(dark).mean() > 80
    faces = det.detect(dark)
    assert len(faces) == 1
    lm, source = five_landmarks(faces[0])
    assert source in ('eyes', 'box')
    assert np.abs(lm - FFHQ_TEMPLATE_512).max() < 35  # pixels, in a 512 image
    box_only = FaceDetection(faces[0].box, 1.0)
    lm_box, source = five_landmarks(box_only)
    assert source == 'box' and np.abs(lm_box - FFHQ_TEMPLATE_512).max() < 40
    assert det.detect(np.full((256, 256, 3), 0.03, np.float32)) == []


def test_retinaface_is_used_when_weights_resolve(tmp_path, monkeypatch, ffhq_face):
    """Random-weight stand-in for detection_mobilenet0.25_Final.pth: checks the wiring, not detection quality."""
    import torch
    from facexlib.detection.retinaface import RetinaFace
    torch.manual_seed(0)
    torch.save(RetinaFace(network_name='mobile0.25', device='cpu').state_dict(),
               tmp_path / 'detection_mobilenet0.25_Final.pth')
    monkeypatch.setenv('LOWLIGHT3D_WEIGHTS', str(tmp_path))
    det, report = build_face_detector('auto', retinaface_model='retinaface_mobile0.25')
    assert det.name == 'retinaface' and 'retinaface_mobile0.25' in report
    faces = det.detect(cv2.resize(ffhq_face, (128, 128)) * 0.1)
    assert all(f.landmarks.shape == (5, 2) for f in faces)
    monkeypatch.setenv('LOWLIGHT3D_WEIGHTS', str(tmp_path / 'none'))
    det, report = build_face_detector('auto', retinaface_model='retinaface_resnet50')
    assert det.name == 'haar' and 'fallback' in report and 'detection_Resnet50_Final.pth' in report
    from lowlight3d.utils.weights import WeightsNotFoundError
    with pytest.raises(WeightsNotFoundError):
        build_face_detector('retinaface')


def test_quality_measures(ffhq_face):
    face = cv2.resize(ffhq_face, (256, 256), interpolation=cv2.INTER_AREA)
    rng = np.random.default_rng(0)
    dark = np.clip(face * 0.1 + rng.normal(0, 0.01, face.shape), 0, 1).astype(np.float32)
    dark_blurred = np.clip(cv2.GaussianBlur(face, (0, 0), 5) * 0.1 + rng.normal(0, 0.01, face.shape), 0, 1)
    assert blur_score(face) > 120 and blur_score(dark) > 120 > blur_score(dark_blurred.astype(np.float32))
    flat = np.full((64, 64, 3), 0.5, np.float32)
    noise = rng.normal(0, 4 / 255, (64, 64, 1))  # gray noise, sigma 4 (8-bit units)
    noisy = np.clip(flat + noise, 0, 1).astype(np.float32)
    dark_noisy = np.clip(flat * 0.1 + noise, 0, 1).astype(np.float32)
    assert noise_sigma(flat) == 0.0 and noise_sigma(noisy) == pytest.approx(4.0, rel=0.15)
    assert relative_noise(dark_noisy) > 5 * relative_noise(noisy)  # same sensor noise, 10x less light
    img = np.zeros((10, 10, 3), np.float32)
    img[:2] = 1.0
    assert exposure_clipping(img) == (0.8, 0.2)
    dup = NearDuplicateFilter(0.6)
    dup.add('a', face_thumbnail(face))
    assert dup.check(face_thumbnail(np.clip(face * 0.3 + rng.normal(0, 0.01, face.shape), 0, 1))) == 'a'
    assert dup.check(face_thumbnail(face[:, ::-1].copy())) is None
    assert NearDuplicateFilter(-1).check(face_thumbnail(face)) is None
