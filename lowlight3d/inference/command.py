"""``python inference_lowlight3d.py -i <file|folder|video> -o <folder> --model model.pth``: enhance your own photos.

Outputs, in GFPGAN's layout (``<idx>`` = face number, two digits; ``_<suffix>`` when ``--suffix`` is given)::

    <out>/cropped_faces/<name>_<idx>.png              aligned input faces
    <out>/restored_faces/<name>_<idx>[_<suffix>].png  enhanced faces
    <out>/cmp/<name>_<idx>.png                        input face | enhanced face
    <out>/cmp/<name>_whole.<ext>                      input photo | enhanced photo (``--compare``; face mode:
                                                      input | background only | enhanced photo)
    <out>/restored_imgs/<name>[_<suffix>].<ext>       the whole enhanced photo
    <out>/restored_videos/<name>[_<suffix>].<video ext>

Modes: face mode (default; :class:`~lowlight3d.inference.face_enhancer.FaceEnhancer`), ``--aligned`` (inputs are
aligned faces), ``--no_face`` (the method on the whole photo only, tiled with ``--tile``).  Unreadable files are
reported by name and skipped; the run goes on and the summary lists them.  The output folder is printed at the end.

Face mode logs one line per photo: its faces, the time it took, and per face whether the face model's result was
pasted, blended or replaced by the background and why (:mod:`lowlight3d.face.trust`; ``--no_trust`` pastes every
face); with ``--compare`` also the seam of each pasted face against the background-only result, in 8-bit levels
(:mod:`lowlight3d.face.seam`).  ``--paste gain`` pastes the whole crop square with colour/exposure gains in the
feather band only (:func:`~lowlight3d.face.paste_back.paste_face` ``match='gain'``).
"""
import argparse
import os
import os.path as osp
import time

import numpy as np

from lowlight3d.utils.img_io import (
    IMAGE_EXTENSIONS,
    ImageReadError,
    decode_image_array,
    read_image,
    set_read_limits,
    write_image,
)

__all__ = ['parse_inference_args', 'list_inputs', 'check_outputs', 'build_enhancers', 'inference_main', 'main',
           'NothingEnhancedError']


def parse_inference_args(argv=None):
    """Command-line arguments of ``inference_lowlight3d.py``."""
    from lowlight3d.face.detection import DETECTOR_CHOICES
    from lowlight3d.inference.devices import DEVICE_CHOICES, PRECISION_CHOICES
    from lowlight3d.inference.image_enhancer import GRAY_CHOICES
    p = argparse.ArgumentParser(description='Enhance dark photos, folders of photos and videos (face-aware).')
    p.add_argument('-i', '--input', required=True, help='An image, a video or a folder of them.')
    p.add_argument('-o', '--output', default='results/inference', help='Output folder (default results/inference).')
    p.add_argument('--model', default=None, help='Model file from scripts/export_model.py.')
    p.add_argument('-opt', '--opt', default=None, help='Option file instead of --model (with --weights).')
    p.add_argument('--weights', default=None, help='net_g_*.pth for -opt (default: the file\'s path entry).')
    p.add_argument('--bg_model', default='gamma',
                   help="Background of face mode: gamma (default, non-learned), none, face (the face model on the "
                        "whole photo) or a model file.")
    p.add_argument('--aligned', action='store_true', help='Inputs are aligned faces.')
    p.add_argument('--only_center_face', action='store_true', help='Enhance only the face nearest the centre.')
    p.add_argument('--no_face', action='store_true', help='No face detection: the method on the whole photo.')
    p.add_argument('--detector', default='auto', choices=DETECTOR_CHOICES,
                   help='Face detector (auto: RetinaFace when its weights resolve, else the dlib + mediapipe cascade, '
                        'else dlib, mediapipe, Haar).')
    p.add_argument('--tile', type=int, default=0, help='Tile side for whole photos (0: no tiling).')
    p.add_argument('--tile_pad', type=int, default=32, help='Context around each tile.')
    p.add_argument('--device', default='auto', choices=DEVICE_CHOICES)
    p.add_argument('--half', action='store_true', help='fp16 on CUDA, bf16 on CPUs with native bf16, else fp32 '
                   '(same as --precision half).')
    p.add_argument('--precision', default='auto', choices=PRECISION_CHOICES,
                   help='auto (default): bf16 on CPUs with native bf16, else fp32; fp32; half (as --half).')
    p.add_argument('--prior_steps', type=int, default=None, help='Sampling steps of the 3D prior (ours).')
    p.add_argument('--prior_flip', default='file', choices=['file', 'on', 'off'],
                   help="Flip-consistent prior (2 samples): the model file's setting (default), on or off. "
                        '--prior_steps 4 --prior_flip off: 1.7 s per 256 px face at paper scale on 2 CPU threads.')
    p.add_argument('--ext', default='auto', help='Output image extension: auto (the input\'s), png, jpg ...')
    p.add_argument('--suffix', default=None, help='Suffix of the enhanced files.')
    p.add_argument('--gray', default='auto', choices=GRAY_CHOICES,
                   help='auto/keep: a grayscale input stays grayscale; colour: the network\'s result as it is.')
    p.add_argument('--compare', action='store_true',
                   help='Also write cmp/<name>_whole.<ext>: the input photo and its result side by side.')
    p.add_argument('--paste', default='seamless', choices=['seamless', 'gain'],
                   help='Face paste-back match: seamless (default: exposure, contrast, colour and low frequencies '
                        'matched to the background, face ellipse) or gain (band gains only, whole crop square).')
    p.add_argument('--no_trust', action='store_true',
                   help='Paste every face model result, even one much darker or flatter than the background.')
    p.add_argument('--no_pbar', action='store_true', help='No progress bar.')
    p.add_argument('--max_pixels', type=int, default=None,
                   help='Refuse images whose header declares more pixels (default 150e6, or '
                        'LOWLIGHT3D_MAX_IMAGE_PIXELS); such a file is skipped by name.')
    return p.parse_args(argv)


