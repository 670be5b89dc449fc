"""The training loop behind ``python lowlight3d/train.py -opt X.yml``: BasicSR's iteration-based loop.

Layout (BasicSR's): ``experiments/<name>/{models, training_states, visualization}``, the log
``train_<name>_<time>.log``, the resolved options ``options.yml``, and ours: ``curves.png`` (losses and
metrics), ``history.json``, ``models/net_g_best.pth`` (by ``val.save_best``), ``timing.json`` (wall and CPU
seconds of the training loop of the last run that trained).  Tensorboard goes to ``tb_logger/<name>``.

:func:`train_pipeline` returns a :class:`TrainResult`: the resolved options, the iterations the run started and
ended at, and the :class:`LoopTiming` of its loop (the numbers ``timing.json`` records), so a caller needs no file to
know what the call trained and what it cost.

One run per experiment: ``experiments/.<name>.lock`` (pid, host, start time; :mod:`lowlight3d.utils.run_lock`) is
held from before the folder is checked until the last save; a second run of the name is refused, naming the first,
and the lock of a process that no longer exists is taken over with a warning.

An existing experiment folder is never silently reused: ``--auto_resume`` continues it, ``--force`` archives
it (loudly) and starts again, anything else is an error.  The options are validated and the data loaders and the
model are built *before* the folder is created, so a failed start (a wrong value, an unknown arch, an empty data
folder) leaves nothing behind; a folder that holds no checkpoint (a run killed before its first one) is a failed
start too and is reused with a warning.  Orphan temporary files of a save interrupted by a kill are removed.
``logger.save_checkpoint_freq: 0`` saves only at the end.
"""
import argparse
import contextlib
import glob
import logging
import os
import os.path as osp
import shlex
import sys
import time
from dataclasses import asdict, dataclass
from typing import Optional

import torch

from lowlight3d.models import build_model
from lowlight3d.pipeline.data_loading import build_eval_loader, build_train_loader
from lowlight3d.pipeline.loss_spikes import SPIKE_FACTOR, describe_spikes, find_loss_spikes
from lowlight3d.pipeline.option_loading import load_options
from lowlight3d.utils.checkpoint import atomic_write_json, is_atomic_temp_file, load_checkpoint
from lowlight3d.utils.dist import barrier, broadcast_object
from lowlight3d.utils.logger import LOGGER_NAME, buffer_logger, environment_info, setup_logger
from lowlight3d.utils.options import dump_options, yaml_dump
from lowlight3d.utils.plot import plot_training_curves
from lowlight3d.utils.rng import set_random_seed
from lowlight3d.utils.run_lock import RunLock

__all__ = ['parse_train_args', 'train_pipeline', 'find_resume_state', 'TrainResult', 'LoopTiming']


@dataclass(frozen=True)
class LoopTiming:
    """Wall and CPU seconds of one run's training loop: what ``experiments/<name>/timing.json`` holds.

    ``cpu_s`` is the process CPU time (all threads, :func:`time.process_time`); both exclude start-up (data listing,
    model building) and the final checkpoint, and include whatever runs inside the loop (data loading, validation
    and checkpoints at their frequencies).  ``first_iter_*``: the first iteration alone (warm-up).  Seconds are
    rounded to 4 decimals, as written.
    """
    iterations: int
    wall_s: float
    cpu_s: float
    first_iter_wall_s: float
    first_iter_cpu_s: float
    threads: int

    @classmethod
    def measured(cls, iterations, wall_s, cpu_s, first_iter, threads):
        """From raw measurements; ``first_iter`` is ``(wall_s, cpu_s)`` of the first iteration, or None."""
        first_wall, first_cpu = first_iter or (0.0, 0.0)
        return cls(int(iterations), round(wall_s, 4), round(cpu_s, 4), round(first_wall, 4), round(first_cpu, 4),
                   int(threads))

    @property
    def steady_cpu_s_per_iter(self):
        """CPU seconds of one iteration after the warm-up: ``(cpu_s - first_iter_cpu_s) / (iterations - 1)``."""
        return (self.cpu_s - self.first_iter_cpu_s) / max(1, self.iterations - 1)

    @property
    def steady_wall_s_per_iter(self):
        """Wall seconds of one iteration after the warm-up."""
        return (self.wall_s - self.first_iter_wall_s) / max(1, self.iterations - 1)

    def to_json(self):
        """The ``timing.json`` dict."""
        return asdict(self)


