"""Pictures of the same test faces across every row of a benchmark: ``input | method 1 | ... | reference``.

After :func:`lowlight3d.pipeline.benchmark.run_benchmark` has tested every stage, the enhanced images are in
``results/<run>/visualization/<set>/<image>.png``.  For each chosen face this module rebuilds the low-light input and
the reference exactly as the test set gives them (test sets are seeded by image name, so the synthesised input is the
one every method saw), puts the results of every stage between them, labels each tile
(:mod:`lowlight3d.utils.comparison_grid`) and writes ``<out>/faces_<set>_<image>.png`` plus the overview
``<out>/faces_<set>.png`` (one row per face).  A stage without a result for that face (it failed, or was not run)
gets a gray ``n/a`` tile.
"""
import os
import os.path as osp

import cv2
import numpy as np

__all__ = ['pick_evenly', 'load_test_set', 'write_face_grids']


def pick_evenly(names, count):
    """``count`` names spread evenly over ``names`` (the middle of ``count`` equal parts), in order.

    Args:
        names (Sequence[str]): Candidates. count (int): How many.

    Returns:
        list[str]: All names when there are at most ``count``.
    """
    n = len(names)
    if count >= n:
        return list(names)
    return [names[(2 * k + 1) * n // (2 * count)] for k in range(count)]


def load_test_set(test_options, overrides, set_name):
    """Build the test set named ``set_name`` of a test option file (with the run's ``--cfg-options``).

    Raises:
        KeyError: No ``datasets.test*`` block has that name.
    """
    from lowlight3d.data import build_dataset
    from lowlight3d.pipeline.option_loading import load_options
    opt = load_options(test_options, is_train=False, cfg_options=list(overrides))
    for phase, block in (opt.get('datasets') or {}).items():
        if phase.startswith('test') and block.get('name') == set_name:
            return build_dataset(block, where=f'datasets.{phase}')
    names = [b.get('name') for p, b in (opt.get('datasets') or {}).items() if p.startswith('test')]
    raise KeyError(f"face_grids: no test set named {set_name!r} in {test_options} (test sets: {names}); fix the "
                   'names under face_grids.sets in the benchmark list')


def _na_tile(shape):
    tile = np.full(shape, 128, np.uint8)
    cv2.putText(tile, 'n/a', (4, shape[0] // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
    return tile


def write_face_grids(columns, sets, out_dir, seed_index=0):
    """Write the face pictures of a benchmark.

    Args:
        columns (list[tuple[str, list[dict]]]): ``(label, runs)`` per stage, in table order; ``runs`` are
            :func:`~lowlight3d.pipeline.benchmark.runner.run_stage` results (``results``, ``test_options``,
            ``test_overrides``), one per seed (empty for a failed stage).
        sets (dict): ``{test set name: number of faces}``.
        out_dir (str): Output folder.
        seed_index (int): Which seed's results to show.

    Returns:
        list[str]: The written overview files.
    """
    from basicsr.utils import imwrite, tensor2img

    from lowlight3d.utils.comparison_grid import comparison_row, stack_rows
    source = next(runs[min(seed_index, len(runs) - 1)] for _, runs in columns if runs)
    written = []
    for set_name, count in sets.items():
        dataset = load_test_set(source['test_options'], source['test_overrides'], set_name)
        names = list(dataset.source.names)
        rows = []
        for name in pick_evenly(names, int(count)):
            sample = dataset[names.index(name)]
            lq = tensor2img(sample['lq'])
            images, labels = [lq], ['input']
            for label, runs in columns:
                path = osp.join(runs[min(seed_index, len(runs) - 1)]['results'], 'visualization', set_name,
                                f'{name}.png') if runs else None
                img = cv2.imread(path, cv2.IMREAD_COLOR) if path and osp.isfile(path) else None
                images.append(img if img is not None else _na_tile(lq.shape))
                labels.append(label)
            if 'gt' in sample:
                images.append(tensor2img(sample['gt']))
                labels.append('reference')
            row = comparison_row(images, labels)
            imwrite(row, osp.join(out_dir, f'faces_{set_name}_{name}.png'))
            rows.append(row)
        path = osp.join(out_dir, f'faces_{set_name}.png')
        os.makedirs(out_dir, exist_ok=True)
        imwrite(stack_rows(rows), path)
        written.append(path)
    return written
