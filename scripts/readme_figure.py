"""The README's picture: ``input | ours | reference`` for a few demo faces, one row per face.

Example::

    make demo                                  # writes the comparison grids this script reads
    python scripts/readme_figure.py            # writes docs/figures/demo_faces.jpg

It reads the comparison grids that ``make demo`` writes when it tests the full method
(``options/demo/test_LowLight3D_demo.yml``, ``val.save_grid``): ``results/demo_LowLight3D_randomVGG/grids/
DemoFacesTest/<face>.png``, each one row ``low-light input | ours | ground truth`` of a test face of the built-in
synthetic demo set (``datasets/demo_faces/test``; generated, no real person, no research photo). The three 256-px
tiles are cut out of each row (their labels dropped), scaled to ``--size`` pixels and stacked, one face per row,
under a single label bar; the result is a JPEG of well under 150 KB. The faces are the first four of the test set
by default (``--faces`` picks others), so the picture is not a selection of the best results.
"""
import argparse
import os
import os.path as osp

import cv2
import numpy as np

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
GRIDS = osp.join('results', 'demo_LowLight3D_randomVGG', 'grids', 'DemoFacesTest')
OUT = osp.join('docs', 'figures', 'demo_faces.jpg')
LABELS = ('low-light input', 'ours (demo model)', 'reference')
GAP = 4  # white pixels between tiles and rows (the grids use the same gap)


def tiles_of_row(row, count=3, gap=GAP):
    """The ``count`` square image tiles of a comparison row (labels bar above them cut off)."""
    h, w = row.shape[:2]
    side = (w - gap * (count - 1)) // count
    if side <= 0 or side > h:
        raise ValueError(f'a {w}x{h} image is not a row of {count} square tiles with labels above them')
    return [row[h - side:, i * (side + gap):i * (side + gap) + side] for i in range(count)]


def label_bar(width, tile, labels=LABELS, gap=GAP, height=24):
    """A white bar with one label centred above each tile column."""
    bar = np.full((height, width, 3), 255, np.uint8)
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, 0.5
    for i, text in enumerate(labels):
        text_w = cv2.getTextSize(text, font, scale, 1)[0][0]
        x = i * (tile + gap) + max(0, (tile - text_w) // 2)
        cv2.putText(bar, text, (x, height - 8), font, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return bar


def build_figure(grid_dir, faces, size):
    """The figure as a uint8 BGR image: a label bar, then one ``input | ours | reference`` row per face."""
    rows = []
    for face in faces:
        path = osp.join(grid_dir, f'{face}.png')
        row = cv2.imread(path, cv2.IMREAD_COLOR)
        if row is None:
            raise FileNotFoundError(f'{path} is missing: run `make demo` first (it writes the comparison grids)')
        tiles = [cv2.resize(t, (size, size), interpolation=cv2.INTER_AREA) for t in tiles_of_row(row)]
        spacer = np.full((size, GAP, 3), 255, np.uint8)
        rows.append(np.concatenate([tiles[0], spacer, tiles[1], spacer, tiles[2]], axis=1))
    width = rows[0].shape[1]
    parts = [label_bar(width, size)]
    for row in rows:
        parts += [row, np.full((GAP, width, 3), 255, np.uint8)]
    return np.concatenate(parts[:-1], axis=0)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--grids', default=GRIDS, help='folder of the demo test grids (default: %(default)s)')
    parser.add_argument('--faces', nargs='+', default=['00000', '00001', '00002', '00003'],
                        help='test faces, one row each (default: the first four)')
    parser.add_argument('--size', type=int, default=176, help='tile size in pixels (default: %(default)s)')
    parser.add_argument('--quality', type=int, default=85, help='JPEG quality (default: %(default)s)')
    parser.add_argument('--out', default=OUT, help='output JPEG (default: %(default)s)')
    args = parser.parse_args(argv)
    grids = args.grids if osp.isabs(args.grids) else osp.join(ROOT, args.grids)
    out = args.out if osp.isabs(args.out) else osp.join(ROOT, args.out)
    figure = build_figure(grids, args.faces, args.size)
    os.makedirs(osp.dirname(out), exist_ok=True)
    if not cv2.imwrite(out, figure, [cv2.IMWRITE_JPEG_QUALITY, args.quality]):
        raise OSError(f'could not write {out}')
    print(f'{out}: {figure.shape[1]}x{figure.shape[0]}, {osp.getsize(out) / 1024:.0f} KB')


if __name__ == '__main__':
    main()