@dataclass(frozen=True)
class TrainResult:
    """What one :func:`train_pipeline` call did.

    Attributes:
        opt (dict): The resolved options (``opt['path']`` locates the experiment, its models and states).
        start_iter (int): The iteration the call started at (0 for a fresh run, else the resumed state's).
        final_iter (int): The iteration it ended at (``train.total_iter``).
        timing (LoopTiming | None): Its training loop's times; None when it trained nothing (a finished run
            resumed), whose ``timing.json`` then still describes the run that trained.
    """
    opt: dict
    start_iter: int
    final_iter: int
    timing: Optional[LoopTiming]

    @property
    def iterations(self):
        """Iterations trained by this call."""
        return self.final_iter - self.start_iter

    @property
    def trained(self):
        """Whether this call trained any iteration."""
        return self.final_iter > self.start_iter


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
    """Delete the temporary files a kill during an atomic save left behind (:func:`is_atomic_temp_file`); returns
    their paths."""
    removed = []
    for key in ('experiments_root', 'models', 'training_states'):
        folder = opt['path'][key]
        if not osp.isdir(folder):
            continue
        for name in os.listdir(folder):
            if is_atomic_temp_file(name) and osp.isfile(osp.join(folder, name)):
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


def _write_timing(opt, timing):
    """Write ``experiments/<name>/timing.json`` (:class:`LoopTiming`) on rank 0.  A run that trained nothing
    (``timing`` None: a finished run resumed) keeps the file of the run that trained."""
    if opt['rank'] != 0 or timing is None:
        return
    atomic_write_json(osp.join(opt['path']['experiments_root'], 'timing.json'), timing.to_json())


def _init_tb_logger(opt):
    if not opt['logger'].get('use_tb_logger') or opt['rank'] != 0:
        return None
    from torch.utils.tensorboard import SummaryWriter
    return SummaryWriter(log_dir=opt['path']['tb_logger'])


def _load_run_options(argv, root_path):
    """Step 1: parse the command line, load and validate the options, make the run deterministic and seeded, and
    find the training state to resume from.

    Returns:
        tuple: ``(args, opt, resume_path)`` (``resume_path`` None for a fresh start).
    """
    args = parse_train_args(argv)
    opt = load_options(args.opt, is_train=True, cfg_options=args.cfg_options, launcher=args.launcher,
                       root_path=root_path or args.root, debug=args.debug)
    if opt.get('deterministic', True):
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    set_random_seed(opt['manual_seed'] + opt['rank'])
    return args, opt, find_resume_state(opt, args.auto_resume)


def _make_experiment_folder(opt, resuming, force):
    """Step 3 (after the loaders and the model were built): create the experiment folder on rank 0 (refusing or
    archiving an existing one, :func:`_prepare_experiment_folder`) and remove orphan temporary files; all ranks
    wait for it.  Returns the removed files."""
    removed = []
    if opt['rank'] == 0:
        _prepare_experiment_folder(opt, resuming, force)
        removed = _remove_orphan_tmp_files(opt)
    barrier()
    return removed


def _record_options(opt, command, resumed_from):
    """``options.yml`` describes the run that started the experiment and is never rewritten by a resume; each resume
    writes ``options_resume_<time>.yml`` (its own resolved options) and logs the keys it changed. What a training
    state restores (network weights, optimiser and scheduler states, so a changed learning rate too) keeps the
    state's values whatever the options say; the log line says so."""
    from lowlight3d.utils.options import flatten_options, load_config
    folder = opt['path']['experiments_root']
    first = osp.join(folder, 'options.yml')
    if not resumed_from or not osp.isfile(first):
        dump_options(opt, first, command)
        return
    path = osp.join(folder, f"options_resume_{time.strftime('%Y%m%d_%H%M%S')}.yml")
    dump_options(opt, path, command)
    before, now = flatten_options(load_config(first)), flatten_options(opt)
    ignored = ('path.', 'rank', 'world_size', 'dist', 'opt_path', 'prior.fingerprint')
    changed = sorted(k for k in set(before) | set(now)
                     if before.get(k) != now.get(k) and not k.startswith(ignored))
    logger = logging.getLogger(LOGGER_NAME)
    if changed:
        logger.warning(f'Resumed from {resumed_from} with options that differ from options.yml (kept as the first '
                       f"run's): {', '.join(f'{k}: {before.get(k)!r} -> {now.get(k)!r}' for k in changed[:20])}. "
                       'Values the training state restores (weights, optimiser and scheduler states: the learning '
                       f'rate among them) keep the state\'s values. This resume\'s options: {osp.basename(path)}')
    else:
        logger.info(f'Resumed with the options of options.yml; this resume\'s copy: {osp.basename(path)}')


