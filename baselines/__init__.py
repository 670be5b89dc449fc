"""Baselines compared with lowlight3d, retrained in the same codebase.

One sub-package per method.  Importing ``baselines`` imports each sub-package, whose archs, models and
losses register into the toolkit's registries under ``Method.Name`` keys (e.g. ``EnlightenGAN.Generator``),
which cannot clash with the toolkit's own names.  The toolkit never imports this package by name: it is
found through the ``lowlight3d.plugins`` entry point declared in ``setup.py``.
"""
import importlib
import os
import os.path as osp

import lowlight3d  # noqa: F401  (compat patches and the registries come first)

__all__ = ['methods']

_here = osp.dirname(osp.abspath(__file__))
methods = sorted(d for d in os.listdir(_here) if osp.isfile(osp.join(_here, d, '__init__.py')))
for _method in methods:
    importlib.import_module(f'{__name__}.{_method}')
