"""Option files: YAML with ``_base_`` inheritance merged by mmengine, safe command-line overrides, BasicSR resolution.

What mmengine does (:mod:`mmengine.config`):

* Merging.  Each ``_base_`` result and then the file itself are merged with :meth:`ConfigDict.merge
  <mmengine.config.ConfigDict.merge>`: dicts merge deeply, lists and scalars replace, and a dict carrying
  ``_delete_: true`` replaces the inherited value instead of merging into it.
* ``--cfg-options a.b=1 c.0.d=x``: each override is written with :meth:`Config.merge_from_dict
  <mmengine.config.Config.merge_from_dict>` on a :class:`~mmengine.config.Config` of the options.  Keys that it
  reserves (``filename``, ``text``, ``pretty_text``, ``env_variables``) cannot be top-level option keys.

What this module adds on top, and why mmengine is not used for it:

* Reading.  Files are parsed here with a safe YAML loader that reads ``1e-4``/``5E3`` as floats; ``Config.fromfile``
  reads YAML with PyYAML's full loader (``1e-4`` is the string ``'1e-4'``, ``!!python/...`` tags construct and
  run Python objects).  ``{{ _base_.x }}``, ``{{ fileDirname }}`` and ``{{$ENV}}`` are not substituted: values are
  YAML, never code or templates.  ``custom_imports`` is a list of modules imported by the pipelines after loading
  (``Config.fromfile`` would call ``import_modules_from_strings(**custom_imports)``, which needs a dict).
* The ``_base_`` chain.  ``_base_: path`` or ``_base_: [a.yml, b.yml]`` (relative to the file that names them, or
  absolute) is walked here: each base is resolved on its own first (so a ``_delete_`` in a base acts on that
  base's own bases only), then the bases are merged in order, later over earlier, and the file over them.
  ``Config.fromfile`` refuses a key that two bases share ("Duplicate key is not allowed among bases"), which the
  layered option files need (a training file and a test-set file both set ``datasets`` and ``val``).  The walk also
  names a missing base and the file that names it, and refuses a cycle (``Config.fromfile`` recurses without end)
  and a document that is not a mapping.
* ``_delete_`` markers that ``ConfigDict.merge`` leaves where nothing was inherited (a dict new to the chain) are
  removed, so that no loaded dict holds one.
* ``--cfg-options`` checks and values.  Each value is parsed as YAML (``1e-4`` -> float, ``[1, 2]`` -> list,
  ``__import__("os")`` -> a string).  The key must already exist (a typo fails with close matches); prefix ``+`` to
  add a new key (``+a.b=1``).  A list index may be negative.  The value replaces what was there, a dict included
  (it is handed to ``merge_from_dict`` marked ``_delete_``, which otherwise merges dicts).  A list element (or a key
  that is not a string) is set in a copy of the enclosing value that ``merge_from_dict`` then writes, as
  ``merge_from_dict`` can merge dicts into list elements but not set a scalar there.  ``custom_imports`` is refused
  on the command line (it runs code).
* The top-level keys of an option file are checked against :data:`KNOWN_TOP_LEVEL_KEYS` (plus ``network_*``), as
  the command line is: a misspelt key (``trian:``) is an error with close matches instead of being ignored.  Add
  custom keys with ``custom_keys: [my_key]`` in the file, or :func:`register_option_keys` in a plug-in.
* Dumping (:func:`dump_options`, :func:`yaml_dump`) writes YAML in the file's key order with tuples as lists, read
  back by the same safe loader; ``Config.dump`` would write YAML with sorted keys and ``!!python/tuple`` tags.
* :func:`resolve_options` fills in what BasicSR derives from an option file (phases, paths, device, seed, debug).
"""
import copy
import difflib
import os.path as osp
import random
import re
import time

import yaml
from mmengine.config import Config, ConfigDict
from mmengine.config.config import DELETE_KEY, RESERVED_KEYS

__all__ = [
    'OptionError', 'yaml_load', 'yaml_loads', 'yaml_dump', 'load_config', 'merge_dicts', 'apply_cfg_options',
    'resolve_options', 'dump_options', 'check_experiment_name', 'KNOWN_TOP_LEVEL_KEYS', 'register_option_keys',
    'check_top_level_keys'
]

