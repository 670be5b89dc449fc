"""Quality of the sampled 3D prior against the number of sampling steps, complexity, and CPU time per extraction.

Entry point: ``scripts/prior_quality.py`` (usage there); this module holds the measurements.

* Quality (:func:`quality_rows`): PSNR/SSIM of the render from sampled tri-planes against the render of the
  generator's tri-planes of the normal-light image (true camera, :func:`render_targets`), and the mean absolute
  difference of the depth guidance maps (``[0, 1]``) (:func:`prior_metrics`), for every setting of
  :func:`quality_settings` (sampler, steps, paper variance, clamp of ``x0``).  With ``--data-opt`` the images are
  another option file's validation set (a prior learned on one kind of face, measured on another), and with
  ``--facemesh`` two measurements that do not depend on the prior's own generator, so priors from different
  generators compare: ``PSNR_gt`` (render against the normal-light image itself at the render size) and the
  agreement of the prior's depth with mediapipe FaceMesh depth of the normal-light image inside the face
  (:func:`facemesh_depth_agreement`: correlation, and the error of a scale-and-shift fit as a fraction of the face's
  depth range); the generator's own render gets the same row (``generator target``: what a perfect prior gives).
* Complexity (:func:`complexity_rows`, paper-scale option file, 256x256 input): parameters of the denoiser
  (condition extractor included), GFLOPs/GMACs of one denoiser step, of the condition extractor (once), of one
  128x128 render, and of a full sampling with S steps = extractor + S steps + render.
* Timing (:func:`timing_rows`): CPU seconds (``time.process_time``, all threads summed) and wall seconds per image
  of ``PriorExtractor.extract`` (condition extractor + S denoiser steps + render, resize and pyramid included) at
  demo and paper scale, batch 1 and 8, with **randomly initialised** networks (the cost does not depend on the
  weights).
"""
import argparse
import os.path as osp
import time

import numpy as np
import torch

from lowlight3d.archs import build_network
from lowlight3d.archs.diffusion_schedule import SAMPLERS, VARIANCES
from lowlight3d.archs.triplane_renderer_arch import depth_guidance
from lowlight3d.data import build_dataset
from lowlight3d.metrics.psnr_ssim_metric import psnr, ssim
from lowlight3d.models.prior_extractor import PriorExtractor, load_network_weights, random_extractor
from lowlight3d.pipeline.complexity import count_flops, count_parameters
from lowlight3d.utils.options import load_config
from lowlight3d.utils.paths import REPO_ROOT
from lowlight3d.utils.results_table import format_table

__all__ = ['DenoiserStep', 'complexity_rows', 'quality_settings', 'load_quality_batch', 'render_targets',
           'facemesh_depth_agreement', 'save_prior_grid',
           'prior_metrics', 'quality_rows', 'timing_rows', 'main']



class DenoiserStep(torch.nn.Module):
    """One denoiser step with fixed condition features (for FLOP counting).

    Args:
        den (TriplaneDDPM): The denoiser.
        feats (list[torch.Tensor]): Its condition features of one image (``den.condition(img)``).
    """

    def __init__(self, den, feats):
        super().__init__()
        self.den, self.feats = den, feats

    def forward(self, x, t):
        """``den.denoise(x, t, feats)``."""
        return self.den.denoise(x, t, self.feats)


def complexity_rows(opt_path, size=256, steps=(1, 10, 20, 50, 1000)):
    """Params and FLOPs of the paper-scale denoiser, extractor and renderer; rows for full sampling.

    Args:
        opt_path (str): DDPM option file (``network_g`` and ``network_generator``).
        size (int): Input image size.
        steps (tuple[int]): Sampling steps S of the "full sampling" rows.

    Returns:
        list[dict]: Rows ``what``, ``params_M``, ``GFLOPs``, ``GMACs``.
    """
    opt = load_config(opt_path)
    den = build_network(opt['network_g']).eval()
    gen_opt = opt['network_generator']
    renderer = build_network({'type': 'TriplaneRenderer', 'plane_channels': gen_opt['encoder']['plane_channels'],
                              **gen_opt['renderer']}).eval()
    x, t, img = den.example_inputs(size)
    with torch.no_grad():
        feats = den.condition(img)
    step = count_flops(DenoiserStep(den, feats), (x, t))
    cond = count_flops(den.cond, (img, ))
    r = x.shape[-1]
    render = count_flops(renderer, (torch.zeros(1, 3, renderer.plane_channels, r, r), den.split_x0(x)[1]))
    params = count_parameters(den)
    rows = [{'what': 'denoiser step (U-Net + fusion)', 'params_M': (params - count_parameters(den.cond)) / 1e6,
             'GFLOPs': step / 1e9, 'GMACs': step / 2e9},
            {'what': 'condition extractor (once)', 'params_M': count_parameters(den.cond) / 1e6, 'GFLOPs': cond / 1e9,
             'GMACs': cond / 2e9},
            {'what': f'render {renderer.resolution}^2', 'params_M': count_parameters(renderer) / 1e6,
             'GFLOPs': render / 1e9, 'GMACs': render / 2e9}]
    for s in steps:
        total = cond + s * step + render
        rows.append({'what': f'full sampling S={s}', 'params_M': (params + count_parameters(renderer)) / 1e6,
                     'GFLOPs': total / 1e9, 'GMACs': total / 2e9})
    return rows


