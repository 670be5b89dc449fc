"""How the low-light criteria behave on labelled real faces: UTKFace (skin tone) and Extended Yale B (lighting).

UTKFace images are well-lit, tightly cropped faces labelled with ethnicity: every image a criterion flags there is a
false "low-light" pick, and the report shows how those picks spread over the groups.  Extended Yale B photographs
the same people under a frontal flash (well lit), side/top light, light from far behind and ambient light only
(real low light): a good criterion flags the last two and not the first.

Run it on the shared test data (research-only, never copied into the repository)::

    python -m lowlight3d.data.preparation.criterion_report --data ../shared/data
"""
import argparse
import csv
import os.path as osp

from lowlight3d.data.preparation.lowlight_criterion import build_lowlight_criterion
from lowlight3d.utils.img_io import read_image

__all__ = ['UTK_RACES', 'YALEB_GROUPS', 'criterion_statistics', 'format_criterion_report']

#: UTKFace race label -> name (from the data set's file naming).
UTK_RACES = {'0': 'White', '1': 'Black', '2': 'Asian', '3': 'Indian', '4': 'Others'}

#: Extended Yale B lighting condition -> group.
YALEB_GROUPS = {
    'P00A+000E+00': 'well-lit (flash)',
    'P00A+000E+45': 'well-lit (top/bottom/side)',
    'P00A+000E-35': 'well-lit (top/bottom/side)',
    'P00A+050E+00': 'well-lit (top/bottom/side)',
    'P00A-050E+00': 'well-lit (top/bottom/side)',
    'P00A+110E+65': 'dark (light from behind)',
    'P00A-110E+65': 'dark (light from behind)',
    'P00_Ambient': 'dark (ambient only)',
}

_UTK_RACE_COLUMN = 'race(0=White,1=Black,2=Asian,3=Indian,4=Others)'


def _read_manifest(path):
    """Rows of a manifest CSV, with an error naming the file when it is missing."""
    if not osp.isfile(path):
        raise FileNotFoundError(f"Manifest '{path}' does not exist (expected the shared test data layout)")
    with open(path, newline='', encoding='utf-8') as f:
        return list(csv.DictReader(f))


def _labelled_images(data_root):
    """``(set, group, path)`` for every UTKFace and Yale B image listed in the manifests."""
    items = []
    for row in _read_manifest(osp.join(data_root, 'faces_utk', 'manifest.csv')):
        race = UTK_RACES.get(row[_UTK_RACE_COLUMN], 'unknown')
        items.append(('UTKFace', race, osp.join(data_root, 'faces_utk', 'images', row['file'])))
    for row in _read_manifest(osp.join(data_root, 'faces_yaleb', 'manifest.csv')):
        group = YALEB_GROUPS.get(row['condition'], row['condition'])
        items.append(('YaleB', group, osp.join(data_root, 'faces_yaleb', 'images', row['file'])))
    return items


def criterion_statistics(data_root, thresholds=(0.2, 0.3), criteria=('brightness', 'scene'), criterion_options=None):
    """Count the images each criterion flags as low-light, per data set and group, at each threshold.

    Tight face crops have no face box here: the whole image is the scene (see
    :class:`~lowlight3d.data.preparation.lowlight_criterion.SceneCriterion`).

    Args:
        data_root (str): The shared data folder (with ``faces_utk`` and ``faces_yaleb``).
        thresholds (Sequence[float]): Mean-brightness thresholds to evaluate (0.2 is the paper's).
        criteria (Sequence[str]): Criterion names.
        criterion_options (dict, optional): Criterion name -> extra options (besides ``threshold``).

    Returns:
        list[dict]: One row per (set, group): ``set``, ``group``, ``n`` and ``<criterion>@<threshold>`` counts.
    """
    criterion_options = criterion_options or {}
    built = {(c, t): build_lowlight_criterion(c, threshold=t, **criterion_options.get(c, {}))
             for c in criteria for t in thresholds}
    rows = {}
    for set_name, group, path in _labelled_images(data_root):
        row = rows.setdefault((set_name, group), {'set': set_name, 'group': group, 'n': 0})
        row['n'] += 1
        img = read_image(path)
        for (c, t), criterion in built.items():
            key = f'{c}@{t:g}'
            row[key] = row.get(key, 0) + int(criterion(img).is_lowlight)
    order = list(UTK_RACES.values()) + sorted(set(YALEB_GROUPS.values()))
    return sorted(rows.values(), key=lambda r: (r['set'] != 'UTKFace', order.index(r['group'])
                                                if r['group'] in order else len(order), r['group']))


def format_criterion_report(rows):
    """A fixed-width text table of :func:`criterion_statistics` rows (counts and percentages).

    Args:
        rows (list[dict]): The rows.

    Returns:
        str: The table.
    """
    keys = [k for k in rows[0] if '@' in k] if rows else []
    header = f"{'set':<8} {'group':<28} {'n':>4} " + ' '.join(f'{k:>16}' for k in keys)
    lines = [header, '-' * len(header)]
    for r in rows:
        cells = ' '.join(f"{r[k]:>6d} ({100.0 * r[k] / max(r['n'], 1):5.1f}%)" for k in keys)
        lines.append(f"{r['set']:<8} {r['group']:<28} {r['n']:>4d} {cells}")
    return '\n'.join(lines)


def main(argv=None):
    """Print the report for a shared data folder.

    Args:
        argv (list[str], optional): Command-line arguments.

    Returns:
        int: Exit status.
    """
    parser = argparse.ArgumentParser(description='Compare the low-light criteria on UTKFace and Extended Yale B.')
    parser.add_argument('--data', required=True, help='shared data folder holding faces_utk/ and faces_yaleb/')
    parser.add_argument('--thresholds', type=float, nargs='+', default=[0.2, 0.3], help='brightness thresholds')
    args = parser.parse_args(argv)
    print(format_criterion_report(criterion_statistics(args.data, tuple(args.thresholds))))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
