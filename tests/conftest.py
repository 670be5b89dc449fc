"""Shared pytest fixtures.

Real research-only images live in ``../shared/data`` beside the repository and are never copied into it.
Tests reach them through ``LOWLIGHT3D_TEST_DATA`` (``.ci/run`` and ``make test`` set it) and skip, with the
reason, where it is unset.
"""
import os
import os.path as osp

import pytest

import lowlight3d  # noqa: F401  (compat patches + registrations before any test imports basicsr)


@pytest.fixture(scope='session')
def shared_data():
    """Path of the shared real-image folder, or skip the test."""
    root = os.environ.get('LOWLIGHT3D_TEST_DATA')
    if not root:
        pytest.skip('LOWLIGHT3D_TEST_DATA is unset: real-image test data (../shared/data) not available')
    if not osp.isdir(root):
        pytest.skip(f'LOWLIGHT3D_TEST_DATA={root} is not a folder')
    return root