def _start_logging(opt, argv, buffer, removed, model, resumed_from=None):
    """Step 4: the log file (replaying what was logged before it existed), the environment, the command line and
    the resolved options (also written to ``options.yml``), tensorboard and the network summary.

    Returns:
        tuple: ``(logger, tb_logger)`` (``tb_logger`` None when off or not rank 0).
    """
    rank = opt['rank']
    log_file = osp.join(opt['path']['log'], f"train_{opt['name']}_{time.strftime('%Y%m%d_%H%M%S')}.log")
    logger = setup_logger(log_file, rank, replay=buffer)
    logger.info(environment_info())
    if rank == 0 and removed:
        logger.warning(f'Removed {len(removed)} orphan temporary file(s) of an interrupted save: {removed}')
    command = ' '.join(shlex.quote(a) for a in [sys.argv[0]] + list(argv if argv is not None else sys.argv[1:]))
    if rank == 0:
        _record_options(opt, command, resumed_from)
    logger.info('Command: ' + command + '\nResolved options:\n' + yaml_dump(opt))
    tb_logger = _init_tb_logger(opt)
    model.print_networks(logger)
    logger.info(f'Training {model.precision.describe()} (train.amp, train.channels_last)')
    return logger, tb_logger


class _Progress:
    """Where a run stands: epoch, iteration, batches done in the epoch, loss/metric history and the log window
    (sums and counts of the logged scalars since the last log line, whose means the line shows)."""

    def __init__(self):
        self.epoch, self.current_iter, self.batches_done = 0, 0, 0
        self.history = {'losses': [], 'metrics': []}
        self.window = {}

    @classmethod
    def load(cls, model, resume_path, logger):
        """Step 5: a fresh start, or the progress saved in ``resume_path`` (the model's networks, optimisers and
        schedulers are restored from it too)."""
        progress = cls()
        if resume_path:
            state = load_checkpoint(resume_path, what='training state')
            model.resume_training(state)
            progress.epoch, progress.current_iter = state['epoch'], state['iter']
            progress.batches_done = state['pipeline'].get('batches_done', 0)
            progress.history = state['pipeline'].get('history', progress.history)
            progress.window = {k: tuple(v) for k, v in state['pipeline'].get('log_window', {}).items()}
            logger.info(f'Resumed from {resume_path}: epoch {progress.epoch}, iter {progress.current_iter}')
        return progress


