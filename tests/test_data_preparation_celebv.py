"""CelebV-Low pipeline on small videos written in the test (OpenCV), with the offline Haar detector.

Videos: a dark video alternating two real faces (accepted, with near duplicates removed), a bright one (too_bright),
a dark blurred one (blurred), a dark blank one (no_face), a dark face in a lit scene (scene_not_dark under the
'scene' rule) and a corrupt file (skipped, reported)."""
import csv
import os.path as osp
from collections import Counter

import cv2
import numpy as np
import pytest

from lowlight3d.data.image_source import ImageSource
from lowlight3d.data.preparation.celebv_low_preparation import prepare_celebv_low, split_accepted_frames
from lowlight3d.data.preparation.video_frames import VideoReadError, iter_video_frames
from lowlight3d.utils.img_io import read_image

SIZE = 240


def _write_video(path, frames, fps=10):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'mp4v'), fps, (SIZE, SIZE))
    assert writer.isOpened()
    for f in frames:
        writer.write(cv2.cvtColor(np.round(np.clip(f, 0, 1) * 255).astype(np.uint8), cv2.COLOR_RGB2BGR))
    writer.release()


def _frame(face, gain, rng, background=0.02, blur=0.0):
    img = np.full((SIZE, SIZE, 3), background, np.float32)
    img[45:195, 45:195] = face
    if blur:
        img = cv2.GaussianBlur(img, (0, 0), blur)
    return np.clip(img * gain + rng.normal(0, 0.003, img.shape), 0, 1).astype(np.float32)


@pytest.fixture(scope='module')
def video_dir(shared_data, tmp_path_factory):
    root = tmp_path_factory.mktemp('celebv_videos')
    faces = [cv2.resize(read_image(osp.join(shared_data, 'faces_hq', 'ffhq', f'0000{i}.png')), (150, 150),
                        interpolation=cv2.INTER_AREA) for i in (1, 2)]
    rng = np.random.default_rng(0)
    _write_video(root / 'clip_dark.mp4', [_frame(faces[i % 2], 0.3, rng) for i in range(6)])
    _write_video(root / 'clip_bright.mp4', [_frame(faces[0], 1.0, rng, background=0.7) for _ in range(3)])
    _write_video(root / 'clip_blurred.mp4', [_frame(faces[1], 0.3, rng, blur=5.0) for _ in range(3)])
    blank = np.full((150, 150, 3), 0.05, np.float32)
    _write_video(root / 'clip_blank.mp4', [_frame(blank, 0.3, rng) for _ in range(3)])
    _write_video(root / 'clip_litscene.mp4', [_frame(faces[0] * 0.25, 1.0, rng, background=0.22) for _ in range(3)])
    (root / 'clip_corrupt.mp4').write_bytes(b'\x00\x00\x00\x18ftypmp42' + b'garbage' * 50)
    return str(root)


def _decisions(out):
    with open(osp.join(out, 'decisions.csv'), newline='') as f:
        return list(csv.DictReader(f))


def test_pipeline_decisions_outputs_and_resume(video_dir, tmp_path):
    out = str(tmp_path / 'celebv_low')
    logs = []
    summary = prepare_celebv_low(video_dir, out, detector='haar', frame_step=1, num_train=1, num_test=1,
                                 lmdb=True, progress=False, log=logs.append)
    rows = _decisions(out)
    by_video = {}
    for r in rows:
        by_video.setdefault(r['video'], []).append(r)
    reasons = {v: Counter(r['reason'] for r in rs) for v, rs in by_video.items()}
    print('\nCelebV-Low decisions on the generated videos (brightness rule):')
    for v in sorted(reasons):
        print(f'  {v:<14} {dict(reasons[v])}')
    assert reasons['clip_dark'] == {'ok': 2, 'near_duplicate': 4}
    dup = [r for r in by_video['clip_dark'] if r['reason'] == 'near_duplicate']
    assert {r['duplicate_of'] for r in dup} == {'clip_dark__000000', 'clip_dark__000001'}
    assert reasons['clip_bright'] == {'too_bright': 3}
    assert reasons['clip_blurred'] == {'blurred': 3}
    assert reasons['clip_blank'] == {'no_face': 3}
    assert reasons['clip_litscene'] == {'ok': 1, 'near_duplicate': 2}  # the paper's rule accepts a lit scene
    assert by_video['clip_corrupt'][0]['decision'] == 'skipped_video'
    assert by_video['clip_corrupt'][0]['reason'].startswith('unreadable:')
    assert any('skipping video clip_corrupt.mp4' in m for m in logs)
    accepted = [r for r in rows if r['decision'] == 'accepted']
    for r in accepted:
        face = read_image(osp.join(out, r['output']))
        assert face.shape == (256, 256, 3) and face.mean() < 0.2  # dark pixels kept, not the brightened copy
    assert summary['frames_accepted'] == 3 and summary['videos_unreadable'] == 1
    assert summary['num_train'] == 1 and summary['num_test'] == 1
    assert len(ImageSource(osp.join(out, 'train'))) == 1 and len(ImageSource(osp.join(out, 'test.lmdb'))) == 1
    # split by video: train and test come from different clips
    train_video = ImageSource(osp.join(out, 'train')).names[0].split('__')[0]
    test_video = ImageSource(osp.join(out, 'test')).names[0].split('__')[0]
    assert train_video != test_video
    # Second run: every video is already done, nothing is re-examined, the outputs stay.
    again = prepare_celebv_low(video_dir, out, detector='haar', frame_step=1, num_train=1, num_test=1, lmdb=True,
                               progress=False, log=logs.append)
    assert again['frames_examined_this_run'] == 0 and _decisions(out) == rows
    assert again['num_train'] == 1 and again['reasons'] == summary['reasons']


