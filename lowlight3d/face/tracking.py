"""Face landmarks smoothed over the frames of a video, so pasted faces do not jitter or flicker.

:class:`LandmarkSmoother` keeps one track per face: each frame's detections are matched to the tracks by the
distance of their box centres (relative to the face size), a matched track's landmarks are updated by an
exponential moving average (``alpha`` = weight of the new frame), and a track that is not detected keeps its last
landmarks for up to ``hold`` frames (a face is not dropped for one missed detection) before it ends.
"""
import numpy as np

__all__ = ['LandmarkSmoother']


class LandmarkSmoother:
    """Match faces across frames and smooth their 5-point landmarks.

    Args:
        alpha (float): Weight of the new frame in the moving average (1 = no smoothing).
        hold (int): Frames a missed face keeps its last landmarks.
        max_jump (float): Largest centre move between frames, as a fraction of the face's eye-to-mouth size, for a
            detection to continue a track.
    """

    def __init__(self, alpha=0.4, hold=3, max_jump=1.0):
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f'alpha must be in (0, 1], got {alpha}')
        self.alpha, self.hold, self.max_jump = float(alpha), int(hold), float(max_jump)
        self.tracks = []  # dicts: landmarks (5x2), missed (int)

    @staticmethod
    def _size(lm):
        return float(np.hypot(*(lm[1] - lm[0])) + np.hypot(*((lm[3] + lm[4]) / 2 - (lm[0] + lm[1]) / 2)))

    def update(self, landmarks):
        """Feed one frame's landmarks (list of ``5 x 2``); returns the smoothed landmarks of the live tracks."""
        unmatched = list(range(len(landmarks)))
        for track in self.tracks:
            centre = track['landmarks'].mean(0)
            best, best_d = None, None
            for i in unmatched:
                d = np.hypot(*(np.asarray(landmarks[i]).mean(0) - centre)) / max(self._size(track['landmarks']), 1.0)
                if d <= self.max_jump and (best_d is None or d < best_d):
                    best, best_d = i, d
            if best is None:
                track['missed'] += 1
                continue
            unmatched.remove(best)
            new = np.asarray(landmarks[best], dtype=np.float64)
            track['landmarks'] = self.alpha * new + (1.0 - self.alpha) * track['landmarks']
            track['missed'] = 0
        self.tracks = [t for t in self.tracks if t['missed'] <= self.hold]
        for i in unmatched:
            self.tracks.append({'landmarks': np.asarray(landmarks[i], dtype=np.float64), 'missed': 0})
        return [t['landmarks'].astype(np.float32) for t in self.tracks]