def list_inputs(path):
    """Files to process: one file, or every image/video file of a folder (sorted, recursive)."""
    from lowlight3d.inference.video import VIDEO_EXTENSIONS
    if osp.isfile(path):
        return [path]
    if not osp.isdir(path):
        raise FileNotFoundError(f'-i {path}: no such file or folder')
    extensions = tuple(IMAGE_EXTENSIONS) + tuple(VIDEO_EXTENSIONS)
    found = []
    for root, _, files in os.walk(path):
        for name in files:
            if name.lower().endswith(extensions):
                found.append(osp.join(root, name))
    return sorted(found)


def build_enhancers(args):
    """``(FaceEnhancer or None, ImageEnhancer, report lines)`` for parsed arguments."""
    from lowlight3d.inference.background import build_background
    from lowlight3d.inference.devices import precision_dtype, resolve_device
    from lowlight3d.inference.face_enhancer import FaceEnhancer
    from lowlight3d.inference.image_enhancer import ImageEnhancer
    from lowlight3d.inference.loaded_model import load_model
    device = resolve_device(args.device)
    prior_flip = {'file': None, 'on': True, 'off': False}[args.prior_flip]
    model = load_model(args.model, args.opt, args.weights, device=device, prior_steps=args.prior_steps,
                       prior_flip=prior_flip)
    dtype, precision = precision_dtype(device, 'half' if args.half else args.precision)
    model.autocast_dtype = dtype
    image = ImageEnhancer(model, args.tile, args.tile_pad, args.gray)
    lines = [f'model: {image.describe()}', f'device: {device}, {precision}'] + image.notes
    if args.no_face:
        return None, image, lines
    detector = None
    if not args.aligned:
        from lowlight3d.face.detection import OFFLINE_DETECTORS, build_face_detector
        detector, report = build_face_detector(args.detector, fallbacks=OFFLINE_DETECTORS, device=str(device))
        lines.append(report)
    background = build_background(args.bg_model, image, device, args.tile, args.tile_pad, args.gray,
                                  args.prior_steps, prior_flip)
    if hasattr(background, 'model'):
        background.model.autocast_dtype = dtype
    lines.append(f'background: {background.describe()}; faces aligned at {model.face_size} px')
    face = FaceEnhancer(image, background, detector, args.only_center_face, match=args.paste, trust=not args.no_trust)
    lines.append('faces: every face model result is pasted (--no_trust)' if args.no_trust else
                 'faces: each weighed against the background\'s rendering of it (much darker, flat, no longer '
                 'detected or another person: blended or background kept, reason logged per face)')
    return face, image, lines


def _is_single_channel(path):
    """Whether an image file stores one channel (gray), to write gray results the same way."""
    try:
        with open(path, 'rb') as f:
            arr = decode_image_array(f.read(), path)
        return arr.ndim == 2 or arr.shape[2] in (1, 2)
    except (OSError, ImageReadError):
        return False


def _output_image(img, gray_file):
    """A gray result of a 1-channel input file as one channel (``--gray auto``)."""
    return img[..., 0] if gray_file else img


