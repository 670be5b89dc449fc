"""From an option file path to resolved options: inheritance, overrides, plug-ins, distributed set-up."""
from lowlight3d.utils.dist import init_dist
from lowlight3d.utils.options import apply_cfg_options, check_top_level_keys, load_config, resolve_options
from lowlight3d.utils.registry import import_custom_modules, load_plugins

__all__ = ['load_options', 'training_overrides']


def load_options(opt_path, is_train, cfg_options=(), launcher='none', root_path='.', debug=False):
    """Load ``opt_path`` (with ``_base_``), apply ``--cfg-options``, import plug-ins, resolve for BasicSR.

    The file's top-level keys are checked (:func:`~lowlight3d.utils.options.check_top_level_keys`) after the
    plug-ins are imported, so that keys they register count.

    Args:
        opt_path (str): YAML option file.
        is_train (bool): Training or testing.
        cfg_options (list[str]): ``key.path=value`` overrides.
        launcher (str): ``none`` or ``pytorch``.
        root_path (str): Folder for ``experiments/`` / ``results/``.
        debug (bool): Debug mode.

    Returns:
        dict: Resolved options.
    """
    opt = load_config(opt_path)
    file_keys = list(opt)
    apply_cfg_options(opt, list(cfg_options or []))
    load_plugins()
    import_custom_modules(opt.get('custom_imports'))
    check_top_level_keys(opt, opt_path, file_keys)  # the command line checks its own keys (``+`` adds on purpose)
    rank, world_size = init_dist(launcher)
    return resolve_options(opt, is_train=is_train, root_path=root_path, rank=rank, world_size=world_size,
                           debug=debug, opt_path=opt_path)


def training_overrides(overrides):
    """The ``--cfg-options`` items that apply to a training run: those naming ``datasets.test*`` are dropped.

    Training option files hold only ``train*``/``val*`` sets, so test-set overrides shared by a train+test stage
    (demo, benchmark) apply to its testing only.
    """
    return [o for o in overrides if not o.lstrip('+').startswith('datasets.test')]
