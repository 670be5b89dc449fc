"""Distributed training with torch.distributed on CPU: two gloo processes launched by torchrun."""
import os
import os.path as osp
import socket
import subprocess
import sys

import torch

from conftest import tiny_train_overrides

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_two_cpu_processes_train_with_gloo(tmp_path, tiny_image_sets):
    cmd = [
        sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2', f'--master_port={_free_port()}',
        '--master_addr=127.0.0.1', osp.join(REPO, 'lowlight3d', 'train.py'), '-opt',
        osp.join(REPO, 'options', 'demo', 'train_LowLightUNet_demo.yml'), '--launcher', 'pytorch', '--root',
        str(tmp_path), '--cfg-options', *tiny_train_overrides(tiny_image_sets, 6, 'ddp'),
        'datasets.train.batch_size_per_gpu=2'
    ]
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    exp = tmp_path / 'experiments' / 'ddp'
    log = next(f for f in os.listdir(exp) if f.endswith('.log'))
    text = open(exp / log).read()
    assert 'batch 2 x 2 process(es), 3 iterations per epoch' in text  # 12 images sharded over 2 ranks
    assert 'End of training: 6 iterations' in text
    assert 'grad_pixel: ' in text and 'share_pixel: 1.0000e+00' in text  # per-term gradient norms under DDP
    state = torch.load(exp / 'training_states' / '6.state', weights_only=False)
    assert state['iter'] == 6
    assert not any(k.startswith('module.') for k in state['networks']['net_g'])