def _to_img(t):
    """``(3, H, W)`` tensor in ``[0, 1]`` -> ``(H, W, 3)`` uint8 BGR image (the metrics' layout)."""
    return (t.clamp(0, 1).permute(1, 2, 0).numpy()[:, :, ::-1] * 255).round().astype(np.uint8)


def quality_settings(objective, samplers, steps_list, variances=('beta', ), clips=(5.0, )):
    """The ``(sampler, steps, variance, clip)`` settings that make sense for a denoiser's objective.

    A regression network (``'regression'``, ablation V6) has one setting, ``('regression', 1, '-', None)`` (one
    deterministic forward pass); ``'noise'`` and ``'v'`` networks are sampled: every sampler x steps, the paper
    sampler once per variance (``'-'`` for the others), each with every clamp of ``clips`` (a ``'regression'``
    sampler asked for explicitly gets no clamp, ``None``).

    Args:
        objective (str): ``diffusion.objective`` (``'noise'``, ``'v'`` or ``'regression'``).
        samplers (list[str]): ``'ddim'`` and/or ``'paper'``.
        steps_list (list[int]): Sampling steps.
        variances (list[str]): Variances of the paper sampler.
        clips (list[float | None]): Clamps of the predicted standardised ``x0`` (``None``: off).

    Returns:
        list[tuple]: ``(sampler, steps, variance, clip)`` in table order.
    """
    if objective == 'regression':
        return [('regression', 1, '-', None)]
    out = []
    for sampler in samplers:
        for steps in steps_list:
            for variance in (variances if sampler == 'paper' else ['-']):
                out.extend((sampler, steps, variance, clip) for clip in (clips if sampler != 'regression' else [None]))
    return out


def facemesh_depth_agreement(guidance, gt, face_mesh):
    """How well a prior's depth guidance follows FaceMesh depth of the normal-light image, inside the face.

    Args:
        guidance (torch.Tensor): ``(B, 1, R, R)`` depth guidance (near = bright, :func:`depth_guidance`).
        gt (torch.Tensor): ``(B, 3, S, S)`` normal-light images in ``[0, 1]``.
        face_mesh (FaceMeshDepth): The landmark detector.

    Returns:
        dict: ``fm_corr`` (mean Pearson correlation of guidance with FaceMesh nearness, 1 = same ordering) and
        ``fm_err`` (mean absolute error of the least-squares ``a * guidance + b`` fit to FaceMesh depth, as a
        fraction of the face's depth range) over the images with a face; ``fm_faces`` their number.
    """
    from lowlight3d.data.mediapipe_depth import landmarks_to_depth
    corrs, errs = [], []
    r = guidance.shape[-1]
    for i in range(gt.shape[0]):
        pts = face_mesh.landmarks(gt[i].permute(1, 2, 0).numpy())
        if pts is None:
            continue
        fm = landmarks_to_depth(pts, r, r, face_mesh.triangles)
        inside = fm > 0
        if inside.sum() < 10:
            continue
        g = guidance[i, 0].float().numpy()[inside].astype(np.float64)
        d = fm[inside].astype(np.float64)
        if g.std() < 1e-8:
            corrs.append(0.0)
        else:
            corrs.append(float(np.corrcoef(g, -d)[0, 1]))
        a, b = np.linalg.lstsq(np.stack([g, np.ones_like(g)], 1), d, rcond=None)[0]
        errs.append(float(np.abs(a * g + b - d).mean() / max(d.max() - d.min(), 1e-8)))
    return {'fm_corr': float(np.mean(corrs)) if corrs else float('nan'),
            'fm_err': float(np.mean(errs)) if errs else float('nan'), 'fm_faces': len(corrs)}


