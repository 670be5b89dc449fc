"""The ``border_step`` metric (issue 10's inset frame): hand-made frames, clean results, errors and the registry."""
import numpy as np
import pytest

from lowlight3d.metrics.border_metric import border_profile, border_step
from lowlight3d.metrics.metric_util import compute_metric


def _pair(seed=0, size=128):
    rng = np.random.default_rng(seed)
    gt = rng.integers(40, 200, (size, size, 3)).astype(np.uint8)
    noisy = np.clip(gt.astype(int) + rng.integers(-6, 7, gt.shape), 0, 255).astype(np.uint8)
    return noisy, gt


def test_a_band_brighter_by_k_levels_scores_k_at_its_inner_edge():
    out, gt = _pair()
    framed = out.astype(int)
    framed[:10] += 8  # a band of 10 rows / columns along every edge, 8 levels brighter
    framed[-10:] += 8
    framed[10:-10, :10] += 8
    framed[10:-10, -10:] += 8
    framed = np.clip(framed, 0, 255).astype(np.uint8)
    profile = border_profile(framed, gt) - border_profile(out, gt)
    assert np.allclose(profile[:10], 8, atol=0.3) and np.allclose(profile[10:], 0, atol=1e-9)
    assert border_step(framed, gt) == pytest.approx(8, abs=1.5)


def test_a_clean_result_scores_below_one_level():
    out, gt = _pair(1)
    assert border_step(out, gt) < 1.0
    assert border_step(gt, gt) == 0.0
    shifted = np.clip(gt.astype(int) + 20, 0, 255).astype(np.uint8)  # a global brightness error is not a frame
    assert border_step(shifted, gt) < 1.0


def test_hand_computed_profile_and_errors():
    gt = np.zeros((8, 8), np.uint8)
    out = gt.copy()
    out[0, :] = 12  # ring 0 has 28 pixels, 8 of them (the top row) 12 levels off
    assert border_profile(out, gt).tolist() == pytest.approx([12 * 8 / 28, 0.0])
    assert border_step(out, gt) == pytest.approx(12 * 8 / 28)
    with pytest.raises(ValueError, match='shape'):
        border_step(out, np.zeros((8, 9), np.uint8))
    with pytest.raises(ValueError, match='8 x 8'):
        border_step(np.zeros((6, 6), np.uint8), np.zeros((6, 6), np.uint8))
    out3, gt3 = _pair(2)
    assert compute_metric({'type': 'border_step'}, out3, gt3) == pytest.approx(border_step(out3, gt3))
