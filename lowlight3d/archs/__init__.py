"""lowlight3d.archs: every ``*_arch.py`` file in this folder is imported, so its classes register themselves."""
from lowlight3d.utils.registry import import_modules_with_suffix

__all__ = ['modules', 'build_network']

modules = import_modules_with_suffix(__name__, __file__, ('_arch.py',))


def build_network(opt, where='network', **extra_kwargs):
    """Build a registered network from its option block (``type`` + constructor arguments).

    Args:
        opt (dict): Option block; not modified.
        where (str): Option path of the block, used in error messages.
        **extra_kwargs: Extra constructor arguments.
    """
    from lowlight3d.utils.registry import ARCH_REGISTRY, build_from_registry
    return build_from_registry(ARCH_REGISTRY, opt, where=where, **extra_kwargs)
