"""lowlight3d.losses: every ``*_loss.py`` file in this folder is imported, so its classes register themselves."""
from lowlight3d.utils.registry import import_modules_with_suffix

__all__ = ['modules', 'build_loss']

modules = import_modules_with_suffix(__name__, __file__, ('_loss.py',))


def build_loss(opt, where='loss', **extra_kwargs):
    """Build a registered loss from its option block (``type`` + constructor arguments).

    Args:
        opt (dict): Option block; not modified.
        where (str): Option path of the block, used in error messages.
        **extra_kwargs: Extra constructor arguments.
    """
    from lowlight3d.utils.registry import LOSS_REGISTRY, build_from_registry
    return build_from_registry(LOSS_REGISTRY, opt, where=where, **extra_kwargs)
