"""Train and test one stage of a benchmark list with one seed, and train the list's prerequisites.

A stage's experiment is ``experiments/<name of its training (else test) file>_seed<seed>``.  Training goes through
:func:`~lowlight3d.pipeline.train_pipeline.train_pipeline`, whose
:class:`~lowlight3d.pipeline.train_pipeline.TrainResult` says whether the call trained anything and what its loop
cost.

Resume or retrain (:func:`training_mode`): a saved run planned with the same options is continued
(``--auto_resume``: an interrupted run goes on, a finished one is reused as it is); one whose saved ``options.yml``
differs from the options this call composes (another number of iterations, e.g. a CPU budget measured anew, or an
option file edited since: a data block, a loss, a clip) is retrained from scratch, and the output names the keys
that changed (:func:`plan_differences`), since resuming or reusing it would put an old run under a new protocol;
``force`` always retrains.

Timing: for a run trained by this call, ``seconds_per_iter`` is the wall time of the training call divided by the
planned iterations (start-up, validation and checkpoints included) and the loop's CPU time comes from the returned
result; ``seconds_per_iter`` is saved in ``benchmark_timing.json`` beside the run.  A finished run that is reused
trains nothing, so its times are those saved by the call that trained it (:func:`saved_timing`).
"""
import json
import os
import os.path as osp
import re
import shutil
import time

from lowlight3d.pipeline.benchmark.spec import resolve
from lowlight3d.pipeline.loss_spikes import find_loss_spikes
from lowlight3d.pipeline.option_loading import training_overrides
from lowlight3d.utils.checkpoint import atomic_write_json, atomic_write_text
from lowlight3d.utils.options import apply_cfg_options, flatten_options, load_config, yaml_load
from lowlight3d.utils.weights import WeightsNotFoundError

__all__ = ['run_stage', 'run_prerequisites', 'train', 'train_args', 'schedule_overrides', 'training_mode',
           'planned_options', 'plan_differences',
           'saved_timing', 'stage_test_options', 'missing_weights_reason']

#: The benchmark's own record of a trained run: ``{'seconds_per_iter', 'total_iter'}``.
TIMING_FILE = 'benchmark_timing.json'


def train(args, exp):
    """Run :func:`~lowlight3d.pipeline.train_pipeline.train_pipeline` with ``args``; a start that fails for missing
    pretrained weights removes the folder it left without any training state (so a rerun can start).

    Returns:
        TrainResult: The training call's result.
    """
    import lowlight3d.pipeline.train_pipeline as training
    try:
        return training.train_pipeline(args)
    except WeightsNotFoundError:
        _remove_unstarted(exp)
        raise


def run_prerequisites(files, extra_overrides=(), total_iter=None):
    """Train each prerequisite option file once, at its own budget (``--auto_resume``: finished runs are kept).

    Args:
        files (Sequence[str]): Option files. extra_overrides (Sequence[str]): ``--cfg-options`` for every run.
        total_iter (int, optional): Overrides their iterations (and one-period schedules), e.g. for a smoke test.
    """
    import lowlight3d.pipeline.train_pipeline as training
    for path in files:
        print(f'[benchmark] prerequisite {path}', flush=True)
        iters = []
        if total_iter:
            iters = [f'train.total_iter={total_iter}', *schedule_overrides(resolve(path), (), total_iter)]
        training.train_pipeline(['-opt', resolve(path), '--auto_resume', '--cfg-options', 'logger.use_tb_logger=false',
                                 *training_overrides(list(extra_overrides)), *iters])


def schedule_overrides(train_path, train_cfg, total_iter):
    """``train.scheduler.periods=[N]`` when the training file's scheduler has exactly one period, else nothing.

    So that a cosine schedule ends where the (budgeted) training ends; multi-period and other schedulers are left
    alone (EnlightenGAN's linear decay already follows ``train.total_iter``).
    """
    opt = load_config(train_path)
    apply_cfg_options(opt, [o for o in train_cfg if 'scheduler' in o])
    periods = ((opt.get('train') or {}).get('scheduler') or {}).get('periods')
    if isinstance(periods, list) and len(periods) == 1:
        return [f'train.scheduler.periods=[{int(total_iter)}]']
    return []


def train_args(stage, name, seed, total_iter, extra_overrides, schedule, mode):
    """Command line of one training run of ``stage`` (``mode``: ``'--auto_resume'`` or ``'--force'``)."""
    common = [f'name={name}', f'manual_seed={seed}', *extra_overrides]
    train_cfg = list(stage.get('train_cfg') or [])
    sched = schedule_overrides(resolve(stage['train']), train_cfg, total_iter) if schedule else []
    return ['-opt', resolve(stage['train']), mode, '--cfg-options', *training_overrides(common),
            f'train.total_iter={total_iter}', *sched, 'logger.use_tb_logger=false', *train_cfg]


