"""lowlight3d: low-light face image enhancement with a 3D face prior, in a BasicSR-style toolkit.

Importing the package applies the basicsr compatibility patches (:mod:`lowlight3d.utils.basicsr_compat`)
and registers every arch, loss, dataset, metric and model of the toolkit into BasicSR's registries.
Baselines and user plug-ins register when an option file is loaded (entry point ``lowlight3d.plugins`` and
``custom_imports``).
"""
# The compat patches must run before anything imports basicsr: keep this order.
# isort: off
from lowlight3d.version import __version__
from lowlight3d.utils import basicsr_compat  # noqa: F401
from lowlight3d import archs, data, losses, metrics, models  # noqa: F401,E402  (registration side effects)
# isort: on

__all__ = ['__version__']
