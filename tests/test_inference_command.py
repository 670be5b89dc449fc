"""The inference command end to end with a tiny exported model: GFPGAN's output layout in face mode, a corrupt
file skipped with its name while the run goes on, --aligned / --no_face / --suffix / --ext / --gray, and the video
path on a short generated clip (frame count, frame rate and audio kept)."""
import os
import os.path as osp
from fractions import Fraction

import numpy as np
import pytest
from skimage import data

from lowlight3d.inference.command import inference_main
from lowlight3d.inference.model_file import export_model, save_model_file
from lowlight3d.inference.video import video_info
from lowlight3d.utils.img_io import read_image, write_image

from inference_helpers import tiny_unet_options


@pytest.fixture(scope='module')
def model_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp('model')
    opt_path, _ = tiny_unet_options(str(folder))
    return save_model_file(export_model(opt_path, face_size=64), str(folder / 'tiny.pth'))


def _files(folder):
    return sorted(osp.relpath(osp.join(r, f), folder) for r, _, fs in os.walk(folder) for f in fs)


def test_face_mode_layout_and_a_corrupt_file_is_skipped_by_name(tmp_path, model_file, capsys):
    inputs = tmp_path / 'in'
    dark = data.astronaut().astype(np.float32) / 255.0 * 0.08
    write_image(str(inputs / 'astronaut.jpg'), dark[::2, ::2])
    write_image(str(inputs / 'gray.png'), (dark[::4, ::4, :1] * 3))
    (inputs / 'broken.png').write_bytes(b'\x89PNG\r\n\x1a\n truncated')
    out = tmp_path / 'out'
    summary = inference_main(['-i', str(inputs), '-o', str(out), '--model', model_file, '--suffix', 'll3d',
                              '--no_pbar', '--detector', 'dlib'])
    printed = capsys.readouterr().out
    assert 'broken.png' in printed and f'Results are in {out}' in printed
    assert [s['file'] for s in summary['skipped']] == [str(inputs / 'broken.png')]
    files = _files(str(out))
    assert {'cropped_faces/astronaut_00.png', 'restored_faces/astronaut_00_ll3d.png', 'cmp/astronaut_00.png',
            'restored_imgs/astronaut_ll3d.jpg', 'restored_imgs/gray_ll3d.png'} <= set(files)
    assert read_image(str(out / 'restored_faces' / 'astronaut_00_ll3d.png')).shape == (64, 64, 3)
    assert read_image(str(out / 'restored_imgs' / 'astronaut_ll3d.jpg')).shape == (256, 256, 3)
    import cv2
    assert cv2.imread(str(out / 'restored_imgs' / 'gray_ll3d.png'), cv2.IMREAD_UNCHANGED).ndim == 2  # stays gray


def test_aligned_and_no_face_modes(tmp_path, model_file):
    inputs = tmp_path / 'in'
    write_image(str(inputs / 'face.png'), np.random.default_rng(0).random((40, 40, 3)) * 0.2)
    inference_main(['-i', str(inputs / 'face.png'), '-o', str(tmp_path / 'a'), '--model', model_file, '--aligned',
                    '--no_pbar'])
    assert _files(str(tmp_path / 'a')) == ['cmp/face_00.png', 'cropped_faces/face_00.png', 'restored_faces/face_00.png']
    inference_main(['-i', str(inputs), '-o', str(tmp_path / 'b'), '--model', model_file, '--no_face', '--tile', '16',
                    '--ext', 'jpg', '--no_pbar'])
    assert _files(str(tmp_path / 'b')) == ['restored_imgs/face.jpg']


def _make_clip(path, frames=6, fps=Fraction(15), size=(80, 48)):
    """A short H.264 clip with an AAC sine tone."""
    import av
    with av.open(path, 'w') as container:
        video = container.add_stream('libx264', rate=fps)
        video.width, video.height, video.pix_fmt = size[0], size[1], 'yuv420p'
        audio = container.add_stream('aac', rate=16000)
        audio.layout = 'mono'
        rng = np.random.default_rng(0)
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray((rng.random((size[1], size[0], 3)) * 60).astype(np.uint8), 'rgb24')
            frame.pts, frame.time_base = i, 1 / fps
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        n = int(16000 * frames / fps)
        tone = (0.1 * np.sin(np.arange(n) * 2 * np.pi * 440 / 16000)).astype(np.float32)[None]
        for k in range(0, n, 1024):
            chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(tone[:, k:k + 1024]), format='fltp', layout='mono')
            chunk.sample_rate, chunk.pts = 16000, k
            for packet in audio.encode(chunk):
                container.mux(packet)
        for packet in audio.encode():
            container.mux(packet)


