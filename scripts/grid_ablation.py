"""Root-cause ablation of the enhancement network's grid artifacts on REAL faces (``docs/experiments.md`` section 2).

Three measurements, each printed as a table (the ``grid`` score of :mod:`lowlight3d.metrics.grid_metric`:
about 1 for clean photos, 10+ for a visible pattern):

1. ``--part gradients``: the grid score of each loss term's gradient with respect to the network output, on
   UTKFace faces (a loss whose gradient carries a period-2/4 pattern teaches the network that pattern);
2. ``--part init``: the grid score of a freshly built PriorGuidedEnhancer's residual (output - input) on smooth
   faces, for every up-/down-sampling mode;
3. ``--part train``: short trainings of a small PriorGuidedEnhancer (no 3D prior) on synthetic UTKFace pairs with
   different samplers and loss sets, scored on held-out UTKFace pairs (PSNR, grid) and on the real dark Yale B
   faces (grid, chroma).

Needs ``LOWLIGHT3D_TEST_DATA`` (the folder ``../shared/data``).  Random-weight VGG19 / discriminator stand-ins are
used (no ImageNet weights offline), as in the demo.  Example::

    OMP_NUM_THREADS=2 python scripts/grid_ablation.py --part all --iters 300
"""
import argparse
import glob
import os
import os.path as osp
import statistics
import sys
import time

import cv2
import numpy as np
import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import lowlight3d  # noqa: E402,F401
from lowlight3d.archs.color_edge_discriminator_arch import ColorEdgeDiscriminator  # noqa: E402
from lowlight3d.archs.prior_guided_enhancer_arch import PriorGuidedEnhancer  # noqa: E402
from lowlight3d.archs.vgg_feature_extractor_arch import VGGFeatureExtractor  # noqa: E402
from lowlight3d.data.lowlight_degradation import LowLightDegradation  # noqa: E402
from lowlight3d.losses.feature_perceptual_loss import FeaturePerceptualLoss  # noqa: E402
from lowlight3d.losses.inter_consistency_loss import InterConsistencyLoss  # noqa: E402
from lowlight3d.losses.intra_consistency_loss import IntraConsistencyLoss  # noqa: E402
from lowlight3d.losses.lsgan_color_edge_loss import ColorEdgeLSGANLoss  # noqa: E402
from lowlight3d.metrics.grid_metric import chroma, grid, luma_grid_ratios  # noqa: E402
from lowlight3d.metrics.metric_util import MetricUnavailable  # noqa: E402
from lowlight3d.metrics.psnr_ssim_metric import psnr  # noqa: E402


def _data_root():
    root = os.environ.get('LOWLIGHT3D_TEST_DATA')
    if not root or not osp.isdir(root):
        sys.exit('Set LOWLIGHT3D_TEST_DATA to the shared data folder (../shared/data).')
    return root


def _rgb01(path):
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(f'cannot read {path}')
    return img[..., ::-1].astype(np.float32) / 255.0


def _to_tensor(imgs):
    return torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).contiguous()


def _to_bgr_u8(t):
    arr = t.detach().clamp(0, 1).permute(1, 2, 0).numpy()[..., ::-1]
    return (arr * 255.0).round().astype(np.uint8)


def load_sets(root, n_train, n_test):
    """UTKFace train GTs, test (lq, gt) pairs degraded with fixed seeds, and real dark Yale B faces."""
    utk = sorted(glob.glob(osp.join(root, 'faces_utk', 'images', '*')))
    test_files, train_files = utk[::25][:n_test], [p for i, p in enumerate(utk) if i % 25][:n_train]
    deg = LowLightDegradation()
    train_gt = [_rgb01(p) for p in train_files]
    test = []
    for i, p in enumerate(test_files):
        gt = _rgb01(p)
        test.append((deg(gt, 1000 + i)[0], gt))
    dark = sorted(glob.glob(osp.join(root, 'faces_yaleb', 'images', '*P00A?110E+65.png')))
    yale = [_rgb01(p) for p in dark]
    return train_gt, test, yale, deg


