"""Folder evaluation (``scripts/evaluate.py``): pairing, errors, CSV rows and the mean row.

Images are small generated arrays written to ``tmp_path`` (lossless PNG/BMP, so reading them back is exact).
NIQE uses a parameter file built by the install-time builder into a temporary folder (no network needed).
"""
import csv
import importlib.util
import math
import os.path as osp

import cv2
import numpy as np
import pytest

from lowlight3d.metrics import iqa_model_files as imf
from lowlight3d.metrics.folder_evaluation import (
    ImageSizeError,
    PairingError,
    evaluate_folders,
    format_table,
    write_metrics_csv,
)
from lowlight3d.metrics.metric_util import MetricUnavailable, compute_metric

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


@pytest.fixture(scope='module')
def weights_root(tmp_path_factory):
    """A LOWLIGHT3D_WEIGHTS folder holding the NIQE file (``iqa/niqe_modelparameters.mat``)."""
    root = tmp_path_factory.mktemp('weights')
    imf.build_iqa_models(osp.join(root, 'iqa'), which=('niqe', ), log=None)
    return str(root)


@pytest.fixture
def folders(tmp_path, weights_root, monkeypatch):
    """pred/ (PNG) and gt/ (BMP) with 3 pairs; ``c`` is 64x64, too small for NIQE."""
    monkeypatch.setenv('LOWLIGHT3D_WEIGHTS', weights_root)
    rng = np.random.default_rng(0)
    pred, gt = tmp_path / 'pred', tmp_path / 'gt'
    pred.mkdir()
    gt.mkdir()
    images = {}
    for name, (h, w) in {'a': (100, 120), 'b': (112, 104), 'c': (64, 64)}.items():
        y, x = np.mgrid[0:h, 0:w]
        clean = np.stack([(x * 2) % 256, (y * 2) % 256, (x + y) % 256], axis=-1).astype(np.uint8)
        noisy = np.clip(clean + rng.normal(0, 8, clean.shape), 0, 255).round().astype(np.uint8)
        cv2.imwrite(str(pred / f'{name}.png'), noisy)
        cv2.imwrite(str(gt / f'{name}.bmp'), clean)
        images[name] = (noisy, clean)
    return str(pred), str(gt), images


def _read_csv(path):
    """Rows of a CSV file as dicts."""
    with open(path, newline='', encoding='utf-8') as f:
        return list(csv.DictReader(f))


def test_rows_csv_and_mean_match_direct_computation(folders, tmp_path):
    """Per-image rows equal compute_metric; CSV values, n/a cells and the mean row are right."""
    pred, gt, images = folders
    rows = evaluate_folders(pred, gt, ['psnr', 'ssim', 'niqe'], crop_border=2)
    assert [r['name'] for r in rows] == ['a', 'b', 'c', 'mean']
    assert rows[0]['pred'] == 'a.png' and rows[0]['gt'] == 'a.bmp'
    for row in rows[:-1]:
        noisy, clean = images[row['name']]
        for metric in ('psnr', 'ssim'):
            assert row[metric] == pytest.approx(compute_metric({
                'type': metric,
                'crop_border': 2
            }, noisy, clean),
                                                abs=1e-12)
    assert isinstance(rows[2]['niqe'], MetricUnavailable)  # 64x64 < one NIQE block
    assert rows[0]['niqe'] == pytest.approx(compute_metric({'type': 'niqe', 'crop_border': 2}, images['a'][0]))

    out = write_metrics_csv(rows, str(tmp_path / 'out' / 'scores.csv'))
    table = _read_csv(out)
    assert list(table[0].keys()) == ['name', 'pred', 'gt', 'psnr', 'ssim', 'niqe']
    assert [r['name'] for r in table] == ['a', 'b', 'c', 'mean']
    psnrs = [float(r['psnr']) for r in table[:3]]
    assert psnrs == pytest.approx([rows[i]['psnr'] for i in range(3)], abs=1e-6)
    assert float(table[3]['psnr']) == pytest.approx(np.mean([rows[i]['psnr'] for i in range(3)]), abs=1e-6)
    assert table[2]['niqe'].startswith('n/a (NIQE needs an image of at least 96x96')
    # the unavailable value is left out of the mean
    assert float(table[3]['niqe']) == pytest.approx((rows[0]['niqe'] + rows[1]['niqe']) / 2, abs=1e-6)
    text = format_table(rows)
    assert 'n/a [1]' in text and '[1] NIQE needs' in text