class _TrainingRun:
    """The iteration-based loop of one run and its hooks (validation, checkpoints, final save).

    Args:
        opt (dict): Resolved options.
        model (BaseModel): The model.
        loaders (tuple): ``(train_set, sampler, train_loader, val_loaders)`` (:func:`_create_loaders`).
        progress (_Progress): Start point (fresh or resumed).
        logger (logging.Logger): The run's logger.
        tb_logger (SummaryWriter | None): Tensorboard writer.
    """

    def __init__(self, opt, model, loaders, progress, logger, tb_logger):
        from basicsr.utils import MessageLogger
        self.opt, self.model, self.progress, self.logger, self.tb_logger = opt, model, progress, logger, tb_logger
        self.train_set, self.sampler, self.train_loader, self.val_loaders = loaders
        self.total_iter = int(opt['train']['total_iter'])
        self.warmup_iter = int(opt['train'].get('warmup_iter', -1))
        self.log_opt, self.val_opt = opt['logger'], opt.get('val') or {}
        self.save_best = self.val_opt.get('save_best')
        self.val_freq = self.val_opt.get('val_freq')
        self.ckpt_freq = int(self.log_opt['save_checkpoint_freq'])  # 0: only at the end
        self.msg_logger = MessageLogger(opt, progress.current_iter, tb_logger)
        self.curves_path = osp.join(opt['path']['experiments_root'], 'curves.png')
        self.t_start = self.cpu_start = self.start_iter = self.first_iter = None  # the loop's timing, set by train()

    def validate(self):
        """Validate on every ``val*`` set (rank 0), record the metrics, save ``net_g_best`` when the first set's
        ``val.save_best`` metric improved, redraw the curves; all ranks share the best results afterwards."""
        p, model, val_loaders = self.progress, self.model, self.val_loaders
        if not val_loaders:
            return
        if self.opt['rank'] == 0:
            for loader in val_loaders:
                means, improved = model.validation(loader, p.current_iter, self.tb_logger,
                                                   self.val_opt.get('save_img', False))
                p.history['metrics'].append({'iter': p.current_iter, 'dataset': loader.dataset.opt['name'],
                                             **{k: v for k, v in means.items() if isinstance(v, float)}})
                if self.save_best and loader is val_loaders[0] and self.save_best in improved:
                    model.save_networks('best')
                    best = {'metric': self.save_best, 'value': means[self.save_best], 'iter': p.current_iter}
                    atomic_write_json(osp.join(self.opt['path']['models'], 'best.json'), best)
                    self.logger.info(f'New best {self.save_best}={means[self.save_best]:.4f}: saved '
                                     'models/net_g_best.pth')
            plot_training_curves(p.history, self.curves_path, self.opt['name'])
        model.best_metric_results = broadcast_object(model.best_metric_results)

    def save_checkpoint(self):
        """Save the networks and the training state (with the pipeline's progress) at the current iteration."""
        p = self.progress
        self.model.save_networks(p.current_iter)
        self.model.save_training_state(p.epoch, p.current_iter, {'batches_done': p.batches_done,
                                                                 'history': p.history, 'log_window': dict(p.window)})
        self.logger.info(f'Saved checkpoint at iter {p.current_iter}')

    def _train_step(self, batch, data_t, data_time):
        """One iteration: learning rate, forward/backward, log window and line, validation and checkpoint at their
        frequencies."""
        p, model = self.progress, self.model
        p.current_iter += 1
        p.batches_done += 1
        model.update_learning_rate(p.current_iter, self.warmup_iter)
        model.train_step(batch, p.current_iter)
        iter_time = time.time() - data_t
        if self.first_iter is None:
            self.first_iter = (time.time() - self.t_start, time.process_time() - self.cpu_start)
        for key, value in model.get_current_log().items():
            total, count = p.window.get(key, (0.0, 0))
            p.window[key] = (total + float(value), count + 1)
        if p.current_iter % self.log_opt['print_freq'] == 0 or p.current_iter == self.total_iter:
            logs = {key: total / count for key, (total, count) in p.window.items()}
            p.window = {}
            p.history['losses'].append({'iter': p.current_iter, **logs})
            self.msg_logger({'epoch': p.epoch, 'iter': p.current_iter, 'lrs': model.get_current_learning_rate(),
                             'time': iter_time, 'data_time': data_time, **logs})
        if self.val_freq and p.current_iter % int(self.val_freq) == 0:
            self.validate()
        if self.ckpt_freq and p.current_iter % self.ckpt_freq == 0:
            self.save_checkpoint()

    def train(self):
        """Step 6, the loop: epochs of the training loader until ``train.total_iter`` (a resumed epoch continues
        after its ``batches_done`` batches), then ``timing.json``.

        Returns:
            LoopTiming | None: The loop's times (None when no iteration was left to train).
        """
        p = self.progress
        self.logger.info(f'Start training from epoch {p.epoch}, iter {p.current_iter}, to iter {self.total_iter}')
        self.t_start, self.cpu_start, self.start_iter, self.first_iter = \
            time.time(), time.process_time(), p.current_iter, None
        while p.current_iter < self.total_iter:
            self.sampler.set_epoch(p.epoch, p.batches_done)
            if hasattr(self.train_set, 'set_epoch'):
                self.train_set.set_epoch(p.epoch)
            data_t = time.time()
            for batch in self.train_loader:
                data_time = time.time() - data_t
                self._train_step(batch, data_t, data_time)
                data_t = time.time()
                if p.current_iter >= self.total_iter:
                    break
            else:
                p.epoch += 1
                p.batches_done = 0
                continue
            break
        iterations = p.current_iter - self.start_iter
        timing = None
        if iterations > 0:
            timing = LoopTiming.measured(iterations, time.time() - self.t_start, time.process_time() - self.cpu_start,
                                         self.first_iter, torch.get_num_threads())
        _write_timing(self.opt, timing)
        return timing

    def finish(self):
        """Step 7, the final save: a last validation and checkpoint unless the last iteration just made them,
        ``net_*_latest``, the curves and ``history.json``, the closing log line."""
        p, opt = self.progress, self.opt
        if self.val_freq and p.current_iter % int(self.val_freq) != 0:
            self.validate()
        if not self.ckpt_freq or p.current_iter % self.ckpt_freq != 0:
            self.save_checkpoint()
        self.model.save_networks('latest')
        spikes = find_loss_spikes(p.history['losses'])
        if spikes:
            self.logger.warning(f'Loss spikes ({len(spikes)}): {describe_spikes(spikes)}: the logged loss '
                                f"({spikes[0]['key']}) rose above {SPIKE_FACTOR:g}x the median of the values before "
                                'it; the run may have blown up and settled on a worse plateau (compare its curves '
                                'and its seeds).')
        if opt['rank'] == 0:
            plot_training_curves(p.history, self.curves_path, opt['name'])
            atomic_write_json(osp.join(opt['path']['experiments_root'], 'history.json'),
                              dict(p.history, loss_spikes=spikes))
        seconds = time.time() - self.t_start
        if self.start_iter:  # the time is that of this run only: say how many iterations it trained
            done = (f'{p.current_iter} iterations, of which {p.current_iter - self.start_iter} in {seconds:.1f} s by '
                    f'this run (resumed at iteration {self.start_iter})')
        else:
            done = f'{p.current_iter} iterations in {seconds:.1f} s'
        self.logger.info(f"End of training: {done}. Models in {opt['path']['models']}")
        if self.tb_logger is not None:
            self.tb_logger.close()


