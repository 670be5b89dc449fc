"""Alignment + inverse paste-back: an identity enhancer returns the photo, a brightening one brightens the face
only, the seam is feathered, and the colour match takes the face to the background's exposure."""
import cv2
import numpy as np
import pytest
from skimage import data

from lowlight3d.face.alignment import FFHQ_TEMPLATE_512, align_face, landmarks_from_eyes
from lowlight3d.face.paste_back import face_mask, paste_face
from lowlight3d.face.tracking import LandmarkSmoother


@pytest.fixture(scope='module')
def photo():
    """skimage's astronaut (512 x 512, bundled) in a larger, darker frame, and its face landmarks."""
    img = data.astronaut().astype(np.float32) / 255.0
    frame = np.pad(img, ((40, 60), (100, 20), (0, 0)), mode='reflect') * 0.3
    # eyes / nose / mouth corners of the astronaut, measured once (frame pixels after the padding)
    lm = np.array([[302, 160], [345, 162], [324, 186], [307, 207], [342, 208]], dtype=np.float32)
    return frame, lm


def _interior(mask, margin=3):
    """Pixels well inside the feathered mask."""
    return cv2.erode((mask > 0.999).astype(np.uint8), np.ones((2 * margin + 1, ) * 2, np.uint8)) > 0


@pytest.mark.parametrize('size', [64, 256])
def test_identity_enhancer_returns_the_photo(photo, size):
    frame, lm = photo
    face = align_face(frame, lm, size)
    out, gain = paste_face(frame, frame, face.image, face.image.copy(), face.affine)
    assert np.abs(out - frame).max() < 1e-5 and np.allclose(gain, 1, atol=1e-5)
    # GFPGAN's way (the face re-sampled twice): equal up to interpolation, away from the feathered edge
    out, _ = paste_face(frame, frame, face.image, face.image.copy(), face.affine, detail='replace')
    box = (0, 0, frame.shape[1], frame.shape[0])
    inside = _interior(face_mask(face.affine, size, box))
    assert np.abs(out - frame)[inside].mean() < 2.5 / 255


def test_a_brighter_face_is_pasted_with_a_feathered_edge_and_matched_to_the_background(photo):
    frame, lm = photo
    face = align_face(frame, lm, 128)
    mask = face_mask(face.affine, 128, (0, 0, frame.shape[1], frame.shape[0]))
    out, gain = paste_face(frame, frame, face.image, face.image * 2.0, face.affine, colour_match=0)
    inside, outside = mask > 0.999, mask < 1e-6
    # frame + (the change, re-sampled): twice the frame up to interpolation of the change
    assert np.abs(out[inside] - np.clip(frame[inside] * 2.0, 0, 1)).mean() < 2.0 / 255
    assert np.array_equal(out[outside], frame[outside])
    band = (mask > 0.05) & (mask < 0.95)
    assert band.sum() > 100  # a real feather, not a hard square edge
    matched, gain = paste_face(frame * 2.0, frame, face.image, face.image * 2.0, face.affine)
    assert np.allclose(gain, 1.0, atol=0.02)  # face and background agree: nothing to correct
    dimmer, gain = paste_face(frame, frame, face.image, face.image * 2.0, face.affine)
    assert np.all(gain < 0.6) and np.abs(dimmer[band] - frame[band]).mean() < 0.02


def test_landmarks_from_eyes_reproduce_the_template_and_smoothing_holds_faces():
    lm = landmarks_from_eyes(FFHQ_TEMPLATE_512[0], FFHQ_TEMPLATE_512[1])
    assert np.abs(lm - FFHQ_TEMPLATE_512).max() < 0.01
    smoother = LandmarkSmoother(alpha=0.5, hold=1)
    first = smoother.update([FFHQ_TEMPLATE_512])
    second = smoother.update([FFHQ_TEMPLATE_512 + 10])
    assert len(first) == len(second) == 1 and np.allclose(second[0], FFHQ_TEMPLATE_512 + 5)
    assert len(smoother.update([])) == 1 and len(smoother.update([])) == 0  # held for one missed frame


def test_colour_is_matched_at_the_seam_and_kept_in_the_face_centre(photo):
    frame, lm = photo
    face = align_face(frame, lm, 128)
    warm = np.array([1.5, 1.0, 0.6], np.float32)
    out, gain = paste_face(frame, frame, face.image, face.image * warm, face.affine, detail='replace')
    assert gain[0] < gain[1] < gain[2]  # the band is pulled back to the neutral background
    centre = np.round(cv2.transform(np.float32([[[64, 64]]]), cv2.invertAffineTransform(face.affine))[0, 0]).astype(int)
    ratio = out[centre[1], centre[0]] / np.maximum(frame[centre[1], centre[0]], 1e-3)
    assert ratio[0] / ratio[2] == pytest.approx(1.5 / 0.6, rel=0.15)  # the face keeps its model's colours
