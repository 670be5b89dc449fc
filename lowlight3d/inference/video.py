"""Streamed video enhancement with PyAV (FFmpeg ships in its wheel): frames in, frames out, nothing on disk between.

:func:`enhance_video` decodes one frame at a time, hands it to ``frame_fn`` and encodes the result at the input's
frame rate (the average rate of the video stream, as an exact fraction); the audio stream, when the container has
one, is copied packet by packet (no re-encoding), so it stays in sync.  The output container is the input's kind
(``.mp4`` -> ``.mp4`` ...); video is H.264 (``libx264``; VP9 for ``.webm``).  H.264 with 4:2:0 chroma needs even
sides: an odd last row/column is repeated and the output is one pixel larger there (reported).
"""
import os.path as osp
from fractions import Fraction

import numpy as np

from lowlight3d.utils.checkpoint import atomic_write

__all__ = ['VIDEO_EXTENSIONS', 'is_video_file', 'video_info', 'enhance_video']

VIDEO_EXTENSIONS = ('.mp4', '.mov', '.avi', '.mkv', '.webm', '.m4v')


def is_video_file(path):
    """Whether ``path`` has a video extension."""
    return osp.splitext(str(path))[1].lower() in VIDEO_EXTENSIONS


def video_info(path):
    """``{'fps': Fraction, 'frames': int, 'width', 'height', 'audio': codec name or None}`` of a video file.

    ``frames`` is counted by decoding (container frame counts are often missing or wrong).
    """
    import av
    with av.open(path) as container:
        stream = container.streams.video[0]
        fps = stream.average_rate or stream.guessed_rate
        audio = container.streams.audio[0].codec_context.name if container.streams.audio else None
        frames = sum(1 for _ in container.decode(stream))
        return {'fps': Fraction(fps), 'frames': frames, 'width': stream.codec_context.width,
                'height': stream.codec_context.height, 'audio': audio}


def _even(img):
    """Repeat the last row/column of an ``H x W x 3`` array when a side is odd."""
    h, w = img.shape[:2]
    if h % 2:
        img = np.concatenate([img, img[-1:]], 0)
    if w % 2:
        img = np.concatenate([img, img[:, -1:]], 1)
    return img


def enhance_video(in_path, out_path, frame_fn, crf=18, progress=None):
    """Enhance every frame of a video, keeping its frame rate and copying its audio.

    Args:
        in_path (str): Input video. out_path (str): Output video (its folder is created).
        frame_fn (callable): ``frame_fn(rgb, index) -> rgb`` on ``H x W x 3`` float32 arrays in ``[0, 1]``.
        crf (int): H.264 quality (lower = better; 18 is visually lossless).
        progress (callable, optional): Called with the number of frames done after each frame.

    Returns:
        dict: ``frames`` written, ``fps`` (Fraction), ``audio`` (copied codec or None), ``size`` ``(w, h)``.
    """
    import av
    stats = {}

    def encode(tmp):
        done, audio_name, size = 0, None, None
        with av.open(in_path) as source, av.open(tmp, mode='w') as target:
            in_video = source.streams.video[0]
            fps = Fraction(in_video.average_rate or in_video.guessed_rate or 25)
            in_audio = source.streams.audio[0] if source.streams.audio else None
            out_audio = None
            if in_audio is not None:
                out_audio = target.add_stream_from_template(in_audio)
                audio_name = in_audio.codec_context.name
            codec = 'libvpx-vp9' if out_path.lower().endswith('.webm') else 'libx264'
            # every output stream exists before the first packet is muxed (the header is written then)
            size = (in_video.codec_context.width + in_video.codec_context.width % 2,
                    in_video.codec_context.height + in_video.codec_context.height % 2)
            out_video = target.add_stream(codec, rate=fps)
            out_video.width, out_video.height = size
            out_video.pix_fmt = 'yuv420p'
            out_video.options = {'crf': str(crf)}
            streams = [in_video] + ([in_audio] if in_audio is not None else [])
            for packet in source.demux(*streams):
                if packet.stream.type == 'audio':
                    if packet.dts is None:
                        continue
                    packet.stream = out_audio
                    target.mux(packet)
                    continue
                for frame in packet.decode():
                    rgb = frame.to_ndarray(format='rgb24').astype(np.float32) / 255.0
                    out = _even(np.clip(frame_fn(rgb, done), 0.0, 1.0))
                    if (out.shape[1], out.shape[0]) != size:
                        raise ValueError(f'{in_path}: frame {done} came out {out.shape[1]}x{out.shape[0]}, expected '
                                         f'{size[0]}x{size[1]} (enhancement must keep the frame size)')
                    new = av.VideoFrame.from_ndarray(np.round(out * 255.0).astype(np.uint8), format='rgb24')
                    new.pts = done
                    new.time_base = Fraction(1) / fps
                    for out_packet in out_video.encode(new):
                        target.mux(out_packet)
                    done += 1
                    if progress is not None:
                        progress(done)
            for out_packet in out_video.encode():
                target.mux(out_packet)
        stats.update(frames=done, fps=fps, audio=audio_name, size=size)

    atomic_write(out_path, encode, suffix=osp.splitext(out_path)[1])  # the container follows the extension
    return stats
