"""Issue 15, point 4: the full semi-supervised method (two student forwards, EMA teacher, discriminator, frozen 3D
prior) trained by two gloo processes on the CPU ends with identical weights on both ranks.

Stand-ins: tiny random networks and the tiny random prior of ``tests/test_semi_supervised_model.py``; a random
VGG19 feature extractor (as in the demo).  Each rank saves its own networks after training through a small runner
that wraps ``build_model`` (only rank 0 writes checkpoints).
"""
import os
import os.path as osp
import subprocess
import sys

import torch

from conftest import write_smooth_images
from test_distributed import _free_port
from test_semi_supervised_model import FULL, prior_setup

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))

RUNNER = '''
import os, sys
sys.path.insert(0, {repo!r})
import torch
import lowlight3d
import lowlight3d.pipeline.train_pipeline as tp
captured = {{}}
_build = tp.build_model


def _capture(opt):
    captured['model'] = _build(opt)
    return captured['model']


tp.build_model = _capture
tp.train_pipeline(sys.argv[1:])
model = captured['model']
torch.save({{label: {{k: v.detach().clone() for k, v in model.bare(net).state_dict().items()}}
             for label, net in model.nets.items()}}, os.path.join({out!r}, 'rank' + os.environ['RANK'] + '.pth'))
'''


def test_full_method_two_gloo_ranks_end_with_identical_weights(tmp_path):
    write_smooth_images(str(tmp_path / 'paired'), 8, size=32, seed=1)
    write_smooth_images(str(tmp_path / 'unpaired'), 8, size=32, seed=2)
    prior_file = prior_setup(str(tmp_path), kinds=('ddpm',))['prior_files']['ddpm']
    runner = tmp_path / 'runner.py'
    runner.write_text(RUNNER.format(repo=REPO, out=str(tmp_path)))
    iters = 4
    cfg = [
        'name=ddp_full', f'train.total_iter={iters}', f'train.scheduler.periods=[{iters}]',
        'network_g.base_channels=4', 'network_d.ndf=4', 'train.feature_extractor.layers=[relu1_1,relu2_1]',
        f'datasets.train.paired.dataroot_gt={tmp_path}/paired',
        f'datasets.train.unpaired.dataroot_lq={tmp_path}/unpaired',
        'datasets.train.unpaired.meta_info_file=~', 'datasets.train.gt_size=32', 'datasets.train.batch_size_per_gpu=2',
        f'datasets.val.dataroot_gt={tmp_path}/paired', 'datasets.val.gt_size=32', f'prior.file={prior_file}',
        '+prior.steps=2',
        'logger.print_freq=2', f'logger.save_checkpoint_freq={iters}', f'val.val_freq={iters}',
        'logger.use_tb_logger=false', 'train.gan_start_iter=0', 'train.net_d_init_iters=0'  # the paper's schedule
    ]
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2', f'--master_port={_free_port()}',
           '--master_addr=127.0.0.1', str(runner), '-opt', FULL, '--launcher', 'pytorch', '--root', str(tmp_path),
           '--cfg-options', *cfg]
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    exp = tmp_path / 'experiments' / 'ddp_full'
    text = open(exp / next(f for f in os.listdir(exp) if f.endswith('.log'))).read()
    assert f'End of training: {iters} iterations' in text and '2 process(es)' in text
    for term in ('grad_pixel', 'grad_intra', 'grad_inter', 'grad_gan'):  # every loss term ran under DDP
        assert f'{term}: ' in text, term
    ranks = [torch.load(tmp_path / f'rank{r}.pth', weights_only=True) for r in (0, 1)]
    assert set(ranks[0]) >= {'net_g', 'net_g_ema', 'net_d'} and set(ranks[0]) == set(ranks[1])
    for label in ranks[0]:
        for key, value in ranks[0][label].items():
            assert torch.equal(value, ranks[1][label][key]), f'{label}.{key} differs between the ranks'
    # rank 0's checkpoint is what both ranks hold; the student trained (the EMA teacher, a copy of the student at
    # the start, now lags behind it)
    saved = torch.load(exp / 'models' / 'net_g_latest.pth', weights_only=True)
    assert all(torch.equal(saved['params'][k], v) for k, v in ranks[0]['net_g'].items())
    assert any(not torch.equal(v, ranks[0]['net_g_ema'][k]) for k, v in ranks[0]['net_g'].items()
               if v.is_floating_point())
