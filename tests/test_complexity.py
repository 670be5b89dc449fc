"""scripts/complexity.py: parameter, FLOP and memory counts against hand computations."""
import os.path as osp

import torch
from torch import nn

from lowlight3d.pipeline.complexity import complexity_from_options, count_flops, measure_network, peak_memory_bytes

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def test_conv_flops_and_memory_by_hand():
    conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
    x = torch.rand(1, 3, 16, 16)
    assert count_flops(conv, (x, )) == 2 * 8 * 3 * 9 * 16 * 16  # 2 FLOPs per multiply-add
    weights, inp, out = 8 * 3 * 9 * 4, 3 * 256 * 4, 8 * 256 * 4
    assert peak_memory_bytes(conv, (x, )) == weights + inp + out


def test_measure_network_and_option_file():
    net = nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU(), nn.Conv2d(4, 3, 1))
    row = measure_network(net, size=8, repeat=1, warmup=0)
    assert abs(row['params_M'] - (3 * 4 + 4 + 4 * 3 + 3) / 1e6) < 1e-12
    assert abs(row['GMACs'] - (3 * 4 + 4 * 3) * 64 / 1e9) < 1e-15 and row['GFLOPs'] == 2 * row['GMACs']
    assert row['latency_ms'] > 0 and row['peak_mem_MB'] > 0
    rows = complexity_from_options(osp.join(REPO, 'options/demo/train_LowLightUNet_demo.yml'), size=32, repeat=1)
    assert [r['network'] for r in rows] == ['network_g'] and rows[0]['type'] == 'LowLightUNet'
