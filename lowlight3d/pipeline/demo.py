"""``make demo``: generate the demo faces (or use the user's photos), train, test, print the table.

Every step is resumable and safe to re-run: the demo data is generated once (complete sets are reused), the
training continues from its newest checkpoint (``--auto_resume``; a finished run only re-validates), and
testing overwrites its results.

Reproducibility: torch's CPU convolutions and reductions split their sums over the intra-op threads, so the
thread count changes the last bits of every step, and a training amplifies them into different final numbers
(``tests/test_reliability_prior_checkpoints.py`` shows the first).  The demo therefore pins it (``DEMO_THREADS``,
option ``num_threads`` of every stage, ``--threads``), whatever ``OMP_NUM_THREADS`` says: the same command on the
same software and CPU type gives bit-identical weights and metrics.
"""
import argparse
import hashlib
import os
import os.path as osp
import time

import torch

from lowlight3d.data.image_source import scan_images
from lowlight3d.pipeline.option_loading import training_overrides
from lowlight3d.pipeline.test_pipeline import test_pipeline
from lowlight3d.pipeline.train_pipeline import train_pipeline
from lowlight3d.utils.paths import REPO_ROOT

__all__ = ['DEMO_STAGES', 'DEMO_THREADS', 'prepare_user_faces', 'run_demo', 'main']

#: torch intra-op threads of every demo stage (results depend on the thread count; 2 = the documented machine).
DEMO_THREADS = 2

DEMO_ROOT = osp.join('datasets', 'demo_faces')
#: The demo stages, in order: ``name`` (experiment), ``train`` and ``test`` option files (``test`` None: a
#: training-only stage whose weights a later stage reads) and ``user_faces`` (where ``FACES=<dir>`` photos go:
#: None = the stage keeps the generated demo faces; ``'semi'`` = the paired part of the semi-supervised set;
#: ``'generator'`` / ``'ddpm'`` = the 3D prior stages, which then learn from the photos with mediapipe FaceMesh
#: depth and the canonical camera, as options/real/train_Triplane*_real.yml do, and hand their weights on).
DEMO_STAGES = [
    {'name': 'demo_TriplaneGenerator', 'train': 'options/demo/train_TriplaneGenerator_demo.yml', 'test': None,
     'user_faces': 'generator'},
    {'name': 'demo_TriplaneDDPM_v', 'train': 'options/demo/train_TriplaneDDPM_demo.yml', 'test': None,
     'user_faces': 'ddpm'},
    {'name': 'demo_LowLight3D_randomVGG', 'train': 'options/demo/train_LowLight3D_demo.yml',
     'test': 'options/demo/test_LowLight3D_demo.yml', 'user_faces': 'semi'},
]


def prepare_user_faces(faces_dir, out_root='datasets', val_fraction=0.1, test_fraction=0.1, seed=0):
    """Split a folder of the user's normal-light face photos into train/val/test lists (no copies).

    The split is a seeded shuffle of the sorted file names; the lists are BasicSR meta_info files written to
    ``<out_root>/user_faces_<hash>/meta_{train,val,test}.txt``.

    Returns:
        tuple[str, dict]: The list folder and ``{split: meta_info path}``.
    """
    import numpy as np
    faces_dir = osp.abspath(faces_dir)
    names = scan_images(faces_dir, recursive=True)
    if len(names) < 10:
        raise ValueError(f'FACES={faces_dir} holds {len(names)} images; the demo needs at least 10 face photos')
    order = np.random.default_rng(seed).permutation(len(names))
    n_val = max(1, int(round(len(names) * val_fraction)))
    n_test = max(1, int(round(len(names) * test_fraction)))
    splits = {'val': order[:n_val], 'test': order[n_val:n_val + n_test], 'train': order[n_val + n_test:]}
    tag = hashlib.sha1(faces_dir.encode()).hexdigest()[:8]
    folder = osp.join(out_root, f'user_faces_{tag}')
    os.makedirs(folder, exist_ok=True)
    metas = {}
    for split, idx in splits.items():
        metas[split] = osp.join(folder, f'meta_{split}.txt')
        with open(metas[split], 'w') as f:
            f.writelines(f'{names[i]}\n' for i in sorted(idx))
    return folder, metas


def _prior_overrides(faces_dir, metas, layout, folder):
    """``--cfg-options`` of a 3D prior stage (``layout`` ``'generator'`` or ``'ddpm'``) on the user's photos:
    FaceMesh depth cached in ``<folder>/facemesh_depth_64``, the canonical camera, the previous stage's weights."""
    tag = osp.basename(folder)
    overrides = []
    for key, split in (('datasets.train', 'train'), ('datasets.val', 'val')):
        overrides += [f'{key}.dataroot_gt={faces_dir}', f'+{key}.meta_info_file={metas[split]}',
                      f'{key}.name=UserFaces_{split}', f'{key}.camera_file=~']
        if layout == 'generator':
            overrides += [f'{key}.depth_source=mediapipe', f'{key}.dataroot_depth=~', f'{key}.dataroot_mask=~',
                          f"+{key}.depth_cache_dir={osp.join(folder, 'facemesh_depth_64')}"]
    if layout == 'generator':  # FaceMesh depth is relative and covers the face only (as train_*_real.yml)
        overrides += ['train.depth_opt.fit=scale_shift', 'train.opacity_opt.inside_only=true']
    else:
        overrides.append('path.pretrain_network_generator='
                         f'experiments/demo_TriplaneGenerator_{tag}/models/net_generator_latest.pth')
    return overrides


