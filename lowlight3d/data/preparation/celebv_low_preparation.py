"""CelebV-Low: real low-light face frames from CelebV-HQ clips (paper section 4.1), rebuilt automatically.

Expected input (see ``docs/data_preparation.md``): a folder of CelebV-HQ clips ``<clip_id>.mp4`` (the output of
the CelebV-HQ repository's ``download_and_process.py``, or the released archive; sub-folders are scanned too), and
optionally ``celebvhq_info.json`` from that repository (``{"clips": {clip_id: {"ytb_id": ..., ...}}, ...}``), which
restricts processing to the annotated clips and groups clips of the same YouTube video for the split.

For every video, every ``frame_step``-th frame (at most ``max_frames_per_video``) is examined by
:class:`LowLightFrameFilter`, in this order (the first failed test is the reason recorded):

1. ``too_bright``: mean brightness >= ``threshold`` (0.2; checked first because it is cheap);
2. ``no_face``: no face found on a brightened copy (covers heavy occlusion and faces too dark to see);
   ``low_face_score``: the detector's score is below ``min_face_score``;
3. ``scene_not_dark`` / ``too_clean``: the ``'scene'`` criterion (with the face box) rejects the frame;
4. ``face_truncated``: more than ``max_outside`` of the FFHQ-style crop lies outside the frame;
5. ``underexposed`` / ``overexposed``: the central face region is almost black (mean < ``min_face_brightness``
   or more than ``max_crushed`` crushed pixels) or has more than ``max_blown`` blown-out pixels;
6. ``blurred``: :func:`~lowlight3d.data.preparation.frame_quality.blur_score` of the crop < ``min_blur``;
7. ``near_duplicate``: the crop's normalised thumbnail is within ``duplicate_distance`` (RMS) of a face already
   kept from the same video;
8. otherwise ``accepted``: the aligned crop (``face_size``, from the original dark pixels) is written to
   ``<out>/faces/<video>__<frame>.png``.

Unreadable or failing videos get a ``skipped_video`` row and are never fatal.  Decisions go to
``<out>/decisions.csv`` and ``<out>/videos.csv`` (:class:`~lowlight3d.data.preparation.decision_ledger.DecisionLedger`);
a re-run skips finished videos.  Videos are independent units of work: ``workers`` processes examine them in
parallel, or ``shard='I/N'`` runs every ``N``-th of them (from the ``I``-th) into ``<out>/shards/shard-I-of-N/``
and ``merge=True`` combines complete shards; either way the ledger and faces are those of a one-process run
(:mod:`~lowlight3d.data.preparation.sharding`).  Finally the accepted faces are split (seeded) into ``<out>/train`` and
``<out>/test`` (hard links, ``meta_info.txt``, lists ``train_list.txt`` / ``test_list.txt``, optional LMDBs) and
``<out>/summary.json`` records the counts by reason.

Occlusion is only detected as far as the detector fails on occluded faces; the paper removed such frames by hand.
"""
import json
import os
import os.path as osp
import time
from collections import Counter

import numpy as np

from lowlight3d.data.preparation.dataset_writing import build_lmdb, populate_folder, write_image_atomic, write_name_list
from lowlight3d.data.preparation.decision_ledger import DecisionLedger, read_ledger, write_ledger
from lowlight3d.data.preparation.frame_quality import (
    NearDuplicateFilter,
    blur_score,
    exposure_clipping,
    face_thumbnail,
    mean_brightness,
)
from lowlight3d.data.preparation.lowlight_criterion import build_lowlight_criterion
from lowlight3d.data.preparation.sharding import (
    SHARDS_DIRNAME,
    adopt_file,
    check_workers,
    collect_shards,
    interleave_shards,
    items_fingerprint,
    open_shard_folder,
    ordered_map,
    parse_shard,
    remove_shards,
    select_shard,
)
from lowlight3d.data.preparation.video_frames import VideoReadError, iter_video_frames, scan_videos
from lowlight3d.data.seeding import check_seed
from lowlight3d.face.alignment import align_face, five_landmarks
from lowlight3d.utils.checkpoint import atomic_write_text

__all__ = ['LowLightFrameFilter', 'load_celebvhq_info', 'split_accepted_frames', 'prepare_celebv_low']