#: Top-level keys a training/testing option file may hold (``network_*`` blocks are always allowed).  The keys that
#: :func:`resolve_options` writes (``opt_path``, ``is_train``, ``rank``, ``world_size``, ``dist``, ``device``) are
#: included so that a resolved ``options.yml`` can be loaded again.
KNOWN_TOP_LEVEL_KEYS = {
    'name', 'model_type', 'num_gpu', 'manual_seed', 'datasets', 'path', 'train', 'val', 'logger', 'dist_params',
    'find_unused_parameters', 'deterministic', 'num_threads', 'custom_imports', 'custom_keys', 'prior', 'diffusion',
    'triplane_resolution', 'test_opt', 'paper_table3', 'notes', 'scale', 'opt_path', 'is_train', 'rank',
    'world_size', 'dist', 'device', 'auto_resume'
}


def register_option_keys(*keys):
    """Allow extra top-level option keys (for plug-ins whose models read their own blocks).

    Args:
        *keys (str): Key names, e.g. ``register_option_keys('my_block')``.
    """
    KNOWN_TOP_LEVEL_KEYS.update(keys)


def check_top_level_keys(opt, opt_path=None, keys=None):
    """Reject top-level keys that no part of the toolkit reads (a misspelt ``trian:`` is otherwise ignored).

    Known: :data:`KNOWN_TOP_LEVEL_KEYS`, any ``network_*`` block, the file's own ``custom_keys`` list and keys
    registered with :func:`register_option_keys`.

    Args:
        opt (dict): Merged options of the file.
        opt_path (str, optional): The option file, for the message.
        keys (Iterable[str], optional): The keys to check (default: all of ``opt``).

    Raises:
        OptionError: Naming each unknown key, its close matches and how to declare a custom key.
    """
    custom = opt.get('custom_keys') or []
    if isinstance(custom, str):
        custom = [custom]
    known = KNOWN_TOP_LEVEL_KEYS | set(custom)
    unknown = [k for k in (opt if keys is None else keys)
               if k not in known and not str(k).startswith('network_')]
    if unknown:
        parts = []
        for key in unknown:
            close = difflib.get_close_matches(str(key), sorted(known), n=3)
            parts.append(f"'{key}'" + (f" (did you mean {', '.join(close)}?)" if close else ''))
        raise OptionError(f"Option file {opt_path}: unknown top-level key(s) {', '.join(parts)}. Known keys: "
                          f"{', '.join(sorted(known))}, network_*. A custom key must be declared: "
                          "custom_keys: [my_key] in the file (or register_option_keys('my_key') in a plug-in).")


def check_experiment_name(name, opt_path='the options'):
    """Refuse an experiment ``name`` that is not one plain path component.

    The name becomes ``experiments/<name>``, ``results/<name>`` and ``tb_logger/<name>``, folders that a run writes,
    archives (``--force``) and cleans (orphan temporary files); ``../x``, ``/abs``, ``a/b``, ``.`` or ``..`` would
    put them outside those folders.

    Raises:
        OptionError: The name is not a non-empty string of one path component.
    """
    if not isinstance(name, str) or not name.strip():
        raise OptionError(f'{opt_path}: name must be a non-empty string (the experiment folder), got {name!r}')
    seps = {'/', '\\', osp.sep} | ({osp.altsep} if osp.altsep else set())
    if any(sep in name for sep in seps) or name in ('.', '..') or '\0' in name or osp.isabs(name):
        raise OptionError(f'{opt_path}: name {name!r} is not one folder name: it becomes experiments/<name>, '
                          'results/<name> and tb_logger/<name>, so a path separator, an absolute path, "." or ".." '
                          'would write outside them. Use letters, digits, "_", "-" and "." (e.g. '
                          f"name={name.replace('/', '_').replace(chr(92), '_').strip('._') or 'my_run'})")


class OptionError(ValueError):
    """A wrong option file or override; the message names the key and the file."""


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads ``1e-4``/``5E3`` as floats (YAML 1.1 requires a dot, which surprises users)."""


_Loader.add_implicit_resolver(
    'tag:yaml.org,2002:float',
    re.compile(r'''^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                   |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                   |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                   |[-+]?\.(?:inf|Inf|INF)
                   |\.(?:nan|NaN|NAN))$''', re.X), list('-+0123456789.'))


class _Dumper(yaml.SafeDumper):
    """SafeDumper that keeps insertion order and writes tuples as lists."""


_Dumper.add_representer(tuple, lambda dumper, data: dumper.represent_list(list(data)))


def yaml_load(path):
    """Parse a YAML file with the toolkit's loader (``1e-4`` is a float)."""
    with open(path, encoding='utf-8') as f:
        return yaml_loads(f.read())


def yaml_loads(text):
    """Parse YAML text with the toolkit's loader (``1e-4`` is a float)."""
    return yaml.load(text, Loader=_Loader)


