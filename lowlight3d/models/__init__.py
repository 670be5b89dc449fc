"""lowlight3d.models: every ``*_model.py`` file in this folder is imported, so its classes register themselves."""
from lowlight3d.utils.registry import import_modules_with_suffix

__all__ = ['modules', 'build_model']

modules = import_modules_with_suffix(__name__, __file__, ('_model.py',))


def build_model(opt):
    """Build the model named by ``opt['model_type']`` with the whole option dict (BasicSR's convention).

    Args:
        opt (dict): Resolved options.
    """
    from lowlight3d.utils.registry import MODEL_REGISTRY, get_from_registry
    return get_from_registry(MODEL_REGISTRY, opt['model_type'], where='model_type')(opt)
