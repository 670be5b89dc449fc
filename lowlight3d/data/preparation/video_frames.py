"""Reading sampled frames of a video with OpenCV, with clear errors for unreadable files.

:func:`iter_video_frames` decodes every ``frame_step``-th frame (the frames in between are only grabbed, not
converted) up to ``max_frames``, as float32 RGB in ``[0, 1]``.  A file that cannot be opened, has no decodable
frame, or breaks off in the middle raises :class:`VideoReadError` naming the file and the reason, so a caller
processing thousands of clips can record it and go on.
"""
import os
import os.path as osp

import cv2
import numpy as np

__all__ = ['VIDEO_EXTENSIONS', 'VideoReadError', 'scan_videos', 'iter_video_frames']

#: File extensions treated as videos (lower case, with the dot).
VIDEO_EXTENSIONS = ('.mp4', '.mkv', '.webm', '.avi', '.mov', '.m4v')


class VideoReadError(ValueError):
    """A video that cannot be read: missing, empty, not a video, or truncated.

    Args:
        path (str): The file.
        reason (str): What is wrong.
    """

    def __init__(self, path, reason):
        self.path, self.reason = str(path), str(reason)
        super().__init__(f"Cannot read video '{self.path}': {self.reason}")

    def __reduce__(self):
        """Keep both arguments when pickled."""
        return (type(self), (self.path, self.reason))


def scan_videos(folder, extensions=VIDEO_EXTENSIONS):
    """Video files under ``folder`` (recursively), as sorted relative paths with ``/`` separators.

    Args:
        folder (str): Root folder.
        extensions (Sequence[str]): Accepted extensions (case-insensitive, with the dot).

    Returns:
        list[str]: Relative paths.
    """
    if not osp.isdir(folder):
        raise FileNotFoundError(f"Video folder '{folder}' does not exist or is not a folder")
    exts = tuple(e.lower() for e in extensions)
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith('.'))
        for fname in filenames:
            if not fname.startswith('.') and osp.splitext(fname)[1].lower() in exts:
                found.append(osp.relpath(osp.join(dirpath, fname), folder).replace(os.sep, '/'))
    return sorted(found)


def _open(path):
    """An opened ``cv2.VideoCapture`` or :class:`VideoReadError`."""
    if not osp.isfile(path):
        raise VideoReadError(path, 'file does not exist')
    if osp.getsize(path) == 0:
        raise VideoReadError(path, 'empty file (0 bytes)')
    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        cap.release()
        raise VideoReadError(path, 'OpenCV cannot open it (not a video, unsupported codec or corrupt container)')
    return cap


def iter_video_frames(path, frame_step=1, max_frames=None, start=0):
    """Yield ``(frame_index, rgb_float_frame)`` for every ``frame_step``-th frame from ``start``.

    Args:
        path (str): Video file.
        frame_step (int): Keep one frame in ``frame_step`` (1 = all).
        max_frames (int, optional): Stop after this many yielded frames.
        start (int): Index of the first kept frame.

    Yields:
        tuple[int, np.ndarray]: The frame index in the video and the frame (float32 ``H x W x 3`` RGB in ``[0, 1]``).

    Raises:
        VideoReadError: The file cannot be opened or holds no decodable frame.
    """
    frame_step = int(frame_step)
    if frame_step < 1:
        raise ValueError(f'frame_step must be >= 1, got {frame_step}')
    cap = _open(path)
    try:
        index, yielded = 0, 0
        while max_frames is None or yielded < max_frames:
            keep = index >= start and (index - start) % frame_step == 0
            if keep:
                ok, frame = cap.read()
            else:
                ok, frame = cap.grab(), None
            if not ok:
                break
            if keep:
                if frame is None or frame.ndim != 3 or frame.shape[2] != 3:
                    raise VideoReadError(path, f'frame {index} decoded to an unexpected array')
                yield index, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
                yielded += 1
            index += 1
        if index == 0:
            raise VideoReadError(path, 'no decodable frame (corrupt or empty stream)')
    finally:
        cap.release()
