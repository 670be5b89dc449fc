"""The training loop behind ``python lowlight3d/train.py -opt X.yml``: BasicSR's iteration-based loop.

Layout (BasicSR's): ``experiments/<name>/{models, training_states, visualization}``, the log
``train_<name>_<time>.log``, the resolved options ``options.yml``, and ours: ``curves.png`` (losses and
metrics), ``history.json``, ``models/net_g_best.pth`` (by ``val.save_best``), ``timing.json`` (wall and CPU
seconds of the training loop of the last run).  Tensorboard goes to
``tb_logger/<name>``.

An existing experiment folder is never silently reused: ``--auto_resume`` continues it, ``--force`` archives
it (loudly) and starts again, anything else is an error.  The options are validated and the data loaders and the
model are built *before* the folder is created, so a failed start (a wrong value, an unknown arch, an empty data
folder) leaves nothing behind; a folder that holds no checkpoint (a run killed before its first one) is a failed
start too and is reused with a warning.  Orphan ``*.tmp<pid>`` files of a save interrupted by a kill are removed.
``logger.save_checkpoint_freq: 0`` saves only at the end.
"""
import argparse
import glob
import json
import logging
import os
import os.path as osp
import re
import shlex
import sys
import time

import torch

from lowlight3d.models import build_model
from lowlight3d.pipeline.data_loading import build_eval_loader, build_train_loader
from lowlight3d.pipeline.option_loading import load_options
from lowlight3d.utils.checkpoint import load_checkpoint
from lowlight3d.utils.dist import barrier, broadcast_object
from lowlight3d.utils.logger import LOGGER_NAME, buffer_logger, environment_info, setup_logger
from lowlight3d.utils.options import dump_options, yaml_dump
from lowlight3d.utils.plot import plot_training_curves
from lowlight3d.utils.rng import set_random_seed

__all__ = ['parse_train_args', 'train_pipeline', 'find_resume_state']


def parse_train_args(argv=None):
    """Command-line arguments of ``train.py`` (BasicSR's flags plus ``--cfg-options`` and ``--force``)."""
    parser = argparse.ArgumentParser(description='Train a lowlight3d model from a YAML option file.')
    parser.add_argument('-opt', '--opt', required=True, help='Path to the option YAML file.')
    parser.add_argument('--auto_resume', '--auto-resume', action='store_true',
                        help='Continue from the newest training state of this experiment, if any.')
    parser.add_argument('--force', action='store_true',
                        help='Archive an existing experiment folder of the same name and start again.')
    parser.add_argument('--debug', action='store_true', help='Debug mode (print every iter, validate every 8).')
    parser.add_argument('--launcher', choices=['none', 'pytorch'], default='none', help='Job launcher.')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0, help='Set by the launcher.')
    parser.add_argument('--cfg-options', '--force_yml', nargs='+', default=[], metavar='KEY=VALUE',
                        help='Override options, e.g. train.total_iter=10 datasets.train.batch_size_per_gpu=2')
    parser.add_argument('--root', default='.', help='Folder holding experiments/ and tb_logger/ (default: cwd).')
    return parser.parse_args(argv)


def find_resume_state(opt, auto_resume):
    """The training state to resume from: ``path.resume_state``, or with ``auto_resume`` the newest one."""
    explicit = opt['path'].get('resume_state')
    if explicit:
        if not osp.isfile(explicit):
            raise FileNotFoundError(f'path.resume_state does not exist: {explicit}')
        return explicit
    folder = opt['path']['training_states']
    if auto_resume and osp.isdir(folder):
        iters = [int(f[:-6]) for f in os.listdir(folder) if f.endswith('.state') and f[:-6].isdigit()]
        if iters:
            return osp.join(folder, f'{max(iters)}.state')
    return None


def _has_checkpoint(opt):
    """Whether the experiment folder holds a training state or network weights (a run that started training)."""
    return bool(glob.glob(osp.join(opt['path']['training_states'], '*.state'))
                or glob.glob(osp.join(opt['path']['models'], '*.pth')))


