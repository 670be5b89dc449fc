"""Per-term gradient norms w.r.t. the network outputs (``lowlight3d.models.grad_norms``) and their logging.

The norms are checked against closed forms: the mean L1 loss over ``N`` elements has the gradient ``sign(x - y) /
N`` per element, so its norm is ``1 / sqrt(N)`` where no element ties; ``w * mean((x - y)^2)`` has the gradient
``2 w (x - y) / N``.
"""
import json
import math
import os
import os.path as osp

import pytest
import torch
import torch.nn.functional as F

from lowlight3d.models.grad_norms import loss_term_grad_norms, parse_grad_norm_freq
from lowlight3d.pipeline.train_pipeline import train_pipeline

from conftest import tiny_train_overrides

TRAIN_OPT = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'options', 'demo',
                     'train_LowLightUNet_demo.yml')


def test_norms_and_shares_by_closed_form_and_grads_untouched():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 2, 2, requires_grad=True)  # N = 24
    z = torch.rand(2, 3, 2, 2, requires_grad=True)
    a, b = x * 1.0, z * 1.0  # two non-leaf "network outputs"
    y, t = torch.rand(2, 3, 2, 2), torch.rand(2, 3, 2, 2)
    terms = {'pixel': F.l1_loss(a, y), 'mse': 0.5 * F.mse_loss(b, t), 'both': (a.sum() + 2 * b.sum()) / 4,
             'constant': torch.tensor(3.0)}
    logs = loss_term_grad_norms(terms, [a, b, None])
    n = 24
    assert logs['grad_pixel'] == pytest.approx(1 / math.sqrt(n), rel=1e-6)
    assert logs['grad_mse'] == pytest.approx(0.5 * 2 * (z - t).detach().norm().item() / n, rel=1e-6)
    assert logs['grad_both'] == pytest.approx(math.sqrt(n * (1 / 4)**2 + n * (2 / 4)**2), rel=1e-6)
    assert logs['grad_constant'] == 0.0 and logs['share_constant'] == 0.0
    names = ('pixel', 'mse', 'both', 'constant')
    assert sum(logs[f'share_{k}'] for k in names) == pytest.approx(1.0)
    assert logs['share_pixel'] == pytest.approx(logs['grad_pixel'] / sum(logs[f'grad_{k}'] for k in names))
    # grad_total is the norm of the summed gradient (here: over both outputs, concatenated)
    g_a = torch.sign(x - y) / n + 1 / 4
    g_b = (z - t) / n + 2 / 4
    expected = torch.cat([g_a.flatten(), g_b.flatten()]).norm().item()
    assert logs['grad_total'] == pytest.approx(expected, rel=1e-6)
    assert x.grad is None and z.grad is None  # nothing accumulated into the leaves
    sum(v for v in terms.values()).backward()  # the graph is still there for the real backward
    assert x.grad is not None


def test_grad_norm_freq_option():
    assert parse_grad_norm_freq({'logger': {'print_freq': 50}}) == 50  # default: one per printed log line
    assert parse_grad_norm_freq({'logger': {'print_freq': 50, 'grad_norm_freq': 7}}) == 7
    assert parse_grad_norm_freq({'logger': {'print_freq': 50, 'grad_norm_freq': None}}) == 0
    assert parse_grad_norm_freq({'logger': {'print_freq': 50, 'grad_norm_freq': 0}}) == 0
    for bad in (-1, 2.5, 'often', True):
        with pytest.raises(ValueError, match='logger.grad_norm_freq.*non-negative integer'):
            parse_grad_norm_freq({'logger': {'grad_norm_freq': bad}})


def _train(root, sets, name, overrides):
    return train_pipeline(['-opt', TRAIN_OPT, '--cfg-options', *tiny_train_overrides(sets, 8, name), *overrides],
                          root_path=str(root)).opt


def test_the_pipeline_logs_measured_values_without_averaging_in_zeros(tmp_path, tiny_image_sets):
    """Measured every 2 iterations, printed every 4: each printed value is the mean of 2 measurements.

    With the L1 pixel loss alone every measurement is exactly ``1 / sqrt(N)`` (N = 4 x 3 x 32 x 32), so a window
    mean that counted the 2 unmeasured iterations as zeros would read half of it.
    """
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    opt = _train(tmp_path, tiny_image_sets, 'grads', ['logger.print_freq=4', '+logger.grad_norm_freq=2',
                                                      'val.val_freq=100', 'logger.use_tb_logger=true'])
    exp = opt['path']['experiments_root']
    with open(osp.join(exp, 'history.json')) as f:
        rows = json.load(f)['losses']
    assert [r['iter'] for r in rows] == [4, 8]
    expected = 1 / math.sqrt(4 * 3 * 32 * 32)
    for row in rows:
        assert row['grad_pixel'] == pytest.approx(expected, rel=1e-5)
        assert row['share_pixel'] == 1.0 and row['grad_total'] == pytest.approx(row['grad_pixel'], rel=1e-6)
    log = next(f for f in os.listdir(exp) if f.endswith('.log'))
    with open(osp.join(exp, log)) as f:
        assert 'grad_pixel: ' in f.read()  # in the printed log line
    events = EventAccumulator(str(tmp_path / 'tb_logger' / 'grads')).Reload()
    assert {'grad_pixel', 'share_pixel', 'grad_total'} <= set(events.Tags()['scalars'])
    assert [e.value for e in events.Scalars('grad_pixel')] == pytest.approx([expected] * 2, rel=1e-5)

    off = _train(tmp_path, tiny_image_sets, 'no_grads', ['logger.print_freq=4', '+logger.grad_norm_freq=0',
                                                         'val.val_freq=100'])
    with open(osp.join(off['path']['experiments_root'], 'history.json')) as f:
        rows = json.load(f)['losses']
    assert not any(k.startswith(('grad_', 'share_')) for row in rows for k in row)
