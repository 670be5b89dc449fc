"""test.py: enhanced images, per-image and mean metrics, n/a for metrics without ground truth."""
import csv
import json
import os
import os.path as osp

from conftest import tiny_train_overrides

import lowlight3d.pipeline.test_pipeline as testing  # (a bare test_pipeline name would be collected by pytest)
from lowlight3d.metrics.metric_util import MetricUnavailable
from lowlight3d.pipeline.train_pipeline import train_pipeline

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def test_test_pipeline_writes_metrics_and_images(tmp_path, tiny_image_sets):
    overrides = tiny_train_overrides(tiny_image_sets, 4, 'tested')
    train_pipeline(['-opt', osp.join(REPO, 'options/demo/train_LowLightUNet_demo.yml'), '--cfg-options', *overrides],
                   root_path=str(tmp_path))
    weights = tmp_path / 'experiments' / 'tested' / 'models' / 'net_g_latest.pth'
    summary = testing.test_pipeline([
        '-opt', osp.join(REPO, 'options/demo/test_LowLightUNet_demo.yml'), '--cfg-options', *overrides,
        f'path.pretrain_network_g={weights}', f'datasets.test_paired.dataroot_gt={tiny_image_sets}/val',
        f'datasets.test_unpaired.dataroot_lq={tiny_image_sets}/unpaired', 'datasets.test_paired.gt_size=32',
        'datasets.test_unpaired.gt_size=32'
    ], root_path=str(tmp_path))
    res = tmp_path / 'results' / 'tested'
    assert sorted(os.listdir(res / 'visualization')) == ['DemoFacesTest', 'DemoFacesUnpaired']
    assert sorted(os.listdir(res / 'visualization' / 'DemoFacesTest')) == ['000.png', '001.png', '002.png']
    paired = summary['DemoFacesTest']['metrics']
    assert isinstance(paired['psnr'], float) and 0 < paired['ssim'] <= 1
    unpaired = summary['DemoFacesUnpaired']['metrics']
    assert isinstance(unpaired['psnr'], MetricUnavailable) and 'ground' in str(unpaired['psnr'])
    rows = list(csv.DictReader(open(res / 'metrics.csv')))
    assert [r['image'] for r in rows if r['dataset'] == 'DemoFacesTest'] == ['000', '001', '002', 'mean']
    per_image = [float(r['psnr']) for r in rows if r['dataset'] == 'DemoFacesTest' and r['image'] != 'mean']
    mean_row = next(r for r in rows if r['dataset'] == 'DemoFacesTest' and r['image'] == 'mean')
    assert abs(float(mean_row['psnr']) - sum(per_image) / 3) < 1e-5
    payload = json.load(open(res / 'metrics.json'))
    assert payload['datasets']['DemoFacesTest']['num_images'] == 3
    assert payload['protocol']['psnr']['crop_border'] == 0 and payload['protocol']['psnr']['test_y_channel'] is False
