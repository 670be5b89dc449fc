"""Option files: ``_base_`` inheritance, YAML floats, safe ``--cfg-options``, BasicSR resolution."""
import os.path as osp

import pytest

from lowlight3d.utils.options import (
    OptionError,
    apply_cfg_options,
    dump_options,
    load_config,
    merge_dicts,
    resolve_options,
    yaml_load,
    yaml_loads,
)


def _write(path, text):
    with open(path, 'w') as f:
        f.write(text)
    return str(path)


def test_yaml_scientific_notation_is_float():
    data = yaml_loads('a: 1e-4\nb: 2E3\nc: 1.5e-2\nd: 10\ne: "1e-4"')
    assert data == {'a': 1e-4, 'b': 2000.0, 'c': 0.015, 'd': 10, 'e': '1e-4'}
    assert isinstance(data['a'], float) and isinstance(data['d'], int)


def test_base_inheritance_merges_dicts_replaces_lists_and_delete(tmp_path):
    _write(tmp_path / 'a.yml', 'name: a\nnet: {type: X, c: 8, extra: 1}\nlist: [1, 2, 3]\nopt: {lr: 1e-3, b: [0.9]}\n')
    _write(tmp_path / 'b.yml', 'scale: 2\nnet: {c: 4}\n')
    sub = tmp_path / 'sub'
    sub.mkdir()
    child = _write(sub / 'c.yml', '_base_: [../a.yml, ../b.yml]\nname: c\nlist: [9]\nopt: {_delete_: true, lr: 5e-4}\n')
    cfg = load_config(child)
    assert cfg == {'name': 'c', 'net': {'type': 'X', 'c': 4, 'extra': 1}, 'list': [9], 'opt': {'lr': 5e-4},
                   'scale': 2}


def test_base_errors_name_the_file(tmp_path):
    child = _write(tmp_path / 'c.yml', '_base_: missing.yml\n')
    with pytest.raises(OptionError, match='missing.yml'):
        load_config(child)
    _write(tmp_path / 'x.yml', '_base_: y.yml\n')
    _write(tmp_path / 'y.yml', '_base_: x.yml\n')
    with pytest.raises(OptionError, match='Cycle'):
        load_config(str(tmp_path / 'x.yml'))
    _write(tmp_path / 'list.yml', '- 1\n- 2\n')
    with pytest.raises(OptionError, match='mapping'):
        load_config(str(tmp_path / 'list.yml'))


def test_merge_does_not_mutate_inputs():
    base, over = {'a': {'b': 1}}, {'a': {'c': 2}}
    merged = merge_dicts(base, over)
    assert merged == {'a': {'b': 1, 'c': 2}} and base == {'a': {'b': 1}} and over == {'a': {'c': 2}}


def test_cfg_options_parse_values_and_reject_unknown_keys():
    opt = {'train': {'total_iter': 100, 'optim_g': {'lr': 1e-3, 'betas': [0.9, 0.99]}}, 'name': 'x'}
    apply_cfg_options(opt, ['train.total_iter=10', 'train.optim_g.lr=2e-4', 'train.optim_g.betas.1=0.5',
                            '+train.ema_decay=0.999', 'name=__import__("os")'])
    assert opt['train']['total_iter'] == 10 and opt['train']['optim_g']['lr'] == 2e-4
    assert opt['train']['optim_g']['betas'] == [0.9, 0.5] and opt['train']['ema_decay'] == 0.999
    assert opt['name'] == '__import__("os")'  # a string, never executed
    apply_cfg_options(opt, [f'name={__file__}'])  # a value naming an existing file stays a string
    assert opt['name'] == __file__
    with pytest.raises(OptionError, match="Did you mean total_iter"):
        apply_cfg_options(opt, ['train.total_iters=5'])
    with pytest.raises(OptionError, match='key.path=value'):
        apply_cfg_options(opt, ['train.total_iter'])
    with pytest.raises(OptionError, match='not a valid index'):
        apply_cfg_options(opt, ['train.optim_g.betas.5=1'])


def test_resolve_options_paths_device_and_num_gpu(tmp_path):
    opt = {'name': 'exp', 'model_type': 'M', 'num_gpu': 'auto', 'train': {'total_iter': 5},
           'datasets': {'train': {'type': 'D'}, 'val_2': {'type': 'D'}}}
    resolve_options(opt, is_train=True, root_path=str(tmp_path))
    assert opt['num_gpu'] == 0 and opt['device'] == 'cpu' and opt['dist'] is False
    assert opt['path']['experiments_root'] == osp.join(str(tmp_path), 'experiments', 'exp')
    assert opt['path']['models'].endswith(osp.join('exp', 'models'))
    assert opt['datasets']['val_2']['phase'] == 'val' and opt['datasets']['train']['name'] == 'train'
    assert isinstance(opt['manual_seed'], int) and opt['logger']['print_freq'] == 100
    with pytest.raises(OptionError, match='num_gpu'):
        resolve_options({'name': 'e', 'model_type': 'M', 'train': {'total_iter': 1}}, is_train=True)
    with pytest.raises(OptionError, match='CUDA'):
        resolve_options({'name': 'e', 'model_type': 'M', 'num_gpu': 4, 'train': {'total_iter': 1}}, is_train=True)
    debug = {'name': 'exp', 'model_type': 'M', 'num_gpu': 0, 'train': {'total_iter': 5}}
    resolve_options(debug, is_train=True, debug=True)
    assert debug['name'] == 'debug_exp' and debug['val']['val_freq'] == 8 and debug['logger']['print_freq'] == 1


