"""Where the repository is: relative paths in option files are taken from the working folder, then from here."""
import os.path as osp

__all__ = ['REPO_ROOT']

#: The repository root (the folder holding ``lowlight3d/``, ``options/`` and ``experiments/``).
REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
