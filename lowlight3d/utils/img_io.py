"""Image reading and writing for the whole toolkit (datasets, test pipeline, inference).

One convention everywhere: an image in memory is a ``float32`` numpy array, ``H x W x 3``, **RGB**, values in
``[0, 1]``.  :func:`read_image` converts every common file flavour to it and raises :class:`ImageReadError`
(a ``ValueError``) naming the file and what is wrong with it; :func:`write_image` does the reverse.

Conversions done by :func:`read_image`:

* 8-bit files are divided by 255, 16-bit files by 65535; float files (TIFF/EXR) are clipped to ``[0, 1]``.
* Grayscale (one channel) is replicated to three channels; gray + alpha keeps the gray channel.
* RGBA: by default the alpha channel is **dropped** (``alpha='drop'``: the stored colour of transparent pixels is
  kept as is).  ``alpha='composite'`` blends over a uniform ``background`` value instead.
* JPEG EXIF orientation is applied (as ``cv2.imread`` with ``IMREAD_COLOR`` does), so phone photos come out
  upright.

The decoding step alone is :func:`decode_image_array` (native dtype, channel count and BGR order, orientation
applied); the LMDB writer re-encodes exactly that array, which is why a folder and its LMDB give identical
pixels.

Limits against hostile or broken files (:func:`set_read_limits`; environment ``LOWLIGHT3D_MAX_IMAGE_BYTES`` and
``LOWLIGHT3D_MAX_IMAGE_PIXELS``): only regular files are read (a FIFO would block forever, a link to ``/dev/zero``
would be read until memory runs out), at most 512 MiB each, and an image whose header declares more than 150
megapixels is refused before it is decoded. Each case is an :class:`ImageReadError` naming the file, so a batch
skips it and goes on.
"""
import io
import os
import os.path as osp
import stat
import threading
import warnings

import cv2
import numpy as np

__all__ = [
    'IMAGE_EXTENSIONS', 'ImageReadError', 'decode_image_array', 'read_image', 'read_image_bytes', 'to_float_rgb',
    'write_image', 'set_read_limits', 'read_limits', 'declared_size'
]

#: File extensions treated as images by default (lower case, with the dot).
IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp', '.ppm', '.pgm')

#: Defaults of the read limits (see the module docstring); the environment overrides them at import.
_LIMITS = {'max_bytes': int(os.environ.get('LOWLIGHT3D_MAX_IMAGE_BYTES', 512 * 2**20)),
           'max_pixels': int(os.environ.get('LOWLIGHT3D_MAX_IMAGE_PIXELS', 150_000_000))}

_PIL_LIMIT_LOCK = threading.Lock()

_PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
_JPEG_SIGNATURE = b'\xff\xd8'


class ImageReadError(ValueError):
    """An image file that cannot be used: missing, empty, not an image, truncated or of an unsupported kind.

    Args:
        name (str): The file (path, LMDB key or other label) the error is about.  Called with this argument only,
            it is taken as the whole message (how DataLoader workers re-raise an error in the main process).
        reason (str, optional): What is wrong, in words.

    Attributes:
        name (str | None): The file, None when built from a message only.
        reason (str): What is wrong (the whole message when built from a message only).
    """

    def __init__(self, name, reason=None):
        if reason is None:
            self.name, self.reason = None, str(name)
            super().__init__(self.reason)
            return
        self.name = str(name)
        self.reason = str(reason)
        super().__init__(f"Cannot read image '{self.name}': {self.reason}")

    def __reduce__(self):
        """Keep both arguments when the error is pickled."""
        if self.name is None:
            return (type(self), (self.reason, ))
        return (type(self), (self.name, self.reason))


def _describe_undecodable(data):
    """A human reason for bytes that OpenCV could not decode."""
    if data.startswith(_PNG_SIGNATURE):
        if b'IEND' not in data[-64:]:
            return 'truncated PNG file (no IEND chunk at the end)'
        return 'corrupt PNG data'
    if data.startswith(_JPEG_SIGNATURE):
        if b'\xff\xd9' not in data[-1024:]:
            return 'truncated JPEG file (no end-of-image marker)'
        return 'corrupt JPEG data'
    head = data[:16]
    if head.lstrip().startswith((b'<', b'{', b'[')) or all(32 <= c < 127 or c in (9, 10, 13) for c in head):
        return 'not an image (the file looks like text)'
    return 'not a decodable image (unknown format or corrupt data)'