def test_dump_options_round_trip(tmp_path):
    opt = {'name': 'x', 'lr': 1e-4, 'betas': (0.9, 0.99), 'nested': {'a': [1, 2]}}
    path = str(tmp_path / 'o.yml')
    dump_options(opt, path, command='train.py -opt x.yml')
    text = open(path).read()
    assert text.startswith('# Resolved options') and 'train.py -opt x.yml' in text
    assert yaml_load(path) == {'name': 'x', 'lr': 1e-4, 'betas': [0.9, 0.99], 'nested': {'a': [1, 2]}}


def test_later_bases_merge_over_earlier_ones_and_delete_markers_go(tmp_path):
    # mmengine's Config.fromfile refuses a key that two bases share; the layered option files need it.  Each base is
    # resolved on its own first: a _delete_ in test.yml acts on test.yml's own bases only (it has none).
    _write(tmp_path / 'train.yml', 'datasets: {train: {type: D, n: 1}}\nval: {val_freq: 5, metrics: {psnr: {}}}\n')
    _write(tmp_path / 'test.yml', 'datasets: {test_1: {type: T, extra: {_delete_: true, k: 1}}}\n'
                                  'val: {metrics: {_delete_: true, ssim: {}}}\n')
    child = _write(tmp_path / 'c.yml', '_base_: [train.yml, test.yml]\ndatasets: {train: {n: 2}}\n')
    assert load_config(child) == {'datasets': {'train': {'type': 'D', 'n': 2}, 'test_1': {'type': 'T',
                                                                                          'extra': {'k': 1}}},
                                  'val': {'val_freq': 5, 'metrics': {'psnr': {}, 'ssim': {}}}}  # see below
    assert list(load_config(child)['datasets']) == ['train', 'test_1']  # inherited keys first, in order


def test_loaded_options_are_plain_dicts_and_reserved_keys_refused(tmp_path):
    cfg = load_config(_write(tmp_path / 'a.yml', 'net: {blocks: [{c: 1}]}\n'))
    assert type(cfg) is dict and type(cfg['net']) is dict and type(cfg['net']['blocks'][0]) is dict
    with pytest.raises(OptionError, match="'text'.*reserved by mmengine"):
        load_config(_write(tmp_path / 'r.yml', 'text: 1\n'))
    with pytest.raises(OptionError, match='reserves the top-level keys'):
        apply_cfg_options({'name': 'x'}, ['+filename=y'])


def test_yaml_python_tags_are_refused(tmp_path):
    path = _write(tmp_path / 'p.yml', 'x: !!python/object/apply:os.getcwd []\n')
    with pytest.raises(OptionError, match='Cannot parse'):
        load_config(path)
    with pytest.raises(Exception, match='could not determine a constructor'):  # yaml's ConstructorError
        apply_cfg_options({'x': 1}, ['x=!!python/object/apply:os.getcwd []'])


def test_cfg_options_replace_dicts_set_list_elements_and_add_paths():
    opt = {'val': {'metrics': {'psnr': {'type': 'psnr'}, 'lpips': {'type': 'lpips'}}},
           'net': {'blocks': [{'c': 1}, {'c': 2}], 'grid': [[1, 2], [3, 4]]}, 'name': 'x'}
    apply_cfg_options(opt, ['val.metrics={ssim: {type: ssim}}',  # replaces, as mmengine alone would merge
                            'net.blocks.-1.c=5', 'net.blocks.0={d: 1}', 'net.grid.1.0=9',
                            '+train.optim_g.lr=1e-4', '+net.blocks.0.e=[1, 2]'])
    assert opt['val']['metrics'] == {'ssim': {'type': 'ssim'}}
    assert opt['net']['blocks'] == [{'d': 1, 'e': [1, 2]}, {'c': 5}] and opt['net']['grid'] == [[1, 2], [9, 4]]
    assert opt['train'] == {'optim_g': {'lr': 1e-4}} and isinstance(opt['train']['optim_g']['lr'], float)
    assert list(opt) == ['val', 'net', 'name', 'train']
    with pytest.raises(OptionError, match="cannot be indexed"):
        apply_cfg_options(opt, ['+name.x=1'])