def _check_experiment_folder(opt, resuming, force):
    """Refuse an existing experiment folder with checkpoints unless resuming or ``force`` (nothing is changed)."""
    root = opt['path']['experiments_root']
    if osp.isdir(root) and os.listdir(root) and not resuming and not force and _has_checkpoint(opt):
        raise FileExistsError(f"Experiment folder {root} already exists. Use --auto_resume to continue it, "
                              '--force to archive it and start again, or change `name` in the option file.')


def _remove_orphan_tmp_files(opt):
    """Delete ``*.tmp<pid>`` files a kill during an atomic save left behind; returns their paths."""
    removed = []
    for key in ('experiments_root', 'models', 'training_states'):
        folder = opt['path'][key]
        if not osp.isdir(folder):
            continue
        for name in os.listdir(folder):
            if re.search(r'\.tmp\d*$', name) and osp.isfile(osp.join(folder, name)):
                os.remove(osp.join(folder, name))
                removed.append(osp.join(folder, name))
    return removed


def _prepare_experiment_folder(opt, resuming, force, logger_prefix=''):
    """Create the experiment folders; refuse (or, with ``force``, archive) an existing one unless resuming.

    A folder without any checkpoint (a failed or killed start) is reused, with a printed warning.
    """
    root = opt['path']['experiments_root']
    if osp.isdir(root) and os.listdir(root) and not resuming and not _has_checkpoint(opt) and not force:
        print(f'{logger_prefix}Experiment folder {root} holds no checkpoint (a failed or interrupted start): '
              'starting afresh in it', flush=True)
    elif osp.isdir(root) and os.listdir(root) and not resuming:
        if not force:
            raise FileExistsError(f"Experiment folder {root} already exists. Use --auto_resume to continue it, "
                                  '--force to archive it and start again, or change `name` in the option file.')
        archived = f"{root}_archived_{time.strftime('%Y%m%d_%H%M%S')}"
        os.rename(root, archived)
        print(f'{logger_prefix}!!! Existing experiment folder archived: {root} -> {archived}', flush=True)
        tb = opt['path']['tb_logger']
        if osp.isdir(tb):
            os.rename(tb, f"{tb}_archived_{time.strftime('%Y%m%d_%H%M%S')}")
    for key in ('experiments_root', 'models', 'training_states', 'visualization'):
        os.makedirs(opt['path'][key], exist_ok=True)


def _create_loaders(opt, logger):
    train_set = train_sampler = train_loader = None
    val_loaders = []
    for phase, dataset_opt in opt['datasets'].items():
        if phase.startswith('train'):
            train_set, train_sampler, train_loader = build_train_loader(dataset_opt, opt)
            logger.info(f"Training set {dataset_opt['name']}: {len(train_set)} images, batch "
                        f"{train_sampler.batch_size} x {opt['world_size']} process(es), "
                        f'{train_sampler.batches_per_epoch()} iterations per epoch')
        elif phase.startswith('val'):
            val_set, loader = build_eval_loader(dataset_opt, opt, where=f'datasets.{phase}')
            val_loaders.append(loader)
            logger.info(f"Validation set {dataset_opt['name']}: {len(val_set)} images")
        else:
            raise ValueError(f"datasets.{phase}: dataset keys of a training option file must start with "
                             "'train' or 'val'")
    if train_loader is None:
        raise ValueError('The option file has no datasets.train block')
    return train_set, train_sampler, train_loader, val_loaders


def _write_timing(opt, iterations, wall_s, cpu_s, first_iter):
    """Write ``experiments/<name>/timing.json``: wall and CPU seconds of this run's training loop.

    ``cpu_s`` is the process CPU time (all threads, :func:`time.process_time`); both exclude start-up (data listing,
    model building) and the final checkpoint, and include whatever runs inside the loop (data loading, validation
    and checkpoints at their frequencies).  ``first_iter_*``: the first iteration alone (warm-up), so that
    ``(cpu_s - first_iter_cpu_s) / (iterations - 1)`` is the steady cost of one iteration (used by the benchmark's
    CPU budget, :mod:`lowlight3d.pipeline.benchmark`).  A run that trains nothing (a finished run resumed) keeps
    the file of the run that trained.
    """
    if opt['rank'] != 0 or iterations <= 0:
        return
    first_wall, first_cpu = first_iter or (0.0, 0.0)
    payload = {'iterations': int(iterations), 'wall_s': round(wall_s, 4), 'cpu_s': round(cpu_s, 4),
               'first_iter_wall_s': round(first_wall, 4), 'first_iter_cpu_s': round(first_cpu, 4),
               'threads': torch.get_num_threads()}
    path = osp.join(opt['path']['experiments_root'], 'timing.json')
    with open(f'{path}.tmp', 'w') as f:
        json.dump(payload, f, indent=1)
    os.replace(f'{path}.tmp', path)


