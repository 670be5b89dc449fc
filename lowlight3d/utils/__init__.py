"""lowlight3d.utils: options, registries, image I/O, checkpoints, weights and logging helpers.

Sub-modules are imported explicitly where they are needed; this ``__init__`` imports nothing so that
``import lowlight3d.utils.x`` stays light.
"""