def test_test_y_channel_option(folders):
    """test_y_channel reaches PSNR."""
    pred, gt, images = folders
    rows = evaluate_folders(pred, gt, ['psnr'], test_y_channel=True)
    noisy, clean = images['b']
    assert rows[1]['psnr'] == pytest.approx(compute_metric({'type': 'psnr', 'test_y_channel': True}, noisy, clean))


def test_unmatched_names_error_and_allow_unmatched(folders, tmp_path):
    """Unmatched names on either side are listed in the error, or skipped with a warning."""
    pred, gt, _ = folders
    cv2.imwrite(osp.join(pred, 'only_pred.png'), np.zeros((100, 100, 3), np.uint8))
    cv2.imwrite(osp.join(gt, 'only_gt.png'), np.zeros((100, 100, 3), np.uint8))
    with pytest.raises(PairingError, match=r'without ground truth .*only_pred.*without prediction .*only_gt'):
        evaluate_folders(pred, gt, ['psnr'])
    with pytest.warns(UserWarning, match='only_pred'):
        rows = evaluate_folders(pred, gt, ['psnr'], allow_unmatched=True)
    assert [r['name'] for r in rows] == ['a', 'b', 'c', 'mean']


def test_size_mismatch_and_duplicate_stem_errors(folders):
    """A size mismatch names the file; two files with one stem are refused."""
    pred, gt, _ = folders
    cv2.imwrite(osp.join(pred, 'b.png'), np.zeros((50, 50, 3), np.uint8))
    with pytest.raises(ImageSizeError, match=r'b\.png: prediction is 50x50 but the ground truth b\.bmp is 104x112'):
        evaluate_folders(pred, gt, ['psnr'])
    cv2.imwrite(osp.join(pred, 'a.bmp'), np.zeros((50, 50, 3), np.uint8))
    with pytest.raises(PairingError, match=r'share a name.*a\.bmp / a\.png'):
        evaluate_folders(pred, gt, ['psnr'])


def test_no_reference_scoring_and_argument_errors(folders):
    """No-reference scoring without --gt; clear errors for bad requests."""
    pred, gt, images = folders
    rows = evaluate_folders(pred, None, ['niqe'])
    assert rows[0]['gt'] == '' and rows[0]['niqe'] == pytest.approx(compute_metric({'type': 'niqe'}, images['a'][0]))
    with pytest.raises(ValueError, match='Full-reference metric.*psnr.*--gt'):
        evaluate_folders(pred, None, ['psnr', 'niqe'])
    with pytest.raises(KeyError, match='Known names'):
        evaluate_folders(pred, gt, ['psnr', 'nope'])
    with pytest.raises(FileNotFoundError):
        evaluate_folders(pred + '_missing', gt, ['psnr'])


def _load_script():
    """Import scripts/evaluate.py as a module."""
    spec = importlib.util.spec_from_file_location('evaluate_script', osp.join(REPO, 'scripts', 'evaluate.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_writes_csv_and_prints_protocol(folders, tmp_path, capsys):
    """The CLI writes the CSV, prints the protocol and exits 2 with a message on errors."""
    pred, gt, _ = folders
    script = _load_script()
    out = tmp_path / 'cli.csv'
    assert script.main(
        ['--pred', pred, '--gt', gt, '--metrics', 'psnr,ssim,niqe', '--out',
         str(out), '--crop-border', '1']) == 0
    printed = capsys.readouterr().out
    assert 'Protocol:' in printed and 'crop_border=1' in printed and 'RGB' in printed
    table = _read_csv(out)
    assert [r['name'] for r in table] == ['a', 'b', 'c', 'mean']
    assert not math.isnan(float(table[3]['ssim']))

    assert script.main(['--pred', pred, '--metrics', 'psnr', '--out', str(tmp_path / 'x.csv')]) == 2
    assert 'need ground-truth images' in capsys.readouterr().err
    cv2.imwrite(osp.join(gt, 'zz.png'), np.zeros((8, 8, 3), np.uint8))
    assert script.main(['--pred', pred, '--gt', gt, '--metrics', 'psnr', '--out', str(tmp_path / 'y.csv')]) == 2
    assert 'zz' in capsys.readouterr().err
