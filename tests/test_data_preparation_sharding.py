"""Scaling the data preparation out (``--workers``, ``--shard I/N``, ``--merge``): one process, a pool of two and
shards merged afterwards write byte-identical ledgers and images; the merge refuses missing, duplicated and mixed
shards; bad arguments get argparse errors.

The CelebV stand-ins are small MP4s of skimage's bundled astronaut (dark, moving: accepted faces and near
duplicates; bright; blank; corrupt; one in a sub-folder); the FFHQ stand-ins are smooth random PNGs."""
import csv
import importlib.util
import json
import os
import os.path as osp
import shutil
import time

import cv2
import numpy as np
import pytest
from skimage import data

from lowlight3d.data.preparation.celebv_low_preparation import prepare_celebv_low
from lowlight3d.data.preparation.ffhq_preparation import prepare_ffhq
from lowlight3d.data.preparation.sharding import Shard, interleave_shards, ordered_map, parse_shard, select_shard

from conftest import write_smooth_images

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
SIZE = 200
CELEBV = dict(detector='haar', frame_step=1, num_train=3, num_test=2, allow_fewer=True, progress=False, log=None)
FFHQ = dict(num_train=9, num_test=5, seed=5, size=32, degradation={'blur': {'sigma_range': [0.5, 1.5]}},
            progress=False, log=None)
RUN_KEYS = ('frames_examined_this_run', 'seconds_this_run', 'frames_per_second_this_run', 'workers',
            'merged_shards', 'detector')


def _write_video(path, frames, fps=10):
    os.makedirs(osp.dirname(path), exist_ok=True)
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*'mp4v'), fps, (SIZE, SIZE))
    assert writer.isOpened()
    for f in frames:
        writer.write(cv2.cvtColor(np.round(np.clip(f, 0, 1) * 255).astype(np.uint8), cv2.COLOR_RGB2BGR))
    writer.release()


