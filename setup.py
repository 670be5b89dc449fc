"""Install lowlight3d (``pip install -e .``).  Use ``make venv`` for the pinned, tested stack."""
import os.path as osp

from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))


def read_version():
    """Version string from ``lowlight3d/version.py`` without importing the package."""
    scope = {}
    with open(osp.join(HERE, 'lowlight3d', 'version.py'), encoding='utf-8') as f:
        exec(compile(f.read(), 'version.py', 'exec'), scope)  # our own one-line file
    return scope['__version__']


setup(
    name='lowlight3d',
    version=read_version(),
    description='Low-light face image enhancement with a 3D face prior (BasicSR-style toolkit)',
    long_description=open(osp.join(HERE, 'README.md'), encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    python_requires='>=3.10,<3.12',
    packages=find_packages(include=['lowlight3d', 'lowlight3d.*', 'baselines', 'baselines.*']),
    include_package_data=True,
    install_requires=[
        'torch>=2.1', 'torchvision', 'numpy>=2,<2.5', 'basicsr==1.4.2', 'opencv-python==4.14.0.94',
        'opencv-python-headless==4.14.0.94', 'scipy', 'pyyaml', 'lmdb', 'mmengine', 'pyiqa==0.1.16',
        'facexlib==0.3.0', 'tensorboard', 'matplotlib', 'tqdm'
    ],
    # FaceMesh depth for FaceDepthDataset (depth_source: mediapipe): 0.10.14 is the last release shipping the
    # FaceMesh models in its wheel with numpy 2 support (Python 3.10-3.12); never a hard requirement.
    # The `identity` metric: dlib (prebuilt wheel) and its face detector / recognition model files; `make venv`
    # installs both (requirements.txt); without them the metric reads n/a with this install instruction.
    extras_require={
        'mediapipe': ['mediapipe==0.10.14'],
        'identity': ['dlib-bin==20.0.1.post1', 'face-recognition-models==0.3.0'],
    },
    entry_points={
        'lowlight3d.plugins': ['baselines = baselines'],
    },
    license='Apache-2.0',
)