#: Top-level keys that the option resolver adds or rewrites (where the run lives, its device): not the plan.
_RESOLVED_TOP_KEYS = frozenset({'num_gpu', 'opt_path', 'is_train', 'rank', 'world_size', 'dist', 'device', 'path'})


def _is_resolved_key(key):
    """Whether a dotted key is filled in by the resolver (``datasets.<set>.phase``, ``prior.fingerprint``)."""
    parts = key.split('.')
    return (parts[0] in _RESOLVED_TOP_KEYS or (len(parts) == 3 and parts[0] == 'datasets' and parts[2] == 'phase')
            or key == 'prior.fingerprint')


_MISSING = '<absent>'


def planned_options(args):
    """The options a training command line of :func:`train_args` composes (its file with its overrides), unresolved."""
    opt = load_config(args[1])
    return apply_cfg_options(opt, list(args[args.index('--cfg-options') + 1:]))


def plan_differences(planned, saved):
    """What differs between the options a call plans and those a run saved: ``['key: saved -> planned', ...]``.

    Both directions are compared (a key added, changed or removed), except the keys the resolver adds to every
    run (its folders, device, ``datasets.<set>.phase``, the prior's fingerprint).

    Args:
        planned (dict): :func:`planned_options` of this call. saved (dict): The run's ``options.yml``.

    Returns:
        list[str]: One line per differing dotted key (empty when the run was trained with this plan).
    """
    before, now = flatten_options(saved), flatten_options(planned)
    out = []
    for key in sorted(k for k in set(before) | set(now) if not _is_resolved_key(k)):
        old, new = before.get(key, _MISSING), now.get(key, _MISSING)
        if old != new:
            out.append(f'{key}: {old!r} -> {new!r}')
    return out


def training_mode(exp, total_iter, force=False, label='', planned=None):
    """Resume or retrain: ``'--force'`` (from scratch) or ``'--auto_resume'`` for the run saved in ``exp``.

    ``force`` retrains.  A saved run whose ``options.yml`` planned another ``train.total_iter`` is retrained, and so
    is one whose options differ from ``planned`` (:func:`plan_differences`; the output lists the keys); a run of
    the same plan, or no saved run, gets ``--auto_resume``.

    Args:
        exp (str): The experiment folder. total_iter (int): Planned iterations. force (bool): Always retrain.
        label (str): The stage's label, for messages. planned (dict, optional): :func:`planned_options`.
    """
    if force:
        return '--force'
    saved = _saved_plan(exp)
    if saved is None:
        return '--auto_resume'
    iters = _total_iter_of(saved)
    if iters is not None and iters != int(total_iter):
        print(f'[benchmark] {label}: {exp} was planned for {iters} iterations, now {total_iter}: '
              'retraining from scratch instead of resuming', flush=True)
        return '--force'
    changed = plan_differences(planned, saved) if planned is not None else []
    if changed:
        shown = '; '.join(changed[:6]) + (f'; and {len(changed) - 6} more' if len(changed) > 6 else '')
        print(f'[benchmark] {label}: the options of {exp} differ from this plan ({shown}): retraining from scratch '
              'instead of reusing or resuming it', flush=True)
        return '--force'
    return '--auto_resume'


def _saved_plan(exp):
    """The ``options.yml`` of the run saved in ``exp`` (a dict), or None without a saved training state."""
    states, options = osp.join(exp, 'training_states'), osp.join(exp, 'options.yml')
    if not (osp.isdir(states) and any(f.endswith('.state') for f in os.listdir(states)) and osp.isfile(options)):
        return None
    return yaml_load(options) or {}


def _total_iter_of(saved):
    try:
        return int((saved.get('train') or {})['total_iter'])
    except (KeyError, TypeError, ValueError):
        return None


def saved_timing(exp):
    """The times of a finished run that a call reuses without training: ``(seconds_per_iter, loop timing)``.

    ``seconds_per_iter`` from the benchmark's ``benchmark_timing.json``, the loop's timing (a dict) from the
    training loop's ``timing.json``; each None when its file is missing (a run trained outside the benchmark).
    """
    seconds, loop = osp.join(exp, TIMING_FILE), osp.join(exp, 'timing.json')
    return (_read_json(seconds)['seconds_per_iter'] if osp.isfile(seconds) else None,
            _read_json(loop) if osp.isfile(loop) else None)


