"""CPU throughput of the CelebV-Low pipeline on a generated video of realistic size.

Writes a ``--size`` x ``--size`` MP4 of ``--frames`` dark frames (a face image, darkened to a mean brightness of
about 0.05, moving slowly, with sensor-like noise) into a temporary folder, then runs the full pipeline on every
frame (``frame_step`` 1): brightness test, detection on a brightened copy, alignment, quality checks, duplicate
check and writing.  Prints frames per second, and the decode-only rate for comparison.

Usage::

    python scripts/data_preparation/benchmark_celebv_low.py [--face FACE.png] [--size 512] [--frames 300]

Without ``--face`` the astronaut photograph bundled with scikit-image is used.
"""
import argparse
import os
import os.path as osp
import sys
import tempfile
import time


def _face_image(path):
    """The face picture as float32 RGB in [0, 1]."""
    import numpy as np
    if path:
        from lowlight3d.utils.img_io import read_image
        return read_image(path)
    try:
        from skimage.data import astronaut
    except ImportError:
        raise SystemExit('error: scikit-image is not installed; pass --face IMAGE') from None
    return astronaut().astype(np.float32) / 255.0


def write_benchmark_video(path, face, size=512, frames=300, fps=25, seed=0):
    """Write the dark test video.

    Args:
        path (str): Output ``.mp4``.
        face (np.ndarray): Face picture (float32 RGB in [0, 1]).
        size (int): Frame side.
        frames (int): Number of frames.
        fps (int): Frame rate.
        seed (int): Noise seed.
    """
    import cv2
    import numpy as np
    rng = np.random.default_rng(seed)
    base = cv2.resize(face, (int(size * 0.8), int(size * 0.8)), interpolation=cv2.INTER_AREA)
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*'mp4v'), fps, (size, size))
    if not writer.isOpened():
        raise RuntimeError('OpenCV cannot write MP4 (mp4v) files here')
    pad = size - base.shape[0]
    for i in range(frames):
        dx = int(round(pad / 2 + pad / 2 * np.sin(i / 20.0)))
        frame = np.full((size, size, 3), 0.01, np.float32)
        frame[pad // 2:pad // 2 + base.shape[0], dx:dx + base.shape[1]] = base
        frame = np.clip(frame * 0.12 + rng.normal(0, 0.006, frame.shape), 0, 1)
        writer.write(cv2.cvtColor(np.round(frame * 255).astype(np.uint8), cv2.COLOR_RGB2BGR))
    writer.release()


def main(argv=None):
    """Run the benchmark and print the rates.

    Args:
        argv (list[str], optional): Arguments.

    Returns:
        int: Exit status.
    """
    parser = argparse.ArgumentParser(description='Frames per second of the CelebV-Low pipeline on CPU.')
    parser.add_argument('--face', default=None, help='face picture (default: scikit-image astronaut)')
    parser.add_argument('--size', type=int, default=512, help='frame side (default 512)')
    parser.add_argument('--frames', type=int, default=300, help='frames (default 300)')
    parser.add_argument('--detector', choices=('auto', 'retinaface', 'haar'), default='haar')
    parser.add_argument('--criterion', choices=('brightness', 'scene'), default='brightness')
    args = parser.parse_args(argv)

    import lowlight3d  # noqa: F401
    from lowlight3d.data.preparation.celebv_low_preparation import prepare_celebv_low
    from lowlight3d.data.preparation.video_frames import iter_video_frames
    with tempfile.TemporaryDirectory() as tmp:
        video_dir = osp.join(tmp, 'videos')
        os.makedirs(video_dir)
        video = osp.join(video_dir, 'bench.mp4')
        write_benchmark_video(video, _face_image(args.face), args.size, args.frames)
        t0 = time.perf_counter()
        n_decoded = sum(1 for _ in iter_video_frames(video))
        decode_s = time.perf_counter() - t0
        summary = prepare_celebv_low(video_dir, osp.join(tmp, 'out'), criterion=args.criterion,
                                     detector=args.detector, frame_step=1, max_frames_per_video=None,
                                     num_train=1, num_test=1, allow_fewer=True, progress=False, log=None)
    fps = summary['frames_per_second_this_run']
    print(f'video: {args.frames} frames of {args.size}x{args.size}; {summary["detector"]}')
    print(f'decode only: {n_decoded / decode_s:.1f} frames/s')
    print(f'full pipeline: {summary["frames_examined"]} frames in {summary["seconds_this_run"]:.2f} s = '
          f'{fps:.1f} frames/s (one process, CPU)')
    print(f'decisions: {summary["reasons"]}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