def part_gradients(root, n=8):
    """Grid score of each loss term's gradient w.r.t. the output (median over faces)."""
    torch.manual_seed(0)
    _, test, _, _ = load_sets(root, 0, n)
    out = _to_tensor([np.clip(lq ** 0.45, 0, 1) for lq, _ in test]).requires_grad_(True)  # a plausible output
    gt = _to_tensor([g for _, g in test])
    teacher = _to_tensor([np.clip(lq ** 0.5, 0, 1) for lq, _ in test])
    vgg = VGGFeatureExtractor('vgg19', ('relu1_1', 'relu2_1', 'relu3_1'), weights='random_for_tests')
    disc = ColorEdgeDiscriminator(ndf=32)
    terms = {
        'pixel L1': lambda o: torch.nn.functional.l1_loss(o, gt),
        'perceptual (random VGG19)': lambda o: FeaturePerceptualLoss()(vgg(o), vgg(gt)),
        'perceptual relu1_1 only': lambda o: FeaturePerceptualLoss()(vgg(o)[:1], vgg(gt)[:1]),
        'intra (random VGG19)': lambda o: IntraConsistencyLoss()(vgg(teacher), vgg(teacher), vgg(o), vgg(o)),
        'inter (random VGG19)': lambda o: InterConsistencyLoss()(vgg(teacher), vgg(o), vgg(teacher.flip(-1)),
                                                                 vgg(o.flip(-1) * 0.8)),
        'GAN colour-edge D (random init)': lambda o: ColorEdgeLSGANLoss()(disc(o), True, is_disc=False),
    }
    rows = []
    for name, fn in terms.items():
        out.grad = None
        fn(out).backward()
        g = out.grad.detach()
        scores = []
        for b in range(g.shape[0]):
            gb = g[b].mean(0).double().numpy()
            try:
                scores.append(max(luma_grid_ratios(gb / max(np.abs(gb).max(), 1e-30)).values()))
            except MetricUnavailable as err:
                print(f'  {name}, face {b}: {err}')
        rows.append((name, statistics.median(scores) if scores else float('nan')))
    print('\n| loss term | grid of its gradient w.r.t. the output (median over %d faces) |\n|---|---|' % n)
    for name, s in rows:
        print(f'| {name} | {s:.1f} |')
    return rows


def part_init(root, n=8):
    """Grid score of a fresh network's residual on smooth faces, per sampler."""
    _, test, _, _ = load_sets(root, 0, n)
    smooth = _to_tensor([cv2.GaussianBlur(g, (0, 0), 3) for _, g in test])
    print('\n| upsample | downsample | grid of (output - input) at initialisation, median over 3 seeds x %d faces |'
          '\n|---|---|---|' % n)
    rows = []
    for up in ('pixel_shuffle', 'pixel_shuffle_icnr', 'bilinear'):
        for down in ('strided_conv', 'avgpool_conv'):
            scores = []
            for seed in range(3):
                torch.manual_seed(seed)
                net = PriorGuidedEnhancer(base_channels=16, blocks_per_level=1, upsample=up, downsample=down)
                with torch.no_grad():
                    res = net(smooth) - smooth
                scores += [max(luma_grid_ratios(res[b].mean(0).numpy()).values()) for b in range(res.shape[0])]
            rows.append((up, down, statistics.median(scores)))
            print(f'| {up} | {down} | {rows[-1][2]:.1f} |')
    return rows


DEVICE = torch.device('cpu')


def _train(train_gt, deg, up, down, losses, iters, seed, crop=64, batch=4):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = PriorGuidedEnhancer(base_channels=16, blocks_per_level=1, upsample=up, downsample=down).to(DEVICE)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, betas=(0.5, 0.999))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, iters, eta_min=1e-5)
    vgg = disc = None
    if 'perc' in losses:
        vgg = VGGFeatureExtractor('vgg19', ('relu1_1', 'relu2_1', 'relu3_1'), weights='random_for_tests').to(DEVICE)
    if 'gan' in losses:
        disc = ColorEdgeDiscriminator(ndf=32).to(DEVICE)
        opt_d = torch.optim.Adam(disc.parameters(), lr=2e-4, betas=(0.5, 0.999))
        gan = ColorEdgeLSGANLoss(loss_weight=0.01)
    for _ in range(iters):
        lqs, gts = [], []
        for _ in range(batch):
            gt = train_gt[rng.integers(len(train_gt))]
            y, x = rng.integers(0, gt.shape[0] - crop + 1), rng.integers(0, gt.shape[1] - crop + 1)
            gt = gt[y:y + crop, x:x + crop]
            lqs.append(deg(gt, rng)[0])
            gts.append(gt)
        lq, gt = _to_tensor(lqs).to(DEVICE), _to_tensor(gts).to(DEVICE)
        out = net(lq)
        loss = torch.nn.functional.l1_loss(out, gt)
        if vgg is not None:
            loss = loss + 0.1 * FeaturePerceptualLoss()(vgg(out), vgg(gt))
        if disc is not None:
            for p in disc.parameters():
                p.requires_grad_(False)
            loss = loss + gan(disc(out), True, is_disc=False)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if disc is not None:
            for p in disc.parameters():
                p.requires_grad_(True)
            opt_d.zero_grad()
            l_d = 0.5 * (gan(disc(gt), True, is_disc=True) + gan(disc(out.detach()), False, is_disc=True))
            l_d.backward()
            opt_d.step()
    return net.eval()