def train_pipeline(argv=None, root_path=None):
    """Parse the command line, then train (see the module docstring).

    Steps: options and resume point (:func:`_load_run_options`); the loaders (:func:`_create_loaders`) and the
    model, built before the experiment folder exists (a failed start leaves nothing behind that would block the
    fixed rerun); the folder (:func:`_make_experiment_folder`); logging (:func:`_start_logging`); the progress,
    fresh or resumed (:meth:`_Progress.load`); the loop with its validation and checkpoints
    (:meth:`_TrainingRun.train`); the final save (:meth:`_TrainingRun.finish`).

    Args:
        argv (list[str], optional): Command-line arguments (default ``sys.argv[1:]``).
        root_path (str, optional): Overrides ``--root``.

    Returns:
        TrainResult: The resolved options, the start and final iteration and the loop's :class:`LoopTiming` (the
        model is not kept alive).
    """
    args, opt, resume_path = _load_run_options(argv, root_path)
    buffer = buffer_logger(opt['rank'])
    lock = (RunLock(osp.dirname(opt['path']['experiments_root']), opt['name'], logging.getLogger(LOGGER_NAME))
            if opt['rank'] == 0 else contextlib.nullcontext())
    with lock:  # one run per experiment, from before the folder is checked until the last save
        if opt['rank'] == 0:
            _check_experiment_folder(opt, resume_path is not None, args.force)
        loaders = _create_loaders(opt, logging.getLogger(LOGGER_NAME))
        model = build_model(opt)
        removed = _make_experiment_folder(opt, resume_path is not None, args.force)
        logger, tb_logger = _start_logging(opt, argv, buffer, removed, model, resume_path)
        progress = _Progress.load(model, resume_path, logger)
        run = _TrainingRun(opt, model, loaders, progress, logger, tb_logger)
        timing = run.train()
        run.finish()
        barrier()
    return TrainResult(opt=opt, start_iter=run.start_iter, final_iter=progress.current_iter, timing=timing)