def _user_overrides(faces_dir, metas, layout, folder=None):
    """``--cfg-options`` that put the user's photos into the train (``layout``: ``'semi'`` = its paired
    sub-block, ``'paired'`` = a flat paired set; ``'generator'`` / ``'ddpm'``: :func:`_prior_overrides`), val and
    paired test sets."""
    faces_dir = osp.abspath(faces_dir)
    if layout in ('generator', 'ddpm'):
        return _prior_overrides(faces_dir, metas, layout, folder)
    overrides = []
    train_key = 'datasets.train.paired' if layout == 'semi' else 'datasets.train'
    for key, phase, split in ((train_key, 'train', 'train'), ('datasets.val', 'val', 'val'),
                              ('datasets.test_paired', 'test_paired', 'test')):
        overrides += [f'{key}.dataroot_gt={faces_dir}', f'+{key}.meta_info_file={metas[split]}',
                      f'datasets.{phase}.name=UserFaces_{split}']
    if folder is not None:  # the prior learned from the same photos
        overrides.append(f'prior.file=experiments/demo_TriplaneDDPM_v_{osp.basename(folder)}/models/prior_latest.pth')
    return overrides


def run_demo(faces=None, root='.', demo_data_kwargs=None, extra_overrides=(), threads=DEMO_THREADS):
    """Run every demo stage; returns ``{experiment name: test summary}``.

    Args:
        faces (str, optional): Folder of the user's own normal-light face photos replacing the generated
            paired faces, for the 3D prior too (the unpaired "real-like" low-light test set stays the generated
            one).
        root (str): Folder where ``datasets/``, ``experiments/`` and ``results/`` live (relative dataset paths
            of the option files are relative to it).
        demo_data_kwargs (dict, optional): Arguments of ``generate_demo_dataset`` (counts, size).
        extra_overrides (Sequence[str]): ``--cfg-options`` added to every stage (tests use tiny budgets).
        threads (int): torch intra-op threads for every step (option ``num_threads`` of each stage); 0 or None
            leaves torch's default (``OMP_NUM_THREADS`` or the core count), whose numbers differ per count.
    """
    cwd, before = os.getcwd(), torch.get_num_threads()
    os.chdir(root)
    overrides = list(extra_overrides)
    if threads:
        torch.set_num_threads(int(threads))
        overrides = [f'+num_threads={int(threads)}'] + overrides
    print(f'[demo] {torch.get_num_threads()} torch threads ('
          f"{'pinned' if threads else 'not pinned: numbers depend on the thread count'})", flush=True)
    try:
        return _run_stages(faces, demo_data_kwargs or {}, overrides)
    finally:
        os.chdir(cwd)
        torch.set_num_threads(before)


def _run_stages(faces, demo_data_kwargs, extra_overrides):
    from lowlight3d.data.demo_faces import generate_demo_dataset
    t0 = time.time()
    print(f'[demo] demo data in {DEMO_ROOT} ...', flush=True)
    generate_demo_dataset(DEMO_ROOT, verbose=True, **demo_data_kwargs)
    folder = metas = None
    if faces:
        folder, metas = prepare_user_faces(faces)
        print(f'[demo] using your faces from {faces}: lists in {folder}', flush=True)
    summaries = {}
    for stage in DEMO_STAGES:
        name, overrides = stage['name'], list(extra_overrides)
        if faces and stage['user_faces']:
            name = f"{name}_{osp.basename(folder)}"
            overrides = _user_overrides(faces, metas, stage['user_faces'], folder) + overrides
        stage_overrides = overrides + [f'name={name}']  # datasets.test* overrides apply to testing only
        train_opt = osp.join(REPO_ROOT, stage['train'])
        print(f'[demo] training {name} ({train_opt}) ...', flush=True)
        train_pipeline(['-opt', train_opt, '--auto_resume', '--cfg-options', *training_overrides(stage_overrides)])
        if not stage['test']:
            continue
        test_opt = osp.join(REPO_ROOT, stage['test'])
        weights = osp.join('experiments', name, 'models', 'net_g_latest.pth')
        print(f'[demo] testing {name} ({test_opt}) ...', flush=True)
        summaries[name] = test_pipeline(
            ['-opt', test_opt, '--cfg-options', *stage_overrides, f'path.pretrain_network_g={weights}'])
        print(f'[demo] results: results/{name}/metrics.csv, metrics.json, paper_table.md, grids/, visualization/',
              flush=True)
    print(f'[demo] done in {time.time() - t0:.0f} s', flush=True)
    return summaries


def main(argv=None):
    """Command-line entry point of ``scripts/run_demo.py``."""
    parser = argparse.ArgumentParser(description='Run the lowlight3d demo end to end on CPU.')
    parser.add_argument('--faces', default=None, help='Folder of your own normal-light face photos (optional).')
    parser.add_argument('--root', default='.', help='Working folder (datasets/, experiments/, results/).')
    parser.add_argument('--threads', type=int, default=DEMO_THREADS,
                        help=f'torch threads of every stage (default {DEMO_THREADS}; the numbers depend on it; '
                             '0 = torch\'s default).')
    args = parser.parse_args(argv)
    return run_demo(args.faces, args.root, threads=args.threads)