def test_video_keeps_frame_count_fps_and_audio(tmp_path, model_file):
    clip = str(tmp_path / 'clip.mp4')
    _make_clip(clip)
    source = video_info(clip)
    summary = inference_main(['-i', clip, '-o', str(tmp_path / 'out'), '--model', model_file, '--no_pbar'])
    result = video_info(summary['videos'][0]['path'])
    assert result['frames'] == source['frames'] == 6
    assert result['fps'] == source['fps'] == Fraction(15)
    assert result['audio'] == 'aac' and (result['width'], result['height']) == (80, 48)


def test_option_file_route_and_only_center_face(tmp_path):
    opt_path, ckpt = tiny_unet_options(str(tmp_path))
    img = np.random.default_rng(1).random((24, 32, 3)).astype(np.float32) * 0.2
    write_image(str(tmp_path / 'in' / 'x.png'), img)
    summary = inference_main(['-i', str(tmp_path / 'in'), '-o', str(tmp_path / 'out'), '-opt', opt_path, '--weights',
                              ckpt, '--no_face', '--no_pbar'])
    assert summary['images'] == 1 and osp.isfile(tmp_path / 'out' / 'restored_imgs' / 'x.png')
    from lowlight3d.face.detection import build_face_detector
    from lowlight3d.inference.background import NoBackground
    from lowlight3d.inference.face_enhancer import FaceEnhancer
    from lowlight3d.inference.image_enhancer import ImageEnhancer
    from lowlight3d.inference.loaded_model import LoadedModel
    face = data.astronaut()[:256, 96:352].astype(np.float32) / 255.0 * 0.1
    pair = np.concatenate([face, np.zeros((256, 200, 3), np.float32), face], 1)  # two faces, neither centred
    detector, _ = build_face_detector('dlib')
    model = ImageEnhancer(LoadedModel(export_model(opt_path, face_size=64)))
    both = FaceEnhancer(model, NoBackground(), detector).enhance(pair)
    centre = FaceEnhancer(model, NoBackground(), detector, only_center_face=True).enhance(pair)
    assert len(both.cropped_faces) == 2 and len(centre.cropped_faces) == 1 and centre.image.shape == pair.shape


def test_face_mode_logs_time_trust_and_seam_per_photo(tmp_path, model_file, capsys):
    inputs = tmp_path / 'in'
    write_image(str(inputs / 'astronaut.png'), data.astronaut()[::2, ::2].astype(np.float32) / 255.0 * 0.08)
    summary = inference_main(['-i', str(inputs), '-o', str(tmp_path / 'a'), '--model', model_file, '--no_pbar',
                              '--detector', 'dlib', '--compare'])
    printed = capsys.readouterr().out
    photo = summary['photos'][0]
    assert photo['name'] == 'astronaut' and photo['seconds'] > 0 and len(photo['faces']) == 1
    action, reason = photo['faces'][0]
    assert action in ('face', 'blend', 'background') and f'face 00: {reason}' in printed
    assert 'astronaut: 1 face(s), ' in printed and 'weighed against the background' in printed
    whole = read_image(str(tmp_path / 'a' / 'cmp' / 'astronaut_whole.png'))
    assert whole.shape == (256, 3 * 256, 3)  # input | background only | result
    summary = inference_main(['-i', str(inputs), '-o', str(tmp_path / 'b'), '--model', model_file, '--no_pbar',
                              '--detector', 'dlib', '--compare', '--no_trust'])
    printed = capsys.readouterr().out
    seam = summary['photos'][0]['seams'][0]
    assert summary['photos'][0]['faces'][0][0] == 'face' and 'levels luma' in printed
    assert 0 <= seam['luma'] <= 3 and seam['sectors'] > 0  # the seamless paste leaves no step across the boundary