def _score(net, test, yale):
    with torch.no_grad():
        res_t = [_to_bgr_u8(net(_to_tensor([lq]).to(DEVICE))[0].cpu()) for lq, _ in test]
        res_y = [_to_bgr_u8(net(_to_tensor([d]).to(DEVICE))[0].cpu()) for d in yale]
    gts = [_to_bgr_u8(torch.from_numpy(g).permute(2, 0, 1)) for _, g in test]
    return (statistics.mean(psnr(r, g) for r, g in zip(res_t, gts)), statistics.median(grid(r) for r in res_t),
            statistics.median(grid(r) for r in res_y), statistics.mean(chroma(r) for r in res_y)), res_y


def part_train(root, iters, seeds, out_dir=None, only=None):
    """Short trainings per (sampler, losses) variant; PSNR/grid on UTKFace, grid/chroma on real dark Yale B."""
    train_gt, test, yale, deg = load_sets(root, 300, 16)
    variants = [
        ('pixel_shuffle', 'strided_conv', ('l1', )),
        ('pixel_shuffle', 'strided_conv', ('l1', 'perc')),
        ('pixel_shuffle', 'strided_conv', ('l1', 'gan')),
        ('pixel_shuffle', 'strided_conv', ('l1', 'perc', 'gan')),
        ('pixel_shuffle_icnr', 'strided_conv', ('l1', 'perc', 'gan')),
        ('bilinear', 'strided_conv', ('l1', 'perc', 'gan')),
        ('bilinear', 'avgpool_conv', ('l1', 'perc', 'gan')),
        ('bilinear', 'avgpool_conv', ('l1', )),
        ('bilinear', 'strided_conv', ('l1', )),
        ('pixel_shuffle_icnr', 'strided_conv', ('l1', )),
    ]
    if only is not None:
        variants = [variants[i] for i in only]
    gts = [_to_bgr_u8(torch.from_numpy(g).permute(2, 0, 1)) for _, g in test]
    yale_grid = statistics.median(grid(_to_bgr_u8(torch.from_numpy(d).permute(2, 0, 1))) for d in yale)
    print(f'\nreference: UTKFace GT grid {statistics.median(grid(g) for g in gts):.2f}; '
          f'Yale B dark input grid {yale_grid:.2f}')
    print('\n| upsample | downsample | losses | UTK PSNR | UTK grid | Yale B grid | Yale B chroma | s |\n'
          '|---|---|---|---|---|---|---|---|')
    rows = []
    for up, down, losses in variants:
        t0 = time.time()
        scores = []
        for seed in seeds:
            net = _train(train_gt, deg, up, down, losses, iters, seed)
            s, res_y = _score(net, test, yale)
            scores.append(s)
            if out_dir:
                os.makedirs(out_dir, exist_ok=True)
                cv2.imwrite(osp.join(out_dir, f'{up}_{down}_{"+".join(losses)}_s{seed}.png'),
                            np.concatenate(res_y[:6], axis=1))
        mean = [statistics.mean(v) for v in zip(*scores)]
        rows.append((up, down, losses, mean))
        print(f'| {up} | {down} | {"+".join(losses)} | {mean[0]:.2f} | {mean[1]:.2f} | {mean[2]:.2f} | '
              f'{mean[3]:.2f} | {time.time() - t0:.0f} |', flush=True)
    return rows


def main():
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--part', choices=('gradients', 'init', 'train', 'all'), default='all')
    parser.add_argument('--iters', type=int, default=300)
    parser.add_argument('--seeds', type=int, nargs='+', default=[0])
    parser.add_argument('--out', default=None, help='write Yale B result strips here')
    parser.add_argument('--device', default='cpu', help='cpu or cuda')
    parser.add_argument('--variants', type=int, nargs='+', default=None, help='indices of the training variants')
    args = parser.parse_args()
    global DEVICE
    DEVICE = torch.device(args.device)
    root = _data_root()
    if args.part in ('gradients', 'all'):
        part_gradients(root)
    if args.part in ('init', 'all'):
        part_init(root)
    if args.part in ('train', 'all'):
        part_train(root, args.iters, args.seeds, args.out, args.variants)


if __name__ == '__main__':
    main()
