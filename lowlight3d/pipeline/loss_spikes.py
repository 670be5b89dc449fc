"""Loss spikes in a training history: the iterations where a run blew up.

A semi-supervised run can blow up and recover to a worse plateau without ever producing a NaN (the real-face V3 run
of seed 1 at 1500 iterations: the logged 25-iteration mean of ``l_total`` jumped from 0.15 to 21 at iteration 425 and
the run ended 2.8 dB below its seed 0).  Such a run is not wrong in any way a NaN check sees, so its numbers would
silently enter a mean over seeds.  :func:`find_loss_spikes` finds the logged values that exceed ``factor`` times the
median of the ``window`` values logged before them; the training pipeline warns about them at the end of a run and
stores them in ``history.json`` (``loss_spikes``), and the benchmark table lists them per seed.
"""
import statistics

__all__ = ['SPIKE_FACTOR', 'find_loss_spikes', 'describe_spikes']

#: A logged loss this many times the median of the values logged before it is a spike.
SPIKE_FACTOR = 4.0


def _default_key(losses):
    """``l_total`` when logged, else the first ``l_*`` key logged (a one-loss run: ``l_v`` of the tri-plane DDPM)."""
    keys = [k for entry in losses for k in entry if k.startswith('l_')]
    return 'l_total' if 'l_total' in keys else (keys[0] if keys else None)


def find_loss_spikes(losses, key=None, factor=SPIKE_FACTOR, window=8, min_history=3):
    """The logged values of ``key`` more than ``factor`` times the median of the up to ``window`` values before.

    Args:
        losses (Sequence[Mapping]): The pipeline's ``history['losses']``: dicts with ``iter`` and the logged means.
        key (str, optional): Which loss (entries without it are skipped); default ``l_total``, or the first ``l_*``
            key of a run that logs no total. factor (float): Threshold ratio (> 1).
        window (int): How many earlier values make the median. min_history (int): No test before this many values.

    Returns:
        list[dict]: ``{'iter': int, 'key': str, 'value': float, 'median_before': float, 'ratio': float}`` per
        spike, in order.

    Raises:
        ValueError: ``factor`` <= 1 or ``window`` < ``min_history`` or ``min_history`` < 1.
    """
    if factor <= 1.0 or min_history < 1 or window < min_history:
        raise ValueError(f'find_loss_spikes: need factor > 1 and window >= min_history >= 1, got factor={factor}, '
                         f'window={window}, min_history={min_history}')
    key = key or _default_key(losses)
    spikes, before = [], []
    for entry in losses:
        value = entry.get(key)
        if not isinstance(value, (int, float)):
            continue
        if len(before) >= min_history:
            median = statistics.median(before[-window:])
            if median > 0 and value > factor * median:
                spikes.append({'iter': int(entry['iter']), 'key': key, 'value': float(value),
                               'median_before': float(median), 'ratio': float(value / median)})
        before.append(float(value))
    return spikes


def describe_spikes(spikes):
    """``'iter 425 (x140)'``-style text of :func:`find_loss_spikes` results (``''`` for none)."""
    return ', '.join(f"iter {s['iter']} (x{s['ratio']:.3g})" for s in spikes)