def _jpeg_orientation(data):
    """EXIF orientation tag (1..8) of JPEG bytes, 1 when absent or unreadable."""
    try:
        from PIL import Image
        with Image.open(io.BytesIO(data)) as pil_img:
            return int(pil_img.getexif().get(0x0112, 1) or 1)
    except Exception:  # noqa: BLE001  (no EXIF, odd EXIF, no Pillow: orientation is optional metadata)
        return 1


def _apply_orientation(img, orientation):
    """Rotate/flip ``img`` (H x W [x C]) as the EXIF orientation tag says."""
    if orientation == 2:
        return img[:, ::-1]
    if orientation == 3:
        return img[::-1, ::-1]
    if orientation == 4:
        return img[::-1]
    if orientation == 5:
        return np.swapaxes(img, 0, 1)
    if orientation == 6:
        return np.rot90(img, k=-1)
    if orientation == 7:
        return np.rot90(img, k=1)[::-1]
    if orientation == 8:
        return np.rot90(img, k=1)
    return img


def set_read_limits(max_bytes=None, max_pixels=None):
    """Change the file-size and pixel caps of every later read (None keeps a cap); returns the previous caps."""
    previous = dict(_LIMITS)
    for key, value in (('max_bytes', max_bytes), ('max_pixels', max_pixels)):
        if value is not None:
            if int(value) < 1:
                raise ValueError(f'{key} must be a positive integer, got {value!r}')
            _LIMITS[key] = int(value)
    return previous


def read_limits():
    """The caps in force: ``{'max_bytes': ..., 'max_pixels': ...}``."""
    return dict(_LIMITS)


def declared_size(raw):
    """``(width, height)`` that encoded image bytes declare in their header (read without decoding the pixels), or
    None when the header cannot be read (the decoder then reports what is wrong)."""
    try:
        from PIL import Image
    except ImportError:  # pillow comes with torchvision; without it only OpenCV's own 2^30-pixel cap applies
        return None
    try:
        # PIL's own decompression-bomb limit is switched off around the header read (our cap decides), under a lock:
        # two threads swapping the module-wide value could otherwise leave it switched off for good
        with _PIL_LIMIT_LOCK, warnings.catch_warnings():
            warnings.simplefilter('ignore')
            old, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
            try:
                with Image.open(io.BytesIO(raw)) as img:
                    return img.size
            finally:
                Image.MAX_IMAGE_PIXELS = old
    except Exception:  # not an image PIL knows, or a broken header
        return None


def decode_image_array(data, name_for_errors='<bytes>'):
    """Decode encoded image bytes to OpenCV's native array, with JPEG EXIF orientation applied.

    Args:
        data (bytes | bytearray | memoryview | np.ndarray): The encoded file content.
        name_for_errors (str): Name used in error messages (a path or an LMDB key).

    Returns:
        np.ndarray: ``H x W`` or ``H x W x C`` (C in 1..4, BGR(A) order), dtype as stored (uint8, uint16,
        float32).

    Raises:
        ImageReadError: For empty, undecodable or truncated data.
    """
    if isinstance(data, np.ndarray):
        buf = np.ascontiguousarray(data).view(np.uint8).reshape(-1)
        raw = buf.tobytes()
    else:
        raw = bytes(data)
        buf = np.frombuffer(raw, dtype=np.uint8)
    if len(raw) == 0:
        raise ImageReadError(name_for_errors, 'empty file (0 bytes)')
    size = declared_size(raw)
    if size is not None and size[0] * size[1] > _LIMITS['max_pixels']:
        raise ImageReadError(name_for_errors, f'declares {size[0]} x {size[1]} = {size[0] * size[1] / 1e6:.0f} '
                             f"megapixels, above the cap of {_LIMITS['max_pixels'] / 1e6:.0f} (decoding it would take "
                             f'about {size[0] * size[1] * 12 / 2**30:.1f} GiB as float32 RGB); raise the cap with '
                             'LOWLIGHT3D_MAX_IMAGE_PIXELS or --max_pixels if the file is genuine')
    try:
        img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    except cv2.error as err:
        raise ImageReadError(name_for_errors, f'OpenCV failed to decode it ({str(err).strip()})') from err
    if img is None or img.size == 0:
        raise ImageReadError(name_for_errors, _describe_undecodable(raw))
    if raw.startswith(_JPEG_SIGNATURE):
        img = np.ascontiguousarray(_apply_orientation(img, _jpeg_orientation(raw)))
    return img