def check_outputs(args, inputs):
    """Refuse, before any work, a run whose outputs could overwrite or re-read its inputs.

    * ``-o`` and ``-i`` must not overlap: an output folder inside the input folder would be enhanced again by the
      next run, an input folder inside the output folder (``-i X/restored_imgs -o X``) would be overwritten;
    * two inputs must not give one output file (``a.jpg`` and ``a.png`` with ``--ext png``).

    Raises:
        ValueError: Naming the clash and how to avoid it.
    """
    from lowlight3d.inference.video import is_video_file
    src, out = osp.realpath(args.input), osp.realpath(args.output)
    if args.ext != 'auto' and f".{args.ext.lstrip('.').lower()}" not in IMAGE_EXTENSIONS:
        raise ValueError(f"--ext {args.ext}: not an image extension this toolkit writes; use auto or one of "
                         f"{', '.join(e.lstrip('.') for e in IMAGE_EXTENSIONS)}")
    if osp.exists(out) and not osp.isdir(out):
        raise ValueError(f'-o {args.output} is a file, not a folder: give the folder the results go to')

    def inside(a, b):
        return a == b or a.startswith(b.rstrip(os.sep) + os.sep)
    if osp.isdir(src) and (inside(out, src) or inside(src, out)):
        raise ValueError(f'-o {args.output} and -i {args.input} overlap: the results would '
                         f"{'be enhanced again by the next run' if inside(out, src) else 'overwrite the inputs'}. "
                         'Choose an output folder outside the input folder (and not above it).')
    if osp.isfile(src) and inside(src, out):
        raise ValueError(f'-i {args.input} lies inside the output folder -o {args.output}: a result could overwrite '
                         'it. Choose an output folder that does not hold the input.')
    seen = {}
    for path in inputs:
        if is_video_file(path):
            continue
        ext = _output_ext(path, args.ext).lower()
        key = (_stem(path, args.input), ext)
        if key in seen:
            raise ValueError(f'{seen[key]} and {path} would both be written as {key[0]}.{ext} (--ext {args.ext}): '
                             'rename one, or use --ext auto to keep each input\'s extension.')
        seen[key] = path


def _output_ext(path, ext):
    """Extension (without the dot) of the result of image ``path`` under ``--ext`` (``auto``: the input's)."""
    return osp.splitext(path)[1][1:].lower() if ext == 'auto' else ext.lstrip('.')


def _stem(path, root):
    """Output name of an input: its path below the input folder, with ``/`` as ``_``."""
    rel = osp.relpath(path, root) if osp.isdir(root) else osp.basename(path)
    return osp.splitext(rel)[0].replace(os.sep, '_')


def _face_report(stem, res, seconds, compare):
    """The log line of one photo in face mode: faces, time, per face the trust verdict (and seam with --compare)."""
    from lowlight3d.face.seam import paste_seam
    parts = [f'{stem}: {len(res.cropped_faces)} face(s), {seconds:.2f} s']
    seams, pasted = [], iter(res.pastes)
    for i, verdict in enumerate(res.trust):
        text = f'face {i:02d}: {verdict.reason}'
        if compare and verdict.weight > 0 and res.background is not None:
            seam = paste_seam(res.image, res.background, next(pasted))
            seams.append(seam)
            text += f'; {seam.describe()}'
        parts.append(text)
    return '; '.join(parts), seams


def _process_image(path, stem, args, face, image, out, ext, log=print, summary=None):
    """Enhance one photo and write its outputs; returns the number of faces."""
    t0 = time.time()
    img = read_image(path)
    gray_file = args.gray == 'auto' and _is_single_channel(path)
    tail = f'_{args.suffix}' if args.suffix else ''
    if face is None:
        result = image.enhance(img, stem)
        write_image(osp.join(out, 'restored_imgs', f'{stem}{tail}.{ext}'), _output_image(result, gray_file))
        if args.compare:
            write_image(osp.join(out, 'cmp', f'{stem}_whole.{ext}'), np.concatenate([img, result], 1))
        return 0
    res = face.enhance(img, has_aligned=args.aligned, name=stem)
    for i, (crop, restored) in enumerate(zip(res.cropped_faces, res.restored_faces)):
        write_image(osp.join(out, 'cropped_faces', f'{stem}_{i:02d}.png'), crop)
        write_image(osp.join(out, 'restored_faces', f'{stem}_{i:02d}{tail}.png'), restored)
        write_image(osp.join(out, 'cmp', f'{stem}_{i:02d}.png'), np.concatenate([crop, restored], 1))
    if res.image is not None and not args.aligned:
        write_image(osp.join(out, 'restored_imgs', f'{stem}{tail}.{ext}'), _output_image(res.image, gray_file))
        if args.compare:
            panels = [img] + ([res.background] if res.background is not None else []) + [res.image]
            write_image(osp.join(out, 'cmp', f'{stem}_whole.{ext}'), np.concatenate(panels, 1))
        line, seams = _face_report(stem, res, time.time() - t0, args.compare)
        log(line)
        if summary is not None:
            summary.setdefault('photos', []).append({'name': stem, 'seconds': round(time.time() - t0, 3),
                                                     'faces': [(v.action, v.reason) for v in res.trust],
                                                     'seams': [vars(s) for s in seams]})
    return len(res.cropped_faces)


