"""NeRCo's colour-edge discriminator and its LSGAN loss: edge maps by hand, sizes, input scaling, loss values."""
import math

import pytest
import torch

from lowlight3d.archs import build_network
from lowlight3d.archs.color_edge_discriminator_arch import ColorEdgeDiscriminator, PatchGANDiscriminator, edge_map
from lowlight3d.losses import build_loss
from lowlight3d.losses.lsgan_color_edge_loss import ColorEdgeLSGANLoss


def test_edge_map_on_a_hand_made_step():
    img = torch.zeros(1, 3, 4, 5)
    img[..., 3:] = 1.0  # white right part: luma 0 | 1 between columns 2 and 3
    e = edge_map(img, eps=0.0)
    assert e.shape == (1, 3, 4, 5) and torch.equal(e[:, 0], e[:, 1]) and torch.equal(e[:, 0], e[:, 2])
    # central differences Y(j+1) - Y(j-1), borders replicated: columns 0..4 -> 0, 0, 1, 1, 0 on every row
    assert e[0, 0].tolist() == [[0.0, 0.0, 1.0, 1.0, 0.0]] * 4
    # a red horizontal step (luma 0.299) with the default eps
    red = torch.zeros(1, 3, 4, 3)
    red[:, 0, 2:] = 1.0
    expected_row = {0: 0.0, 1: 0.299, 2: 0.299, 3: 0.0}
    e = edge_map(red)
    for i, g in expected_row.items():
        assert e[0, 1, i].tolist() == pytest.approx([math.sqrt(g * g + 1e-6)] * 3, rel=1e-5)
    # a one-pixel white corner at (2, 2) of a 3x3 image
    corner = torch.zeros(1, 3, 3, 3)
    corner[..., 2, 2] = 1.0
    e = edge_map(corner, eps=0.0)[0, 0]
    assert e[1, 1].item() == 0.0  # Y(1,2) - Y(1,0) = 0, Y(2,1) - Y(0,1) = 0
    assert e[1, 2].item() == pytest.approx(1.0)  # g_x = Y(1,2) - Y(1,1) = 0 (replicated), g_y = Y(2,2) - Y(0,2) = 1
    assert e[2, 2].item() == pytest.approx(math.sqrt(2))  # g_x = Y(2,2) - Y(2,1) = 1, g_y = Y(2,2) - Y(1,2) = 1
    with pytest.raises(ValueError, match='RGB'):
        edge_map(torch.zeros(1, 1, 4, 4))


def test_sizes_match_nerco():
    d = build_network({'type': 'ColorEdgeDiscriminator'}, where='network_d')
    assert sum(p.numel() for p in d.color.parameters()) == 2_764_737
    assert sum(p.numel() for p in d.edge.parameters()) == 2_764_737
    assert d.color[0].weight.data_ptr() != d.edge[0].weight.data_ptr()  # independent branches
    w = d.color[5].weight  # the 128 -> 256 conv
    assert abs(w.std().item() - 0.02) < 0.001 and abs(w.mean().item()) < 0.001 and d.color[5].bias.abs().max() == 0
    norms = [m for m in d.modules() if isinstance(m, torch.nn.InstanceNorm2d)]
    assert len(norms) == 6 and not any(m.affine or m.track_running_stats for m in norms)
    with torch.no_grad():
        colour, edge = d(torch.rand(1, 3, 256, 256))
    assert colour.shape == (1, 1, 30, 30) and edge.shape == (1, 1, 30, 30)
    small = ColorEdgeDiscriminator(ndf=8, n_layers=2)
    assert sum(p.numel() for p in small.color.parameters()) == (3 * 8 + 8 * 16 + 16 * 32 + 32) * 16 + 8 + 16 + 32 + 1
    assert small(torch.rand(2, 3, 64, 64))[0].shape == (2, 1, 14, 14)
    with pytest.raises(ValueError, match='n_layers'):
        PatchGANDiscriminator(n_layers=0)


def test_branches_see_the_documented_inputs_and_pass_gradients():
    torch.manual_seed(0)
    d = ColorEdgeDiscriminator(ndf=8)
    x = torch.rand(2, 3, 64, 64, requires_grad=True)
    colour, edge = d(x)
    assert colour.shape == (2, 1, 6, 6)
    torch.testing.assert_close(colour, d.color(x * 2 - 1))  # [0, 1] -> [-1, 1]
    torch.testing.assert_close(edge, d.edge(edge_map(x) * 2 - 1))
    (colour.mean() + edge.mean()).backward()
    assert x.grad.abs().sum() > 0


def test_lsgan_loss_by_hand():
    colour, edge = torch.tensor([[0.5, 1.0], [2.0, 0.0]]), torch.tensor([0.0, 3.0])
    # mse to 1: colour (0.25 + 0 + 1 + 1) / 4 = 0.5625, edge (1 + 4) / 2 = 2.5; to 0: colour 5.25 / 4, edge 4.5
    g = build_loss({'type': 'ColorEdgeLSGANLoss', 'loss_weight': 0.01}, where='train.gan_opt')
    assert g((colour, edge), True).item() == pytest.approx(0.01 * (0.5625 + 0.5 * 2.5))
    assert g((colour, edge), True, is_disc=True).item() == pytest.approx(0.5625 + 2.5)  # no loss_weight, edge 1
    assert g((colour, edge), False, is_disc=True).item() == pytest.approx(5.25 / 4 + 4.5)
    assert ColorEdgeLSGANLoss(edge_weight=0.0)((colour, edge), True).item() == pytest.approx(0.5625)
    with pytest.raises(ValueError, match='colour_scores, edge_scores'):
        g(colour, True)


def test_discriminator_learns_to_separate_real_from_fake():
    torch.manual_seed(0)
    d = ColorEdgeDiscriminator(ndf=8, n_layers=2)
    loss = ColorEdgeLSGANLoss()
    opt = torch.optim.Adam(d.parameters(), lr=2e-3, betas=(0.5, 0.999))
    real = torch.rand(2, 3, 32, 32)  # textured, bright
    fake = torch.full((2, 3, 32, 32), 0.1)  # flat, dark: separable by both colour and edges
    history = []
    for _ in range(10):
        l_d = 0.5 * (loss(d(real), True, is_disc=True) + loss(d(fake), False, is_disc=True))
        opt.zero_grad()
        l_d.backward()
        opt.step()
        history.append(l_d.item())
    assert history[-1] < 0.5 * history[0]
