"""Loss spikes in a training history (lowlight3d/pipeline/loss_spikes.py) and their column in the benchmark table."""
import pytest

from lowlight3d.pipeline.benchmark import summarise
from lowlight3d.pipeline.loss_spikes import describe_spikes, find_loss_spikes


def _history(values, key='l_total'):
    return [{'iter': 25 * (i + 1), key: v} for i, v in enumerate(values)]


def test_a_spike_is_found_against_the_median_before_it():
    """0.8 after [0.2, 0.18, 0.17, 0.16] (median 0.175) is 4.57x: a spike; 0.6 (3.43x) is not; the spike itself
    enters the later medians (window 8)."""
    spikes = find_loss_spikes(_history([0.2, 0.18, 0.17, 0.16, 0.8, 0.15, 0.6]))
    assert [s['iter'] for s in spikes] == [125]
    assert spikes[0]['key'] == 'l_total' and spikes[0]['median_before'] == pytest.approx(0.175)
    assert spikes[0]['ratio'] == pytest.approx(0.8 / 0.175)
    assert describe_spikes(spikes) == 'iter 125 (x4.57)'
    assert describe_spikes([]) == ''


def test_no_test_before_min_history_and_entries_without_the_key_skipped():
    assert find_loss_spikes(_history([0.1, 5.0, 9.0])) == []  # fewer than 3 values before them
    entries = _history([0.1, 0.1, 0.1]) + [{'iter': 100, 'l_pixel': 50.0}] + [{'iter': 125, 'l_total': 0.5}]
    assert [s['iter'] for s in find_loss_spikes(entries)] == [125]
    assert find_loss_spikes(_history([0.1, 0.1, 0.1, 0.39])) == []
    with pytest.raises(ValueError, match='factor > 1'):
        find_loss_spikes([], factor=1.0)


def test_the_benchmark_row_names_the_seed_that_blew_up():
    def run(seed, spikes):
        return {'summary': {'S': {'metrics': {'psnr': 20.0}}}, 'seconds_per_iter': 0.5, 'seed': seed,
                'loss_spikes': spikes}

    spike = {'iter': 425, 'value': 21.0, 'median_before': 0.15, 'ratio': 140.0}
    assert summarise('V3', [run(0, []), run(1, [spike])])['loss_spikes'] == 'seed 1: iter 425 (x140)'
    assert summarise('V3', [run(0, []), run(1, [])])['loss_spikes'] == 'none'
    assert 'loss_spikes' not in summarise('gamma', [run(0, None)])  # not trained: no column


def test_a_run_without_a_total_is_checked_on_its_one_loss():
    entries = _history([0.1, 0.1, 0.1, 0.9], key='l_v')
    assert [(s['iter'], s['key']) for s in find_loss_spikes(entries)] == [(100, 'l_v')]
    assert find_loss_spikes([]) == []
