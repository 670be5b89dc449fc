"""Tests of lowlight3d.utils.img_io: every file flavour becomes float32 RGB in [0, 1]; bad files name themselves."""
import io
import os.path as osp

import cv2
import numpy as np
import pytest
import torch

from lowlight3d.utils.img_io import ImageReadError, decode_image_array, read_image, to_float_rgb, write_image


def _png_bytes(arr):
    ok, buf = cv2.imencode('.png', arr)
    assert ok
    return buf.tobytes()


def _check_rgb01(img, shape):
    assert img.dtype == np.float32
    assert img.shape == shape
    assert img.min() >= 0.0 and img.max() <= 1.0


def test_read_8bit_color_is_rgb(tmp_path):
    bgr = np.zeros((5, 6, 3), np.uint8)
    bgr[..., 0] = 255  # blue in OpenCV order
    path = tmp_path / 'blue.png'
    cv2.imwrite(str(path), bgr)
    img = read_image(path)
    _check_rgb01(img, (5, 6, 3))
    assert np.allclose(img[0, 0], [0.0, 0.0, 1.0])


def test_read_gray_is_replicated(tmp_path):
    gray = np.arange(20, dtype=np.uint8).reshape(4, 5) * 10
    path = tmp_path / 'gray.png'
    cv2.imwrite(str(path), gray)
    img = read_image(str(path))
    _check_rgb01(img, (4, 5, 3))
    assert np.allclose(img[..., 0], gray / 255.0) and np.allclose(img[..., 0], img[..., 2])


def test_read_16bit_divides_by_65535(tmp_path):
    arr = np.full((3, 4, 3), 65535, np.uint16)
    arr[0, 0] = (0, 32768, 65535)
    path = tmp_path / 'deep.png'
    cv2.imwrite(str(path), arr)
    img = read_image(path)
    _check_rgb01(img, (3, 4, 3))
    assert np.allclose(img[0, 0], [1.0, 32768 / 65535, 0.0])  # BGR stored -> RGB read
    gray16 = np.full((3, 4), 13107, np.uint16)
    img = read_image(_png_bytes(gray16), 'gray16')
    assert np.allclose(img, 0.2, atol=1e-6)


def test_read_rgba_drops_or_composites_alpha(tmp_path):
    bgra = np.zeros((2, 2, 4), np.uint8)
    bgra[..., 2] = 200  # red
    bgra[..., 3] = 0  # fully transparent
    bgra[1, 1, 3] = 255
    path = tmp_path / 'alpha.png'
    cv2.imwrite(str(path), bgra)
    dropped = read_image(path)
    _check_rgb01(dropped, (2, 2, 3))
    assert np.allclose(dropped[0, 0], [200 / 255, 0, 0])
    composite = read_image(path, alpha='composite', background=1.0)
    assert np.allclose(composite[0, 0], [1, 1, 1]) and np.allclose(composite[1, 1], [200 / 255, 0, 0])
    gray_alpha = np.dstack([np.full((2, 2), 100, np.uint8), np.full((2, 2), 255, np.uint8)])
    img = to_float_rgb(gray_alpha)
    assert img.shape == (2, 2, 3) and np.allclose(img, 100 / 255)


def test_read_float_image_is_clipped():
    arr = np.array([[[-0.5, 0.5, 2.0]]], np.float32)
    assert np.allclose(to_float_rgb(arr), [[[1.0, 0.5, 0.0]]])


def test_jpeg_exif_orientation_is_applied():
    pil_image = pytest.importorskip('PIL.Image')
    arr = np.zeros((4, 8, 3), np.uint8)  # wide image
    arr[:, :4] = 255
    img = pil_image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    buf = io.BytesIO()
    img.save(buf, 'JPEG', exif=exif.tobytes(), quality=100)
    out = read_image(buf.getvalue(), 'rotated.jpg')
    assert out.shape == (8, 4, 3)
    assert out[:2].mean() > 0.9 and out[-2:].mean() < 0.1  # the white left half is now on top


@pytest.mark.parametrize('content, reason', [
    (b'', 'empty file'),
    (b'hello, I am not an image\n', 'not an image'),
])
def test_bad_bytes_name_the_file(tmp_path, content, reason):
    path = tmp_path / 'bad.png'
    path.write_bytes(content)
    with pytest.raises(ImageReadError, match=reason) as info:
        read_image(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize('ext', ['.png', '.jpg'])
def test_truncated_file_names_the_file(tmp_path, ext):
    rng = np.random.default_rng(0)
    ok, buf = cv2.imencode(ext, (rng.random((32, 32, 3)) * 255).astype(np.uint8))
    path = tmp_path / f'cut{ext}'
    path.write_bytes(buf.tobytes()[:len(buf) // 2])
    with pytest.raises(ImageReadError, match='truncated') as info:
        read_image(path)
    assert info.value.name == str(path)


def test_missing_file_and_custom_name(tmp_path):
    with pytest.raises(ImageReadError, match='does not exist'):
        read_image(tmp_path / 'nope.png')
    with pytest.raises(ImageReadError, match="'my_key'"):
        decode_image_array(b'xyz', 'my_key')


def test_error_survives_pickling():
    import pickle
    err = pickle.loads(pickle.dumps(ImageReadError('a.png', 'empty file (0 bytes)')))
    assert err.name == 'a.png' and 'a.png' in str(err)


def test_write_image_roundtrip_and_parents(tmp_path):
    rng = np.random.default_rng(1)
    img = np.round(rng.random((6, 7, 3)) * 255).astype(np.float32) / 255
    path = write_image(tmp_path / 'a' / 'b' / 'out.png', img)
    assert osp.isfile(path)
    assert np.allclose(read_image(path), img, atol=1e-6)
    path16 = write_image(tmp_path / 'deep.png', img, bit_depth=16)
    assert cv2.imread(path16, cv2.IMREAD_UNCHANGED).dtype == np.uint16
    tensor_path = write_image(tmp_path / 't.png', torch.from_numpy(img.transpose(2, 0, 1))[None])
    assert np.allclose(read_image(tensor_path), img, atol=1e-6)
    gray_path = write_image(tmp_path / 'g.png', img[:, :, 0])
    assert np.allclose(read_image(gray_path)[..., 1], img[:, :, 0], atol=1e-6)
    with pytest.raises(ValueError):
        write_image(tmp_path / 'x.png', np.zeros((2, 2, 2), np.float32))
    with pytest.raises(OSError):
        write_image(tmp_path / 'x.unknownext', img)