@pytest.fixture(scope='module')
def clips(tmp_path_factory):
    """Seven stand-in clips: four dark faces (one accepted face or two each, the rest near duplicates), a bright
    one in a sub-folder, a blank one and a corrupt file."""
    root = str(tmp_path_factory.mktemp('sharding_clips'))
    face = cv2.resize(data.astronaut().astype(np.float32)[0:300, 90:390] / 255.0, (150, 150),
                      interpolation=cv2.INTER_AREA)
    rng = np.random.default_rng(0)

    def frame(img, gain, shift=0, background=0.02):
        out = np.full((SIZE, SIZE, 3), background, np.float32)
        out[25 + shift // 2:175 + shift // 2, 25 + shift:175 + shift] = img
        return np.clip(out * gain + rng.normal(0, 0.003, out.shape), 0, 1)

    for v in range(4):
        img = face[:, ::-1] if v % 2 else face
        _write_video(osp.join(root, f'clip_dark{v}.mp4'), [frame(img, 0.25, (i * 7) % 20) for i in range(6)])
    _write_video(osp.join(root, 'sub', 'clip_bright.mp4'), [frame(face, 1.0, background=0.7) for _ in range(3)])
    _write_video(osp.join(root, 'clip_blank.mp4'), [frame(np.full_like(face, 0.05), 0.3) for _ in range(3)])
    with open(osp.join(root, 'clip_corrupt.mp4'), 'wb') as f:
        f.write(b'\x00\x00\x00\x18ftypmp42' + b'garbage' * 50)
    return root


def _files(root, skip=('summary.json', 'lock.mdb')):
    """Relative path -> bytes of every file under ``root`` (the run-specific ones left out)."""
    out = {}
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            if name not in skip:
                path = osp.join(dirpath, name)
                with open(path, 'rb') as f:
                    out[osp.relpath(path, root)] = f.read()
    return out


def _summary(root):
    with open(osp.join(root, 'summary.json')) as f:
        return {k: v for k, v in json.load(f).items() if k not in RUN_KEYS}


def _celebv_shards(clips, out, count, **kwargs):
    for i in range(count):
        res = prepare_celebv_low(clips, out, shard=f'{i}/{count}', **{**CELEBV, **kwargs})
        assert res['shard'] == f'{i}/{count}' and res['videos_done'] == res['videos']


def test_shard_spec_and_round_robin_split():
    assert parse_shard('2/3') == Shard(2, 3) and parse_shard(' 0 / 1 ') == (0, 1) and str(Shard(1, 4)) == '1/4'
    for bad, message in (('3/2', 'out of range'), ('2/2', 'out of range'), ('x', 'expected I/N'),
                         ('1/0', 'at least 1'), ('-1/2', 'expected I/N'), ('1', 'expected I/N')):
        with pytest.raises(ValueError, match=message):
            parse_shard(bad)
    items = [f'v{i:02d}' for i in range(11)]
    parts = [select_shard(items, Shard(i, 3)) for i in range(3)]
    assert parts[1] == ['v01', 'v04', 'v07', 'v10'] and sorted(sum(parts, [])) == items
    assert interleave_shards(parts) == items
    assert [select_shard(items[:2], Shard(i, 4)) for i in range(4)] == [['v00'], ['v01'], [], []]
    with pytest.raises(ValueError, match='same input list'):
        interleave_shards([parts[0][:-1], parts[1], parts[2]])


class _SlowSquare:
    """A pool worker: squares, later items finishing first; exits the process on item ``config``."""

    def __init__(self, config):
        self.die_on = config

    def __call__(self, x):
        if x == self.die_on:
            os._exit(3)
        time.sleep(0.02 * ((7 - x) % 4))
        return x * x


def test_ordered_map_keeps_input_order_and_reports_a_dead_worker():
    expected = [x * x for x in range(8)]
    assert list(ordered_map(_SlowSquare, None, range(8), workers=1)) == expected
    assert list(ordered_map(_SlowSquare, None, range(8), workers=3)) == expected
    with pytest.raises(RuntimeError, match='A worker process died'):
        list(ordered_map(_SlowSquare, 5, range(8), workers=2))
    with pytest.raises(ValueError, match='workers must be an integer >= 1'):
        list(ordered_map(_SlowSquare, None, range(8), workers=0))


def test_celebv_one_process_workers_and_shards_write_the_same(clips, tmp_path):
    single, pooled, three, two = (str(tmp_path / n) for n in ('single', 'pooled', 'three', 'two'))
    summary = prepare_celebv_low(clips, single, **CELEBV)
    assert summary['frames_accepted'] >= 4 and summary['videos_unreadable'] == 1
    assert {'ok', 'near_duplicate', 'too_bright', 'no_face'} <= set(summary['reasons'])
    prepare_celebv_low(clips, pooled, workers=2, **CELEBV)
    _celebv_shards(clips, three, 3)
    assert sorted(os.listdir(osp.join(three, 'shards'))) == ['shard-0-of-3', 'shard-1-of-3', 'shard-2-of-3']
    merged = prepare_celebv_low(None, three, merge=True, **CELEBV)
    assert merged['merged_shards'] == 3 and not osp.exists(osp.join(three, 'shards'))
    _celebv_shards(clips, two, 2, workers=2)  # shards and workers together
    prepare_celebv_low(None, two, merge=True, **CELEBV)
    reference = _files(single)
    assert 'decisions.csv' in reference and any(k.startswith('faces' + os.sep) for k in reference)
    for other in (pooled, three, two):
        assert _files(other) == reference, other  # byte-identical ledgers, faces, lists, split folders
        assert _summary(other) == _summary(single)
    # the merged folder is an ordinary output: a plain re-run finds every video done
    again = prepare_celebv_low(clips, three, **CELEBV)
    assert again['frames_examined_this_run'] == 0 and _files(three) == reference


def test_celebv_merge_refuses_missing_duplicated_and_mixed_shards(clips, tmp_path):
    out = str(tmp_path / 'out')
    shards = osp.join(out, 'shards')
    with pytest.raises(ValueError, match='No shards to merge'):
        prepare_celebv_low(None, out, merge=True, **CELEBV)
    prepare_celebv_low(clips, out, shard='0/2', **CELEBV)
    with pytest.raises(ValueError, match=r'1 of 2 shards are missing.*--shard 1/2'):
        prepare_celebv_low(None, out, merge=True, **CELEBV)
    prepare_celebv_low(clips, out, shard='1/2', **{**CELEBV, 'frame_step': 2})
    with pytest.raises(ValueError, match=r'Shards 0/2 and 1/2 were made with different options \(frame_step: 1 vs 2'):
        prepare_celebv_low(None, out, merge=True, **CELEBV)
    with pytest.raises(ValueError, match='other options or another input list'):  # re-running a shard differently
        prepare_celebv_low(clips, out, shard='1/2', **CELEBV)
    shutil.rmtree(osp.join(shards, 'shard-1-of-2'))
    prepare_celebv_low(clips, out, shard='1/2', **CELEBV)
    shutil.copytree(osp.join(shards, 'shard-0-of-2'), osp.join(shards, 'copied_from_node7'))
    with pytest.raises(ValueError, match=r'Shard 0/2 is present 2 times'):
        prepare_celebv_low(None, out, merge=True, **CELEBV)
    shutil.rmtree(osp.join(shards, 'copied_from_node7'))
    prepare_celebv_low(clips, out, shard='2/3', **CELEBV)
    with pytest.raises(ValueError, match=r'mixes shards of different counts N \(\[2, 3\]\)'):
        prepare_celebv_low(None, out, merge=True, **CELEBV)
    shutil.rmtree(osp.join(shards, 'shard-2-of-3'))
    with pytest.raises(ValueError, match=r'other options than this merge command \(face_size: shards 256, this '
                       r'command 128'):
        prepare_celebv_low(None, out, merge=True, **{**CELEBV, 'face_size': 128})
    videos_csv = osp.join(shards, 'shard-1-of-2', 'videos.csv')
    with open(videos_csv, newline='') as f:
        rows = list(csv.reader(f))
    with open(videos_csv, 'w', newline='') as f:
        csv.writer(f).writerows(rows[:-1])  # as if the shard had been stopped before its last video
    with pytest.raises(ValueError, match=r'Shard 1/2 .* is incomplete: 2 of 3 videos done.*--shard 1/2'):
        prepare_celebv_low(None, out, merge=True, **CELEBV)
    prepare_celebv_low(clips, out, shard='1/2', **CELEBV)  # resumes: only the missing video
    summary = prepare_celebv_low(None, out, merge=True, keep_shards=True, **CELEBV)
    assert summary['videos'] == 7 and osp.isdir(shards)


def _ffhq_source(tmp_path):
    src = str(tmp_path / 'ffhq')
    write_smooth_images(osp.join(src, '00000'), 10, size=48, seed=1, prefix='0')
    write_smooth_images(osp.join(src, '01000'), 6, size=48, seed=2, prefix='1')
    return src


def test_ffhq_one_process_workers_and_shards_write_the_same(tmp_path):
    src = _ffhq_source(tmp_path)
    single, pooled, three = (str(tmp_path / n) for n in ('single', 'pooled', 'three'))
    res = prepare_ffhq(src, single, lmdb=True, **FFHQ)
    assert res['written'] == 14
    prepare_ffhq(src, pooled, lmdb=True, workers=2, **FFHQ)
    for i in range(3):
        assert prepare_ffhq(src, three, shard=f'{i}/3', **FFHQ)['written'] == (5, 5, 4)[i]
    merged = prepare_ffhq(None, three, merge=True, lmdb=True, **FFHQ)
    assert merged['merged_shards'] == 3 and not osp.exists(osp.join(three, 'shards'))
    reference = _files(single)
    assert osp.join('test', 'degradation_params.json') in reference and len(reference) > 30
    assert _files(pooled) == reference and _files(three) == reference
    assert prepare_ffhq(src, three, **FFHQ)['skipped'] == 14  # a plain re-run finds everything done


def test_ffhq_merge_refuses_missing_duplicated_and_mixed_shards(tmp_path):
    src = _ffhq_source(tmp_path)
    out = str(tmp_path / 'out')
    shards = osp.join(out, 'shards')
    prepare_ffhq(src, out, shard='1/2', **FFHQ)
    with pytest.raises(ValueError, match=r'1 of 2 shards are missing in .*: 0/2\. .*--shard 0/2'):
        prepare_ffhq(None, out, merge=True, **FFHQ)
    prepare_ffhq(src, out, shard='0/2', **{**FFHQ, 'seed': 6})
    with pytest.raises(ValueError, match=r'different options \(seed: 6 vs 5\)'):
        prepare_ffhq(None, out, merge=True, **FFHQ)
    prepare_ffhq(src, out, shard='0/2', overwrite=True, **FFHQ)  # --overwrite replaces the odd shard
    shutil.copytree(osp.join(shards, 'shard-1-of-2'), osp.join(shards, 'again'))
    with pytest.raises(ValueError, match='Shard 1/2 is present 2 times'):
        prepare_ffhq(None, out, merge=True, **FFHQ)
    shutil.rmtree(osp.join(shards, 'again'))
    with pytest.raises(ValueError, match=r'other options than this merge command \(size: shards 32, this command 64'):
        prepare_ffhq(None, out, merge=True, **{**FFHQ, 'size': 64})
    os.remove(osp.join(shards, 'shard-0-of-2', 'train', sorted(os.listdir(osp.join(shards, 'shard-0-of-2',
                                                                                      'train')))[0]))
    with pytest.raises(ValueError, match=r'Shard 0/2 .* is incomplete'):
        prepare_ffhq(None, out, merge=True, **FFHQ)
    assert prepare_ffhq(src, out, shard='0/2', **FFHQ)['written'] == 1
    assert prepare_ffhq(None, out, merge=True, **FFHQ)['num_test'] == 5


def _script_main(name):
    """``main`` of a script in scripts/data_preparation (not a package)."""
    spec = importlib.util.spec_from_file_location(name, osp.join(REPO, 'scripts', 'data_preparation', name + '.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


@pytest.mark.parametrize('script,source', [('prepare_celebv_low', '--videos'), ('prepare_ffhq', '--input')])
def test_scripts_reject_bad_scaling_arguments(script, source, tmp_path, capsys):
    main = _script_main(script)
    base = [source, str(tmp_path), '--output', str(tmp_path / 'out')]
    cases = [(['--shard', '3/2'], 'argument --shard: shard index 3 is out of range for 2 shards'),
             (['--shard', 'x'], "argument --shard: expected I/N with 0-based shard index I and shard count N"),
             (['--workers', '0'], 'argument --workers: must be at least 1'),
             (['--workers', 'two'], "argument --workers: expected a number of processes"),
             (['--shard', '0/2', '--merge'], '--shard and --merge exclude each other'),
             (['--keep-shards'], '--keep-shards only applies to --merge')]
    for extra, message in cases:
        with pytest.raises(SystemExit) as exc:
            main(base + extra)
        assert exc.value.code == 2
        assert message in capsys.readouterr().err, extra
    with pytest.raises(SystemExit):
        main(['--output', str(tmp_path / 'out')])
    assert f'required: {source}' in capsys.readouterr().err
    assert main(['--output', str(tmp_path / 'out'), '--merge', '--no-progress']) == 1
    assert 'No shards to merge' in capsys.readouterr().err
