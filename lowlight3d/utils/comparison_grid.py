"""Comparison grids for papers and reports: ``input | result | ground truth`` rows with a label above each tile.

Images are uint8 BGR ``H x W x 3`` arrays (what :func:`basicsr.utils.tensor2img` returns); tiles of a row are resized
to the height of the first one, rows of an overview to the width of the first row.
"""
import cv2
import numpy as np

__all__ = ['labelled_tile', 'comparison_row', 'stack_rows']


def labelled_tile(img, label, bar_height=None):
    """``img`` with a white bar on top carrying ``label`` in black.

    Args:
        img (np.ndarray): uint8 ``H x W x 3``.
        label (str): Text (ASCII). Never cut: a long label is drawn smaller, on two lines if needed.
        bar_height (int, optional): Bar height in pixels (default ``max(14, H // 12)``).

    Returns:
        np.ndarray: uint8 ``(H + bar) x W x 3``.
    """
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f'labelled_tile expects a uint8 H x W x 3 image, got {img.dtype} {img.shape}')
    h, w = img.shape[:2]
    bar = int(bar_height or max(14, h // 12))
    canvas = np.full((h + bar, w, 3), 255, np.uint8)
    canvas[bar:] = img
    font = cv2.FONT_HERSHEY_SIMPLEX
    scale = bar / 30.0
    width = cv2.getTextSize(label, font, scale, 1)[0][0]
    if width <= w - 4:
        lines = [label]
    elif scale * (w - 4) / width >= 0.6 * scale:  # shrink the font, never cut the label
        scale *= (w - 4) / width
        lines = [label]
    else:  # two lines at half the bar height each, shrunk to fit
        words, best = label.split(' '), None
        for cut in range(1, len(words)):
            pair = [' '.join(words[:cut]), ' '.join(words[cut:])]
            longest = max(cv2.getTextSize(t, font, 1.0, 1)[0][0] for t in pair)
            if best is None or longest < best[0]:
                best = (longest, pair)
        lines = best[1] if best else [label[:len(label) // 2], label[len(label) // 2:]]
        longest = max(cv2.getTextSize(t, font, 1.0, 1)[0][0] for t in lines)
        scale = min(bar / 60.0, (w - 4) / max(longest, 1))
    step = bar / len(lines)
    for i, text in enumerate(lines):
        cv2.putText(canvas, text, (2, int(step * (i + 0.75))), font, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return canvas


def comparison_row(images, labels, gap=4):
    """Labelled tiles side by side with a white gap.

    Args:
        images (list[np.ndarray]): uint8 ``H x W x 3`` images (resized to the first one's height).
        labels (list[str]): One label per image.
        gap (int): Pixels between tiles.

    Returns:
        np.ndarray: The row image.
    """
    if not images or len(images) != len(labels):
        raise ValueError(f'comparison_row needs as many labels as images, got {len(images)} and {len(labels)}')
    h = images[0].shape[0]
    tiles = []
    for img, label in zip(images, labels):
        if img.shape[0] != h:
            img = cv2.resize(img, (max(1, round(img.shape[1] * h / img.shape[0])), h), interpolation=cv2.INTER_AREA)
        tiles.append(labelled_tile(img, label, bar_height=max(14, h // 12)))
    spacer = np.full((tiles[0].shape[0], gap, 3), 255, np.uint8)
    parts = []
    for tile in tiles:
        parts += [tile, spacer]
    return np.concatenate(parts[:-1], axis=1)


def stack_rows(rows, gap=4):
    """Rows one under another (each resized to the first row's width), separated by white gaps."""
    if not rows:
        raise ValueError('stack_rows needs at least one row')
    w = rows[0].shape[1]
    parts = []
    for row in rows:
        if row.shape[1] != w:
            row = cv2.resize(row, (w, max(1, round(row.shape[0] * w / row.shape[1]))), interpolation=cv2.INTER_AREA)
        parts += [row, np.full((gap, w, 3), 255, np.uint8)]
    return np.concatenate(parts[:-1], axis=0)