def to_float_rgb(img, name_for_errors='<array>', alpha='drop', background=0.0):
    """Convert a native decoded array (see :func:`decode_image_array`) to float32 RGB in ``[0, 1]``.

    Args:
        img (np.ndarray): ``H x W`` or ``H x W x C`` (C in 1..4, BGR(A) order), uint8, uint16 or float.
        name_for_errors (str): Name used in error messages.
        alpha (str): ``'drop'`` (default) discards an alpha channel; ``'composite'`` blends the colour over
            ``background`` using the alpha channel.
        background (float): Background value in ``[0, 1]`` for ``alpha='composite'``.

    Returns:
        np.ndarray: float32 ``H x W x 3`` RGB in ``[0, 1]``.

    Raises:
        ImageReadError: For unsupported dtypes or channel counts.
        ValueError: For an unknown ``alpha`` mode.
    """
    if alpha not in ('drop', 'composite'):
        raise ValueError(f"alpha must be 'drop' or 'composite', got {alpha!r}")
    if img.dtype == np.uint8:
        out = img.astype(np.float32) / 255.
    elif img.dtype == np.uint16:
        out = img.astype(np.float32) / 65535.
    elif img.dtype in (np.float32, np.float64, np.float16):
        out = np.nan_to_num(img.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0)
        out = np.clip(out, 0.0, 1.0)
    else:
        raise ImageReadError(name_for_errors, f'unsupported pixel type {img.dtype} (expected 8/16-bit or float)')
    if out.ndim == 2:
        out = out[:, :, None]
    if out.ndim != 3:
        raise ImageReadError(name_for_errors, f'unsupported array shape {img.shape}')
    channels = out.shape[2]
    if channels in (2, 4):
        colour, alpha_ch = out[:, :, :channels - 1], out[:, :, channels - 1:]
        if alpha == 'composite':
            colour = colour * alpha_ch + float(background) * (1.0 - alpha_ch)
        out = colour
        channels -= 1
    if channels == 1:
        out = np.repeat(out, 3, axis=2)
    elif channels == 3:
        out = out[:, :, ::-1]  # BGR -> RGB
    else:
        raise ImageReadError(name_for_errors, f'unsupported number of channels: {img.shape[2]}')
    return np.ascontiguousarray(out, dtype=np.float32)


def read_image_bytes(path):
    """Read the raw bytes of an image file, raising :class:`ImageReadError` (naming it) when impossible.

    Args:
        path (str | os.PathLike): File path.

    Returns:
        bytes: File content.
    """
    path = os.fspath(path)
    if not osp.exists(path):
        raise ImageReadError(path, 'file does not exist')
    if osp.isdir(path):
        raise ImageReadError(path, 'is a folder, not a file')
    try:
        info = os.stat(path)  # follows links: what would be read
    except OSError as err:
        raise ImageReadError(path, f'cannot open the file ({err.strerror or err})') from err
    if not stat.S_ISREG(info.st_mode):
        kind = 'a FIFO' if stat.S_ISFIFO(info.st_mode) else 'a device' if (
            stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode)) else 'not a regular file'
        raise ImageReadError(path, f'is {kind} (or a link to one), not an image file: skipped unread')
    if info.st_size > _LIMITS['max_bytes']:
        raise ImageReadError(path, f"is {info.st_size / 2**20:.0f} MiB, above the cap of "
                             f"{_LIMITS['max_bytes'] / 2**20:.0f} MiB (LOWLIGHT3D_MAX_IMAGE_BYTES raises it)")
    try:
        with open(path, 'rb') as f:
            return f.read(_LIMITS['max_bytes'] + 1)
    except OSError as err:
        raise ImageReadError(path, f'cannot open the file ({err.strerror or err})') from err