def _gt_psnr(render, gt):
    """Mean PSNR of renders against the normal-light images resized (area) to the render size."""
    small = torch.nn.functional.interpolate(gt, size=render.shape[-2:], mode='area')
    return float(np.mean([psnr(_to_img(render[i]), _to_img(small[i])) for i in range(render.shape[0])]))


def load_quality_batch(opt, max_images):
    """The first ``max_images`` images of the option file's ``datasets.val``: ``(lq, gt, cameras)`` tensors."""
    val_opt = dict(opt['datasets']['val'])
    val_opt['phase'] = 'val'
    dataset = build_dataset(val_opt)
    n = min(len(dataset), max_images)
    samples = [dataset[i] for i in range(n)]
    lq = torch.stack([s['lq'] for s in samples])
    gt = torch.stack([s['gt'] for s in samples])
    cams = torch.stack([s['camera'] for s in samples])
    return lq, gt, cams


def render_targets(generator, gt, cams):
    """What a perfect prior would give: the deterministic render of the generator's tri-planes of ``gt``.

    Args:
        generator (TriplaneGenerator): The (eval-mode) generator that made the DDPM's training targets.
        gt (torch.Tensor): ``(B, 3, S, S)`` normal-light images.
        cams (torch.Tensor): ``(B, 25)`` their cameras.

    Returns:
        tuple: ``(image (B, 3, R, R), depth guidance (B, 1, R, R) in [0, 1])``.
    """
    with torch.no_grad():
        target = generator.render(generator(gt), cams, deterministic=True)
    depth = depth_guidance(target['depth'], target['opacity'], generator.renderer.ray_start,
                           generator.renderer.ray_end)
    return target['image'], depth


def prior_metrics(render, depth, target_render, target_depth):
    """Mean PSNR / SSIM (8-bit renders) and depth-guidance MAE of a batch of priors against their targets.

    Args:
        render (torch.Tensor): ``(B, 3, R, R)`` prior renders in ``[0, 1]``.
        depth (torch.Tensor): ``(B, 1, R, R)`` prior depth guidance.
        target_render (torch.Tensor): Target renders (:func:`render_targets`).
        target_depth (torch.Tensor): Target depth guidance.

    Returns:
        dict: ``PSNR`` (``inf`` for identical renders), ``SSIM``, ``depth_MAE``.
    """
    n = render.shape[0]
    p = np.mean([psnr(_to_img(render[i]), _to_img(target_render[i])) for i in range(n)])
    s = np.mean([ssim(_to_img(render[i]), _to_img(target_render[i])) for i in range(n)])
    d = (depth - target_depth).abs().mean().item()
    return {'PSNR': p, 'SSIM': s, 'depth_MAE': d}


