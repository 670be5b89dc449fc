"""lowlight3d.data: every ``*_dataset.py`` file in this folder is imported, so its classes register themselves."""
from lowlight3d.utils.registry import import_modules_with_suffix

__all__ = ['modules']

modules = import_modules_with_suffix(__name__, __file__, ('_dataset.py',))
