"""Enhance your own dark photos and videos: ``python inference_lowlight3d.py -i in -o out --model model.pth``.

Face-aware by default (detect on a brightened copy, align, enhance, paste back); see
:mod:`lowlight3d.inference.command` for the options and the output layout.
"""
import lowlight3d  # noqa: F401  (compat patches + registrations)
from lowlight3d.inference.command import main

if __name__ == '__main__':
    main()