def quality_rows(opt_path, weights, steps_list, samplers, max_images, seed=0, flip_consistent=False,
                 variances=('beta', ), clips=(5.0, ), data_opt=None, facemesh=False, grid_path=None):
    """Rows of PSNR/SSIM/depth error/seconds per image for each sampler, number of steps and (paper) variance.

    A regression network (``diffusion.objective: regression``, ablation V6) gives one row (one forward pass).
    ``clips``: clamps of the predicted standardised ``x0`` (``None``: off; the paper sampler is then eq. 4 exactly).

    Args:
        opt_path (str): DDPM option file (its ``datasets.val``, generator and ``path.pretrain_network_generator``).
        weights (str): The denoiser's ``net_g_*.pth``.
        steps_list (list[int]): Sampling steps.
        samplers (list[str]): Samplers.
        max_images (int): Validation images used.
        seed (int): Sampling seed.
        flip_consistent (bool): Average with the flipped prior.
        variances (list[str]): Variances of the paper sampler.
        clips (list[float | None]): Clamps of ``x0``.
        data_opt (str, optional): Option file whose ``datasets.val`` gives the images (default ``opt_path``'s).
        facemesh (bool): Add ``PSNR_gt`` and the FaceMesh depth agreement (module docstring), and a first row for
            the generator's own render.
        grid_path (str, optional): Write a picture of the first setting here (:func:`save_prior_grid`).

    Returns:
        list[dict]: One row per setting of :func:`quality_settings`.
    """
    opt = load_config(opt_path)
    lq, gt, cams = load_quality_batch(load_config(data_opt) if data_opt else opt, max_images)
    n = lq.shape[0]
    rows = []
    objective = (opt.get('diffusion') or {}).get('objective', 'noise')
    gen = build_network(opt['network_generator'])
    load_network_weights(gen, opt['path']['pretrain_network_generator'], 'generator')
    gen.eval()
    t_img, t_depth = render_targets(gen, gt, cams)
    face_mesh = None
    if facemesh:
        from lowlight3d.data.mediapipe_depth import FaceMeshDepth
        face_mesh = FaceMeshDepth()
        rows.append({'sampler': 'generator target', 'steps': '-', 'variance': '-', 'clip': '-',
                     **prior_metrics(t_img, t_depth, t_img, t_depth), 'PSNR_gt': _gt_psnr(t_img, gt),
                     **facemesh_depth_agreement(t_depth, gt, face_mesh), 'cpu_s_per_image': 0.0,
                     'wall_s_per_image': 0.0})
    for sampler, steps, variance, clip in quality_settings(objective, samplers, steps_list, variances, clips):
        ext = PriorExtractor.from_options(opt, weights, steps=steps, sampler=sampler, flip_consistent=flip_consistent,
                                          variance='beta' if variance == '-' else variance, clip=clip)
        t0 = time.process_time()
        w0 = time.perf_counter()
        out = ext.extract(lq, seed=seed)
        cpu_s, wall_s = (time.process_time() - t0) / n, (time.perf_counter() - w0) / n
        extra = {}
        if face_mesh is not None:
            extra = {'PSNR_gt': _gt_psnr(out['render'], gt), **facemesh_depth_agreement(out['depth'], gt, face_mesh)}
        rows.append({'sampler': sampler, 'steps': steps, 'variance': variance, 'clip': clip,
                     **prior_metrics(out['render'], out['depth'], t_img, t_depth), **extra,
                     'cpu_s_per_image': cpu_s, 'wall_s_per_image': wall_s})
        if grid_path and len(rows) == 1 + (face_mesh is not None):
            save_prior_grid(grid_path, lq, gt, t_img, t_depth, out['render'], out['depth'])
    return rows


def save_prior_grid(path, lq, gt, target_render, target_depth, render, depth, max_rows=6):
    """A picture, one face per row: low-light input, normal-light image, the generator's render and depth (the
    target), the sampled prior's render and depth; every panel at the input size (nearest-neighbour upscaling)."""
    import cv2

    from lowlight3d.utils.img_io import write_image
    size = gt.shape[-1]
    rows = []
    for i in range(min(max_rows, gt.shape[0])):
        panels = [lq[i], gt[i], target_render[i], target_depth[i].expand(3, -1, -1), render[i],
                  depth[i].expand(3, -1, -1)]
        tiles = [cv2.resize(_to_img(p.float()), (size, size), interpolation=cv2.INTER_NEAREST) for p in panels]
        rows.append(np.concatenate(tiles, 1))
    write_image(path, np.ascontiguousarray(np.concatenate(rows, 0)[:, :, ::-1]))  # _to_img gives BGR


def timing_rows(scales, steps_list, batches, flips, samplers=('ddim', ), repeat=1):
    """CPU and wall seconds per image of ``PriorExtractor.extract`` with random weights.

    Args:
        scales (dict): ``name -> option file``.
        steps_list (list[int]): Sampling steps (one row for the ``'regression'`` sampler).
        batches (list[int]): Batch sizes.
        flips (list[bool]): ``flip_consistent`` settings.
        samplers (list[str]): ``'ddim'``, ``'paper'`` or ``'regression'``.
        repeat (int): Timed calls per setting (the minimum is reported).

    Returns:
        list[dict]: One row per setting.
    """
    rows = []
    for scale, opt_path in scales.items():
        for sampler in samplers:
            for steps in ([1] if sampler == 'regression' else steps_list):
                for flip in flips:
                    ext, size = random_extractor(opt_path, sampler, steps=steps, flip_consistent=flip)
                    ext.extract(torch.rand(1, 3, size, size), seed=0)  # warm-up (allocator, kernels)
                    for b in batches:
                        lq = torch.rand(b, 3, size, size) * 0.2
                        cpu, wall = [], []
                        for _ in range(repeat):
                            t0, w0 = time.process_time(), time.perf_counter()
                            ext.extract(lq, seed=0)
                            cpu.append((time.process_time() - t0) / b)
                            wall.append((time.perf_counter() - w0) / b)
                        rows.append({'scale': scale, 'input': f'{size}^2', 'sampler': sampler, 'steps': steps,
                                     'flip_consistent': flip, 'batch': b, 'cpu_s_per_image': min(cpu),
                                     'wall_s_per_image': min(wall)})
                        print(f'  timed {rows[-1]}', flush=True)
    return rows