def _init_tb_logger(opt):
    if not opt['logger'].get('use_tb_logger') or opt['rank'] != 0:
        return None
    from torch.utils.tensorboard import SummaryWriter
    return SummaryWriter(log_dir=opt['path']['tb_logger'])


def train_pipeline(argv=None, root_path=None):
    """Parse the command line, then train (see the module docstring).

    Args:
        argv (list[str], optional): Command-line arguments (default ``sys.argv[1:]``).
        root_path (str, optional): Overrides ``--root``.

    Returns:
        dict: The resolved options of the run (the model is not kept alive).
    """
    args = parse_train_args(argv)
    opt = load_options(args.opt, is_train=True, cfg_options=args.cfg_options, launcher=args.launcher,
                       root_path=root_path or args.root, debug=args.debug)
    rank = opt['rank']
    if opt.get('deterministic', True):
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    set_random_seed(opt['manual_seed'] + rank)

    resume_path = find_resume_state(opt, args.auto_resume)
    if rank == 0:
        _check_experiment_folder(opt, resume_path is not None, args.force)
    # Build everything that can fail on the options before the experiment folder exists (a failed start
    # leaves nothing behind that would block the fixed rerun).
    buffer = buffer_logger(rank)
    train_set, sampler, train_loader, val_loaders = _create_loaders(opt, logging.getLogger(LOGGER_NAME))
    model = build_model(opt)
    removed = []
    if rank == 0:
        _prepare_experiment_folder(opt, resume_path is not None, args.force)
        removed = _remove_orphan_tmp_files(opt)
    barrier()
    log_file = osp.join(opt['path']['log'], f"train_{opt['name']}_{time.strftime('%Y%m%d_%H%M%S')}.log")
    logger = setup_logger(log_file, rank, replay=buffer)
    logger.info(environment_info())
    if rank == 0 and removed:
        logger.warning(f'Removed {len(removed)} orphan temporary file(s) of an interrupted save: {removed}')
    command = ' '.join(shlex.quote(a) for a in [sys.argv[0]] + list(argv if argv is not None else sys.argv[1:]))
    if rank == 0:
        dump_options(opt, osp.join(opt['path']['experiments_root'], 'options.yml'), command)
    logger.info('Command: ' + command + '\nResolved options:\n' + yaml_dump(opt))
    tb_logger = _init_tb_logger(opt)
    model.print_networks(logger)

    start_epoch, current_iter, batches_done = 0, 0, 0
    history = {'losses': [], 'metrics': []}
    window = {}  # sums of the logged scalars since the last log line (the line shows their means)
    if resume_path:
        state = load_checkpoint(resume_path, what='training state')
        model.resume_training(state)
        start_epoch, current_iter = state['epoch'], state['iter']
        batches_done = state['pipeline'].get('batches_done', 0)
        history = state['pipeline'].get('history', history)
        window = {k: tuple(v) for k, v in state['pipeline'].get('log_window', {}).items()}
        logger.info(f'Resumed from {resume_path}: epoch {start_epoch}, iter {current_iter}')

    total_iter = int(opt['train']['total_iter'])
    warmup_iter = int(opt['train'].get('warmup_iter', -1))
    log_opt, val_opt = opt['logger'], opt.get('val') or {}
    save_best = val_opt.get('save_best')
    val_freq = val_opt.get('val_freq')
    from basicsr.utils import MessageLogger
    msg_logger = MessageLogger(opt, current_iter, tb_logger)
    curves_path = osp.join(opt['path']['experiments_root'], 'curves.png')

    def run_validation():
        if not val_loaders:
            return
        if rank == 0:
            for loader in val_loaders:
                means, improved = model.validation(loader, current_iter, tb_logger, val_opt.get('save_img', False))
                history['metrics'].append({'iter': current_iter, 'dataset': loader.dataset.opt['name'],
                                           **{k: v for k, v in means.items() if isinstance(v, float)}})
                if save_best and loader is val_loaders[0] and save_best in improved:
                    model.save_networks('best')
                    with open(osp.join(opt['path']['models'], 'best.json'), 'w') as f:
                        json.dump({'metric': save_best, 'value': means[save_best], 'iter': current_iter}, f)
                    logger.info(f'New best {save_best}={means[save_best]:.4f}: saved models/net_g_best.pth')
            plot_training_curves(history, curves_path, opt['name'])
        model.best_metric_results = broadcast_object(model.best_metric_results)

    def save_checkpoint(epoch, batches):
        model.save_networks(current_iter)
        model.save_training_state(epoch, current_iter, {'batches_done': batches, 'history': history,
                                                        'log_window': dict(window)})
        logger.info(f'Saved checkpoint at iter {current_iter}')

    logger.info(f'Start training from epoch {start_epoch}, iter {current_iter}, to iter {total_iter}')
    epoch = start_epoch
    t_start, cpu_start, start_iter, first_iter = time.time(), time.process_time(), current_iter, None  # timing.json
    ckpt_freq = int(log_opt['save_checkpoint_freq'])  # 0: only at the end
    while current_iter < total_iter:
        sampler.set_epoch(epoch, batches_done)
        if hasattr(train_set, 'set_epoch'):
            train_set.set_epoch(epoch)
        data_t = time.time()
        for batch in train_loader:
            data_time = time.time() - data_t
            current_iter += 1
            batches_done += 1
            model.update_learning_rate(current_iter, warmup_iter)
            model.feed_data(batch)
            model.optimize_parameters(current_iter)
            iter_time = time.time() - data_t
            if first_iter is None:
                first_iter = (time.time() - t_start, time.process_time() - cpu_start)
            for key, value in model.get_current_log().items():
                total, count = window.get(key, (0.0, 0))
                window[key] = (total + float(value), count + 1)
            if current_iter % log_opt['print_freq'] == 0 or current_iter == total_iter:
                logs = {key: total / count for key, (total, count) in window.items()}
                window = {}
                history['losses'].append({'iter': current_iter, **logs})
                msg_logger({'epoch': epoch, 'iter': current_iter, 'lrs': model.get_current_learning_rate(),
                            'time': iter_time, 'data_time': data_time, **logs})
            if val_freq and current_iter % int(val_freq) == 0:
                run_validation()
            if ckpt_freq and current_iter % ckpt_freq == 0:
                save_checkpoint(epoch, batches_done)
            data_t = time.time()
            if current_iter >= total_iter:
                break
        else:
            epoch += 1
            batches_done = 0
            continue
        break

    _write_timing(opt, current_iter - start_iter, time.time() - t_start, time.process_time() - cpu_start, first_iter)
    if val_freq and current_iter % int(val_freq) != 0:
        run_validation()
    if not ckpt_freq or current_iter % ckpt_freq != 0:
        save_checkpoint(epoch, batches_done)
    model.save_networks('latest')
    if rank == 0:
        plot_training_curves(history, curves_path, opt['name'])
        with open(osp.join(opt['path']['experiments_root'], 'history.json'), 'w') as f:
            json.dump(history, f, indent=1)
    seconds = time.time() - t_start
    if start_iter:  # the time is that of this run only: say how many iterations it trained
        done = (f'{current_iter} iterations, of which {current_iter - start_iter} in {seconds:.1f} s by this run '
                f'(resumed at iteration {start_iter})')
    else:
        done = f'{current_iter} iterations in {seconds:.1f} s'
    logger.info(f"End of training: {done}. Models in {opt['path']['models']}")
    if tb_logger is not None:
        tb_logger.close()
    barrier()
    return opt
