"""Tiled whole-image enhancement equals the untiled one (within 1/255 away from the image borders) for a
convolutional model and for our prior-guided model (prior computed once on the whole image); tile geometry."""
import os.path as osp

import numpy as np
import pytest
import torch

from lowlight3d.inference.image_enhancer import ImageEnhancer
from lowlight3d.inference.loaded_model import LoadedModel
from lowlight3d.inference.model_file import export_model
from lowlight3d.inference.tiling import tile_boxes

from inference_helpers import DEMO, tiny_ours_overrides, tiny_unet_options


def _photo(h=100, w=150, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([np.sin(6 * xx + c) * np.cos(4 * yy - c) for c in range(3)], -1) * 0.1 + 0.15
    return np.clip(base + rng.normal(0, 0.01, base.shape), 0, 1).astype(np.float32)


def test_tile_boxes_cover_the_image_once():
    boxes = tile_boxes(100, 150, 40, 20)
    cover = np.zeros((100, 150), int)
    for (y0, y1, x0, x1), (py0, py1, px0, px1) in boxes:
        cover[y0:y1, x0:x1] += 1
        assert py0 <= y0 and py1 >= y1 and px0 <= x0 and px1 >= x1 and py0 % 16 == 0 and px0 % 16 == 0
    assert (cover == 1).all()


@pytest.mark.parametrize('tile', [32, 48])
def test_tiled_equals_untiled_for_a_convolutional_model(tmp_path, tile):
    opt_path, _ = tiny_unet_options(str(tmp_path))
    model = LoadedModel(export_model(opt_path))
    img = _photo()
    whole = ImageEnhancer(model, tile=0).enhance(img)
    tiled = ImageEnhancer(model, tile=tile, tile_pad=32).enhance(img)
    m = 4
    assert np.abs(whole - tiled)[m:-m, m:-m].max() < 1.0 / 255
    assert np.abs(whole - ImageEnhancer(model, tile=tile, tile_pad=0).enhance(img)).max() > 1.0 / 255  # pad matters


def test_tiled_equals_untiled_for_our_prior_guided_model(tmp_path):
    cfg = tiny_ours_overrides(str(tmp_path))
    model = LoadedModel(export_model(osp.join(DEMO, 'test_LowLight3D_demo.yml'), cfg_options=cfg))
    img = _photo(80, 112)
    whole = ImageEnhancer(model, tile=0).enhance(img)
    tiled = ImageEnhancer(model, tile=32, tile_pad=32).enhance(img)
    assert np.abs(whole - tiled)[4:-4, 4:-4].max() < 1.0 / 255


def test_gray_input_stays_gray_unless_colour_is_asked(tmp_path):
    opt_path, _ = tiny_unet_options(str(tmp_path))
    model = LoadedModel(export_model(opt_path))
    gray = np.repeat(_photo(48, 48)[..., :1], 3, -1)
    kept = ImageEnhancer(model, gray='auto').enhance(gray)
    assert np.abs(kept - kept[..., :1]).max() < 1e-6
    coloured = ImageEnhancer(model, gray='colour').enhance(gray)
    assert np.abs(coloured - coloured[..., :1]).max() > 1e-4
    with pytest.raises(ValueError, match='--gray'):
        ImageEnhancer(model, gray='grey')
    assert torch.is_tensor(ImageEnhancer(model).enhance_tensor(torch.rand(1, 3, 16, 16)))


def test_a_network_with_global_operations_is_reported_when_tiled(tmp_path):
    from inference_helpers import REPO
    model = LoadedModel(export_model(osp.join(REPO, 'options', 'real', 'test_GammaCurve_real.yml')))
    enhancer = ImageEnhancer(model, tile=32, tile_pad=16)
    assert enhancer.tiling_error() > 1.0 / 255 and any('global operations' in n for n in enhancer.notes)
    opt_path, _ = tiny_unet_options(str(tmp_path))
    assert not ImageEnhancer(LoadedModel(export_model(opt_path)), tile=32, tile_pad=32).notes
