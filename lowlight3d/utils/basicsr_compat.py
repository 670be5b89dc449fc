"""The one compatibility layer between upstream ``basicsr==1.4.2`` and today's stack.

basicsr 1.4.2 is the last release on the package registry and is no longer maintained.  It breaks on
current torchvision, OpenCV, py-lmdb and CPU-only machines in four places.  This module patches exactly those
four, nothing else, and must run before anything imports ``basicsr`` (``lowlight3d/__init__.py`` imports it
first; DataLoader workers are forked and inherit the patches).

Patches (each is idempotent and recorded in :data:`APPLIED_PATCHES`):

1. ``functional_tensor`` alias.  ``basicsr/data/degradations.py`` imports
   ``torchvision.transforms.functional_tensor.rgb_to_grayscale``; that private module was removed in
   torchvision 0.17.  We register a tiny module under that name whose ``rgb_to_grayscale`` is the public
   ``torchvision.transforms.functional.rgb_to_grayscale`` (identical for tensors).
2. CPU resume.  ``basicsr.train.load_resume_state`` maps the state to ``torch.cuda.current_device()``, which
   raises on a machine without CUDA.  We replace it by a copy that loads to CPU (the model moves tensors to its
   own device afterwards) with ``weights_only=True`` (no code runs from the file).
3. Integer JPEG quality.  ``basicsr.data.degradations.add_jpg_compression`` passes a float quality to
   ``cv2.imencode``; OpenCV >= 4.12 rejects it (``Can't parse 'params'``).  We round it to ``int``.
4. LMDB parent folder.  ``basicsr.utils.lmdb_util.make_lmdb_from_imgs`` fails with ``FileNotFoundError`` on
   py-lmdb >= 1.5 when the parent folder of the ``.lmdb`` does not exist.  We create it first.
"""
import os
import os.path as osp
import sys
import types

APPLIED_PATCHES = []


def _alias_functional_tensor():
    """Patch 1: make ``torchvision.transforms.functional_tensor`` importable again."""
    name = 'torchvision.transforms.functional_tensor'
    try:
        __import__(name)
        return
    except ImportError:
        pass
    from torchvision.transforms import functional as tv_functional
    module = types.ModuleType(name)
    module.__doc__ = 'Alias created by lowlight3d.utils.basicsr_compat (removed in torchvision 0.17).'
    module.rgb_to_grayscale = tv_functional.rgb_to_grayscale
    sys.modules[name] = module
    APPLIED_PATCHES.append('functional_tensor alias')


def _cpu_safe_load_resume_state(opt):
    """Patch 2: basicsr's ``load_resume_state`` without the CUDA-only ``map_location``."""
    import torch
    from basicsr.train import check_resume
    from basicsr.utils import scandir
    resume_state_path = None
    if opt['auto_resume']:
        state_path = osp.join('experiments', opt['name'], 'training_states')
        if osp.isdir(state_path):
            states = list(scandir(state_path, suffix='state', recursive=False, full_path=False))
            if states:
                iters = [float(v.split('.state')[0]) for v in states]
                resume_state_path = osp.join(state_path, f'{max(iters):.0f}.state')
                opt['path']['resume_state'] = resume_state_path
    elif opt['path'].get('resume_state'):
        resume_state_path = opt['path']['resume_state']
    if resume_state_path is None:
        return None
    resume_state = torch.load(resume_state_path, map_location='cpu', weights_only=True)
    check_resume(opt, resume_state['iter'])
    return resume_state


def _patch_basicsr():
    """Patches 2-4, applied to the imported basicsr modules."""
    # basicsr.train first: importing it runs basicsr/__init__ with the shims of patch 1 in place.
    # isort: off
    import basicsr.train as bsr_train
    import basicsr.data.degradations as bsr_degradations
    # isort: on
    import basicsr.utils.lmdb_util as bsr_lmdb

    if getattr(bsr_train.load_resume_state, '_lowlight3d_patch', False) is False:
        _cpu_safe_load_resume_state._lowlight3d_patch = True
        bsr_train.load_resume_state = _cpu_safe_load_resume_state
        APPLIED_PATCHES.append('cpu load_resume_state')

    original_jpg = bsr_degradations.add_jpg_compression
    if not getattr(original_jpg, '_lowlight3d_patch', False):

        def add_jpg_compression(img, quality=90):
            """basicsr's ``add_jpg_compression`` with an integer quality (OpenCV rejects floats)."""
            return original_jpg(img, int(round(float(quality))))

        add_jpg_compression._lowlight3d_patch = True
        bsr_degradations.add_jpg_compression = add_jpg_compression
        APPLIED_PATCHES.append('int jpeg quality')

    original_make_lmdb = bsr_lmdb.make_lmdb_from_imgs
    if not getattr(original_make_lmdb, '_lowlight3d_patch', False):

        def make_lmdb_from_imgs(data_path, lmdb_path, *args, **kwargs):
            """basicsr's ``make_lmdb_from_imgs`` that first creates the parent folder of ``lmdb_path``."""
            parent = osp.dirname(osp.abspath(lmdb_path))
            os.makedirs(parent, exist_ok=True)
            return original_make_lmdb(data_path, lmdb_path, *args, **kwargs)

        make_lmdb_from_imgs._lowlight3d_patch = True
        bsr_lmdb.make_lmdb_from_imgs = make_lmdb_from_imgs
        import basicsr.utils as bsr_utils
        if getattr(bsr_utils, 'make_lmdb_from_imgs', None) is original_make_lmdb:
            bsr_utils.make_lmdb_from_imgs = make_lmdb_from_imgs
        APPLIED_PATCHES.append('lmdb parent folder')


def apply():
    """Apply every patch (safe to call more than once)."""
    _alias_functional_tensor()
    _patch_basicsr()


apply()
