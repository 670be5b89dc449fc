"""Face mode's seam metric, seamless paste-back and trust check on small synthetic cases: a known step is measured
in 8-bit levels, a darker and flatter face pasted with the band gains alone leaves a seam that the seamless match
removes, and a face model result that is much darker or flat is blended or replaced by the background."""
import cv2
import numpy as np
import pytest
from skimage import data

from lowlight3d.face.alignment import align_face
from lowlight3d.face.paste_back import paste_face
from lowlight3d.face.seam import paste_seam, seam_step
from lowlight3d.face.trust import assess_face


@pytest.fixture(scope='module')
def scene():
    """A dark frame: skimage's astronaut (256 px) on a smooth generated gradient, with its five landmarks."""
    face = cv2.resize(data.astronaut(), (256, 256), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    yy, xx = np.mgrid[:320, :360].astype(np.float32)
    frame = np.stack([0.3 + 0.4 * xx / 360, 0.35 + 0.2 * yy / 320, 0.5 - 0.2 * xx / 360], axis=2)
    frame[40:296, 60:316] = face
    lm = np.array([[151, 80], [172, 81], [162, 93], [153, 103], [171, 104]], dtype=np.float32) * [1, 1]
    return frame * 0.08, lm + [60, 40]


def test_a_known_step_is_measured_in_levels_and_the_background_alone_has_none():
    rng = np.random.default_rng(0)
    bg = np.clip(0.4 + 0.02 * rng.standard_normal((120, 120, 3)), 0, 1).astype(np.float32)
    mask = np.zeros((120, 120), np.float32)
    mask[30:90, 30:90] = 1.0
    mask = cv2.GaussianBlur(mask, (0, 0), 3)
    assert seam_step(bg, bg, mask).luma == 0
    stepped = np.clip(bg + (mask > 0.5)[..., None] * np.float32(10 / 255), 0, 1)
    seam = seam_step(stepped, bg, mask)
    assert seam.luma == pytest.approx(10, abs=0.5) and seam.colour < 0.5 and seam.sectors == 16
    warm = np.clip(bg + (mask > 0.5)[..., None] * np.float32([12 / 255, 0, 0]), 0, 1)
    assert seam_step(warm, bg, mask).colour > 5  # a red shift is a colour seam
    with pytest.raises(ValueError, match='same height and width'):
        seam_step(bg, bg[:10], mask)


def test_seamless_paste_removes_the_seam_of_a_darker_flatter_face(scene):
    frame, lm = scene
    background = np.power(frame, 0.4).astype(np.float32)  # a gamma background
    face = align_face(frame, lm, 128)
    target = cv2.warpAffine(background, face.affine, (128, 128), flags=cv2.INTER_LINEAR)
    ramp = np.linspace(0.0, 0.3, 128, dtype=np.float32)[None, :, None]  # uneven: no single gain matches it
    flat = cv2.GaussianBlur(target, (0, 0), 3) * 0.6 + ramp  # darker, flatter, as the demo model's faces
    seams = {}
    for match in ('gain', 'seamless'):
        info = {}
        out, _ = paste_face(background, frame, face.image, flat, face.affine, match=match, info=info)
        seams[match] = paste_seam(out, background, info)
    assert seams['gain'].luma > 4 and seams['seamless'].luma <= 3 and seams['seamless'].colour <= 3
    info = {}
    out, _ = paste_face(background, frame, face.image, flat, face.affine, alpha=0.0, info=info)
    assert np.allclose(out, background) and info['mask'].max() > 0.99  # alpha 0: the background


def test_trust_keeps_blends_or_falls_back_per_face(scene):
    frame, lm = scene
    background = np.power(frame, 0.4).astype(np.float32)
    face = align_face(frame, lm, 128)
    bg_crop = cv2.warpAffine(background, face.affine, (128, 128), flags=cv2.INTER_LINEAR)
    assert assess_face(bg_crop, bg_crop).action == 'face'
    dark = assess_face(bg_crop * 0.3, bg_crop)
    assert dark.action == 'background' and 'much darker' in dark.reason and dark.measures['luma_ratio'] < 0.5
    flat = assess_face(cv2.GaussianBlur(bg_crop, (0, 0), 12), bg_crop)
    assert flat.action == 'background' and 'flat' in flat.reason
    softer = assess_face(cv2.GaussianBlur(bg_crop, (0, 0), 1.2), bg_crop)
    assert softer.action in ('blend', 'face') and 0 < softer.weight <= 1

    class NoFace:
        """A detector that finds a face only in the background's rendering."""
        def detect(self, img):
            return [] if img is not bg_crop else [object()]
    lost = assess_face(bg_crop * 1.0, bg_crop, detector=NoFace())
    assert lost.action == 'background' and 'no face is detected' in lost.reason