def yaml_dump(data):
    """Dump ``data`` to a YAML string keeping key order."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True)


def merge_dicts(base, override):
    """Deep-merge ``override`` into a copy of ``base`` with mmengine's :meth:`ConfigDict.merge`.

    Dicts merge, everything else replaces; a dict in ``override`` carrying ``_delete_: true`` replaces the
    corresponding ``base`` value.  No ``_delete_`` marker is left in the result.

    Args:
        base (dict): Inherited options.
        override (dict): Options that win.

    Returns:
        dict: A new merged dict; the inputs are not modified.
    """
    merged = ConfigDict(base)
    merged.merge(override)
    return _strip_delete(merged.to_dict())


def _strip_delete(value):
    """Remove the ``_delete_`` markers that ``ConfigDict.merge`` leaves in dicts with nothing to replace."""
    if isinstance(value, dict):
        return {k: _strip_delete(v) for k, v in value.items() if k != DELETE_KEY}
    return value


def _read_option_file(path, chain):
    """One option file as a dict (safe YAML; an empty file is ``{}``), with errors naming the file."""
    if not osp.isfile(path):
        via = f' (named as _base_ in {chain[-1]})' if chain else ''
        raise OptionError(f'Option file not found: {path}{via}')
    if path in chain:
        raise OptionError('Cycle in _base_ chain: ' + ' -> '.join(list(chain) + [path]))
    try:
        data = yaml_load(path)
    except yaml.YAMLError as err:
        raise OptionError(f'Cannot parse option file {path}: {err}') from err
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise OptionError(f'Option file {path} must contain a mapping at the top level, got {type(data).__name__}')
    return data


def _load_chain(path, chain):
    """``path`` merged over its ``_base_`` files (each merged over its own first), as a plain dict."""
    path = osp.abspath(path)
    data = _read_option_file(path, chain)
    bases = data.pop('_base_', [])
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(base, str) for base in bases):
        raise OptionError(f'Option file {path}: _base_ must be a path or a list of paths, got {bases!r}')
    merged = ConfigDict()
    for base in bases:
        base_path = base if osp.isabs(base) else osp.join(osp.dirname(path), base)
        merged.merge(_load_chain(base_path, chain + (path, )))
    merged.merge(data)
    return _strip_delete(merged.to_dict())


def load_config(path, _chain=()):
    """Load an option file and resolve its ``_base_`` chain (merged by mmengine's ``ConfigDict.merge``).

    Args:
        path (str): YAML option file.

    Returns:
        dict: Fully merged options (plain dicts and lists; no ``_base_`` or ``_delete_`` key left).

    Raises:
        OptionError: On a missing file, a cycle, a document that is not a mapping, or a top-level key that
            ``mmengine.Config`` reserves.
    """
    opt = _load_chain(path, tuple(_chain))
    reserved = [key for key in opt if key in RESERVED_KEYS]
    if reserved:
        raise OptionError(f'Option file {osp.abspath(path)}: top-level key(s) {", ".join(map(repr, reserved))} '
                          f'are reserved by mmengine.Config ({", ".join(RESERVED_KEYS)}); rename them')
    return opt


def _split_key(key):
    return [int(k) if k.lstrip('-').isdigit() else k for k in key.split('.')]


def _parse_override(opt, item, source):
    """Check one ``key.path=value`` item against ``opt``; returns the key path (str and int parts) and the value."""
    if '=' not in item:
        raise OptionError(f"{source}: '{item}' is not of the form key.path=value")
    key, raw = item.split('=', 1)
    add = key.startswith('+')
    keys = _split_key(key.lstrip('+'))
    if keys and keys[0] == 'custom_imports':
        raise OptionError(f"{source}: '{key}' is refused: custom_imports imports (runs) Python modules, so it is "
                          'read from option files only, never from the command line. Put custom_imports: '
                          '[my_pkg.my_arch] into your option file.')
    if keys and keys[0] in RESERVED_KEYS:
        raise OptionError(f"{source}: '{key}' is refused: mmengine.Config reserves the top-level keys "
                          f"{', '.join(RESERVED_KEYS)}")
    value = _strip_delete(yaml_loads(raw)) if raw.strip() else ''  # the value replaces: _delete_ is implied
    node = opt
    for depth, k in enumerate(keys):
        where = '.'.join(str(x) for x in keys[:depth + 1])
        if isinstance(node, list):
            if not isinstance(k, int) or not -len(node) <= k < len(node):
                raise OptionError(f"{source}: '{where}' is not a valid index of a list of length {len(node)}")
        elif isinstance(node, dict):
            if k not in node:
                if add:
                    break  # the rest of the path is new
                close = difflib.get_close_matches(str(k), [str(x) for x in node], n=3)
                hint = f" Did you mean {', '.join(close)}?" if close else ''
                raise OptionError(f"{source}: unknown key '{where}'.{hint} Existing keys here: "
                                  f"{', '.join(str(x) for x in node)}. Prefix '+' to add a new key "
                                  f"(+{key.lstrip('+')}={raw}).")
        else:
            raise OptionError(f"{source}: '{where}' cannot be indexed (it is a {type(node).__name__})")
        node = node[k]
    return keys, value


def flatten_options(tree, prefix=''):
    """``{'a.b.c': value}`` of nested options (lists, scalars and empty dicts are leaves)."""
    out = {}
    for key, value in (tree or {}).items():
        name = f'{prefix}{key}'
        if isinstance(value, dict) and value:
            out.update(flatten_options(value, name + '.'))
        else:
            out[name] = value
    return out


def _set_in(node, keys, value):
    """``node[k0][k1]... = value`` in place, making the dicts that a ``+`` path adds."""
    for k in keys[:-1]:
        if isinstance(node, dict) and k not in node:
            node[k] = {}
        node = node[k]
    node[keys[-1]] = value


def _write_override(opt, keys, value):
    """Set ``keys`` to ``value`` (replacing, a dict too) in ``opt`` with ``Config.merge_from_dict``."""
    head = []
    for k in keys:
        if not isinstance(k, str):
            break
        head.append(k)
    if len(head) < len(keys):  # a list element or a non-string key: set in a copy of the enclosing value
        if not head:
            _set_in(opt, keys, value)
            return
        node = opt
        for k in head:
            node = node.get(k, {}) if isinstance(node, dict) else {}
        enclosing = copy.deepcopy(node)
        _set_in(enclosing, keys[len(head):], value)
        keys, value = head, enclosing
    node, exists = opt, True
    for k in keys:
        exists = isinstance(node, dict) and k in node
        if not exists:
            break
        node = node[k]
    if isinstance(value, dict) and exists:
        value = {**value, DELETE_KEY: True}  # replace, as merge_from_dict would otherwise merge the dicts
    try:
        cfg = Config(opt)
    except KeyError as err:
        raise OptionError(f'The options hold a top-level key that mmengine.Config reserves: {err}') from None
    cfg.merge_from_dict({'.'.join(keys): value}, allow_list_keys=False)
    merged = cfg.to_dict()
    opt.clear()
    opt.update(merged)


def apply_cfg_options(opt, overrides, source='--cfg-options'):
    """Apply ``key.path=value`` overrides to ``opt`` in place (values parsed as YAML, no code execution).

    Each item is checked against ``opt`` (an unknown key fails with close matches unless prefixed ``+``) and written
    with mmengine's ``Config.merge_from_dict``; the value replaces what was at the key, a dict included.

    Args:
        opt (dict): Options to modify.
        overrides (list[str]): Items like ``train.total_iter=10``; ``+new.key=1`` may add a missing key.
        source (str): Where the overrides come from, for error messages.

    Returns:
        dict: ``opt`` (modified in place: its top-level values are replaced by new plain dicts and lists).
    """
    for item in overrides or []:
        keys, value = _parse_override(opt, item, source)
        _write_override(opt, keys, value)
    return opt


def _parse_num_gpu(value):
    import torch
    available = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if value in (None, 'auto'):
        return available
    try:
        value = int(value)
    except (TypeError, ValueError):
        raise OptionError(f"num_gpu must be 'auto' or an integer, got {value!r}") from None
    if value > available:
        raise OptionError(f'num_gpu: {value} requested but {available} CUDA device(s) are available; '
                          "use num_gpu: auto or 0 for CPU")
    return value


def _check_int(block, key, where, minimum, opt_path, optional=False, meaning=''):
    """``block[key]`` must be an integer ``>= minimum`` (``None``/absent allowed when ``optional``); else an
    :class:`OptionError` naming ``<where>.<key>``, the value and the file.  A float with an integer value
    (``1e4``) is converted to ``int`` in place."""
    value = block.get(key)
    if value is None and optional:
        return
    if isinstance(value, float) and value.is_integer():
        value = block[key] = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        extra = f' ({meaning})' if meaning else ''
        raise OptionError(f'Option file {opt_path}: {where}.{key} must be an integer >= {minimum}{extra}, '
                          f'got {value!r}')


def resolve_options(opt, is_train, root_path='.', rank=0, world_size=1, debug=False, opt_path=None):
    """Fill in what BasicSR derives from an option file: phases, paths, device, seed, debug settings.

    Args:
        opt (dict): Merged options (modified in place and returned).
        is_train (bool): Training (``experiments/``) or testing (``results/``).
        root_path (str): Folder under which ``experiments/``, ``results/`` and ``tb_logger/`` are made.
        rank (int): Process rank. world_size (int): Number of processes.
        debug (bool): Force debug mode (also on when ``debug`` is in the name).
        opt_path (str): The option file, recorded in ``opt['opt_path']``.

    Returns:
        dict: The resolved options.
    """
    import torch
    for required in ('name', 'model_type'):
        if required not in opt:
            raise OptionError(f"Option file {opt_path}: the top-level key '{required}' is missing")
    check_experiment_name(opt['name'], opt_path)
    opt['opt_path'] = opt_path
    opt['is_train'] = is_train
    opt['rank'], opt['world_size'] = rank, world_size
    opt['dist'] = world_size > 1
    if 'num_gpu' not in opt:
        raise OptionError(f"Option file {opt_path}: 'num_gpu' is missing (use auto, 0 for CPU, or N)")
    opt['num_gpu'] = _parse_num_gpu(opt['num_gpu'])
    opt['device'] = 'cuda' if opt['num_gpu'] > 0 else 'cpu'
    if opt.get('manual_seed') is None:
        opt['manual_seed'] = random.randint(1, 10000)
    if debug or 'debug' in opt['name']:
        opt['name'] = opt['name'] if 'debug' in opt['name'] else 'debug_' + opt['name']
        if is_train:
            opt.setdefault('val', {})['val_freq'] = 8
            opt.setdefault('logger', {})['print_freq'] = 1
            opt['logger']['save_checkpoint_freq'] = 8
            opt['logger']['use_tb_logger'] = False
    for phase, dataset in (opt.get('datasets') or {}).items():
        if not isinstance(dataset, dict):
            raise OptionError(f"datasets.{phase} must be a mapping, got {dataset!r}")
        dataset['phase'] = phase.split('_')[0]
        dataset.setdefault('name', phase)
        for key in ('dataroot_gt', 'dataroot_lq', 'meta_info_file'):
            if isinstance(dataset.get(key), str):
                dataset[key] = osp.expanduser(dataset[key])
    path = opt.setdefault('path', {})
    for key, val in list(path.items()):
        if isinstance(val, str) and ('resume_state' in key or 'pretrain_network' in key):
            path[key] = osp.expanduser(val)
    root = osp.abspath(root_path)
    path['root'] = root
    if is_train:
        exp = osp.join(root, 'experiments', opt['name'])
        path['experiments_root'] = exp
        path['models'] = osp.join(exp, 'models')
        path['training_states'] = osp.join(exp, 'training_states')
        path['log'] = exp
        path['visualization'] = osp.join(exp, 'visualization')
        path['tb_logger'] = osp.join(root, 'tb_logger', opt['name'])
        opt.setdefault('train', {})
        if 'total_iter' not in opt['train']:
            raise OptionError(f"Option file {opt_path}: 'train.total_iter' is missing")
        opt.setdefault('logger', {})
        opt['logger'].setdefault('print_freq', 100)
        opt['logger'].setdefault('save_checkpoint_freq', 5000)
        opt['logger'].setdefault('use_tb_logger', False)
        _check_int(opt['train'], 'total_iter', 'train', 1, opt_path)
        _check_int(opt['train'], 'warmup_iter', 'train', -1, opt_path, optional=True)
        _check_int(opt['logger'], 'print_freq', 'logger', 1, opt_path)
        _check_int(opt['logger'], 'save_checkpoint_freq', 'logger', 0, opt_path,
                   meaning='0 = only at the end of training')
        _check_int(opt['logger'], 'max_keep_ckpts', 'logger', 0, opt_path, optional=True)
        _check_int(opt.get('val') or {}, 'val_freq', 'val', 0, opt_path, optional=True)
    else:
        res = osp.join(root, 'results', opt['name'])
        path['results_root'] = res
        path['log'] = res
        path['visualization'] = osp.join(res, 'visualization')
    torch.set_num_threads(int(opt.get('num_threads', torch.get_num_threads())))
    return opt


def dump_options(opt, path, command=None):
    """Write the fully resolved options as YAML with a header (time and command line), atomically."""
    from lowlight3d.utils.checkpoint import atomic_write_text  # imports torch: only when a file is written
    header = f'# Resolved options written by lowlight3d at {time.strftime("%Y-%m-%d %H:%M:%S")}\n'
    if command:
        header += f'# Command: {command}\n'
    atomic_write_text(path, header + yaml_dump(opt))