def test_interrupted_video_is_redone(video_dir, tmp_path):
    out = str(tmp_path / 'partial')
    prepare_celebv_low(video_dir, out, detector='haar', frame_step=2, num_train=1, num_test=1, allow_fewer=True,
                       progress=False, log=None)
    full = _decisions(out)
    # simulate a crash in the middle of clip_dark: its videos.csv row is missing, some frame rows are left
    with open(osp.join(out, 'videos.csv')) as f:
        lines = [line for line in f if not line.startswith('clip_dark,')]
    with open(osp.join(out, 'videos.csv'), 'w') as f:
        f.writelines(lines)
    logs = []
    summary = prepare_celebv_low(video_dir, out, detector='haar', frame_step=2, num_train=1, num_test=1,
                                 allow_fewer=True, progress=False, log=logs.append)
    assert any('dropped' in m for m in logs)
    assert summary['frames_examined_this_run'] == 3  # only clip_dark (6 frames, every 2nd) was redone
    key = lambda r: (r['video'], int(r['frame']))  # noqa: E731
    assert sorted(_decisions(out), key=key) == sorted(full, key=key)


def test_scene_criterion_rejects_dark_face_in_lit_scene(video_dir, tmp_path):
    out = str(tmp_path / 'scene')
    summary = prepare_celebv_low(video_dir, out, criterion='scene', detector='haar', frame_step=1, num_train=1,
                                 num_test=1, allow_fewer=True, progress=False, log=None)
    reasons = Counter(r['reason'] for r in _decisions(out) if r['video'] == 'clip_litscene')
    assert reasons == {'scene_not_dark': 3}
    assert summary['reasons']['ok'] == 2


def test_video_reading_errors_and_sampling(video_dir, tmp_path):
    frames = list(iter_video_frames(osp.join(video_dir, 'clip_dark.mp4'), frame_step=2))
    assert [i for i, _ in frames] == [0, 2, 4] and frames[0][1].shape == (SIZE, SIZE, 3)
    assert len(list(iter_video_frames(osp.join(video_dir, 'clip_dark.mp4'), max_frames=2))) == 2
    with pytest.raises(VideoReadError, match='cannot open'):
        list(iter_video_frames(osp.join(video_dir, 'clip_corrupt.mp4')))
    empty = tmp_path / 'empty.mp4'
    empty.write_bytes(b'')
    with pytest.raises(VideoReadError, match='empty file'):
        list(iter_video_frames(str(empty)))


def test_split_by_video_and_frame():
    groups = {f'v{i}': [f'v{i}__{j:06d}' for j in range(5)] for i in range(10)}
    train, test = split_accepted_frames(groups, num_train=30, num_test=7, seed=1)
    assert len(test) == 7 and len(train) == 30
    assert not {n.split('__')[0] for n in train} & {n.split('__')[0] for n in test}
    assert (train, test) == split_accepted_frames(groups, num_train=30, num_test=7, seed=1)
    train_f, test_f = split_accepted_frames(groups, num_train=40, num_test=10, seed=1, by='frame')
    assert len(train_f) == 40 and len(test_f) == 10 and not set(train_f) & set(test_f)
    with pytest.raises(ValueError, match='allow-fewer'):
        split_accepted_frames(groups, num_train=5000, num_test=892)
    train, test = split_accepted_frames(groups, num_train=5000, num_test=892, allow_fewer=True)
    assert len(train) + len(test) <= 50 and len(test) == round(50 * 892 / 5892)
