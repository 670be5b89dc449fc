"""Every option file under options/ resolves its _base_ chain and builds its networks (tiny CPU forward)."""
import glob
import os.path as osp

import pytest
import torch

from lowlight3d.archs import build_network
from lowlight3d.pipeline.complexity import example_inputs
from lowlight3d.utils.options import load_config
from lowlight3d.utils.registry import MODEL_REGISTRY, import_custom_modules, load_plugins

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
OPTION_FILES = sorted(f for f in glob.glob(osp.join(REPO, 'options', '**', '*.yml'), recursive=True)
                      if '_base_' not in f.split(osp.sep))


def test_there_are_option_files():
    assert any('demo' in f for f in OPTION_FILES)


@pytest.mark.parametrize('path', OPTION_FILES, ids=[osp.relpath(f, REPO) for f in OPTION_FILES])
def test_option_file_resolves_and_builds(path):
    opt = load_config(path)
    load_plugins()
    import_custom_modules(opt.get('custom_imports'))
    if 'model_type' not in opt:  # a data file such as a benchmark list, not an experiment
        return
    assert 'name' in opt and 'num_gpu' in opt, path
    assert opt['model_type'] in MODEL_REGISTRY, f"{path}: unknown model_type {opt['model_type']}"
    for key, block in opt.items():
        if key.startswith('network_') and isinstance(block, dict):
            net = build_network(block, where=key).eval()
            with torch.no_grad():
                net(*example_inputs(net, 32))
