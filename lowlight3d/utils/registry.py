"""Registries of lowlight3d: BasicSR's five registries, plus the helpers the toolkit builds on.

Archs, models, losses, datasets and metrics register into BasicSR's registries so that both BasicSR code and
ours can build them.  On top of BasicSR this module adds:

* :func:`register`: a decorator that accepts re-registering the *same* object (running an ``*_arch.py`` file
  directly, or importing it twice, no longer raises "already registered") and refuses a *different* object
  under a taken name, naming both definitions;
* :func:`build_from_registry`: deep-copies the option block, pops ``type`` and, for an unknown type, raises an
  error listing every known name and how to add one (``custom_imports``);
* :func:`import_custom_modules` and :func:`load_plugins`: user modules named in an option file, and packages
  that declare the ``lowlight3d.plugins`` entry point (``baselines`` does), are imported so that their
  registrations happen without the toolkit importing them by name;
* :func:`import_modules_with_suffix`: BasicSR's ``*_arch.py`` discovery, in one place.
"""
import copy
import difflib
import importlib
import os
import os.path as osp
from importlib import metadata

from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, LOSS_REGISTRY, METRIC_REGISTRY, MODEL_REGISTRY

__all__ = [
    'ARCH_REGISTRY', 'DATASET_REGISTRY', 'LOSS_REGISTRY', 'METRIC_REGISTRY', 'MODEL_REGISTRY', 'REGISTRIES',
    'register', 'build_from_registry', 'import_custom_modules', 'load_plugins', 'import_modules_with_suffix'
]

#: The registries by the kind of object they hold (the order ``python -m lowlight3d.list`` prints).
REGISTRIES = {
    'arch': ARCH_REGISTRY,
    'model': MODEL_REGISTRY,
    'loss': LOSS_REGISTRY,
    'dataset': DATASET_REGISTRY,
    'metric': METRIC_REGISTRY,
}

PLUGIN_GROUP = 'lowlight3d.plugins'
_loaded_plugins = set()


def _origin(obj):
    """``module.qualname`` of a registered object, used to recognise re-registration of the same object."""
    return f'{getattr(obj, "__module__", "?")}.{getattr(obj, "__qualname__", repr(obj))}'


def register(registry, name=None):
    """Decorator registering a class or function into a BasicSR registry.

    Args:
        registry (basicsr.utils.registry.Registry): One of :data:`REGISTRIES`.
        name (str, optional): Registry key. Defaults to the object's ``__name__``.  Baselines use a
            ``Method.Name`` key (for example ``EnlightenGAN.Generator``) so they cannot clash with ours.

    Returns:
        callable: The decorator; it returns the object unchanged.

    Raises:
        KeyError: If the key is taken by a different object.
    """

    def deco(obj):
        key = name or obj.__name__
        if key in registry:
            existing = registry._obj_map[key]
            if existing is obj or _origin(existing) == _origin(obj):
                registry._obj_map[key] = obj
                return obj
            raise KeyError(f"'{key}' is already registered in the {registry._name} registry by {_origin(existing)}; "
                           f'{_origin(obj)} cannot take the same name. Rename one of them or pass name=... '
                           'to register().')
        registry._obj_map[key] = obj
        return obj

    return deco


def known_names(registry):
    """Sorted list of the keys of ``registry``."""
    return sorted(registry.keys())


def get_from_registry(registry, key, where='type'):
    """Return the object registered under ``key`` or raise a helpful ``KeyError``.

    Args:
        registry (Registry): The registry to look in.
        key (str): The name from the option file.
        where (str): Option path of the key, used in the error message.
    """
    load_plugins()
    if key in registry:
        return registry._obj_map[key]
    names = known_names(registry)
    close = difflib.get_close_matches(str(key), names, n=3)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ''
    raise KeyError(f"Unknown {registry._name.lower()} type '{key}' (option '{where}').{hint} Known names: "
                   f"{', '.join(names)}. To use your own, register it with "
                   f'@register({registry._name.upper()}_REGISTRY) in a module and list that module under '
                   "'custom_imports' in the option file.")


def build_from_registry(registry, opt, where='type', **extra_kwargs):
    """Build ``registry[opt['type']](**rest_of_opt, **extra_kwargs)`` without mutating ``opt``.

    Args:
        registry (Registry): Registry to build from.
        opt (dict): Option block with a ``type`` key; the other keys are constructor arguments.
        where (str): Option path of the block, for error messages (e.g. ``network_g``).
        **extra_kwargs: Extra constructor arguments supplied by the caller.

    Returns:
        object: The built object.
    """
    if not isinstance(opt, dict) or 'type' not in opt:
        raise ValueError(f"Option block '{where}' must be a mapping with a 'type' key, got: {opt!r}")
    opt = copy.deepcopy(dict(opt))
    cls = get_from_registry(registry, opt.pop('type'), where=f'{where}.type')
    opt.update(extra_kwargs)
    try:
        return cls(**opt)
    except TypeError as err:
        raise TypeError(f"Cannot build '{where}' ({_origin(cls)}) from options {opt}: {err}") from err


def import_custom_modules(modules):
    """Import user modules listed in an option file's ``custom_imports`` (for their registrations).

    Args:
        modules (str | list[str]): Dotted module names importable from the current working directory or
            ``sys.path`` (as mmengine's ``custom_imports``). File paths are refused: a module is imported by its
            name, as Python imports it, never executed from a path (``--cfg-options`` cannot set this key at all).
    """
    if not modules:
        return
    if isinstance(modules, str):
        modules = [modules]
    import sys
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    for name in modules:
        if not isinstance(name, str) or name.endswith('.py') or '/' in name or '\\' in name:
            raise ImportError(f'custom_imports: {name!r} is not a module name. Name the module as Python imports it '
                              '(my_pkg.my_arch for my_pkg/my_arch.py) and run from the folder that holds my_pkg/ '
                              '(or install it); files are not executed by path.')
        try:
            importlib.import_module(name)
        except ImportError as err:
            raise ImportError(f"custom_imports: cannot import '{name}': {err}. The module must be importable "
                              f'from the current folder ({os.getcwd()}) or be installed.') from err


def load_plugins():
    """Import every installed package declaring the ``lowlight3d.plugins`` entry point (once each)."""
    for entry in metadata.entry_points(group=PLUGIN_GROUP):
        if entry.value in _loaded_plugins:
            continue
        _loaded_plugins.add(entry.value)
        importlib.import_module(entry.value)


def import_modules_with_suffix(package_name, package_file, suffixes):
    """Import every module of a package whose file name ends with one of ``suffixes`` (sorted order).

    Args:
        package_name (str): Dotted name of the package, e.g. ``lowlight3d.archs``.
        package_file (str): The package's ``__file__``.
        suffixes (tuple[str]): File-name endings, e.g. ``('_arch.py',)``.

    Returns:
        list[module]: The imported modules.
    """
    folder = osp.dirname(osp.abspath(package_file))
    names = sorted(f[:-3] for f in os.listdir(folder) if f.endswith(tuple(suffixes)))
    return [importlib.import_module(f'{package_name}.{name}') for name in names]