class LowLightFrameFilter:
    """Examines frames: low-light test, face detection and alignment, quality checks (see the module docstring).

    Args:
        detector: A face detector (``detect(img) -> list[FaceDetection]``, largest first).
        criterion: A low-light criterion (``criterion(img, face_box) -> CriterionResult``).
        face_size (int): Side of the aligned crop.
        min_face_score (float): Smallest detector score.
        max_outside (float): Largest share of the crop outside the frame.
        min_face_brightness (float): Smallest mean brightness of the central face region.
        max_crushed (float): Largest share of crushed-black pixels in the central face region.
        max_blown (float): Largest share of blown-out pixels in the central face region.
        min_blur (float): Smallest :func:`blur_score` of the crop.
    """

    def __init__(self,
                 detector,
                 criterion,
                 face_size=256,
                 min_face_score=0.0,
                 max_outside=0.3,
                 min_face_brightness=0.01,
                 max_crushed=0.5,
                 max_blown=0.05,
                 min_blur=120.0):
        self.detector = detector
        self.criterion = criterion
        self.face_size = int(face_size)
        self.min_face_score = float(min_face_score)
        self.max_outside = float(max_outside)
        self.min_face_brightness = float(min_face_brightness)
        self.max_crushed = float(max_crushed)
        self.max_blown = float(max_blown)
        self.min_blur = float(min_blur)
        s = self.face_size
        self._face_region = (slice(int(0.3 * s), int(0.8 * s)), slice(int(0.25 * s), int(0.75 * s)))

    def examine(self, frame, duplicates=None):
        """Decide for one frame.

        Args:
            frame (np.ndarray): ``H x W x 3`` RGB float frame in ``[0, 1]``.
            duplicates (NearDuplicateFilter, optional): Faces kept so far from the same video (not updated here).

        Returns:
            tuple[dict, AlignedFace | None, np.ndarray | None]: The ledger fields (``decision``, ``reason`` and the
            measured values), the aligned face when accepted, and its thumbnail (for the duplicate filter).
        """
        row = {'brightness': mean_brightness(frame)}
        threshold = getattr(self.criterion, 'threshold', None)
        if threshold is not None and row['brightness'] >= threshold:
            return self._reject(row, 'too_bright')
        faces = self.detector.detect(frame)
        if not faces:
            return self._reject(row, 'no_face')
        face = faces[0]
        row['face_score'] = face.score
        if face.score < self.min_face_score:
            return self._reject(row, 'low_face_score')
        verdict = self.criterion(frame, face.box)
        row.update({k: v for k, v in verdict.stats.items() if k in ('scene_dark_fraction', 'relative_noise')})
        if not verdict.is_lowlight:
            return self._reject(row, verdict.reason)
        landmarks, source = five_landmarks(face)
        row['landmarks'] = source
        aligned = align_face(frame, landmarks, self.face_size, source)
        row['outside_fraction'] = aligned.outside_fraction
        if aligned.outside_fraction > self.max_outside:
            return self._reject(row, 'face_truncated')
        centre = aligned.image[self._face_region]
        row['face_brightness'] = mean_brightness(centre)
        row['crushed_fraction'], row['blown_fraction'] = exposure_clipping(centre)
        if row['face_brightness'] < self.min_face_brightness or row['crushed_fraction'] > self.max_crushed:
            return self._reject(row, 'underexposed')
        if row['blown_fraction'] > self.max_blown:
            return self._reject(row, 'overexposed')
        row['blur'] = blur_score(aligned.image)
        if row['blur'] < self.min_blur:
            return self._reject(row, 'blurred')
        face_thumb = face_thumbnail(aligned.image)
        if duplicates is not None:
            twin = duplicates.check(face_thumb)
            if twin is not None:
                row['duplicate_of'] = twin
                return self._reject(row, 'near_duplicate')
        row.update(decision='accepted', reason='ok')
        return row, aligned, face_thumb

    @staticmethod
    def _reject(row, reason):
        """A rejection result."""
        row.update(decision='rejected', reason=reason)
        return row, None, None