def _process_video(path, stem, args, face, image, out):
    """Enhance one video (streamed); returns the :func:`~lowlight3d.inference.video.enhance_video` summary."""
    from lowlight3d.face.tracking import LandmarkSmoother
    from lowlight3d.inference.video import enhance_video
    tail = f'_{args.suffix}' if args.suffix else ''
    target = osp.join(out, 'restored_videos', f'{stem}{tail}{osp.splitext(path)[1].lower()}')
    smoother = LandmarkSmoother()

    def frame_fn(rgb, index):
        """One frame: whole-frame enhancement, or face mode with landmarks smoothed over the frames."""
        if face is None or args.aligned:
            return image.enhance(rgb, f'{stem}_{index:06d}')
        found = [lm for lm, _ in face.detect(rgb)]
        return face.enhance(rgb, name=f'{stem}_{index:06d}', landmarks=smoother.update(found)).image

    return {**enhance_video(path, target, frame_fn), 'path': target}


def _unreadable_errors():
    """Exception types meaning "this input file cannot be read" (image decoding, I/O, FFmpeg)."""
    try:
        import av
        return (ImageReadError, OSError, av.error.FFmpegError)
    except ImportError:
        return (ImageReadError, OSError)


_UNREADABLE = _unreadable_errors()


def inference_main(argv=None):
    """Run the command (see the module docstring); returns a summary dict."""
    from lowlight3d.inference.video import is_video_file
    args = parse_inference_args(argv)
    if args.max_pixels is not None:
        set_read_limits(max_pixels=args.max_pixels)
    inputs = list_inputs(args.input)
    if not inputs:
        raise FileNotFoundError(f'-i {args.input}: no image or video files found (extensions '
                                f'{", ".join(IMAGE_EXTENSIONS)} and videos)')
    check_outputs(args, inputs)
    face, image, lines = build_enhancers(args)
    for line in lines:
        print(line, flush=True)
    out = osp.abspath(args.output)
    os.makedirs(out, exist_ok=True)
    summary = {'images': 0, 'videos': [], 'faces': 0, 'skipped': [], 'output': out}
    bar = None
    if not args.no_pbar:
        from tqdm import tqdm
        bar = tqdm(total=len(inputs), unit='file', desc='enhancing')
    t0 = time.time()
    for path in inputs:
        stem = _stem(path, args.input)
        try:
            if is_video_file(path):
                summary['videos'].append(_process_video(path, stem, args, face, image, out))
            else:
                ext = _output_ext(path, args.ext)
                summary['faces'] += _process_image(path, stem, args, face, image, out, ext,
                                                   bar.write if bar is not None else print, summary)
                summary['images'] += 1
        except _UNREADABLE as err:  # an unreadable image or video: reported by name, the run goes on
            reason = str(err).splitlines()[0]
            summary['skipped'].append({'file': path, 'reason': reason})
            message = f'skipped {path}: {reason}'
            (bar.write if bar is not None else print)(message)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    summary['seconds'] = round(time.time() - t0, 2)
    print(f"{summary['images']} image(s), {len(summary['videos'])} video(s), {summary['faces']} face(s) in "
          f"{summary['seconds']} s", flush=True)
    seams = [s['luma'] for p in summary.get('photos', []) for s in p['seams'] if s['sectors']]
    if seams:
        print(f'seam across the paste boundary (luma, 8-bit levels, against the background-only result): mean '
              f'{np.mean(seams):.1f}, max {np.max(seams):.1f} over {len(seams)} pasted face(s)', flush=True)
    if summary['skipped']:
        print(f"skipped {len(summary['skipped'])} file(s): " + ', '.join(s['file'] for s in summary['skipped']),
              flush=True)
    print(f'Results are in {out}', flush=True)
    if summary['skipped'] and not summary['images'] and not summary['videos']:
        raise NothingEnhancedError(f"every input was skipped ({len(summary['skipped'])} file(s), reasons above): "
                                   'nothing was enhanced')
    return summary


class NothingEnhancedError(RuntimeError):
    """Every input of a run was skipped (the command exits with status 1)."""


def main(argv=None):
    """Entry point of ``inference_lowlight3d.py``: :func:`inference_main`, exit status 1 (with a one-line reason,
    no traceback) when every input was skipped or an argument is refused."""
    import sys
    try:
        return inference_main(argv)
    except (NothingEnhancedError, ValueError, FileNotFoundError) as err:  # ModelFileError is a ValueError
        print(f'inference_lowlight3d.py: error: {err}', file=sys.stderr, flush=True)
        sys.exit(1)