def main(argv=None):
    """Command-line entry point of ``scripts/prior_quality.py``."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--opt', default=osp.join(REPO_ROOT, 'options/demo/train_TriplaneDDPM_demo.yml'))
    parser.add_argument('--weights', default='experiments/demo_TriplaneDDPM_v/models/net_g_latest.pth')
    parser.add_argument('--paper-opt',
                        default=osp.join(REPO_ROOT, 'options/train/LowLight3D/train_TriplaneDDPM_FFHQ.yml'))
    parser.add_argument('--steps', type=int, nargs='+', default=[1, 2, 5, 10, 20, 50])
    parser.add_argument('--samplers', nargs='+', default=['ddim', 'paper'])
    parser.add_argument('--variances', nargs='+', default=['beta', 'posterior'], choices=VARIANCES,
                        help="Variances of the paper sampler: 'beta' (eq. 4) and/or 'posterior' (beta~).")
    parser.add_argument('--clips', nargs='+', default=['5'],
                        help="Clamps of the standardised x0 in both samplers ('none': off, paper sampler = eq. 4).")
    parser.add_argument('--max-images', type=int, default=24)
    parser.add_argument('--data-opt', default=None,
                        help="Measure on this option file's datasets.val (default: --opt's), e.g. held-out real faces.")
    parser.add_argument('--save-grid', default=None,
                        help='PNG: input | image | generator render | its depth | prior render | its depth, per face.')
    parser.add_argument('--facemesh', action='store_true',
                        help='Add PSNR against the image and depth agreement with FaceMesh (needs mediapipe).')
    parser.add_argument('--flip-consistent', action='store_true', help='Average with the flipped prior (2x cost).')
    parser.add_argument('--complexity-only', action='store_true')
    parser.add_argument('--timing-only', action='store_true', help='Only the CPU timing table (random weights).')
    parser.add_argument('--no-timing', action='store_true')
    parser.add_argument('--timing-scales', nargs='+', default=['demo', 'paper'], choices=['demo', 'paper'])
    parser.add_argument('--timing-steps', type=int, nargs='+', default=[20])
    parser.add_argument('--timing-batches', type=int, nargs='+', default=[1, 8])
    parser.add_argument('--timing-flip', nargs='+', default=['off'], choices=['off', 'on'])
    parser.add_argument('--timing-samplers', nargs='+', default=['ddim'], choices=list(SAMPLERS))
    parser.add_argument('--timing-repeat', type=int, default=1)
    args = parser.parse_args(argv)
    if not args.timing_only:
        print(f'Complexity at 256x256 ({osp.relpath(args.paper_opt, REPO_ROOT)}; torch FlopCounterMode, '
              '1 MAC = 2 FLOPs; paper: 9.29 M params / 411.86 G for the whole method)')
        print(format_table(complexity_rows(args.paper_opt), digits=3))
        if args.complexity_only:
            return
    if not args.no_timing:
        scales = {'demo': osp.join(REPO_ROOT, 'options/demo/train_TriplaneDDPM_demo.yml'), 'paper': args.paper_opt}
        print(f'\nCPU time per prior extraction (RANDOM WEIGHTS: timing only, quality meaningless; '
              f'{torch.get_num_threads()} CPU threads; cpu_s = process CPU seconds summed over threads)')
        print(format_table(timing_rows({k: scales[k] for k in args.timing_scales}, args.timing_steps,
                                       args.timing_batches, [f == 'on' for f in args.timing_flip],
                                       args.timing_samplers, args.timing_repeat), digits=3))
    if args.timing_only:
        return
    print(f'\nPrior quality vs sampling steps ({osp.relpath(args.opt, REPO_ROOT)}, '
          f'{torch.get_num_threads()} CPU threads)')
    print(format_table(quality_rows(args.opt, args.weights, args.steps, args.samplers, args.max_images,
                                    flip_consistent=args.flip_consistent, variances=args.variances,
                                    clips=[None if c.lower() == 'none' else float(c) for c in args.clips],
                                    data_opt=args.data_opt, facemesh=args.facemesh, grid_path=args.save_grid),
                      digits=4))