def load_celebvhq_info(path):
    """Clip id -> group (its YouTube id) from CelebV-HQ's ``celebvhq_info.json``.

    Args:
        path (str): The JSON file (``{"clips": {clip_id: {"ytb_id": ...}}}``).

    Returns:
        dict: Clip id -> YouTube id (the clip id itself when ``ytb_id`` is missing).
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f"CelebV-HQ annotation file '{path}' does not exist (celebvhq_info.json from "
                                'https://github.com/CelebV-HQ/CelebV-HQ)')
    with open(path, encoding='utf-8') as f:
        info = json.load(f)
    clips = info.get('clips') if isinstance(info, dict) else None
    if not isinstance(clips, dict):
        raise ValueError(f"'{path}' has no 'clips' mapping; expected CelebV-HQ's celebvhq_info.json")
    return {cid: str((meta or {}).get('ytb_id') or cid) for cid, meta in clips.items()}


def split_accepted_frames(groups, num_train=5000, num_test=892, seed=0, by='video', allow_fewer=False):
    """Seeded train/test split of accepted frames.

    ``by='frame'``: a random permutation of all frames (the paper's "randomly selected").  ``by='video'``
    (default): groups (videos, or YouTube videos with ``celebvhq_info.json``) are shuffled and assigned whole to the
    test set until it holds ``num_test`` frames (the last group is cut to the exact count and its other frames are
    dropped), so no person/clip appears in both sets; the training set is a random ``num_train`` of the frames of
    the remaining groups.

    Args:
        groups (dict): Group id -> list of frame names.
        num_train (int): Training frames wanted.
        num_test (int): Test frames wanted.
        seed (int): Split seed.
        by (str): ``'video'`` or ``'frame'``.
        allow_fewer (bool): With too few frames, keep the train:test ratio instead of raising.

    Returns:
        tuple[list[str], list[str]]: Sorted train and test names.
    """
    if by not in ('video', 'frame'):
        raise ValueError(f"split 'by' must be 'video' or 'frame', got {by!r}")
    total = sum(len(v) for v in groups.values())
    wanted = num_train + num_test
    if total < wanted:
        if not allow_fewer:
            raise ValueError(f'Only {total} frames were accepted but {num_train} train + {num_test} test were '
                             'requested: process more videos, relax the filters, lower --num-train/--num-test, or '
                             'pass --allow-fewer')
        num_test = int(round(total * num_test / wanted)) if wanted else 0
        num_train = total - num_test
    rng = np.random.default_rng(check_seed(seed))
    if by == 'frame':
        names = sorted(n for v in groups.values() for n in v)
        perm = rng.permutation(len(names))
        test = sorted(names[i] for i in perm[:num_test])
        return sorted(names[i] for i in perm[num_test:num_test + num_train]), test
    keys = sorted(groups)
    order = [keys[i] for i in rng.permutation(len(keys))]
    test, pool = [], []
    for key in order:
        frames = sorted(groups[key])
        if len(test) < num_test:
            test.extend(frames[:num_test - len(test)])
        else:
            pool.extend(frames)
    if len(pool) < num_train:
        if not allow_fewer:
            raise ValueError(f'After taking {num_test} test frames from whole videos only {len(pool)} frames of other '
                             f'videos remain for {num_train} training frames: use --split-by frame, fewer frames, '
                             'or --allow-fewer')
        num_train = len(pool)
    pool.sort()
    train = [pool[i] for i in rng.permutation(len(pool))[:num_train]]
    return sorted(train), sorted(test)


def _video_id(rel_path):
    """Video id of a relative video path: the path without extension, ``/`` replaced by ``__``."""
    return osp.splitext(rel_path)[0].replace('/', '__')


class _VideoWorker:
    """Processes one video (frames -> decisions -> aligned faces written): the unit of work of the pool and shards.

    Nothing is shared between videos (the near-duplicate filter is per video, no randomness is drawn), so the result
    of a video does not depend on the process or the order it runs in.

    Args:
        config (dict): ``videos_dir``, ``faces_dir``, ``criterion``, ``threshold``, ``criterion_options``,
            ``detector`` (a concrete name, not ``'auto'``), ``weights_path``, ``face_size``, ``filter_options``,
            ``duplicate_distance``, ``frame_step``, ``max_frames``.
        detector: An already built detector to use instead of building one from ``config``.
    """

    def __init__(self, config, detector=None):
        if detector is None:
            from lowlight3d.face.detection import build_face_detector
            detector, _ = build_face_detector(config['detector'], weights_path=config['weights_path'])
        crit = build_lowlight_criterion(config['criterion'], threshold=config['threshold'],
                                        **(config['criterion_options'] or {}))
        self.frame_filter = LowLightFrameFilter(detector, crit, face_size=config['face_size'],
                                                **(config['filter_options'] or {}))
        self.config = config

    def __call__(self, rel):
        """Examine the sampled frames of one video.

        Args:
            rel (str): Video path relative to ``videos_dir``.

        Returns:
            dict: ``rel``, ``video`` (id), ``status`` (``'done'`` / ``'unreadable'``), ``reason``, ``rows`` (ledger
            rows without ``group``) and ``frames`` (frames examined, also those of a video that broke off).
        """
        cfg = self.config
        vid = _video_id(rel)
        rows = []
        try:
            duplicates = NearDuplicateFilter(cfg['duplicate_distance'])
            for index, frame in iter_video_frames(osp.join(cfg['videos_dir'], rel), cfg['frame_step'],
                                                  cfg['max_frames']):
                row, aligned, face_thumb = self.frame_filter.examine(frame, duplicates)
                row.update(video=vid, frame=index)
                if aligned is not None:
                    name = f'{vid}__{index:06d}'
                    write_image_atomic(osp.join(cfg['faces_dir'], name + '.png'), aligned.image)
                    duplicates.add(name, face_thumb)
                    row['output'] = f'faces/{name}.png'
                rows.append(row)
        except Exception as err:  # noqa: BLE001  (a broken video must never stop a 35k-clip run)
            reason = err.reason if isinstance(err, VideoReadError) else f'{type(err).__name__}: {err}'
            skipped = {'video': vid, 'frame': -1, 'decision': 'skipped_video', 'reason': f'unreadable: {reason}'}
            return {'rel': rel, 'video': vid, 'status': 'unreadable', 'reason': reason, 'rows': [skipped],
                    'frames': len(rows)}
        return {'rel': rel, 'video': vid, 'status': 'done', 'reason': '', 'rows': rows, 'frames': len(rows)}


def _list_videos(videos_dir, info_json, max_videos, log):
    """The sorted videos to process and their groups (YouTube ids with ``info_json``)."""
    rel_videos = scan_videos(videos_dir)
    group_of = {}
    if info_json:
        annotated = load_celebvhq_info(info_json)
        on_disk = {_video_id(r): r for r in rel_videos}
        missing = sorted(set(annotated) - set(on_disk))
        extra = sorted(set(on_disk) - set(annotated))
        log(f'{len(annotated)} clips in {info_json}: {len(annotated) - len(missing)} on disk, {len(missing)} missing'
            f'{f" (e.g. {missing[:3]})" if missing else ""}; {len(extra)} video files not annotated are ignored')
        rel_videos = [on_disk[c] for c in sorted(on_disk) if c in annotated]
        group_of = {c: annotated[c] for c in on_disk if c in annotated}
    if max_videos is not None:
        rel_videos = rel_videos[:int(max_videos)]
    if not rel_videos:
        raise ValueError(f"No video to process in '{videos_dir}' (extensions .mp4 .mkv .webm .avi .mov .m4v)")
    return rel_videos, group_of


def _run_options(criterion, threshold, criterion_options, detector, frame_step, max_frames_per_video, face_size,
                 filter_options, duplicate_distance, max_videos):
    """The options that change the ledger (JSON-able; shards must share them, a merge checks it)."""
    return json.loads(json.dumps({
        'criterion': criterion,
        'threshold': float(threshold),
        'criterion_options': dict(sorted((criterion_options or {}).items())),
        'detector': detector,
        'frame_step': int(frame_step),
        'max_frames_per_video': None if max_frames_per_video is None else int(max_frames_per_video),
        'face_size': int(face_size),
        'filter_options': dict(sorted((filter_options or {}).items())),
        'duplicate_distance': float(duplicate_distance),
        'max_videos': None if max_videos is None else int(max_videos),
    }))


def prepare_celebv_low(videos_dir,
                       output_dir,
                       info_json=None,
                       criterion='brightness',
                       threshold=0.2,
                       criterion_options=None,
                       detector='auto',
                       weights_path=None,
                       frame_step=15,
                       max_frames_per_video=16,
                       face_size=256,
                       filter_options=None,
                       duplicate_distance=0.6,
                       num_train=5000,
                       num_test=892,
                       seed=0,
                       split_by='video',
                       allow_fewer=False,
                       lmdb=False,
                       max_videos=None,
                       workers=1,
                       shard=None,
                       merge=False,
                       keep_shards=False,
                       progress=True,
                       log=print):
    """Run the whole CelebV-Low preparation (see the module docstring), or one shard of it, or the merge of shards.

    The ledger and the faces are the same whether the videos run in one process, in a pool of ``workers``
    processes, or in shards merged afterwards (:mod:`~lowlight3d.data.preparation.sharding`;
    ``docs/data_preparation.md`` section 5).

    Args:
        videos_dir (str): Folder of CelebV-HQ clips (not read with ``merge``; may be None then).
        output_dir (str): Output folder.
        info_json (str, optional): ``celebvhq_info.json``.
        criterion (str): ``'brightness'`` (the paper's rule) or ``'scene'``.
        threshold (float): Mean-brightness threshold.
        criterion_options (dict, optional): Further options of the criterion.
        detector (str): ``'auto'``, ``'retinaface'`` or ``'haar'``.
        weights_path (str, optional): RetinaFace weight file.
        frame_step (int): Examine one frame in ``frame_step``.
        max_frames_per_video (int): At most this many examined frames per video.
        face_size (int): Side of the aligned faces.
        filter_options (dict, optional): Options of :class:`LowLightFrameFilter` (``min_blur``, ``max_blown``, ...).
        duplicate_distance (float): Thumbnail distance for near duplicates (negative disables).
        num_train (int): Training frames (5000 in the paper).
        num_test (int): Test frames (892 in the paper).
        seed (int): Split seed.
        split_by (str): ``'video'`` or ``'frame'``.
        allow_fewer (bool): Accept fewer accepted frames than requested.
        lmdb (bool): Also write ``train.lmdb`` and ``test.lmdb``.
        max_videos (int, optional): Process only the first videos (sorted), e.g. for a trial.
        workers (int): Processes examining videos (1 = this process only).
        shard (str | Shard, optional): ``'I/N'``: process only shard ``I`` of ``N`` (every ``N``-th video from the
            ``I``-th) into ``<output_dir>/shards/shard-I-of-N/``; no split is made.
        merge (bool): Merge the complete shards in ``<output_dir>/shards/`` into ``output_dir`` (the ledger a
            one-process run writes), then split; the processing options must be those of the shards.
        keep_shards (bool): With ``merge``: keep ``<output_dir>/shards/`` (default: removed once merged).
        progress (bool): Show a tqdm progress bar.
        log (callable): Message sink.

    Returns:
        dict: The summary also written to ``summary.json`` (for a shard: the shard's counts).
    """
    from tqdm import tqdm

    from lowlight3d.face.detection import build_face_detector
    log = log or (lambda *a, **k: None)
    workers = check_workers(workers)
    options = _run_options(criterion, threshold, criterion_options, detector, frame_step, max_frames_per_video,
                           face_size, filter_options, duplicate_distance, max_videos)
    if merge:
        if shard is not None:
            raise ValueError('shard and merge exclude each other: run every --shard I/N first, then --merge alone')
        return _merge_shards(output_dir, options, num_train, num_test, seed, split_by, allow_fewer, lmdb, keep_shards,
                             log)
    rel_videos, group_of = _list_videos(videos_dir, info_json, max_videos, log)
    work_dir, det, detector_report = output_dir, None, ''
    if shard is not None:
        shard = parse_shard(shard)
        all_ids = [_video_id(r) for r in rel_videos]
        groups_sha256 = items_fingerprint(f'{v}\t{group_of.get(v, v)}' for v in all_ids)
        det, detector_report = build_face_detector(detector, weights_path=weights_path)
        log(detector_report)
        rel_videos = select_shard(rel_videos, shard)
        log(f'shard {shard}: {len(rel_videos)} of the {len(all_ids)} videos (positions {shard.index}, '
            f'{shard.index + shard.count}, {shard.index + 2 * shard.count}, ... of the sorted list)')
        work_dir = open_shard_folder(output_dir, shard, 'celebv_low',
                                     {**options, 'detector_used': det.name, 'groups_sha256': groups_sha256},
                                     [_video_id(r) for r in rel_videos], items_fingerprint(all_ids), len(all_ids),
                                     extra={'detector_report': detector_report})
    elif osp.isdir(osp.join(output_dir, SHARDS_DIRNAME)):
        log(f"note: '{osp.join(output_dir, SHARDS_DIRNAME)}' holds shards of a sharded run; this run does not use "
            'them (add --merge to combine them)')

    ledger = DecisionLedger(work_dir)
    if ledger.dropped_partial_rows:
        log(f'Resuming: dropped {ledger.dropped_partial_rows} ledger rows of an interrupted video')
    todo = [r for r in rel_videos if not ledger.is_done(_video_id(r))]
    log(f'{len(rel_videos)} videos, {len(rel_videos) - len(todo)} already done, {len(todo)} to process'
        f'{f" in {workers} processes" if workers > 1 and todo else ""}')
    faces_dir = osp.join(work_dir, 'faces')
    os.makedirs(faces_dir, exist_ok=True)
    frames_seen, t0 = 0, time.perf_counter()
    if todo:
        if det is None:
            det, detector_report = build_face_detector(detector, weights_path=weights_path)
            log(detector_report)
        config = {'videos_dir': videos_dir, 'faces_dir': faces_dir, 'criterion': criterion, 'threshold': threshold,
                  'criterion_options': criterion_options, 'detector': det.name, 'weights_path': weights_path,
                  'face_size': face_size, 'filter_options': filter_options, 'duplicate_distance': duplicate_distance,
                  'frame_step': frame_step, 'max_frames': max_frames_per_video}
        local = _VideoWorker(config, detector=det) if workers == 1 else None
        results = ordered_map(_VideoWorker, config, todo, workers=workers, local=local)
        bar = tqdm(results, total=len(todo), desc='CelebV-Low videos', unit='video', disable=not progress)
        for res in bar:  # in input order, whichever process finished first: the ledger does not depend on it
            vid = res['video']
            for row in res['rows']:
                row['group'] = group_of.get(vid, vid)
            if res['status'] == 'unreadable':
                log(f"skipping video {res['rel']}: {res['reason']}")
            ledger.commit_video(vid, res['rows'], status=res['status'], reason=res['reason'])
            frames_seen += res['frames']
            bar.set_postfix(frames=frames_seen, fps=f'{frames_seen / max(time.perf_counter() - t0, 1e-9):.1f}')
    elapsed = time.perf_counter() - t0
    run_info = {'frames_examined_this_run': frames_seen, 'seconds_this_run': elapsed,
                'frames_per_second_this_run': frames_seen / elapsed if frames_seen and elapsed > 0 else None,
                'workers': workers, 'detector': detector_report, 'criterion': criterion, 'threshold': threshold}
    if shard is not None:
        done = sum(ledger.is_done(_video_id(r)) for r in rel_videos)
        log(f'shard {shard}: {done} of {len(rel_videos)} videos done, {frames_seen} frames examined this run in '
            f'{elapsed:.1f} s; run --merge once all {shard.count} shards are done')
        return {'shard': str(shard), 'videos': len(rel_videos), 'videos_done': done, 'shard_dir': work_dir,
                **run_info}
    return _finish(output_dir, ledger, faces_dir, num_train, num_test, seed, split_by, allow_fewer, lmdb, run_info,
                   log)


def _merge_shards(output_dir, options, num_train, num_test, seed, split_by, allow_fewer, lmdb, keep_shards, log):
    """Merge complete shards into ``output_dir`` (ledger in the one-process order, faces linked), then split."""
    t0 = time.perf_counter()
    shards = collect_shards(output_dir, 'celebv_low', options)
    count = len(shards)
    video_rows, decision_rows = {}, {}
    for folder, manifest in shards:
        videos, decisions = read_ledger(folder)
        done = {v['video']: v for v in videos}
        missing = [v for v in manifest['items'] if v not in done]
        if missing:
            raise ValueError(f"Shard {manifest['shard_index']}/{count} in '{folder}' is incomplete: "
                             f"{len(manifest['items']) - len(missing)} of {len(manifest['items'])} videos done "
                             f"(e.g. {missing[0]} is not): re-run it with --shard {manifest['shard_index']}/{count} "
                             '(it resumes where it stopped), then --merge again')
        for vid in manifest['items']:
            video_rows[vid] = done[vid]
            decision_rows[vid] = []
        for row in decisions:
            if row['video'] in decision_rows:
                row_output = row.get('output') or ''
                if row['decision'] == 'accepted':
                    src = osp.join(folder, row_output)
                    if not osp.isfile(src):
                        raise ValueError(f"Shard {manifest['shard_index']}/{count} is damaged: '{src}' listed in its "
                                         'decisions.csv is missing. Delete the shard folder and re-run the shard')
                    row['_source'] = src
                decision_rows[row['video']].append(row)
    order = interleave_shards([m['items'] for _, m in shards])
    existing = {v['video'] for v in read_ledger(output_dir)[0]}
    foreign = sorted(existing - set(order))
    if foreign:
        raise ValueError(f"'{output_dir}' already holds a ledger with {len(foreign)} videos that are in no shard "
                         f'(e.g. {foreign[0]}): merge into a new --output folder, or delete its decisions.csv and '
                         'videos.csv')
    faces_dir = osp.join(output_dir, 'faces')
    os.makedirs(faces_dir, exist_ok=True)
    merged = []
    for vid in order:
        for row in decision_rows[vid]:
            src = row.pop('_source', None)
            if src is not None:
                adopt_file(src, osp.join(output_dir, row['output']))
            merged.append(row)
    write_ledger(output_dir, merged, [video_rows[v] for v in order])
    log(f'merged {count} shards: {len(order)} videos, {len(merged)} ledger rows into {output_dir}')
    first = shards[0][1]
    ledger = DecisionLedger(output_dir)
    summary = _finish(output_dir, ledger, faces_dir, num_train, num_test, seed, split_by, allow_fewer, lmdb,
                      {'frames_examined_this_run': 0, 'seconds_this_run': time.perf_counter() - t0,
                       'frames_per_second_this_run': None, 'merged_shards': count,
                       'detector': first.get('detector_report', ''), 'criterion': options['criterion'],
                       'threshold': options['threshold']}, log)
    if not keep_shards:
        remove_shards(output_dir, log)
    return summary


def _finish(output_dir, ledger, faces_dir, num_train, num_test, seed, split_by, allow_fewer, lmdb, run_info, log):
    """Split the accepted faces, write the set folders, lists, LMDBs and ``summary.json``."""
    rows = ledger.decisions()
    reasons = Counter(r['reason'] if r['decision'] != 'skipped_video' else 'unreadable_video' for r in rows)
    groups = {}
    for r in rows:
        if r['decision'] == 'accepted':
            groups.setdefault(r['group'], []).append(osp.splitext(osp.basename(r['output']))[0])
    accepted = sum(len(v) for v in groups.values())
    summary = {
        'videos': len(ledger.videos),
        'videos_unreadable': sum(v['status'] == 'unreadable' for v in ledger.videos.values()),
        'frames_examined': sum(r['decision'] in ('accepted', 'rejected') for r in rows),
        'frames_accepted': accepted,
        'reasons': dict(sorted(reasons.items())),
        **run_info,
    }
    if accepted == 0:
        log('No frame was accepted: no train/test split written')
        summary.update(num_train=0, num_test=0)
    else:
        train, test = split_accepted_frames(groups, num_train, num_test, seed, split_by, allow_fewer)
        summary.update(num_train=len(train), num_test=len(test), split_by=split_by, seed=seed)
        for split, names in (('train', train), ('test', test)):
            write_name_list(osp.join(output_dir, f'{split}_list.txt'), names)
            folder = osp.join(output_dir, split)
            changed = populate_folder(folder, {f'{n}.png': osp.join(faces_dir, f'{n}.png') for n in names})
            if lmdb and names:
                build_lmdb(folder, rebuild=changed, log=log)
    atomic_write_text(osp.join(output_dir, 'summary.json'), json.dumps(summary, indent=2, sort_keys=True))
    log(f"CelebV-Low: {summary['frames_examined']} frames examined in {summary['videos']} videos "
        f"({summary['videos_unreadable']} unreadable), {accepted} accepted -> {summary['num_train']} train / "
        f"{summary['num_test']} test; reasons: {summary['reasons']}")
    return summary