def _read_json(path):
    with open(path) as f:
        return json.load(f)


def _remove_unstarted(exp):
    """Delete an experiment folder that a failed start left without any training state (so a rerun can start)."""
    states = osp.join(exp, 'training_states')
    if osp.isdir(exp) and not (osp.isdir(states) and os.listdir(states)):
        shutil.rmtree(exp)


def stage_test_options(stage, name):
    """The stage's test file, or one composed as ``_base_: [train, test_sets]`` (written to
    ``experiments/<name>/benchmark_test_options.yml``)."""
    if stage.get('test'):
        return resolve(stage['test'])
    path = osp.join('experiments', name, 'benchmark_test_options.yml')
    os.makedirs(osp.dirname(path), exist_ok=True)
    atomic_write_text(path, f"_base_: [{osp.abspath(resolve(stage['train']))}, "
                            f"{osp.abspath(resolve(stage['test_sets']))}]\n")
    return path


def missing_weights_reason(err):
    """Short reason for a :class:`WeightsNotFoundError`: ``pretrained weights missing: <file>``."""
    match = re.search(r"Weight file '([^']+)'", str(err))
    return f"pretrained weights missing: {match.group(1) if match else ' '.join(str(err).split())[:80]}"


def run_stage(stage, seed, total_iter, extra_overrides=(), force=False, schedule=False):
    """Train (unless ``train`` is null) and test one stage with one seed, in the current folder.

    Args:
        stage (dict): ``{label, train, test, train_cfg?, test_cfg?}``.
        seed (int): ``manual_seed``; the experiment is named ``<name of the training (else test) file>_seed<seed>``.
        total_iter (int): Training iterations.
        extra_overrides (Sequence[str]): ``--cfg-options`` for both training and testing.
        force (bool): Retrain from scratch instead of resuming (see :func:`training_mode`).
        schedule (bool): Fit a one-period scheduler to ``total_iter`` (see :func:`schedule_overrides`).

    Returns:
        dict: ``{'summary': test summary, 'seconds_per_iter': float | None, 'name': str, 'timing': the training
        loop's timing (``timing.json``'s dict) or None, 'test_options': the test option file, 'test_overrides': its
        overrides, 'results': results folder, 'seed': seed, 'loss_spikes': the training's loss spikes (list; None
        without training or history)}``.
    """
    from lowlight3d.pipeline.test_pipeline import test_pipeline
    base_name = load_config(resolve(stage['train']) if stage.get('train') else resolve(stage['test']))['name']
    name = f'{base_name}_seed{seed}'
    common = [f'name={name}', f'manual_seed={seed}', *extra_overrides]
    seconds_per_iter, loop_timing, spikes = None, None, None
    test_overrides = list(common) + list(stage.get('test_cfg') or [])
    if stage.get('train'):
        exp = osp.join('experiments', name)
        args = train_args(stage, name, seed, total_iter, extra_overrides, schedule, '--auto_resume')
        args[2] = training_mode(exp, total_iter, force, stage['label'], planned=planned_options(args))
        t0 = time.time()
        result = train(args, exp)
        if result.trained:
            seconds_per_iter = (time.time() - t0) / max(1, total_iter)
            loop_timing = result.timing.to_json() if result.timing else None
            atomic_write_json(osp.join(exp, TIMING_FILE), {'seconds_per_iter': seconds_per_iter,
                                                           'total_iter': total_iter})
        else:
            seconds_per_iter, loop_timing = saved_timing(exp)
        test_overrides.append(f"+path.pretrain_network_g={osp.join(result.opt['path']['models'], 'net_g_latest.pth')}")
        spikes = run_loss_spikes(exp)
    test_options = stage_test_options(stage, name)
    summary = test_pipeline(['-opt', test_options, '--cfg-options', *test_overrides])
    return {'summary': summary, 'seconds_per_iter': seconds_per_iter, 'name': name, 'timing': loop_timing,
            'test_options': test_options, 'test_overrides': test_overrides, 'results': osp.join('results', name),
            'seed': seed, 'loss_spikes': spikes}


def run_loss_spikes(exp):
    """The loss spikes of a finished run (:mod:`lowlight3d.pipeline.loss_spikes`), from its ``history.json``;
    ``None`` when the run left no history (trained before the history was written)."""
    path = osp.join(exp, 'history.json')
    if not osp.isfile(path):
        return None
    with open(path, encoding='utf-8') as f:
        history = json.load(f)
    return find_loss_spikes(history.get('losses', []))
