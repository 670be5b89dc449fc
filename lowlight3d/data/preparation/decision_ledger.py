"""The CelebV-Low decision ledger: one CSV row per examined frame, one per finished video, so runs can resume.

``decisions.csv`` holds every sampled frame's decision (``accepted`` / ``rejected``), its reason and the measured
values, plus one ``skipped_video`` row per unreadable video.  ``videos.csv`` gets a row when a video is finished
(``done`` or ``unreadable``); it is the commit marker: a video without a row there is processed again, and rows of
``decisions.csv`` left by an interrupted video are dropped when the ledger is opened.  :func:`read_ledger` and
:func:`write_ledger` read and write a whole ledger (the merge of shards uses them).
"""
import csv
import os
import os.path as osp

from lowlight3d.utils.checkpoint import atomic_write

__all__ = ['DECISION_FIELDS', 'VIDEO_FIELDS', 'DecisionLedger', 'read_ledger', 'write_ledger']

#: Columns of ``decisions.csv``.
DECISION_FIELDS = ('video', 'group', 'frame', 'decision', 'reason', 'brightness', 'scene_dark_fraction',
                   'relative_noise', 'face_score', 'landmarks', 'outside_fraction', 'face_brightness',
                   'crushed_fraction', 'blown_fraction', 'blur', 'duplicate_of', 'output')
#: Columns of ``videos.csv``.
VIDEO_FIELDS = ('video', 'status', 'frames_examined', 'frames_accepted', 'reason')


def _read_rows(path):
    """Rows of a CSV file (empty list when it does not exist)."""
    if not osp.isfile(path):
        return []
    with open(path, newline='', encoding='utf-8') as f:
        return list(csv.DictReader(f))


def _format(value):
    """CSV cell text: floats with 5 significant digits, None as empty."""
    if value is None:
        return ''
    if isinstance(value, float):
        return f'{value:.5g}'
    return str(value)


class DecisionLedger:
    """The two ledger files of a CelebV-Low output folder.

    Args:
        output_dir (str): The output folder (created if needed).
    """

    def __init__(self, output_dir):
        os.makedirs(output_dir, exist_ok=True)
        self.decisions_path = osp.join(output_dir, 'decisions.csv')
        self.videos_path = osp.join(output_dir, 'videos.csv')
        self.videos = {r['video']: r for r in _read_rows(self.videos_path)}
        rows = _read_rows(self.decisions_path)
        kept = [r for r in rows if r['video'] in self.videos]
        if len(kept) != len(rows) or not osp.isfile(self.decisions_path):
            self._rewrite(self.decisions_path, DECISION_FIELDS, kept)
        if not osp.isfile(self.videos_path):
            self._rewrite(self.videos_path, VIDEO_FIELDS, [])
        self.dropped_partial_rows = len(rows) - len(kept)

    @staticmethod
    def _rewrite(path, fields, rows):
        """Write a whole CSV atomically."""
        def write(tmp):
            with open(tmp, 'w', newline='', encoding='utf-8') as f:
                writer = csv.DictWriter(f, fieldnames=fields)
                writer.writeheader()
                for r in rows:
                    writer.writerow({k: r.get(k, '') for k in fields})

        atomic_write(path, write)

    @staticmethod
    def _append(path, fields, rows):
        """Append rows and flush them to disk."""
        with open(path, 'a', newline='', encoding='utf-8') as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            for r in rows:
                writer.writerow({k: _format(r.get(k)) for k in fields})
            f.flush()
            os.fsync(f.fileno())

    def is_done(self, video):
        """Whether ``video`` was finished by an earlier run.

        Args:
            video (str): Video id.

        Returns:
            bool: True when it has a ``videos.csv`` row.
        """
        return video in self.videos

    def commit_video(self, video, frame_rows, status='done', reason=''):
        """Record a finished video: its frame rows first, then its ``videos.csv`` row.

        Args:
            video (str): Video id.
            frame_rows (list[dict]): Rows with keys of :data:`DECISION_FIELDS`.
            status (str): ``'done'`` or ``'unreadable'``.
            reason (str): Why a video is unreadable.
        """
        self._append(self.decisions_path, DECISION_FIELDS, frame_rows)
        row = {
            'video': video,
            'status': status,
            'frames_examined': sum(r.get('decision') in ('accepted', 'rejected') for r in frame_rows),
            'frames_accepted': sum(r.get('decision') == 'accepted' for r in frame_rows),
            'reason': reason
        }
        self._append(self.videos_path, VIDEO_FIELDS, [row])
        self.videos[video] = {k: _format(v) for k, v in row.items()}

    def decisions(self):
        """All committed frame rows (strings, as read from the CSV).

        Returns:
            list[dict]: The rows.
        """
        return _read_rows(self.decisions_path)


def read_ledger(output_dir):
    """The committed rows of a ledger folder, without changing it (rows of unfinished videos are left out).

    Args:
        output_dir (str): Folder holding ``decisions.csv`` and ``videos.csv`` (missing files read as empty).

    Returns:
        tuple[list[dict], list[dict]]: ``videos.csv`` rows and the ``decisions.csv`` rows of those videos, in file
        order, as strings.
    """
    videos = _read_rows(osp.join(output_dir, 'videos.csv'))
    done = {r['video'] for r in videos}
    return videos, [r for r in _read_rows(osp.join(output_dir, 'decisions.csv')) if r['video'] in done]


def write_ledger(output_dir, decision_rows, video_rows):
    """Write a whole ledger, replacing both files atomically (``decisions.csv`` first, then the commit marker).

    Rows read by :func:`read_ledger` (strings) are written back byte for byte as :class:`DecisionLedger` wrote them.

    Args:
        output_dir (str): The folder (created if needed).
        decision_rows (list[dict]): Rows with keys of :data:`DECISION_FIELDS`.
        video_rows (list[dict]): Rows with keys of :data:`VIDEO_FIELDS`.
    """
    os.makedirs(output_dir, exist_ok=True)
    DecisionLedger._rewrite(osp.join(output_dir, 'decisions.csv'), DECISION_FIELDS,
                            [{k: _format(r.get(k)) for k in DECISION_FIELDS} for r in decision_rows])
    DecisionLedger._rewrite(osp.join(output_dir, 'videos.csv'), VIDEO_FIELDS,
                            [{k: _format(r.get(k)) for k in VIDEO_FIELDS} for r in video_rows])
