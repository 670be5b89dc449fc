"""``make demo`` end to end at a tiny budget: generated faces, and the FACES=<dir> variant."""
import json
import os.path as osp

from conftest import write_smooth_images

from lowlight3d.pipeline.demo import prepare_user_faces, run_demo

TINY_DATA = dict(num_train=8, num_val=2, num_test=2, num_unpaired=2, size=64)
TINY_RUN = ['train.total_iter=4', 'train.scheduler.periods=[4]', 'datasets.train.batch_size_per_gpu=4',
            'logger.save_checkpoint_freq=4', 'val.val_freq=4', 'datasets.test_paired.gt_size=64',
            'datasets.test_unpaired.gt_size=64', 'datasets.train.gt_size=32', 'datasets.val.gt_size=32',
            'logger.use_tb_logger=false']


def test_demo_runs_end_to_end(tmp_path):
    summaries = run_demo(root=str(tmp_path), demo_data_kwargs=TINY_DATA, extra_overrides=TINY_RUN)
    assert list(summaries) == ['demo_LowLightUNet']
    result = tmp_path / 'results' / 'demo_LowLightUNet'
    payload = json.load(open(result / 'metrics.json'))
    paired = payload['datasets']['DemoFacesTest']
    assert paired['num_images'] == 2 and isinstance(paired['metrics']['psnr'], float)
    assert payload['datasets']['DemoFacesUnpaired']['num_images'] == 2
    assert osp.isfile(result / 'metrics.csv')
    # re-running is safe: data reused, training already finished (auto-resume), results rewritten
    again = run_demo(root=str(tmp_path), demo_data_kwargs=TINY_DATA, extra_overrides=TINY_RUN)
    assert again['demo_LowLightUNet']['DemoFacesTest']['metrics']['psnr'] == paired['metrics']['psnr']


def test_user_faces_split_and_demo(tmp_path):
    faces = tmp_path / 'my_faces'
    write_smooth_images(str(faces), 12, size=64)
    folder, metas = prepare_user_faces(str(faces), out_root=str(tmp_path / 'lists'))
    listed = {split: open(path).read().split() for split, path in metas.items()}
    assert sum(len(v) for v in listed.values()) == 12
    assert set(listed['train']).isdisjoint(listed['test']) and len(listed['val']) == 1
    assert prepare_user_faces(str(faces), out_root=str(tmp_path / 'lists'))[1] == metas  # same split again
    summaries = run_demo(faces=str(faces), root=str(tmp_path), demo_data_kwargs=TINY_DATA, extra_overrides=TINY_RUN)
    (name, summary), = summaries.items()
    assert name.startswith('demo_LowLightUNet_user_faces_')
    assert summary['UserFaces_test']['num_images'] == 1
