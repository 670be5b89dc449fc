"""test.py: enhanced images, per-image and mean metrics, n/a for metrics without ground truth."""
import csv
import json
import os
import os.path as osp

import lowlight3d.pipeline.test_pipeline as testing  # (a bare test_pipeline name would be collected by pytest)
from lowlight3d.metrics.metric_util import MetricUnavailable
from lowlight3d.pipeline.train_pipeline import train_pipeline

from conftest import tiny_train_overrides

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
        'datasets.test_unpaired.gt_size=32', 'datasets.test_unpaired.meta_info_file=~'
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
    # comparison grids: input | method | ground truth (3 labelled 32 px tiles, 2 gaps), overview of every image
    import cv2
    grid = cv2.imread(str(res / 'grids' / 'DemoFacesTest' / '000.png'))
    assert grid.shape[1] == 3 * 32 + 2 * 4 and grid.shape[0] > 32
    assert cv2.imread(str(res / 'grids' / 'DemoFacesUnpaired' / '000.png')).shape[1] == 2 * 32 + 4  # no gt
    assert cv2.imread(str(res / 'grids' / 'DemoFacesTest_overview.png')).shape[0] > 3 * grid.shape[0]
    # the paper's Table 1 layout: PSNR/SSIM/LPIPS on the pairs, NIQE/BRISQUE on the unpaired set
    paper = (res / 'paper_table.md').read_text()
    assert '| method | DemoFacesTest PSNR | DemoFacesTest SSIM | DemoFacesTest LPIPS | DemoFacesUnpaired NIQE' in paper
    assert f"| tested | {paired['psnr']:.2f} | {paired['ssim']:.4f} |" in paper


def test_paper_table_row_by_hand():
    summary = {'A': {'metrics': {'psnr': 24.0912, 'ssim': 0.75123}}, 'B': {'metrics': {'niqe': 3.3567}}}
    row = testing.paper_table_row('ours', summary, [{'dataset': 'A', 'metrics': ['psnr', 'ssim', 'lpips']},
                                                    {'dataset': 'B', 'metrics': ['niqe']},
                                                    {'dataset': 'C', 'metrics': ['brisque']}])
    assert row['A PSNR'] == '24.09' and row['A SSIM'] == '0.7512' and row['B NIQE'] == '3.36'
    assert row['A LPIPS'].startswith('n/a (metric lpips') and row['C BRISQUE'].startswith('n/a (set C')
    # a set named by its option key (make demo FACES=... renames the paired test set to UserFaces_test)
    renamed = {'UserFaces_test': {'metrics': {'psnr': 21.004}}}
    row = testing.paper_table_row('ours', renamed, [{'dataset': 'test_paired', 'metrics': ['psnr']}],
                                  {'test_paired': {'name': 'UserFaces_test'}, 'val': {'name': 'V'}})
    assert row['UserFaces_test PSNR'] == '21.00'


def test_a_folder_without_ground_truth_is_enhanced_at_its_own_size(tmp_path, tiny_image_sets):
    import cv2

    from conftest import write_smooth_images
    overrides = tiny_train_overrides(tiny_image_sets, 2, 'folder_run')
    train_pipeline(['-opt', osp.join(REPO, 'options/demo/train_LowLightUNet_demo.yml'), '--cfg-options', *overrides],
                   root_path=str(tmp_path))
    photos = tmp_path / 'my dark photos'
    write_smooth_images(str(photos), 2, size=40)
    write_smooth_images(str(photos / 'sub'), 1, size=24, prefix='odd_')
    weights = tmp_path / 'experiments' / 'folder_run' / 'models' / 'net_g_latest.pth'
    summary = testing.test_pipeline(['-opt', osp.join(REPO, 'options/demo/test_LowLightUNet_demo.yml'), '--input',
                                     str(photos), '--no-metrics', '--cfg-options', 'name=folder_run',
                                     'network_g.num_feat=8', f'path.pretrain_network_g={weights}'],
                                    root_path=str(tmp_path))
    name = testing.input_folder_datasets(str(photos))['test_input']['name']
    assert name.startswith('my dark photos_') and len(name) == len('my dark photos_') + 8
    assert list(summary) == [name] and summary[name]['num_images'] == 3
    out = tmp_path / 'results' / 'folder_run' / 'inputs' / name / 'visualization' / name
    assert sorted(os.listdir(out)) == ['000.png', '001.png', 'odd_000.png']
    assert cv2.imread(str(out / 'odd_000.png')).shape == (24, 24, 3)
    assert not (tmp_path / 'results' / 'folder_run' / 'paper_table.md').exists()


def test_input_folders_with_the_same_basename_get_their_own_names(tmp_path):
    (tmp_path / 'a' / 'photos').mkdir(parents=True)
    (tmp_path / 'b' / 'photos').mkdir(parents=True)
    first = testing.input_folder_datasets(str(tmp_path / 'a' / 'photos'))['test_input']['name']
    second = testing.input_folder_datasets(str(tmp_path / 'b' / 'photos') + '/')['test_input']['name']
    assert first.startswith('photos_') and second.startswith('photos_') and first != second
    assert testing.input_folder_datasets(str(tmp_path / 'a' / 'photos/'))['test_input']['name'] == first


def test_input_folder_keeps_every_no_reference_metric():
    metrics = {'psnr': {'type': 'calculate_psnr'}, 'niqe': {'type': 'niqe'}, 'brisque': {}, 'grid': {'type': 'grid'},
               'my_chroma': {'type': 'chroma'}, 'lpips': {'type': 'lpips'}, 'identity': {'type': 'identity'}}
    assert list(testing.no_reference_metrics(metrics)) == ['niqe', 'brisque', 'grid', 'my_chroma']
