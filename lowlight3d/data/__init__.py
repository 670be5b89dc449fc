"""lowlight3d.data: every ``*_dataset.py`` file in this folder is imported, so its classes register themselves."""
from lowlight3d.utils.registry import import_modules_with_suffix

__all__ = ['modules', 'build_dataset']

modules = import_modules_with_suffix(__name__, __file__, ('_dataset.py',))


def build_dataset(opt, where='dataset'):
    """Build a registered dataset from its option block (BasicSR's convention: ``cls(opt)``).

    Args:
        opt (dict): Dataset option block with a ``type`` key; a copy is passed to the constructor.
        where (str): Option path of the block, used in error messages.
    """
    import copy

    from lowlight3d.utils.registry import DATASET_REGISTRY, get_from_registry
    if not isinstance(opt, dict) or 'type' not in opt:
        raise ValueError(f"Option block '{where}' must be a mapping with a 'type' key, got: {opt!r}")
    return get_from_registry(DATASET_REGISTRY, opt['type'], where=f'{where}.type')(copy.deepcopy(opt))
