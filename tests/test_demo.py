"""``make demo`` end to end at a tiny budget: generated faces, and the FACES=<dir> variant.

The demo trains the 3D feature generator, the tri-plane DDPM (training-only stages) and the full method, which
is then tested.  The full method's VGG19 is the random-weight stand-in of the demo option file.
"""
import json
import os
import os.path as osp

from lowlight3d.pipeline.demo import DEMO_STAGES, prepare_user_faces, run_demo

from conftest import write_smooth_images

TINY_DATA = dict(num_train=8, num_val=2, num_test=2, num_unpaired=3, size=64)
TINY_RUN = ['train.total_iter=2', 'train.scheduler.periods=[2]', 'datasets.train.batch_size_per_gpu=2',
            'logger.save_checkpoint_freq=2', 'val.val_freq=2', 'datasets.test_paired.gt_size=32',
            'datasets.test_unpaired.gt_size=32', 'logger.use_tb_logger=false']


def test_demo_runs_end_to_end(tmp_path):
    summaries = run_demo(root=str(tmp_path), demo_data_kwargs=TINY_DATA, extra_overrides=TINY_RUN)
    assert [s['name'] for s in DEMO_STAGES][:2] == ['demo_TriplaneGenerator', 'demo_TriplaneDDPM_v']
    assert list(summaries) == ['demo_LowLight3D_randomVGG']
    for stage in ('demo_TriplaneGenerator', 'demo_TriplaneDDPM_v'):  # the prior stages were trained first
        assert osp.isdir(tmp_path / 'experiments' / stage / 'models')
    result = tmp_path / 'results' / 'demo_LowLight3D_randomVGG'
    payload = json.load(open(result / 'metrics.json'))
    paired = payload['datasets']['DemoFacesTest']
    assert paired['num_images'] == 2 and isinstance(paired['metrics']['psnr'], float)
    assert payload['datasets']['DemoFacesUnpaired']['num_images'] == 1  # the unpaired test third
    assert osp.isfile(result / 'metrics.csv') and osp.isfile(result / 'paper_table.md')
    assert sorted(os.listdir(result / 'grids' / 'DemoFacesTest')) == ['00000.png', '00001.png']
    # the unpaired faces are split: the test one is never trained on
    meta = tmp_path / 'datasets' / 'demo_faces' / 'unpaired'
    assert (meta / 'meta_train.txt').read_text().split() == ['00000.png', '00001.png']
    assert (meta / 'meta_test.txt').read_text().split() == ['00002.png']
    # re-running is safe: data reused, training already finished (auto-resume), results rewritten
    again = run_demo(root=str(tmp_path), demo_data_kwargs=TINY_DATA, extra_overrides=TINY_RUN)
    assert again['demo_LowLight3D_randomVGG']['DemoFacesTest']['metrics']['psnr'] == paired['metrics']['psnr']


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
    assert name.startswith('demo_LowLight3D_randomVGG_user_faces_')
    assert summary['UserFaces_test']['num_images'] == 1
    # the 3D prior learns from the same photos (FaceMesh depth, cached; canonical camera) and guides the method
    tag = name[len('demo_LowLight3D_randomVGG_'):]
    gen, ddpm = f'demo_TriplaneGenerator_{tag}', f'demo_TriplaneDDPM_v_{tag}'
    experiments = os.listdir(tmp_path / 'experiments')
    assert gen in experiments and ddpm in experiments
    assert osp.isdir(tmp_path / 'datasets' / tag / 'facemesh_depth_64')
    ddpm_opt = open(tmp_path / 'experiments' / ddpm / 'options.yml').read()
    assert f'experiments/{gen}/models/net_generator_latest.pth' in ddpm_opt
    method_opt = open(tmp_path / 'experiments' / name / 'options.yml').read()
    assert f'experiments/{ddpm}/models/prior_latest.pth' in method_opt and 'UserFaces_train' in method_opt
