"""The face-mode figure of ``docs/inference.md``: a generated dark scene, its gamma background, face mode's result.

Example::

    python scripts/face_mode_figure.py --model m.pth            # writes docs/figures/face_mode.jpg
    python scripts/face_mode_figure.py                          # exports the demo model first (make demo)

The scene is generated, never a photo: two faces of the built-in synthetic demo set (``datasets/demo_faces/test``,
``make demo`` makes it; each face's own mask cuts it out) stand in front of a generated room (a lit window, a wall
with shelves, a table), the whole is darkened to a mean luma of about 0.05 with photon and read noise and 8-bit
quantisation, then enhanced by ``inference_lowlight3d.py``'s face mode.  The figure has three panels with labels:
the dark input, the background-only result (the gamma curve), and face mode (faces detected, enhanced by the model,
weighed against the background and pasted back seamlessly).  The per-face verdicts, seams and the time are printed.
"""
import argparse
import os
import os.path as osp
import sys
import tempfile
import time

import cv2
import numpy as np

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import lowlight3d  # noqa: E402,F401  (compat patches + registrations)


def parse_args(argv=None):
    """Command-line arguments."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--model', default=None, help='Model file (default: export options/demo/test_LowLight3D_demo.yml).')
    p.add_argument('--opt', default='options/demo/test_LowLight3D_demo.yml',
                   help='Option file exported when --model is not given.')
    p.add_argument('--faces', default='datasets/demo_faces/test', help='Folder of demo faces (gt/ and mask/).')
    p.add_argument('--out', default='docs/figures/face_mode.jpg')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--scale', type=float, default=0.75, help='Size of the written figure (keeps the file small).')
    return p.parse_args(argv)


def generated_scene(faces_dir, seed=0, size=(400, 640)):
    """A generated well-lit scene ``H x W x 3`` (float32 RGB in ``[0, 1]``) with two demo faces in it.

    Raises:
        FileNotFoundError: The demo faces are missing (run ``make demo`` or ``python scripts/make_demo_data.py``).
    """
    from lowlight3d.utils.img_io import read_image
    h, w = size
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    scene = np.stack([0.55 + 0.1 * xx / w, 0.5 + 0.05 * yy / h, 0.42 + 0.0 * xx], axis=2)  # warm wall
    scene[40:200, 470:610] = [0.92, 0.95, 1.0]  # a lit window
    scene[115:125, 470:610] = scene[40:200, 535:545] = [0.35, 0.3, 0.25]  # its frame
    for top in (70, 140):  # shelves with books
        scene[top:top + 6, 20:200] = [0.4, 0.28, 0.18]
        for i, x in enumerate(range(30, 190, 14)):
            colour = [[0.6, 0.15, 0.1], [0.15, 0.3, 0.55], [0.2, 0.45, 0.2], [0.7, 0.6, 0.2]][i % 4]
            scene[top - 40 + (i % 3) * 4:top, x:x + 11] = colour
    scene[330:, :] = [0.45, 0.3, 0.2]  # a table
    rng = np.random.default_rng(seed)
    scene = np.clip(scene + 0.01 * cv2.GaussianBlur(rng.standard_normal((h, w, 3)).astype(np.float32), (0, 0), 2),
                    0, 1)
    for index, (x, y, side) in zip((0, 2), ((150, 110, 240), (360, 140, 210))):
        gt_path = osp.join(faces_dir, 'gt', f'{index:05d}.png')
        if not osp.isfile(gt_path):
            raise FileNotFoundError(f'{gt_path} is missing: generate the demo faces with make demo or '
                                    'python scripts/make_demo_data.py')
        face = cv2.resize(read_image(gt_path), (side, side), interpolation=cv2.INTER_AREA)
        mask = cv2.resize(read_image(osp.join(faces_dir, 'mask', f'{index:05d}.png')), (side, side),
                          interpolation=cv2.INTER_AREA)
        mask = cv2.GaussianBlur(mask[..., :1] if mask.ndim == 3 else mask[..., None], (0, 0), 1.0)
        mask = mask.reshape(side, side, 1)
        y1, x1 = min(h, y + side), min(w, x + side)
        region = scene[y:y1, x:x1]
        scene[y:y1, x:x1] = region * (1 - mask[:y1 - y, :x1 - x]) + face[:y1 - y, :x1 - x] * mask[:y1 - y, :x1 - x]
    return scene.astype(np.float32)


def darken(scene, seed=0, mean=0.05):
    """The scene as a dark capture: scaled to ``mean`` luma, photon + read noise, 8-bit quantisation."""
    rng = np.random.default_rng(seed + 1)
    dark = scene * (mean / float(scene.mean()))
    photons = 600.0
    noisy = rng.poisson(np.clip(dark, 0, 1) * photons) / photons + rng.normal(0, 0.002, dark.shape)
    return (np.round(np.clip(noisy, 0, 1) * 255) / 255).astype(np.float32)


def _label(img, text):
    """An 8-bit BGR panel with a caption bar on top."""
    panel = cv2.cvtColor(np.round(np.clip(img, 0, 1) * 255).astype(np.uint8), cv2.COLOR_RGB2BGR)
    bar = np.full((28, panel.shape[1], 3), 255, np.uint8)
    cv2.putText(bar, text, (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([bar, panel], 0)


def main(argv=None):
    """Write the figure (see the module docstring); returns the face-mode result."""
    args = parse_args(argv)
    from lowlight3d.face.seam import paste_seam
    from lowlight3d.inference.command import build_enhancers, parse_inference_args
    model = args.model
    if model is None:
        model = osp.join(tempfile.mkdtemp(), 'demo.pth')
        from lowlight3d.inference.export_command import export_main
        export_main(['-opt', args.opt, '--out', model])
    dark = darken(generated_scene(args.faces, args.seed), args.seed)
    face, _, lines = build_enhancers(parse_inference_args(['-i', '.', '--model', model]))
    for line in lines:
        print(line)
    t0 = time.time()
    res = face.enhance(dark, name='figure')
    print(f'{len(res.cropped_faces)} face(s) in {time.time() - t0:.2f} s')
    pasted = iter(res.pastes)
    for i, verdict in enumerate(res.trust):
        seam = paste_seam(res.image, res.background, next(pasted)).describe() if verdict.weight > 0 else ''
        print(f'face {i:02d}: {verdict.reason} {verdict.measures} {seam}')
    figure = np.concatenate([_label(dark, 'dark input (generated scene)'), _label(res.background, 'gamma background'),
                             _label(res.image, 'face mode')], 1)
    if args.scale != 1:
        figure = cv2.resize(figure, None, fx=args.scale, fy=args.scale, interpolation=cv2.INTER_AREA)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    cv2.imwrite(args.out, figure, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print(f'figure: {args.out}')
    return res


if __name__ == '__main__':
    main()