def read_image(path_or_bytes, name_for_errors=None, alpha='drop', background=0.0):
    """Read an image file (or encoded bytes) as float32 ``H x W x 3`` RGB in ``[0, 1]``.

    Args:
        path_or_bytes (str | os.PathLike | bytes | bytearray | memoryview): A file path, or the encoded bytes.
        name_for_errors (str, optional): Name in error messages; defaults to the path (or ``'<bytes>'``).
        alpha (str): ``'drop'`` (default) or ``'composite'``; see :func:`to_float_rgb`.
        background (float): Background for ``alpha='composite'``.

    Returns:
        np.ndarray: float32 ``H x W x 3`` RGB in ``[0, 1]``.

    Raises:
        ImageReadError: The file is missing, empty, not an image, truncated or of an unsupported kind.
    """
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        data = path_or_bytes
        name = name_for_errors or '<bytes>'
    else:
        name = name_for_errors or os.fspath(path_or_bytes)
        try:
            data = read_image_bytes(path_or_bytes)
        except ImageReadError as err:
            raise ImageReadError(name, err.reason) from None
    img = decode_image_array(data, name)
    return to_float_rgb(img, name, alpha=alpha, background=background)


def _to_numpy_hwc(img):
    """Accept a numpy array (HxW, HxWxC) or a torch tensor (CxHxW or 1xCxHxW) and return a numpy HxW[xC]."""
    if hasattr(img, 'detach'):  # torch tensor, without importing torch here
        arr = img.detach().cpu().float().numpy()
        if arr.ndim == 4:
            if arr.shape[0] != 1:
                raise ValueError(f'write_image takes one image; got a batch of shape {tuple(arr.shape)}')
            arr = arr[0]
        if arr.ndim == 3:
            arr = arr.transpose(1, 2, 0)
        return arr
    return np.asarray(img)


def write_image(path, img, bit_depth=8, params=None):
    """Write an RGB image to ``path`` (format from the extension), creating parent folders.

    Args:
        path (str | os.PathLike): Output file; ``.png``, ``.jpg``, ``.bmp``, ``.tif`` ... .
        img (np.ndarray | torch.Tensor): RGB(A) or gray image. numpy: ``H x W``, ``H x W x 1/3/4``; torch:
            ``C x H x W`` or ``1 x C x H x W``.  Floats are taken as ``[0, 1]`` (clipped); uint8/uint16 are
            written as they are.
        bit_depth (int): 8 or 16, used when ``img`` is float (16 only for PNG/TIFF).
        params (list[int], optional): Extra ``cv2.imwrite`` parameters, e.g.
            ``[cv2.IMWRITE_JPEG_QUALITY, 95]``.

    Returns:
        str: The path written.

    Raises:
        ValueError: Unsupported shape or bit depth.
        OSError: OpenCV could not write the file.
    """
    path = os.fspath(path)
    arr = _to_numpy_hwc(img)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise ValueError(f'write_image: unsupported image shape {arr.shape} for {path}')
    if np.issubdtype(arr.dtype, np.floating):
        if bit_depth not in (8, 16):
            raise ValueError(f'bit_depth must be 8 or 16, got {bit_depth}')
        scale, dtype = (255., np.uint8) if bit_depth == 8 else (65535., np.uint16)
        arr = np.round(np.clip(np.nan_to_num(arr), 0.0, 1.0) * scale).astype(dtype)
    elif arr.dtype not in (np.uint8, np.uint16):
        raise ValueError(f'write_image: unsupported dtype {arr.dtype} for {path}')
    if arr.ndim == 3:
        arr = cv2.cvtColor(np.ascontiguousarray(arr), cv2.COLOR_RGB2BGR if arr.shape[2] == 3 else cv2.COLOR_RGBA2BGRA)
    parent = osp.dirname(osp.abspath(path))
    os.makedirs(parent, exist_ok=True)
    try:
        ok = cv2.imwrite(path, arr, list(params or []))
    except cv2.error as err:
        raise OSError(f"OpenCV could not write image '{path}': {str(err).strip()}") from err
    if not ok:
        raise OSError(f"OpenCV could not write image '{path}' (unsupported extension or unwritable folder)")
    return path
